//! The real `beam agent` running an app, and `beam logs` reading it.

use crate::cli::cli;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_agent_runs_the_app_and_beam_logs_reads_it() {
    let server = TestServer::start().await;
    let admin = server.user("ops@shop.test").await;
    let admin_token = server
        .api_token(&admin, &["admin", "logs:read", "org:read"])
        .await;
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let with_conn = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(conn.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>, token: String| {
        let (home, cwd) = (home.path().to_path_buf(), cwd.path().to_path_buf());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&home, &cwd, &args, &[("BEAM_TOKEN", token.as_str())], None).await
        }
    };

    let (code, _, err) = run(
        with_conn(&["projects", "create", "shop/production"]),
        admin_token.clone(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        with_conn(&["projects", "token", "shop/production"]),
        admin_token.clone(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let agent_token = out.trim().to_string();
    assert!(agent_token.starts_with("beam_"), "{out}");
    let (code, out, _) = run(with_conn(&["projects", "list"]), admin_token.clone()).await;
    assert_eq!((code, out.trim()), (0, "shop/production"));

    // The app: two log lines, then it waits for the test and exits 3.
    let done = cwd.path().join("done");
    let script = format!(
        r#"echo '{{"level":50,"msg":"card declined","service":"billing"}}'; echo 'INFO order ok'; while [ ! -f {} ]; do sleep 0.05; done; exit 3"#,
        done.display()
    );
    let mut args = with_conn(&["agent", "--project", "shop/production"]);
    args.extend(["--".to_string(), "sh".into(), "-c".into(), script]);
    let agent = tokio::spawn(run(args, agent_token));

    // As soon as the agent is connected, the error line is there; filtered on the agent.
    let out = eventually("beam logs sees the agent", || {
        let args = with_conn(&[
            "logs",
            "--project",
            "shop/production",
            "--level",
            "error",
            "--no-follow",
        ]);
        let token = admin_token.clone();
        let run = &run;
        async move {
            let (code, out, _) = run(args, token).await;
            (code == 0 && !out.is_empty()).then_some(out)
        }
    })
    .await;
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("] [ERROR] [billing] card declined"), "{out}");
    let (code, out, _) = run(
        with_conn(&[
            "logs",
            "--project",
            "shop/production",
            "--no-follow",
            "--json",
            "--grep",
            "order",
        ]),
        admin_token.clone(),
    )
    .await;
    assert_eq!(code, 0);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (line["message"].as_str(), line["level"].as_str()),
        (Some("INFO order ok"), Some("info"))
    );

    // Following, then Ctrl-C: the reader asked to stop, so that is success.
    let mut follow = beam(home.path());
    follow
        .args(with_conn(&["logs", "--project", "shop/production"]))
        .env("BEAM_TOKEN", &admin_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut follower = follow.spawn().unwrap();
    let first = first_line(&mut follower).await;
    assert!(first.contains("card declined"), "{first}");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &follower.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = within(
        "beam logs stops on Ctrl-C",
        tokio::task::spawn_blocking(move || follower.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C ends `beam logs` with 0");

    std::fs::write(&done, "").unwrap();
    let (code, out, err) = within("agent exit", agent).await.unwrap();
    assert_eq!(code, 3, "the app's exit code passes through: {err}");
    assert!(
        out.contains("card declined") && out.contains("INFO order ok"),
        "the app's output passes through: {out}"
    );
    assert!(
        err.contains("beam agent: connected, publishing shop/production"),
        "{err}"
    );
}
