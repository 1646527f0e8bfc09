//! Shared by the parity tests: an organization with `shop/production` and
//! its agent token, production agents run as real `beam agent` processes, and
//! reading what they print.

use http::StatusCode;
use serde_json::json;

use crate::support::*;

/// An admin token of the operator's organization, `shop/production`, and an
/// agent token for it.
pub async fn setup(server: &TestServer) -> (String, String) {
    assert_eq!(
        server.operator.org_id, 1,
        "sources() assumes the operator org is 1"
    );
    let admin = server.token.expose().to_string();
    let r = server
        .api(
            "POST",
            "/api/projects",
            Some(&admin),
            Some(json!({"project": "shop", "environment": "production"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/agent-tokens",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (admin, r.json["token"].as_str().unwrap().to_string())
}

/// A child process whose stderr lines arrive on a channel.
pub(crate) struct Watched {
    _kill: crate::support::Kill,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Watched {
    pub(crate) fn spawn(mut cmd: std::process::Command) -> Self {
        use std::io::BufRead;
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            _kill: crate::support::Kill(child),
            lines: rx,
            seen: String::new(),
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self._kill.0.id()
    }

    /// Waits (off the runtime) for the process to exit; its exit code.
    pub(crate) async fn exit_code(&mut self) -> i32 {
        let child = &mut self._kill.0;
        tokio::task::block_in_place(|| {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    return status.code().unwrap_or(-1);
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the process did not exit"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    }

    /// Waits (off the runtime) for a stderr line containing `what`.
    pub(crate) async fn wait_for(&mut self, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = tokio::task::block_in_place(|| self.lines.recv_timeout(left));
            match got {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {what:?}; saw:\n{}", self.seen),
            }
        }
    }
}

/// Starts `beam agent --project shop/production` with `token`, `args` and
/// `env` (on top of the test's clean environment) and waits until it is
/// connected.
pub async fn start_agent(
    server: &TestServer,
    home: &std::path::Path,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Watched {
    let mut c = crate::support::beam(home);
    c.args(["agent", "--project", "shop/production"])
        .args(args)
        .args(["--server", &server.tunnel.to_string()])
        .args(["--fingerprint", &server.fingerprint])
        .env("BEAM_TOKEN", token);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut agent = Watched::spawn(c);
    agent
        .wait_for("connected, publishing shop/production")
        .await;
    agent
}

/// A production agent serving sync for `shop/production` from the database at
/// `db_url`, with the policy file `policy` and a fixed pseudonym key.
pub async fn start_sync_agent(
    server: &TestServer,
    home: &std::path::Path,
    token: &str,
    policy: &std::path::Path,
    db_url: &str,
) -> Watched {
    start_sync_agent_with(server, home, token, policy, db_url, &[]).await
}

/// [`start_sync_agent`] with more agent flags.
pub async fn start_sync_agent_with(
    server: &TestServer,
    home: &std::path::Path,
    token: &str,
    policy: &std::path::Path,
    db_url: &str,
    extra: &[&str],
) -> Watched {
    let policy = policy.display().to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--database-env",
        "PROD_DB",
        "--sync-policy",
        &policy,
    ];
    args.extend_from_slice(extra);
    start_agent(
        server,
        home,
        token,
        &args,
        &[
            ("PROD_DB", db_url),
            ("BEAM_SYNC_KEY", "0123456789abcdef-pseudonym-key"),
        ],
    )
    .await
}
