//! `beam dev` end to end: detection, waiting for a dev server that starts
//! late, Host rewriting, and the error when there is nothing to detect.

use std::process::Stdio;

use super::cli;
use crate::support::*;

/// `beam dev` in a Vite project whose dev server is not up yet: it says what
/// it detected and that it waits, goes online once the server listens,
/// rewrites `Host` for Vite, and takes `beam http`'s options (`--json`,
/// `--inspect`). A directory with nothing to detect gets a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_dev_detects_waits_and_serves_the_project() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        project.path().join("package.json"),
        r#"{"scripts":{"dev":"vite"},"devDependencies":{"vite":"^6.0.0"}}"#,
    )
    .unwrap();
    std::fs::write(
        project.path().join("vite.config.ts"),
        format!("export default {{ server: {{ port: {port} }} }}"),
    )
    .unwrap();
    let tunnel = server.tunnel.to_string();
    let mut dev = Kill(
        beam(home.path())
            .current_dir(project.path())
            .args(["dev", "--json", "--no-open", "--inspect", "127.0.0.1:0"])
            .args(["--server", &tunnel, "--fingerprint", &server.fingerprint])
            .env("BEAM_TOKEN", server.token.expose())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = stdout_lines(&mut dev.0);
    let stderr = dev.0.stderr.take().unwrap();
    let (tx, mut err_lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let detected = within("detection line", err_lines.recv()).await.unwrap();
    assert_eq!(
        detected,
        format!("beam dev: Vite detected (vite.config.ts: port {port}): port {port}")
    );
    let mut said = String::new();
    while !said.contains("waiting for your dev server") {
        said = within("waiting line", err_lines.recv()).await.unwrap();
    }
    // The dev server comes up late.
    let origin = RecordingOrigin::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let line = within("connected line", lines.recv()).await.unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["event"], "connected");
    let name = v["name"].as_str().unwrap();
    let (status, _) = get(server.public, &server.host(name), "/from-the-phone").await;
    assert_eq!(status, http::StatusCode::OK);
    let seen = origin.seen();
    assert_eq!(seen[0].path, "/from-the-phone");
    assert_eq!(
        seen[0].host,
        format!("127.0.0.1:{port}"),
        "Host rewritten for Vite"
    );

    // Nothing to detect and no port: said plainly.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(
        home.path(),
        empty.path(),
        &["dev", "--no-open"],
        &[("BEAM_TOKEN", "beam_x")],
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no dev server found") && err.contains("beam dev 3000"),
        "{err}"
    );
}
