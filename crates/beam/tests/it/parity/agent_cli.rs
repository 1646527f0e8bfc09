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

/// `beam logs --output FILE` killed with SIGKILL (even mid-line) and started
/// again continues exactly after the file's last line; an agent that
/// restarted meanwhile is announced with its new buffer's epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_output_continues_after_a_kill_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let admin = server.user("ops@shop.test").await;
    let token = server
        .api_token(&admin, &["admin", "logs:read", "org:read"])
        .await;
    let home = tempfile::tempdir().unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let run = |args: &[&str], token: &str| {
        let mut c = beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", token);
        c
    };
    let (code, _, err) = output(run(&["projects", "create", "shop/production"], &token));
    assert_eq!(code, 0, "{err}");
    let (code, agent_token, err) = output(run(&["projects", "token", "shop/production"], &token));
    assert_eq!(code, 0, "{err}");
    let agent_token = agent_token.trim().to_string();
    // The app: a numbered JSON line every 5 ms, for as long as it runs.
    let app =
        r#"i=0; while true; do echo "{\"msg\":\"tick\",\"n\":$i}"; i=$((i+1)); sleep 0.005; done"#;
    let spawn_agent = || {
        let mut c = run(&["agent", "--project", "shop/production"], &agent_token);
        c.args(["--", "sh", "-c", app])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Kill(c.spawn().unwrap())
    };
    let mut agent = spawn_agent();
    let file = home.path().join("prod.jsonl");
    let file_s = file.to_str().unwrap().to_string();
    let follow = || {
        let mut c = run(
            &["logs", "--project", "shop/production", "--output", &file_s],
            &token,
        );
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Kill(c.spawn().unwrap())
    };
    // Entries' n in the file, per agent run (split at `joined` lines); every
    // line that ends in a newline must be whole JSON.
    let read = || -> Vec<Vec<u64>> {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut runs: Vec<Vec<u64>> = Vec::new();
        for line in whole.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a broken line in the file: {line:?}: {e}"));
            if v.get("joined").is_some() {
                runs.push(Vec::new());
            } else if let Some(n) = v["context"]["n"].as_u64() {
                runs.last_mut().expect("a joined line first").push(n);
            }
        }
        runs
    };
    let count = |runs: &[Vec<u64>]| runs.iter().map(Vec::len).sum::<usize>();

    let mut follower = follow();
    eventually("the first lines in the file", || async {
        (count(&read()) >= 50).then_some(())
    })
    .await;
    // Killed, and as if in the middle of writing a line.
    let _ = follower.0.kill();
    let _ = follower.0.wait();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(br#"{"seq":99999,"ts":1,"lev"#).unwrap();
    }
    // The app goes on while nobody reads.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = count(&read());
    let mut follower = follow();
    eventually("lines after the restart", || async {
        let runs = read();
        (count(&runs) >= before + 150).then_some(())
    })
    .await;
    // The agent crashes and comes back: a new buffer, announced in the file.
    let _ = agent.0.kill();
    let _ = agent.0.wait();
    agent = spawn_agent();
    eventually("the restarted agent's lines", || async {
        let runs = read();
        (runs.len() >= 2 && runs.last().unwrap().len() >= 50).then_some(())
    })
    .await;
    let _ = follower.0.kill();
    let _ = follower.0.wait();
    drop(agent);

    let runs = read();
    assert_eq!(runs.len(), 2, "one joined line per agent run: {runs:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "production logs are the user's only");
    for (i, run) in runs.iter().enumerate() {
        let gaps: Vec<_> = run.windows(2).filter(|w| w[1] != w[0] + 1).collect();
        assert!(
            gaps.is_empty(),
            "run {i}: every line once, in order, across the kill: {gaps:?}"
        );
    }
    assert_eq!(runs[1][0], 0, "the restarted agent's lines from its first");
}

/// `--output` somewhere that cannot be written is a clear error before any
/// connection is made, not a stream that goes nowhere.
#[test]
fn logs_output_to_an_unwritable_path_says_so() {
    let home = tempfile::tempdir().unwrap();
    for bad in [
        home.path().join("no/such/dir/prod.jsonl"),
        home.path().to_path_buf(),
    ] {
        let mut c = beam(home.path());
        c.args([
            "logs",
            "--project",
            "shop/production",
            "--server",
            "127.0.0.1:1",
        ])
        .args(["--insecure", "--output"])
        .arg(&bad)
        .env(
            "BEAM_TOKEN",
            "beam_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        );
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("opening --output"), "{err}");
    }
}
