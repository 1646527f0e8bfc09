//! Parity webhooks through the API on both stores: the public receiver checks
//! the production signature and stores raw bytes; developers stream their
//! subscription, acknowledge after a local 2xx, and get what they missed; the
//! event survives a server restart; producers and consumers keep their roles.

use beam_proto::webhook::{self, Provider, WebhookEvent};
use beam_server::webhooks::{Check, Sources};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::*;

pub const PROD_STRIPE: &str = "whsec_production_stripe_secret";
pub const PROD_SVIX: &str = "whsec_cHJvZHVjdGlvbiBzdml4IHNlY3JldCAzMiBieXRlcw==";

/// Sources for the operator's organization (id 1 on a fresh store).
pub fn sources() -> Sources {
    let mut s = Sources::default();
    let secret = |v: &str| Check::Secret(beam_proto::Secret::new(v.to_string()));
    s.insert(1, "shop", "production", Provider::Stripe, secret(PROD_STRIPE));
    s.insert(1, "shop", "production", Provider::Svix, secret(PROD_SVIX));
    s.insert(1, "shop", "production", Provider::Paypal, Check::Unverified);
    s
}

/// An admin token of the operator's organization, `shop/production`, and an
/// agent token for it.
pub async fn setup(server: &TestServer) -> (String, String) {
    assert_eq!(server.operator.1, 1, "sources() assumes the operator org is 1");
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
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::post(format!("/hooks/1/shop/production/{provider}?src=test"))
        .header("host", format!("localhost:{}", server.public.port()))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = sender
        .send_request(req.body(full(body.to_vec())).unwrap())
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
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "signature_invalid"));
        assert!(r.message().contains("no signature matches"), "{r:?}");
        let r = post_hook(&server, "stripe", &[], body).await;
        assert!(r.message().contains("Stripe-Signature header is missing"), "{r:?}");
        let mut stale = Vec::new();
        webhook::resign(Provider::Stripe, PROD_STRIPE, &mut stale, body, now_s() - 3600)
            .unwrap();
        let r = post_hook(&server, "stripe", &stale, body).await;
        assert!(r.message().contains("signed timestamp"), "{r:?}");
        let r = post_hook(&server, "custom", &[], body).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "no_webhook_source"));
        let r = post_hook(&server, "mailgun", &[], body).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "unknown_provider"));
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
        assert!(r.message().contains("only a production agent token can publish"), "{r:?}");
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
        assert_eq!((r.json["id"].as_i64(), r.json["duplicate"].as_bool()), (Some(first_id), Some(true)));

        let mut pending = Vec::new();
        let ev = next_event(&mut s, &mut pending).await;
        assert_eq!(ev.id, first_id);
        assert_eq!(ev.body, body.to_vec(), "raw bytes, whitespace and key order kept");
        assert_eq!(ev.event_id.as_deref(), Some("evt_1"));
        assert_eq!(ev.event_type.as_deref(), Some("payment_intent.succeeded"));
        assert_eq!((ev.method.as_str(), ev.path.as_str(), ev.query.as_deref()),
            ("POST", "/hooks/1/shop/production/stripe", Some("src=test")));
        assert!(ev.verified);
        assert!(webhook::header(&ev.headers, "stripe-signature").is_some());

        // Only a 2xx acknowledges; an unknown event is a 404.
        let r = ack(&server, &dev, first_id, 500).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ack(&server, &dev, 999_999, 200).await.status, StatusCode::NOT_FOUND);
        assert_eq!(ack(&server, &dev, first_id, 200).await.status, StatusCode::NO_CONTENT);
        drop(s);

        // While the developer is offline: an svix event (verified with the
        // production secret), a PayPal one (unverified by design), and one
        // from the agent.
        let svix_body = br#"{"type":"email.delivered","data":{"to":"a@b.c"}}"#;
        let mut h = vec![("svix-id".to_string(), "msg_2".to_string())];
        webhook::resign(Provider::Svix, PROD_SVIX, &mut h, svix_body, now_s()).unwrap();
        let r = post_hook(&server, "resend", &h, svix_body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = post_hook(&server, "paypal", &[], br#"{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}"#).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = server
            .api("POST", "/api/projects/shop/production/webhooks/events", Some(&agent), Some(publish))
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
            [(Provider::Svix, true), (Provider::Paypal, false), (Provider::Stripe, false)],
            "the acknowledged event does not come again"
        );
        assert_eq!(got[0].event_id.as_deref(), Some("msg_2"));
        assert_eq!(got[2].body, b"{}");
        drop(s);

        // Not acknowledged → delivered again on the next stream (at least once);
        // a type filter narrows what a stream carries.
        let (_, mut s) = open_stream(&server, &dev, "events=email.*").await;
        let mut pending = Vec::new();
        let again = next_event(&mut s, &mut pending).await;
        assert_eq!(again.id, got[0].id);
        for e in &got {
            assert_eq!(ack(&server, &dev, e.id, 204).await.status, StatusCode::NO_CONTENT);
        }
        drop(s);
        // A second subscription of the same developer keeps its own state.
        let (_, mut other) = open_stream(&server, &dev, "subscription=laptop-2").await;
        let r = send_stripe(&server, br#"{"id":"evt_3","type":"invoice.paid"}"#, PROD_STRIPE).await;
        let mut pending = Vec::new();
        assert_eq!(next_event(&mut other, &mut pending).await.id, r.json["id"].as_i64().unwrap());
        let (_, mut s) = open_stream(&server, &dev, "").await;
        let mut pending = Vec::new();
        assert_eq!(next_event(&mut s, &mut pending).await.event_id.as_deref(), Some("evt_3"));

        // History and one event for replay.
        let r = server
            .api("GET", "/api/projects/shop/production/webhooks/events?limit=10", Some(&dev), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let rows = r.json.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0]["event_id"], "evt_3");
        assert_eq!(rows[4]["delivered_status"], 200);
        assert_eq!(rows[3]["delivered_status"], 204);
        assert!(rows[0]["delivered_status"].is_null());
        let r = server
            .api("GET", &format!("/api/projects/shop/production/webhooks/events/{first_id}"), Some(&dev), None)
            .await;
        let ev: WebhookEvent = serde_json::from_value(r.json).unwrap();
        assert_eq!(ev.body, body.to_vec());
        let r = server
            .api("GET", "/api/projects/shop/production/webhooks/events?limit=0", Some(&dev), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
);
