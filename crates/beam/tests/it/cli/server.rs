//! `beam server` from the command line: the data-directory lock, cluster
//! flag mistakes, logs without colour codes when piped, and the dev HTTPS
//! certificate kept across restarts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::run;
use crate::support::*;

/// `beam server --dev` with OS-picked ports, on `data` or the default data
/// directory.
pub(super) fn dev_server_cmd(home: &std::path::Path, data: Option<&std::path::Path>) -> Command {
    let mut c = beam(home);
    c.args([
        "server",
        "--dev",
        "--http",
        "127.0.0.1:0",
        "--tunnel",
        "127.0.0.1:0",
    ])
    .args(["--https", "127.0.0.1:0"]);
    if let Some(data) = data {
        c.arg("--data-dir").arg(data);
    }
    c
}

/// Starts [`dev_server_cmd`] and waits for its banner (by then it holds the
/// data lock and has saved the config).
pub(super) async fn dev_server(home: &std::path::Path, data: &std::path::Path) -> Kill {
    let mut server = Kill(
        dev_server_cmd(home, Some(data))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let ready = tokio::task::spawn_blocking(move || {
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "server exited:\n{banner}"
            );
            banner.push_str(&line);
            if line.contains("beam server is ready") {
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return;
            }
        }
    });
    within("server banner", ready).await.unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_data_directory_is_refused_naming_the_first() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let first = dev_server(home.path(), &data).await;
    let config = home.path().join(".config/beam/config.toml");
    let saved = std::fs::read_to_string(&config).unwrap();

    let (code, _, err) = output(dev_server_cmd(home.path(), Some(&data)));
    assert_eq!(code, 1, "{err}");
    let pid = first.0.id();
    assert!(
        err.contains(&format!(
            "another beam server (pid {pid}, tunnel 127.0.0.1:"
        )),
        "{err}"
    );
    assert!(
        err.contains(&data.join("beam.db").display().to_string()),
        "{err}"
    );
    assert!(err.contains("--data-dir"), "{err}");
    // The refused server touched nothing: the saved config still points at the first.
    assert_eq!(std::fs::read_to_string(&config).unwrap(), saved);

    // Once the first is gone (even killed), the directory is free again.
    drop(first);
    let _again = dev_server(home.path(), &data).await;
}

/// `beam server --node-addr`: each mistake in joining a cluster is named
/// before anything is opened, and the secret is never printed.
#[test]
fn cluster_flags_get_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let data = data.to_str().unwrap();
    let base = [
        "server",
        "--http",
        "127.0.0.1:0",
        "--tunnel",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ];
    let server = |extra: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        run(home.path(), &args, env)
    };
    let pg = ["--database", "postgres://beam@127.0.0.1:1/none"];
    let secret = ("BEAM_CLUSTER_SECRET", "a-long-enough-cluster-secret");

    let (code, err) = server(&["--node-addr", "127.0.0.1:0"], &[secret]);
    assert_eq!(code, 1);
    assert!(
        err.contains("a cluster shares one PostgreSQL database"),
        "{err}"
    );

    let node = [pg[0], pg[1], "--node-addr", "127.0.0.1:0"];
    let (code, err) = server(&node, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--node-addr needs the cluster secret"),
        "{err}"
    );

    let (code, err) = server(&node, &[("BEAM_CLUSTER_SECRET", "tiny-sec")]);
    assert_eq!(code, 1);
    assert!(err.contains("too short"), "{err}");
    assert!(!err.contains("tiny-sec"), "the secret leaked: {err}");

    let file = home.path().join("no-such-secret");
    let file_env = ("BEAM_CLUSTER_SECRET_FILE", file.to_str().unwrap());
    let (code, err) = server(&node, &[secret, file_env]);
    assert_eq!(code, 1);
    assert!(err.contains("not both"), "{err}");
    let (code, err) = server(&node, &[file_env]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read the cluster secret from BEAM_CLUSTER_SECRET_FILE"),
        "{err}"
    );

    let (code, err) = server(&[pg[0], pg[1], "--node-addr", "0.0.0.0:7000"], &[secret]);
    assert_eq!(code, 1);
    assert!(
        err.contains("must be one they can reach") && err.contains("--node-bind"),
        "{err}"
    );
    let (code, err) = server(&[pg[0], pg[1], "--node-addr", "node-one"], &[secret]);
    assert_eq!(code, 1);
    assert!(err.contains("expected HOST:PORT"), "{err}");
    assert!(!err.contains(secret.1), "the secret leaked: {err}");
}

/// The server's logs carry no ANSI colour when stderr is not a terminal,
/// even with colour allowed (no `NO_COLOR`) and verbose logging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_logs_to_a_pipe_have_no_colour() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = dev_server_cmd(home.path(), None);
    cmd.env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Kill(cmd.spawn().unwrap());
    let stderr = server.0.stderr.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(within("server log lines", lines.recv()).await.unwrap());
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("DEBUG") || l.contains("INFO")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\x1b')),
        "ANSI colour in a piped log: {seen:?}"
    );
}

/// `beam server --dev` keeps the self-signed HTTPS certificate it made in the
/// data directory, so a browser's exception for it survives restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_https_certificate_is_kept_across_restarts() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let first = dev_server(home.path(), &data).await;
    let cert =
        std::fs::read_to_string(data.join("edge-cert.pem")).expect("the edge certificate is kept");
    drop(first);
    let _second = dev_server(home.path(), &data).await;
    assert_eq!(
        std::fs::read_to_string(data.join("edge-cert.pem")).unwrap(),
        cert
    );
}
