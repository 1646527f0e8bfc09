//! `beam agent`'s local port: log lines, tailed files and forwarded webhooks
//! from the production app; signatures never stored, custom events deduped.

use beam_proto::webhook::{self, Provider};
use beam_server::parity::webhooks::Check;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use super::webhook_helpers::*;
use crate::support::parity::{Watched, setup};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_agent_ingests_logs_files_and_forwarded_webhooks() {
    // No sources on the server: the agent verifies forwarded webhooks itself.
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server
        .api_token(&admin, &["webhooks:read", "logs:read"])
        .await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.log");
    std::fs::write(&file, "INFO written before the agent started\n").unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let file_arg = file.display().to_string();

    // Bad flags first: clear errors, nothing started.
    let mut c = crate::support::beam(home.path());
    c.args([
        "agent",
        "--project",
        "shop/production",
        "--webhook-secret",
        "stripe=UNSET_VAR",
        "--listen",
        "127.0.0.1:0",
    ])
    .args(conn)
    .env("BEAM_TOKEN", &agent);
    let (code, _, err) = crate::support::output(c);
    assert_eq!(code, 1);
    assert!(err.contains("UNSET_VAR is not set"), "{err}");
    let mut c = crate::support::beam(home.path());
    c.args(["agent", "--project", "shop/production"])
        .args(conn)
        .env("BEAM_TOKEN", &agent);
    let (code, _, err) = crate::support::output(c);
    assert_eq!(code, 1);
    assert!(err.contains("give the app to run after `--`"), "{err}");
    let mut c = crate::support::beam(home.path());
    c.args([
        "agent",
        "--project",
        "shop/production",
        "--listen",
        "127.0.0.1:0",
    ])
    .args(["--webhook-secret", "stripe=whsec_pasted-by-mistake"])
    .args(conn)
    .env("BEAM_TOKEN", &agent);
    let (code, _, err) = crate::support::output(c);
    assert_eq!(code, 1);
    assert!(
        err.contains("give the NAME of an environment variable"),
        "{err}"
    );
    assert!(
        !err.contains("whsec_pasted"),
        "the value is never echoed: {err}"
    );

    let mut c = crate::support::beam(home.path());
    c.args([
        "agent",
        "--project",
        "shop/production",
        "--listen",
        "127.0.0.1:0",
        "--tail-file",
        &file_arg,
        "--webhook-secret",
        "stripe=PROD_STRIPE",
        "--webhook-secret",
        "twilio=TWILIO_AUTH_TOKEN",
        "--webhook-secret",
        "hmac=ACME_SECRET",
        "--webhook-hmac",
        "header=X-Acme-Signature,algorithm=sha512,encoding=base64,prefix=sha512=",
    ])
    .args(conn)
    .env("BEAM_TOKEN", &agent)
    .env("PROD_STRIPE", PROD_STRIPE)
    .env("TWILIO_AUTH_TOKEN", "twilio-auth-token")
    .env("ACME_SECRET", "acme-secret");
    let mut agent_proc = Watched::spawn(c);
    let line = agent_proc.wait_for("ingest on http://").await;
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    agent_proc
        .wait_for("connected, publishing shop/production")
        .await;

    // Logs: NDJSON from the app, and lines appended to the followed file.
    let r = post_to(
        addr,
        "/ingest/logs",
        &[],
        b"{\"level\":\"error\",\"msg\":\"from ingest\",\"service\":\"api\"}\nWARN plain ingested line\n\n",
    )
    .await;
    assert_eq!(
        (r.status, r.json["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    let r = post_to(addr, "/nope", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"ERROR from the file\n"))
        .unwrap();
    let lines = eventually("the ingested and followed lines", || {
        let (server, dev) = (&server, &dev);
        async move {
            let (status, body) = open_logs_raw(server, dev).await;
            assert_eq!(status, StatusCode::OK);
            let text = String::from_utf8(body).unwrap();
            let msgs: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| {
                    (
                        v["message"].as_str().unwrap_or("").to_string(),
                        v["source"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            (msgs.len() == 3).then_some(msgs)
        }
    })
    .await;
    assert_eq!(
        lines,
        [
            ("from ingest".to_string(), "ingest".to_string()),
            ("WARN plain ingested line".to_string(), "ingest".to_string()),
            ("ERROR from the file".to_string(), "file".to_string()),
        ],
        "the line written before the agent started is not re-sent"
    );

    // Webhooks forwarded by the app: verified on the agent, then published.
    let (_, mut stream) = open_stream(&server, &dev, "").await;
    let body: &[u8] = b"{ \"id\": \"evt_agent\", \"type\": \"charge.refunded\" }";
    let sig = official_sign("sign-stripe", PROD_STRIPE, &[], body);
    let r = post_to(
        addr,
        "/ingest/webhooks/stripe",
        &[("Stripe-Signature".into(), sig[0].clone())],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let mut pending = Vec::new();
    let ev = next_event(&mut stream, &mut pending).await;
    assert_eq!(
        (ev.body.as_slice(), ev.verified, ev.event_id.as_deref()),
        (body, true, Some("evt_agent"))
    );
    let r = post_to(
        addr,
        "/ingest/webhooks/stripe",
        &[("Stripe-Signature".into(), "t=1,v1=00".into())],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("signature check failed"),
        "{r:?}"
    );
    let r = post_to(addr, "/ingest/webhooks/mailgun", &[], body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Twilio signs the URL it called, which only the app knows: without
    // Beam-Request-Url the agent says so; with it, the event verifies.
    let form: &[u8] = b"MessageSid=SM9&SmsStatus=received&Body=hi";
    let called = "https://app.example.com/twilio/sms?x=1";
    let mut headers = vec![(
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    headers.extend(official_headers(
        "twilio",
        "twilio-auth-token",
        Some(called),
        form,
    ));
    let r = post_to(addr, "/ingest/webhooks/twilio", &headers, form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert!(
        r.json["error"]
            .as_str()
            .unwrap()
            .contains("send it in the Beam-Request-Url header"),
        "{r:?}"
    );
    headers.push(("Beam-Request-Url".into(), called.into()));
    let r = post_to(addr, "/ingest/webhooks/twilio", &headers, form).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let ev = next_event(&mut stream, &mut pending).await;
    assert_eq!(
        (ev.body.as_slice(), ev.verified, ev.event_type.as_deref()),
        (form, true, Some("message.received"))
    );
    for name in ["x-twilio-signature", "beam-request-url"] {
        assert!(
            beam_proto::webhook::header(&ev.headers, name).is_none(),
            "{name} reached a laptop: {:?}",
            ev.headers
        );
    }

    // The generic scheme the agent was given travels with the event, so the
    // CLI re-signs in it; its signature header is dropped like any other.
    let acme: &[u8] = b"{\"type\":\"acme.paid\"}";
    let headers = official_headers("hmac", "acme-secret", None, acme);
    let r = post_to(addr, "/ingest/webhooks/hmac", &headers, acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let ev = next_event(&mut stream, &mut pending).await;
    assert_eq!(
        (ev.verified, ev.event_type.as_deref()),
        (true, Some("acme.paid"))
    );
    assert_eq!(
        ev.hmac.as_ref().map(|s| s.header.as_str()),
        Some("X-Acme-Signature")
    );
    assert!(beam_proto::webhook::header(&ev.headers, "x-acme-signature").is_none());
}

/// A whole non-following log read.
async fn open_logs_raw(server: &TestServer, token: &str) -> (StatusCode, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/api/projects/shop/production/logs?follow=false")
        .header("host", format!("localhost:{}", server.public.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(full(Vec::new()))
        .unwrap();
    let resp = within("logs", sender.send_request(req)).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// A production signature is a credential for its body: none is ever stored
/// or served (only the developer's re-signed headers exist outside the
/// receiver), and the custom scheme, which signs only the body, dedupes on
/// that signed content, so one captured request cannot be replayed under new
/// delivery ids as new verified events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_signatures_are_never_stored_and_custom_events_dedupe_on_content() {
    const PROD_CUSTOM: &str = "github-production-secret";
    let server = TestServer::start_with(|c| {
        let mut s = sources();
        s.insert(
            1,
            "shop",
            "production",
            Provider::Github,
            Check::Secret(beam_proto::Secret::new(PROD_CUSTOM.to_string())),
        );
        c.webhook_sources = s;
    })
    .await;
    let (admin, _agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["webhooks:read"]).await;
    let body = br#"{"action":"opened","number":7}"#;
    let signed = |delivery: &str| {
        let mut h = vec![
            ("X-GitHub-Delivery".to_string(), delivery.to_string()),
            ("X-GitHub-Event".to_string(), "pull_request".to_string()),
            ("X-Hub-Signature".to_string(), "sha1=legacy".to_string()),
        ];
        webhook::resign(Provider::Github, PROD_CUSTOM, &mut h, body, now_s()).unwrap();
        h
    };
    let r = post_hook(&server, "custom", &signed("d-1"), body).await;
    assert_eq!(
        (r.status, r.json["duplicate"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{r:?}"
    );
    let first = r.json["id"].as_i64().unwrap();
    // The same signed body under a new delivery id is the same event.
    let r = post_hook(&server, "custom", &signed("d-2-replayed"), body).await;
    assert_eq!(
        (r.json["id"].as_i64(), r.json["duplicate"].as_bool()),
        (Some(first), Some(true)),
        "{r:?}"
    );
    let svix_body = br#"{"type":"email.delivered"}"#;
    let mut h = vec![("webhook-id".to_string(), "msg_9".to_string())];
    webhook::resign(Provider::Svix, PROD_SVIX, &mut h, svix_body, now_s()).unwrap();
    let r = post_hook(&server, "svix", &h, svix_body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let svix_id = r.json["id"].as_i64().unwrap();
    let stripe = send_stripe(&server, br#"{"id":"evt_9","type":"x"}"#, PROD_STRIPE).await;
    let stripe_id = stripe.json["id"].as_i64().unwrap();
    for id in [first, svix_id, stripe_id] {
        let r = server
            .api(
                "GET",
                &format!("/api/projects/shop/production/webhooks/events/{id}"),
                Some(&dev),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let names: Vec<String> = r.json["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
            .collect();
        for sig in webhook::DROPPED_HEADERS {
            assert!(!names.iter().any(|n| n == sig), "{sig} stored: {names:?}");
        }
        // What the developer's re-signing needs is kept.
        if id == svix_id {
            assert!(names.contains(&"webhook-id".to_string()), "{names:?}");
        }
        if id == first {
            assert!(names.contains(&"x-github-event".to_string()), "{names:?}");
        }
    }
}
