//! Parity webhooks through the API on both stores: the public receiver checks
//! the production signature and stores raw bytes; developers stream their
//! subscription, acknowledge after a local 2xx, and get what they missed; the
//! event survives a server restart; producers and consumers keep their roles.

use beam_proto::webhook::{self, Provider, WebhookEvent};
use beam_server::parity::webhooks::{Check, Sources};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::parity::{Watched, setup};
use crate::support::*;

pub const PROD_STRIPE: &str = "whsec_production_stripe_secret";
pub const PROD_SVIX: &str = "whsec_cHJvZHVjdGlvbiBzdml4IHNlY3JldCAzMiBieXRlcw==";

/// Sources for the operator's organization (id 1 on a fresh store).
pub fn sources() -> Sources {
    let mut s = Sources::default();
    let secret = |v: &str| Check::Secret(beam_proto::Secret::new(v.to_string()));
    s.insert(
        1,
        "shop",
        "production",
        Provider::Stripe,
        secret(PROD_STRIPE),
    );
    s.insert(1, "shop", "production", Provider::Svix, secret(PROD_SVIX));
    s.insert(1, "shop", "production", Provider::Paypal, Check::Unverified);
    s
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A Stripe delivery to the public receiver, signed with `secret`.
async fn send_stripe(server: &TestServer, body: &[u8], secret: &str) -> Reply {
    let mut headers = Vec::new();
    webhook::resign(Provider::Stripe, secret, &mut headers, body, now_s()).unwrap();
    post_hook(server, "stripe", &headers, body).await
}

async fn post_hook(
    server: &TestServer,
    provider: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    post_to(
        server.public,
        &format!("/hooks/1/shop/production/{provider}?src=test"),
        headers,
        body,
    )
    .await
}

/// POSTs `body` with `headers` (and a JSON content type) to `addr`.
async fn post_to(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::post(path)
        .header("host", format!("localhost:{}", addr.port()))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = within(
        "POST answer",
        sender.send_request(req.body(full(body.to_vec())).unwrap()),
    )
    .await
    .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// Opens the subscription stream.
async fn open_stream(server: &TestServer, token: &str, query: &str) -> (StatusCode, Incoming) {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!(
        "/api/projects/shop/production/webhooks/stream?{query}"
    ))
    .header("host", format!("localhost:{}", server.public.port()))
    .header("authorization", format!("Bearer {token}"))
    .body(full(Vec::new()))
    .unwrap();
    let resp = within("stream response", sender.send_request(req))
        .await
        .unwrap();
    (resp.status(), resp.into_body())
}

/// The next event on a stream (heartbeats skipped).
async fn next_event(body: &mut Incoming, pending: &mut Vec<u8>) -> WebhookEvent {
    loop {
        if let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&line).unwrap();
        }
        let data = within("next webhook event", next_data(body))
            .await
            .expect("stream ended");
        pending.extend_from_slice(&data);
    }
}

async fn ack(server: &TestServer, token: &str, event: i64, status: u16) -> Reply {
    server
        .api(
            "POST",
            "/api/projects/shop/production/webhooks/acks",
            Some(token),
            Some(json!({"event": event, "status": status})),
        )
        .await
}

