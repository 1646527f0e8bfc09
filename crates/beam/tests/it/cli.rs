//! The real `beam` binary: the README quick start path and its error messages.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::*;

const BEAM: &str = env!("CARGO_BIN_EXE_beam");

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn beam(home: &std::path::Path) -> Command {
    let mut c = Command::new(BEAM);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_server_dev_then_beam_http() {
    let home = tempfile::tempdir().unwrap();
    let mut server = Kill(
        beam(home.path())
            .args([
                "server",
                "--dev",
                "--http",
                "127.0.0.1:0",
                "--tunnel",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Read the banner until the token line: by then the config file is written.
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let mut banner = String::new();
    let public_port = tokio::task::spawn_blocking(move || {
        let mut port = 0u16;
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "server exited:\n{banner}"
            );
            banner.push_str(&line);
            if let Some(rest) = line
                .trim()
                .strip_prefix("tunnels     http://<name>.localhost:")
            {
                port = rest.parse().unwrap();
            }
            if line.contains("saved to") {
                assert!(banner.contains("beam server is ready"), "{banner}");
                assert!(banner.contains("token       beam_"), "{banner}");
                // Keep draining so the server never writes into a closed pipe.
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return port;
            }
        }
    });
    let public_port = within("server banner", public_port).await.unwrap();
    assert_ne!(public_port, 0, "the banner shows the real bound port");
    let config = std::fs::read_to_string(home.path().join(".config/beam/config.toml")).unwrap();
    assert!(config.contains("token = \"beam_") && config.contains("fingerprint = \"sha256:"));

    let origin = Origin::start().await;
    let mut client = Kill(
        beam(home.path())
            .args(["http", &origin.addr.to_string(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = client.0.stdout.take().unwrap();
    let line = within(
        "client's JSON line",
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }),
    )
    .await
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["event"], "connected");
    assert_eq!(v["protocol"], "http");
    let name = v["name"].as_str().unwrap();
    assert_eq!(v["url"], format!("http://{name}.localhost:{public_port}"));
    let public = format!("127.0.0.1:{public_port}").parse().unwrap();
    let (status, body) = get(public, &format!("{name}.localhost"), "/hello").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, "hello from origin");

    // Ctrl-C closes the client cleanly with exit code 0.
    let pid = client.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = within(
        "client exit",
        tokio::task::spawn_blocking(move || client.0.wait().map(|s| (s, client))),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
}

fn run(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = beam(home);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gets_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let (code, err) = run(home.path(), &["http", "3000"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no token: run `beam login`, set BEAM_TOKEN"),
        "{err}"
    );

    let (code, err) = run(home.path(), &["http", "99999"], &[("BEAM_TOKEN", "beam_x")]);
    assert_eq!(code, 1);
    assert!(err.contains("'99999' is not a local address"), "{err}");

    let (code, err) = run(home.path(), &["server", "--tcp-ports", "9-1"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a port range"), "{err}");

    let (code, err) = run(home.path(), &["http", "3000", "--token", "beam_x"], &[]);
    assert_eq!(code, 2, "tokens are not accepted as flags: {err}");
}

#[tokio::test]
async fn wrong_token_exits_with_the_servers_message() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let tunnel = server.tunnel.to_string();
    let (code, err) = tokio::task::spawn_blocking(move || {
        run(
            home.path(),
            &["http", "3000", "--server", &tunnel, "--insecure"],
            &[("BEAM_TOKEN", "beam_not_a_real_token")],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("invalid token"), "{err}");
    assert!(!err.contains("beam_not_a_real_token"), "{err}");
}
