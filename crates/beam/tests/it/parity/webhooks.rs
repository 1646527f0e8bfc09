//! Parity webhooks through the API on both stores: the public receiver checks
//! the production signature and stores raw bytes; developers stream their
//! subscription, acknowledge after a local 2xx, and get what they missed; the
//! event survives a server restart; producers and consumers keep their roles.

use beam_proto::webhook::{self, Provider, WebhookEvent};
use http::StatusCode;
use serde_json::json;

use super::webhook_helpers::*;
use crate::support::parity::setup;
use crate::support::*;

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

/// A webhook received by one node of a cluster reaches a developer streaming
/// from another at once: the stream's own look-up is set to an hour, and the
/// event must come before the stream's first idle heartbeat (after which the
/// stream also looks), so only the receiving node's notification
/// (PostgreSQL `NOTIFY`) can have woken it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_received_by_one_node_reaches_a_stream_on_another() {
    let a = TestServer::cluster(|c| {
        c.webhook_sources = sources();
        c.webhook_poll = std::time::Duration::from_secs(3600);
    })
    .await;
    let c = a.join().await;
    let (admin, _agent) = setup(&a).await;
    let dev = a.api_token(&admin, &["webhooks:read"]).await;
    let (status, mut stream) = open_stream(&c, &dev, "").await;
    assert_eq!(status, StatusCode::OK);
    let body = b"{\"id\":\"evt_across\",\"type\":\"invoice.paid\"}";
    let r = send_stripe(&a, body, PROD_STRIPE).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let first = within("the event", next_data(&mut stream)).await.unwrap();
    assert_ne!(
        first[0], b'\n',
        "a heartbeat came first: the stream was not woken"
    );
    let mut pending = first.to_vec();
    let ev: WebhookEvent = next_event(&mut stream, &mut pending).await;
    assert_eq!(ev.id, r.json["id"].as_i64().unwrap());
    assert_eq!(ev.body, body);
}