crate::both!(
    webhooks_are_verified_stored_streamed_acknowledged_and_survive_restarts,
    |backend| async move {
        let server = TestServer::start_on(backend, |c| {
            c.webhook_sources = sources();
            c.webhook_max_body = 64 * 1024;
        })
        .await;
        let (admin, agent) = setup(&server).await;
        let dev = server.api_token(&admin, &["webhooks:read"]).await;

        // Bad input at the receiver, each with its own clear answer.
        let body = b"{\n  \"type\":\"payment_intent.succeeded\",   \"id\": \"evt_1\" ,\"amount\" :  1.50e2 }\r\n";
        let r = send_stripe(&server, body, "whsec_wrong").await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "signature_invalid")
        );
        assert!(r.message().contains("no signature matches"), "{r:?}");
        let r = post_hook(&server, "stripe", &[], body).await;
        assert!(
            r.message().contains("Stripe-Signature header is missing"),
            "{r:?}"
        );
        let mut stale = Vec::new();
        webhook::resign(
            Provider::Stripe,
            PROD_STRIPE,
            &mut stale,
            body,
            now_s() - 3600,
        )
        .unwrap();
        let r = post_hook(&server, "stripe", &stale, body).await;
        assert!(r.message().contains("signed timestamp"), "{r:?}");
        let r = post_hook(&server, "custom", &[], body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "no_webhook_source")
        );
        let r = post_hook(&server, "mailgun", &[], body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "unknown_provider")
        );
        let big = vec![b' '; 64 * 1024 + 1];
        let r = send_stripe(&server, &big, PROD_STRIPE).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
        let r = server
            .api("GET", "/hooks/1/shop/production/stripe", None, None)
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

        // Producers cannot subscribe; consumers cannot publish.
        let (status, _) = open_stream(&server, &agent, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let publish = json!({"provider": "stripe", "method": "POST", "path": "/webhooks",
            "headers": [["content-type", "application/json"]], "body": "e30=", "verified": false});
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/webhooks/events",
                Some(&dev),
                Some(publish.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.message()
                .contains("only a production agent token can publish"),
            "{r:?}"
        );
        let tunnels_only = server.api_token(&admin, &["tunnels:write"]).await;
        let (status, _) = open_stream(&server, &tunnels_only, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The first stream creates the subscription; then an event arrives.
        let (status, mut s) = open_stream(&server, &dev, "").await;
        assert_eq!(status, StatusCode::OK);
        let r = send_stripe(&server, body, PROD_STRIPE).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.json["duplicate"], false);
        let first_id = r.json["id"].as_i64().unwrap();
        // The provider retries the same event: stored once.
        let r = send_stripe(&server, body, PROD_STRIPE).await;
        assert_eq!(
            (r.json["id"].as_i64(), r.json["duplicate"].as_bool()),
            (Some(first_id), Some(true))
        );

        let mut pending = Vec::new();
        let ev = next_event(&mut s, &mut pending).await;
        assert_eq!(ev.id, first_id);
        assert_eq!(
            ev.body,
            body.to_vec(),
            "raw bytes, whitespace and key order kept"
        );
        assert_eq!(ev.event_id.as_deref(), Some("evt_1"));
        assert_eq!(ev.event_type.as_deref(), Some("payment_intent.succeeded"));
        assert_eq!(
            (ev.method.as_str(), ev.path.as_str(), ev.query.as_deref()),
            ("POST", "/hooks/1/shop/production/stripe", Some("src=test"))
        );
        assert!(ev.verified);
        // The production signature is a credential for this body: it is
        // stripped before storing; laptops re-sign with their own secret.
        assert!(webhook::header(&ev.headers, "stripe-signature").is_none());

        // Only a 2xx acknowledges; an unknown event is a 404.
        let r = ack(&server, &dev, first_id, 500).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            ack(&server, &dev, 999_999, 200).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ack(&server, &dev, first_id, 200).await.status,
            StatusCode::NO_CONTENT
        );
        drop(s);

        // While the developer is offline: an svix event (verified with the
        // production secret), a PayPal one (unverified by design), and one
        // from the agent.
        let svix_body = br#"{"type":"email.delivered","data":{"to":"a@b.c"}}"#;
        let mut h = vec![("svix-id".to_string(), "msg_2".to_string())];
        webhook::resign(Provider::Svix, PROD_SVIX, &mut h, svix_body, now_s()).unwrap();
        let r = post_hook(&server, "resend", &h, svix_body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Credentials meant for production are not stored.
        let creds = [
            (
                "Authorization".to_string(),
                "Bearer prod-credential".to_string(),
            ),
            ("Cookie".to_string(), "session=prod".to_string()),
        ];
        let r = post_hook(
            &server,
            "paypal",
            &creds,
            br#"{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/webhooks/events",
                Some(&agent),
                Some(publish),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        // The server restarts between receipt and delivery: nothing is lost.
        let server = server.restart().await;
        let (_, mut s) = open_stream(&server, &dev, "").await;
        let mut pending = Vec::new();
        let got: Vec<WebhookEvent> = vec![
            next_event(&mut s, &mut pending).await,
            next_event(&mut s, &mut pending).await,
            next_event(&mut s, &mut pending).await,
        ];
        let kinds: Vec<(Provider, bool)> = got.iter().map(|e| (e.provider, e.verified)).collect();
        assert_eq!(
            kinds,
            [
                (Provider::Svix, true),
                (Provider::Paypal, false),
                (Provider::Stripe, false)
            ],
            "the acknowledged event does not come again"
        );
        assert_eq!(got[0].event_id.as_deref(), Some("msg_2"));
        assert!(
            webhook::header(&got[1].headers, "authorization").is_none()
                && webhook::header(&got[1].headers, "cookie").is_none(),
            "{:?}",
            got[1].headers
        );
        assert!(
            webhook::header(&got[1].headers, "authorization").is_none()
                && webhook::header(&got[1].headers, "cookie").is_none(),
            "{:?}",
            got[1].headers
        );
        assert_eq!(got[2].body, b"{}");
        drop(s);

        // Not acknowledged → delivered again on the next stream (at least once);
        // a type filter narrows what a stream carries.
        let (_, mut s) = open_stream(&server, &dev, "events=email.*").await;
        let mut pending = Vec::new();
        let again = next_event(&mut s, &mut pending).await;
        assert_eq!(again.id, got[0].id);
        // Several at once; a body with neither form is refused.
        let acks: Vec<_> = got
            .iter()
            .map(|e| json!({"event": e.id, "status": 204}))
            .collect();
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/webhooks/acks",
                Some(&dev),
                Some(json!({"acks": acks})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        let r = server
            .api(
                "POST",
                "/api/projects/shop/production/webhooks/acks",
                Some(&dev),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        drop(s);
        // A second subscription of the same developer keeps its own state.
        let (_, mut other) = open_stream(&server, &dev, "subscription=laptop-2").await;
        let r = send_stripe(
            &server,
            br#"{"id":"evt_3","type":"invoice.paid"}"#,
            PROD_STRIPE,
        )
        .await;
        let mut pending = Vec::new();
        assert_eq!(
            next_event(&mut other, &mut pending).await.id,
            r.json["id"].as_i64().unwrap()
        );
        let (_, mut s) = open_stream(&server, &dev, "").await;
        let mut pending = Vec::new();
        assert_eq!(
            next_event(&mut s, &mut pending).await.event_id.as_deref(),
            Some("evt_3")
        );

        // History and one event for replay.
        let r = server
            .api(
                "GET",
                "/api/projects/shop/production/webhooks/events?limit=10",
                Some(&dev),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let rows = r.json.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0]["event_id"], "evt_3");
        assert_eq!(rows[4]["delivered_status"], 200);
        assert_eq!(rows[3]["delivered_status"], 204);
        assert!(rows[0]["delivered_status"].is_null());
        let r = server
            .api(
                "GET",
                &format!("/api/projects/shop/production/webhooks/events/{first_id}"),
                Some(&dev),
                None,
            )
            .await;
        let ev: WebhookEvent = serde_json::from_value(r.json).unwrap();
        assert_eq!(ev.body, body.to_vec());
        let r = server
            .api(
                "GET",
                "/api/projects/shop/production/webhooks/events?limit=0",
                Some(&dev),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // Unverified sources are open to anyone: one address gets a burst of
        // 100, then 429 with Retry-After. Dedupe keeps the store small here.
        let mut limited = None;
        for i in 0..130 {
            let body = format!(r#"{{"id":"WH-flood-{}","event_type":"X"}}"#, i % 3);
            let r = post_hook(&server, "paypal", &[], body.as_bytes()).await;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                limited = Some((i, r));
                break;
            }
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
        }
        let (i, r) = limited.expect("the unverified source is rate limited");
        assert!(i >= 98, "limited after {i}");
        assert!(r.headers.contains_key("retry-after"), "{r:?}");
        // Verified sources are not limited by it.
        let r = send_stripe(&server, br#"{"id":"evt_after_flood"}"#, PROD_STRIPE).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
);

/// The interpreter with the official `stripe` and `svix` libraries
/// (`scripts/webhook-libs.sh` installs them; `.ci/run` calls it).
fn python() -> String {
    let p = std::env::var("BEAM_WEBHOOK_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/beam-webhook-py/bin/python3",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = std::process::Command::new(&p)
        .args(["-c", "import stripe, svix"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{p} cannot import stripe and svix: run scripts/webhook-libs.sh (the webhook tests need the official libraries)"
    );
    p
}

const APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/webhook_app.py"
);

/// Signs `body` with the official library: (header, svix timestamp if any).
fn official_sign(mode: &str, secret: &str, extra: &[&str], body: &[u8]) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .arg(APP)
        .arg(mode)
        .args(extra)
        .env("WEBHOOK_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

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

/// The test app's request log.
fn app_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_log(
    path: &std::path::Path,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(what, || {
        let entries = app_log(path);
        let ok = pred(&entries);
        async move { ok.then_some(entries) }
    })
    .await
}

fn deliveries_of(entries: &[serde_json::Value], body: &[u8]) -> Vec<serde_json::Value> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    entries
        .iter()
        .filter(|e| e["body_b64"] == b64.as_str() && e["arrived"].is_null())
        .cloned()
        .collect()
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
        let mut c = crate::cli::beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", token);
        c
    };
    let output = crate::cli::output;

    // The developer's own secret, created once, 0600, printed alone on stdout.
    let secret_cmd = || {
        let mut c = crate::cli::beam(home.path());
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
    let mut app = app.spawn().unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(app.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse::<u16>().unwrap()
    };
    let _app = crate::cli::Kill(app);
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
    let mut c = crate::cli::beam(home.path());
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
    let (code, _, err) = crate::cli::output(c);
    assert_eq!(code, 1);
    assert!(err.contains("UNSET_VAR is not set"), "{err}");
    let mut c = crate::cli::beam(home.path());
    c.args(["agent", "--project", "shop/production"])
        .args(conn)
        .env("BEAM_TOKEN", &agent);
    let (code, _, err) = crate::cli::output(c);
    assert_eq!(code, 1);
    assert!(err.contains("give the app to run after `--`"), "{err}");
    let mut c = crate::cli::beam(home.path());
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
    let (code, _, err) = crate::cli::output(c);
    assert_eq!(code, 1);
    assert!(
        err.contains("give the NAME of an environment variable"),
        "{err}"
    );
    assert!(
        !err.contains("whsec_pasted"),
        "the value is never echoed: {err}"
    );

    let mut c = crate::cli::beam(home.path());
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
    ])
    .args(conn)
    .env("BEAM_TOKEN", &agent)
    .env("PROD_STRIPE", PROD_STRIPE);
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
            Provider::Custom,
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
        webhook::resign(Provider::Custom, PROD_CUSTOM, &mut h, body, now_s()).unwrap();
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
