//! `beam webhook listen` end to end: events re-signed for a local app that
//! verifies them with the providers' official libraries.

use http::StatusCode;

use super::webhook_helpers::*;
use crate::support::parity::{Watched, setup};
use crate::support::*;

/// Waits until the server has the acknowledgement of provider event `event_id`
/// (acknowledgements are sent off the delivery path).
async fn wait_acked(server: &TestServer, token: &str, event_id: &str) {
    eventually("the acknowledgement reaches the server", || async {
        let r = server
            .api(
                "GET",
                "/api/projects/shop/production/webhooks/events?limit=50",
                Some(token),
                None,
            )
            .await;
        r.json
            .as_array()?
            .iter()
            .any(|row| row["event_id"] == event_id && !row["delivered_status"].is_null())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_webhook_delivers_to_an_app_verifying_with_the_official_libraries() {
    let py = python();
    let server = TestServer::start_with(|c| c.webhook_sources = sources()).await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["webhooks:read"]).await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let run = |args: &[&str], token: &str| {
        let mut c = crate::support::beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", token);
        c
    };
    let output = crate::support::output;

    // The developer's own secret, created once, 0600, printed alone on stdout.
    let secret_cmd = || {
        let mut c = crate::support::beam(home.path());
        c.args(["webhook", "secret"]);
        c
    };
    let (code, out, err) = output(secret_cmd());
    assert_eq!(code, 0, "{err}");
    let dev_secret = out.trim().to_string();
    assert!(dev_secret.starts_with("whsec_"), "{out}");
    assert_eq!(output(secret_cmd()).1.trim(), dev_secret);
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(home.path().join(".config/beam/webhook-secret")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    // The local app verifies with the developer's secret only.
    let log = work.path().join("app.jsonl");
    let release = work.path().join("release");
    let mut app = std::process::Command::new(&py);
    app.arg(APP)
        .arg("serve")
        .arg(&log)
        .env("WEBHOOK_SECRET", &dev_secret)
        .env("RELEASE", &release)
        .stdout(std::process::Stdio::piped());
    let (_app, port) = spawn_app(app);
    let base = format!("http://127.0.0.1:{port}");
    let routes = [
        format!("test.*={base}/slow"),
        format!("email.*={base}/svix"),
        format!("{base}/stripe"),
    ];
    let listen_args: Vec<&str> = ["webhook", "--project", "shop/production"]
        .into_iter()
        .chain(routes.iter().flat_map(|r| ["--forward", r.as_str()]))
        .collect();

    // Bad input: a clear error, exit 1.
    let (code, _, err) = output(run(
        &[
            "webhook",
            "--project",
            "shop/production",
            "--forward",
            "localhost:3000",
        ],
        &dev,
    ));
    assert_eq!(code, 1);
    assert!(err.contains("must start with http:// or https://"), "{err}");
    let (code, _, err) = output(run(&listen_args, &agent));
    assert_eq!(code, 1);
    assert!(
        err.contains("this kind of token cannot be used here"),
        "{err}"
    );

    let mut cli = Watched::spawn(run(&listen_args, &dev));
    cli.wait_for("beam webhook: ready").await;

    // A Stripe event signed by the official library with the production
    // secret, odd whitespace and key order included.
    let body1: &[u8] = b"{\"type\": \"payment_intent.succeeded\",\n \"id\":\"evt_1\",  \"data\" : {\"b\":2,\"a\":1}}  ";
    let sig = official_sign("sign-stripe", PROD_STRIPE, &[], body1);
    let r = post_hook(
        &server,
        "stripe",
        &[("Stripe-Signature".into(), sig[0].clone())],
        body1,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let entries = wait_log(&log, "the stripe event reaches the app", |e| {
        !deliveries_of(e, body1).is_empty()
    })
    .await;
    let d = &deliveries_of(&entries, body1)[0];
    assert_eq!(d["path"], "/stripe?src=test");
    assert_eq!(d["verified"], true, "stripe.Webhook.construct_event: {d}");
    assert_eq!(d["host"], format!("127.0.0.1:{port}"));

    // svix (Resend) signed by the svix library.
    let body2: &[u8] = br#"{"type":"email.delivered","data":{"email_id":"4ef9"}}"#;
    let s = official_sign("sign-svix", PROD_SVIX, &["msg_2"], body2);
    let headers = vec![
        ("svix-id".to_string(), "msg_2".to_string()),
        ("svix-timestamp".to_string(), s[1].clone()),
        ("svix-signature".to_string(), s[0].clone()),
    ];
    assert_eq!(
        post_hook(&server, "resend", &headers, body2).await.status,
        StatusCode::OK
    );
    let entries = wait_log(&log, "the svix event reaches the app", |e| {
        !deliveries_of(e, body2).is_empty()
    })
    .await;
    assert_eq!(deliveries_of(&entries, body2)[0]["verified"], true);

    // Kill the client mid-delivery: the app holds the request, the client dies,
    // then the app answers (to nobody). Restarted, the client delivers it again.
    let slow: &[u8] = br#"{"id":"evt_slow","type":"test.slow"}"#;
    let sig = official_sign("sign-stripe", PROD_STRIPE, &[], slow);
    post_hook(
        &server,
        "stripe",
        &[("Stripe-Signature".into(), sig[0].clone())],
        slow,
    )
    .await;
    wait_log(&log, "the slow delivery arrives", |e| {
        e.iter().filter(|x| x["arrived"] == true).count() == 1
    })
    .await;
    wait_acked(&server, &dev, "evt_1").await;
    wait_acked(&server, &dev, "msg_2").await;
    drop(cli);
    std::fs::write(&release, "").unwrap();
    let mut cli = Watched::spawn(run(&listen_args, &dev));
    cli.wait_for("beam webhook: ready").await;
    wait_log(&log, "the interrupted event comes again", |e| {
        e.iter().filter(|x| x["arrived"] == true).count() == 2
    })
    .await;
    // A marker after it: once the marker is in, the slow one was acknowledged.
    let marker: &[u8] = br#"{"id":"evt_m1","type":"marker.one"}"#;
    let sig = official_sign("sign-stripe", PROD_STRIPE, &[], marker);
    post_hook(
        &server,
        "stripe",
        &[("Stripe-Signature".into(), sig[0].clone())],
        marker,
    )
    .await;
    wait_log(&log, "the marker", |e| !deliveries_of(e, marker).is_empty()).await;
    wait_acked(&server, &dev, "evt_m1").await;
    drop(cli);
    let mut cli = Watched::spawn(run(&listen_args, &dev));
    cli.wait_for("beam webhook: ready").await;
    let marker2: &[u8] = br#"{"id":"evt_m2","type":"marker.two"}"#;
    let sig = official_sign("sign-stripe", PROD_STRIPE, &[], marker2);
    post_hook(
        &server,
        "stripe",
        &[("Stripe-Signature".into(), sig[0].clone())],
        marker2,
    )
    .await;
    let entries = wait_log(&log, "the second marker", |e| {
        !deliveries_of(e, marker2).is_empty()
    })
    .await;
    assert_eq!(
        entries.iter().filter(|x| x["arrived"] == true).count(),
        2,
        "the acknowledged slow event is not delivered a third time"
    );
    for b in [body1, body2, marker] {
        assert_eq!(
            deliveries_of(&entries, b).len(),
            1,
            "delivered once: {}",
            String::from_utf8_lossy(b)
        );
    }
    drop(cli);

    // History, then a replay re-signed with a fresh timestamp.
    let (code, out, err) = output(run(
        &["webhook", "list", "--project", "shop/production"],
        &dev,
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("evt_slow") && out.contains("payment_intent.succeeded"),
        "{out}"
    );
    let line = out.lines().find(|l| l.contains("evt_1")).unwrap();
    assert!(line.trim_end().ends_with("200"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_string();
    let (code, out, err) = output(run(
        &[
            "webhook",
            "replay",
            &id,
            "--project",
            "shop/production",
            "--forward",
            &format!("{base}/stripe"),
        ],
        &dev,
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("→ 200"), "{out}");
    let entries = app_log(&log);
    let both = deliveries_of(&entries, body1);
    assert_eq!(both.len(), 2);
    assert_eq!(both[1]["verified"], true);
}
