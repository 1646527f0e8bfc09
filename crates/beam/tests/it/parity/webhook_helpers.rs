//! Shared by the webhook tests: the production sources, sending signed events,
//! opening a subscription stream, acknowledging.

use beam_proto::webhook::{self, Provider, WebhookEvent};
use beam_server::parity::webhooks::{Check, Sources};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::*;

pub(super) const PROD_STRIPE: &str = "whsec_production_stripe_secret";

pub(super) const PROD_SVIX: &str = "whsec_cHJvZHVjdGlvbiBzdml4IHNlY3JldCAzMiBieXRlcw==";

/// Sources for the operator's organization (id 1 on a fresh store).
pub(super) fn sources() -> Sources {
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

pub(super) fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A Stripe delivery to the public receiver, signed with `secret`.
pub(super) async fn send_stripe(server: &TestServer, body: &[u8], secret: &str) -> Reply {
    let mut headers = Vec::new();
    webhook::resign(Provider::Stripe, secret, &mut headers, body, now_s()).unwrap();
    post_hook(server, "stripe", &headers, body).await
}

pub(super) async fn post_hook(
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
pub(super) async fn post_to(
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
pub(super) async fn open_stream(
    server: &TestServer,
    token: &str,
    query: &str,
) -> (StatusCode, Incoming) {
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
pub(super) async fn next_event(body: &mut Incoming, pending: &mut Vec<u8>) -> WebhookEvent {
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

pub(super) async fn ack(server: &TestServer, token: &str, event: i64, status: u16) -> Reply {
    server
        .api(
            "POST",
            "/api/projects/shop/production/webhooks/acks",
            Some(token),
            Some(json!({"event": event, "status": status})),
        )
        .await
}

/// The interpreter with the official `stripe` and `svix` libraries
/// (`scripts/webhook-libs.sh` installs them; `.ci/run` calls it).
pub(super) fn python() -> String {
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

/// Signs `body` with the official library: (header, svix timestamp if any).
pub(super) fn official_sign(mode: &str, secret: &str, extra: &[&str], body: &[u8]) -> Vec<String> {
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

/// The local app of the webhook tests: verifies with the official libraries.
pub(super) const APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/webhook_app.py"
);
