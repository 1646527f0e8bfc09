//! `beam flags`, `beam env check` and `beam health` through the real binary: a
//! production agent (its own process, with its own environment) answers; the
//! developer's CLI prints the seed's layouts. Env check answers carry verdicts
//! only, and health fails when the production database goes away.

use http::StatusCode;
use serde_json::json;

use crate::support::parity::setup;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_env_check_and_health_are_answered_in_production() {
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server
        .api_token(
            &admin,
            &["flags:read", "env:check", "logs:read", "data:read"],
        )
        .await;
    let (db, db_url) = PgDb::create().await;
    let app = Origin::start().await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let flags_file = work.path().join("flags.toml");
    std::fs::write(
        &flags_file,
        "[flags.new-checkout]\nenabled = true\nrollout = 68.01\ndescription = \"New checkout\"\n\
         [flags.ENABLE_PAYPAL]\nenabled = false\n[flags.dark-mode]\nenabled = false\ndescription = \"Dark theme\"\n",
    )
    .unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let health_url = format!("http://{}/hello", app.addr);
    let flags_arg = flags_file.display().to_string();

    let agent_proc = crate::support::parity::start_agent(
        &server,
        home.path(),
        &agent,
        &[
            "--listen",
            "127.0.0.1:0",
            "--flags-file",
            &flags_arg,
            "--flags-env-prefix",
            "FEATURE_",
            "--env-allow",
            "STRIPE_*",
            "--env-allow",
            "PORT",
            "--env-allow",
            "PROD_DB",
            "--database-env",
            "PROD_DB",
            "--health-url",
            &health_url,
        ],
        &[
            ("FEATURE_ENABLE_STRIPE", "on"),
            // The same flag as the file's dark-mode: the variable wins.
            ("FEATURE_DARK_MODE", "on"),
            ("STRIPE_SECRET_KEY", "sk_live_production_value_1234"),
            ("PORT", "3000"),
            ("API_URL", "https://api.production.example"),
            ("PROD_DB", &db_url),
        ],
    )
    .await;

    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = crate::support::beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", &dev);
        for (k, v) in env {
            c.env(k, v);
        }
        crate::support::output(c)
    };

    // Flags: the file and the FEATURE_ variables, in the seed's table.
    let (code, out, err) = run(&["flags", "--project", "shop/production"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "✓ ON   dark-mode      Dark theme\n✗ OFF  enable-paypal\n✓ ON   enable-stripe\n✓ ON   new-checkout   68.01% rollout · New checkout\n"
    );
    let (code, out, _) = run(
        &[
            "flags",
            "eval",
            "new-checkout",
            "--user",
            "user-42",
            "--project",
            "shop/production",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "✓ ON  new-checkout for user-42: in_rollout, bucket 6800"
    );
    let (code, out, _) = run(
        &["flags", "eval", "DARK_MODE", "--project", "shop/production"],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("✓ ON  dark-mode"), "{out}");
    let (code, _, err) = run(
        &["flags", "eval", "nope", "--project", "shop/production"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no flag 'nope'"), "{err}");
    // --write mirrors them, with the local overrides layer on top.
    let env_local = work.path().join(".env.local");
    std::fs::write(
        work.path().join(".env.local.overrides"),
        "FLAG_ENABLE_PAYPAL=true\n",
    )
    .unwrap();
    let env_arg = env_local.display().to_string();
    let (code, _, err) = run(
        &["flags", "--project", "shop/production", "--write", &env_arg],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(&env_local).unwrap();
    assert!(written.contains("FLAG_ENABLE_PAYPAL=true\n"), "{written}");
    assert!(written.contains("FLAG_NEW_CHECKOUT=true\n"), "{written}");
    assert_eq!(
        std::fs::read_to_string(work.path().join(".env.local.overrides")).unwrap(),
        "FLAG_ENABLE_PAYPAL=true\n",
        "the overrides layer is never written"
    );

    // Env check: verdicts only. The raw answer holds no production value.
    let nonce = [7u8; 32];
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/env/check",
            Some(&dev),
            Some(json!({"nonce": hex, "vars": {
                "STRIPE_SECRET_KEY": beam_agent::envcheck::fingerprint(&nonce, "sk_test_local"),
                "PORT": beam_agent::envcheck::fingerprint(&nonce, "3000"),
                "API_URL": null, "BEAM_TOKEN": null, "PROD_DB": null}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.json,
        json!({"results": {"STRIPE_SECRET_KEY": "different", "PORT": "equal",
            "API_URL": "refused", "BEAM_TOKEN": "refused", "PROD_DB": "refused"}})
    );
    let wire = r.json.to_string();
    for secret in [
        "sk_live_production_value_1234",
        "api.production.example",
        &db_url,
        "3000",
    ] {
        assert!(!wire.contains(secret), "{secret} on the wire: {wire}");
    }
    // The audit log has who compared which names and the verdicts; never a
    // value or a fingerprint.
    let audited = eventually("the env check is audited", || async {
        let r = server
            .api("GET", "/api/audit?kind=env.check", Some(&admin), None)
            .await;
        let list = r.json["entries"].as_array().cloned().unwrap_or_default();
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(
        (
            audited[0]["project"].as_str(),
            audited[0]["environment"].as_str(),
            audited[0]["outcome"].as_str(),
            audited[0]["detail"]["verdicts"]["PORT"].as_str(),
        ),
        (Some("shop"), Some("production"), Some("ok"), Some("equal"))
    );
    assert_eq!(
        audited[0]["detail"]["names"],
        json!([
            "API_URL",
            "BEAM_TOKEN",
            "PORT",
            "PROD_DB",
            "STRIPE_SECRET_KEY"
        ])
    );
    let text = serde_json::to_string(&audited).unwrap();
    for hidden in [
        beam_agent::envcheck::fingerprint(&nonce, "sk_test_local"),
        beam_agent::envcheck::fingerprint(&nonce, "3000"),
        hex.clone(),
        "sk_live_production_value_1234".to_string(),
    ] {
        assert!(!text.contains(&hidden), "the audit log holds {hidden}");
    }
    // Flag reads and evaluations were recorded too, with the flag asked for.
    let r = server
        .api("GET", "/api/audit?kind=flags", Some(&admin), None)
        .await;
    let flag_kinds: Vec<&str> = r.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        flag_kinds.contains(&"flags.read") && flag_kinds.contains(&"flags.eval"),
        "{flag_kinds:?}"
    );
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/env/check",
            Some(&dev),
            Some(json!({"nonce": "00", "vars": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("nonce"), "{r:?}");
    let no_scope = server.api_token(&admin, &["logs:read"]).await;
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/flags",
            Some(&no_scope),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let (code, out, err) = run(
        &[
            "env",
            "check",
            "STRIPE_SECRET_KEY",
            "PORT",
            "STRIPE_WEBHOOK_SECRET",
            "--project",
            "shop/production",
            "--strict",
        ],
        &[("STRIPE_SECRET_KEY", "sk_test_local"), ("PORT", "3000")],
    );
    assert_eq!(code, 1, "--strict fails on a difference: {err}");
    assert_eq!(
        out,
        "❌ Missing everywhere:\n  ✗ STRIPE_WEBHOOK_SECRET\n≠ Different values:\n  ✗ STRIPE_SECRET_KEY  (local: environment)\n✓ Same in both:\n  ✓ PORT  (local: environment)\n"
    );
    assert!(!out.contains("sk_"), "{out}");
    // Local values from dotenv files, as the app reads them: .env, then
    // .env.local over it, then the process environment over both.
    std::fs::write(
        work.path().join(".env"),
        "# defaults\nexport PORT=3000\nSTRIPE_SECRET_KEY=\"sk_test_local\" # not production's\nSUFFIX=1234\n",
    )
    .unwrap();
    std::fs::write(
        work.path().join(".env.local"),
        "STRIPE_SECRET_KEY=sk_live_production_value_${SUFFIX}\n",
    )
    .unwrap();
    let in_work = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = crate::support::beam(home.path());
        c.current_dir(work.path())
            .args(["env", "check", "STRIPE_SECRET_KEY", "PORT"])
            .args(["--project", "shop/production"])
            .args(extra)
            .args(conn)
            .env("BEAM_TOKEN", &dev);
        for (k, v) in env {
            c.env(k, v);
        }
        crate::support::output(c)
    };
    let (code, out, err) = in_work(&["--strict"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "✓ Same in both:\n  ✓ PORT  (local: .env)\n  ✓ STRIPE_SECRET_KEY  (local: .env.local)\n"
    );
    let (code, out, _) = in_work(&[], &[("PORT", "4000")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("≠ Different values:\n  ✗ PORT  (local: environment)\n"),
        "the environment overrides every file: {out}"
    );
    // Named files replace the defaults; a later one overrides an earlier one.
    std::fs::write(work.path().join("ci.env"), "PORT=4000\n").unwrap();
    let (_, out, _) = in_work(&["--env-file", ".env", "--env-file", "ci.env"], &[]);
    assert!(
        out.contains("  ✗ PORT  (local: ci.env)\n")
            && out.contains("  ✗ STRIPE_SECRET_KEY  (local: .env)\n"),
        "{out}"
    );
    let (code, _, err) = in_work(&["--env-file", "missing.env"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.env"), "{err}");
    std::fs::write(work.path().join("bad.env"), "OK=1\nBROKEN=\"no end\n").unwrap();
    let (code, _, err) = in_work(&["--env-file", "bad.env"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.env:2: the \" that opens BROKEN's value is never closed"),
        "{err}"
    );
    let example = work.path().join(".env.example");
    std::fs::write(
        &example,
        "# ports\nPORT=\nexport STRIPE_SECRET_KEY=sk_test_x\n",
    )
    .unwrap();
    let example_arg = example.display().to_string();
    let (code, out, _) = run(
        &[
            "env",
            "check",
            "--from",
            &example_arg,
            "--json",
            "--project",
            "shop/production",
        ],
        &[("PORT", "3000")],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        r#"{"PORT":"equal","STRIPE_SECRET_KEY":"missing_locally"}"#
    );
    let (code, _, err) = run(&["env", "check", "--project", "shop/production"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("name the variables to check"), "{err}");

    // Health: real probes pass, then the production database goes away.
    let (code, out, err) = run(&["health", "--project", "shop/production"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("✓ Production is healthy"), "{out}");
    assert!(out.contains("Environment:  shop/production"), "{out}");
    assert!(out.contains("database:   ✓"), "{out}");
    assert!(out.contains("app:        ✓"), "{out}");
    assert!(
        !out.contains(&db_url),
        "the URL is shown without credentials: {out}"
    );
    assert!(out.contains("Connected developers: 0"), "{out}");
    // A developer following the logs counts as connected while the stream is open.
    let follow = {
        let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
        let (mut sender, c) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(c);
        let req = http::Request::get("/api/projects/shop/production/logs?tail=0")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {dev}"))
            .body(full(Vec::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        (sender, resp)
    };
    assert_eq!(connected_developers(&server, &dev).await, Some(1));
    drop(follow);
    eventually("the reader is no longer counted", || async {
        (connected_developers(&server, &dev).await == Some(0)).then_some(())
    })
    .await;
    tokio::task::block_in_place(move || drop(db));
    let (code, out, _) = run(&["health", "--project", "shop/production", "--json"], &[]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["status"], "fail");
    let checks = report["checks"].as_array().unwrap();
    let dbc = checks.iter().find(|c| c["name"] == "database").unwrap();
    assert_eq!(dbc["status"], "fail", "{dbc}");
    assert!(
        dbc["detail"].as_str().unwrap().contains("does not exist"),
        "{dbc}"
    );
    // beam connect: the status view, once; the project may come from
    // beam.toml in the current directory instead of --project.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("beam.toml"),
        "project = \"shop/production\"\n",
    )
    .unwrap();
    let mut c = crate::support::beam(home.path());
    c.current_dir(dir.path())
        .args(["connect", "--once"])
        .args(conn)
        .env("BEAM_TOKEN", &dev);
    let (code, out, err) = crate::support::output(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("shop/production  ● connected"), "{out}");
    let (code, out, err) = run(&["connect", "--once"], &[]);
    assert_eq!(code, 1, "no project anywhere: {out}");
    assert!(
        err.contains("which production environment?") && err.contains("beam.toml"),
        "{err}"
    );
    // An environment that does not exist: said plainly, no round trip.
    let (code, out, err) = run(&["connect", "--project", "shop/nowhere", "--once"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("shop/nowhere: no such project environment"),
        "{err}"
    );
    assert!(
        !out.contains("round trip") && !out.contains("available"),
        "{out}"
    );
    let (code, out, err) = run(&["connect", "--project", "shop/production", "--once"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("shop/production  ● connected"), "{out}");
    assert!(out.contains("    flags     available"), "{out}");
    assert!(out.contains("    sync      not configured"), "{out}");
    drop(agent_proc);
    let out = eventually("beam connect sees the agent gone", || {
        let run = &run;
        async move {
            let (code, out, _) = run(&["connect", "--project", "shop/production", "--once"], &[]);
            (code == 1).then_some(out)
        }
    })
    .await;
    assert!(out.starts_with("shop/production  ○ offline"), "{out}");
    assert!(out.contains("    flags     offline"), "{out}");

    // Without a token, nothing; without logs:read, nothing either (the
    // report holds the last error line, the database host and the app URL);
    // the public /health stays minimal.
    let r = server
        .api("GET", "/api/projects/shop/production/health", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let flags_only = server.api_token(&admin, &["flags:read"]).await;
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&flags_only),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert!(r.message().contains("logs:read"), "{r:?}");
    let r = server.api("GET", "/health", None, None).await;
    assert_eq!(r.json.as_object().unwrap().len(), 2, "{r:?}");
}

/// The health report's count of connected developers.
async fn connected_developers(server: &TestServer, token: &str) -> Option<u64> {
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(token),
            None,
        )
        .await;
    r.json["connected_developers"].as_u64()
}

/// `beam env check` is an oracle for guessable values: without an allowlist
/// the agent compares nothing, and the server rations comparisons per user,
/// variable and day, so a PIN cannot be found by trying candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_check_compares_only_allowed_names_and_rations_guesses() {
    let server = TestServer::start_with(|c| c.env_check_limit = 5).await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["env:check"]).await;
    let home = tempfile::tempdir().unwrap();
    let check = |pin_guess: &str| {
        let nonce = [3u8; 32];
        let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        json!({"nonce": hex, "vars": {"PIN": beam_agent::envcheck::fingerprint(&nonce, pin_guess)}})
    };
    {
        // No --env-allow: nothing is compared, and the CLI says how to allow.
        let _agent = crate::support::parity::start_agent(
            &server,
            home.path(),
            &agent,
            &["--listen", "127.0.0.1:0"],
            &[("PIN", "4821")],
        )
        .await;
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/env/check",
                Some(&dev),
                Some(check("4821")),
            )
            .await;
        assert_eq!(r.json, json!({"results": {"PIN": "refused"}}), "{r:?}");
        let mut c = crate::support::beam(home.path());
        c.args(["env", "check", "PIN", "--project", "shop/production"])
            .args(["--server", &server.tunnel.to_string()])
            .args(["--fingerprint", &server.fingerprint])
            .env("BEAM_TOKEN", &dev)
            .env("PIN", "1");
        let (_, out, _) = crate::support::output(c);
        assert!(out.contains("beam agent --env-allow NAME"), "{out}");
    }
    let _agent = crate::support::parity::start_agent(
        &server,
        home.path(),
        &agent,
        &["--listen", "127.0.0.1:0", "--env-allow", "PIN"],
        &[("PIN", "4821")],
    )
    .await;
    // Two comparisons were counted above (API and CLI); three more guesses
    // are answered…
    for guess in ["0000", "0001", "0002"] {
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/env/check",
                Some(&dev),
                Some(check(guess)),
            )
            .await;
        assert_eq!(r.json, json!({"results": {"PIN": "different"}}), "{r:?}");
    }
    // …and then even the right one is refused, with when to come back.
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/env/check",
            Some(&dev),
            Some(check("4821")),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert!(
        r.message()
            .contains("PIN was already compared 5 times today"),
        "{r:?}"
    );
    assert!(r.headers.contains_key("retry-after"));
    // The count is the user's: a fresh token of the same user gets no more.
    let other = server.api_token(&admin, &["env:check"]).await;
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/env/check",
            Some(&other),
            Some(check("4821")),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
}
