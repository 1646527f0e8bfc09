//! Production never pays for beam: `beam agent` starts the app whatever is
//! wrong on beam's side (no token, a wrong token, the server down), says
//! loudly why it is not publishing, keeps retrying, and exits with the app's
//! exit code.

use crate::support::parity::{Watched, setup};
use crate::support::*;

/// `beam agent` running an app that waits for `go` to exist, then prints and
/// exits 7. `token` is BEAM_TOKEN (none when `None`).
fn agent(
    home: &std::path::Path,
    server: &str,
    token: Option<&str>,
    go: &std::path::Path,
) -> Watched {
    let mut c = crate::support::beam(home);
    c.args([
        "agent",
        "--project",
        "shop/production",
        "--server",
        server,
        "--insecure",
        "--",
    ])
    .args([
        "sh",
        "-c",
        &format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; exit 7",
            go.display()
        ),
    ]);
    if let Some(t) = token {
        c.env("BEAM_TOKEN", t);
    }
    Watched::spawn(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_starts_without_a_token_with_a_wrong_one_and_with_the_server_down() {
    let server = TestServer::start().await;
    let _ = setup(&server).await;
    let tunnel = server.tunnel.to_string();
    let cases = [
        (
            "no token",
            tunnel.as_str(),
            None,
            "NOT PUBLISHING: no token",
        ),
        (
            "wrong token",
            tunnel.as_str(),
            Some("beam_wrongwrongwrongwrongwrongwrong00"),
            "NOT PUBLISHING: ",
        ),
        // Nothing listens on port 1: the agent stays offline and retries.
        (
            "server down",
            "127.0.0.1:1",
            Some("beam_whatever"),
            "offline (",
        ),
    ];
    for (case, addr, token, says) in cases {
        let home = tempfile::tempdir().unwrap();
        let go = home.path().join("go");
        let mut a = agent(home.path(), addr, token, &go);
        let line = a.wait_for(says).await;
        assert!(
            line.contains("retrying"),
            "{case}: the agent must say it keeps trying: {line}"
        );
        if case == "wrong token" {
            assert!(line.contains("invalid token"), "{case}: {line}");
        }
        std::fs::write(&go, b"").unwrap();
        // The app ran all along: it exits when told to, with its own code.
        assert_eq!(a.exit_code().await, 7, "{case}: the app's exit code");
    }
}
