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
    let mut req = Request::post(path).header("host", format!("localhost:{}", addr.port()));
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
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

/// The interpreter with the official Stripe, svix, Slack, Twilio and Paddle
/// libraries (`scripts/webhook-libs.sh` installs them; `.ci/run` calls it).
pub(super) fn python() -> String {
    let p = std::env::var("BEAM_WEBHOOK_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/beam-webhook-py/bin/python3",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = std::process::Command::new(&p)
        .args([
            "-c",
            "import stripe, svix, slack_sdk, twilio, paddle_billing",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{p} cannot import the official webhook libraries: run scripts/webhook-libs.sh (the webhook tests need them)"
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

/// Production signature headers for `body` from the Python fixture's
/// `sign PROVIDER [URL]` (official signers, or the documented algorithm).
pub(super) fn official_headers(
    provider: &str,
    secret: &str,
    url: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    let lines = if provider == "github" {
        // @octokit/webhooks-methods' own sign().
        use std::io::Write;
        let mut c = node_app();
        c.arg("sign-github")
            .env("WEBHOOK_SECRET", secret)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        vec![format!(
            "X-Hub-Signature-256: {}",
            String::from_utf8(out.stdout).unwrap().trim()
        )]
    } else {
        let mut extra = vec![provider];
        extra.extend(url);
        official_sign("sign", secret, &extra, body)
    };
    lines
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The Node local app (GitHub, Shopify, Linear with their official
/// libraries), copied next to the packages `scripts/webhook-libs.sh`
/// installed (ES modules resolve packages beside the importing file).
pub(super) fn node_app() -> std::process::Command {
    let dir = std::env::var("BEAM_WEBHOOK_NODE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/beam-webhook-node",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let dir = std::path::PathBuf::from(dir);
    assert!(
        dir.join("node_modules/@linear/sdk").is_dir()
            && dir.join("node_modules/@shopify/shopify-api").is_dir(),
        "{} has no official GitHub/Shopify/Linear libraries: run scripts/webhook-libs.sh",
        dir.display()
    );
    let copy = dir.join("webhook_app_node.mjs");
    std::fs::copy(NODE_APP, &copy).unwrap();
    let mut c = std::process::Command::new("node");
    c.arg(copy);
    c
}

const NODE_APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/webhook_app_node.mjs"
);

/// The local app of the webhook tests: verifies with the official libraries.
pub(super) const APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/webhook_app.py"
);

/// The test app's request log.
pub(super) fn app_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(super) async fn wait_log(
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

pub(super) fn deliveries_of(entries: &[serde_json::Value], body: &[u8]) -> Vec<serde_json::Value> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    entries
        .iter()
        .filter(|e| e["body_b64"] == b64.as_str() && e["arrived"].is_null())
        .cloned()
        .collect()
}

/// Starts a local app that prints its port on its first line.
pub(super) fn spawn_app(mut cmd: std::process::Command) -> (crate::support::Kill, u16) {
    cmd.stdout(std::process::Stdio::piped());
    let mut app = cmd.spawn().unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(app.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim()
            .parse::<u16>()
            .unwrap_or_else(|_| panic!("the app printed {line:?}, not its port"))
    };
    (crate::support::Kill(app), port)
}
