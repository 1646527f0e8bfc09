//! Named webhook providers end to end: each event is signed the provider's
//! way with the production secret (its official library where it has a
//! signer), verified by the public receiver, re-signed by `beam webhook` with
//! the developer's secret, and accepted by the provider's official
//! verification library in a local app (Python: Slack, Twilio, Paddle; Node:
//! GitHub, Shopify, Linear; the generic HMAC scheme by Python's `hmac`).

use beam_proto::webhook::{HmacScheme, Provider};
use beam_server::parity::webhooks::{Check, Source, Sources};
use http::StatusCode;

use super::webhook_helpers::*;
use crate::support::parity::{Watched, setup};
use crate::support::*;

const PROD: &str = "production-signing-secret-of-the-provider";

/// One source per provider, all with the same production secret; the
/// generic one signs base64 HMAC-SHA512 in X-Acme-Signature after `sha512=`.
fn provider_sources() -> Sources {
    let mut s = Sources::default();
    for p in [
        Provider::Github,
        Provider::Shopify,
        Provider::Slack,
        Provider::Twilio,
        Provider::Paddle,
        Provider::Linear,
        Provider::Hmac,
    ] {
        let hmac = (p == Provider::Hmac).then(|| {
            HmacScheme::parse(
                "header=X-Acme-Signature,algorithm=sha512,encoding=base64,prefix=sha512=",
            )
            .unwrap()
        });
        let source = Source {
            check: Check::Secret(beam_proto::Secret::new(PROD.to_string())),
            hmac,
            url: None,
        };
        s.insert_source(1, "shop", "production", p, source);
    }
    s
}

struct Case {
    provider: &'static str,
    /// Headers the provider sends besides its signature.
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    /// The event type beam derives (the `beam webhook` route key).
    event_type: &'static str,
    /// Which local app verifies it.
    node: bool,
}

fn cases() -> Vec<Case> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    vec![
        Case {
            provider: "github",
            headers: vec![
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ],
            body: br#"{"ref":"refs/heads/main","after":"c0ffee"}"#.to_vec(),
            event_type: "push",
            node: true,
        },
        Case {
            provider: "shopify",
            headers: vec![
                ("X-Shopify-Topic", "orders/create"),
                ("X-Shopify-Shop-Domain", "beam-test.myshopify.com"),
                ("X-Shopify-API-Version", "2025-10"),
                ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
            ],
            body: br#"{"id":820982911946154508,"email":"jon@example.com"}"#.to_vec(),
            event_type: "orders/create",
            node: true,
        },
        Case {
            provider: "linear",
            headers: vec![("Linear-Event", "Issue"), ("Linear-Delivery", "d-1")],
            body: format!(
                r#"{{"action":"create","type":"Issue","data":{{"id":"i-1"}},"webhookTimestamp":{now_ms}}}"#
            )
            .into_bytes(),
            event_type: "Issue.create",
            node: true,
        },
        Case {
            provider: "slack",
            headers: vec![],
            body: br#"{"token":"t","team_id":"T1","event_id":"Ev01","type":"event_callback","event":{"type":"app_mention","text":"hi"}}"#.to_vec(),
            event_type: "app_mention",
            node: false,
        },
        Case {
            provider: "twilio",
            headers: vec![("Content-Type", "application/x-www-form-urlencoded")],
            body: b"MessageSid=SM1&SmsStatus=received&Body=Hello+w%C3%B6rld%21&From=%2B15551234567&To=%2B15557654321&To=%2B15557654321"
                .to_vec(),
            event_type: "message.received",
            node: false,
        },
        Case {
            provider: "paddle",
            headers: vec![],
            body: br#"{"event_id":"evt_01hv8x","event_type":"transaction.completed","data":{"id":"txn_1"}}"#.to_vec(),
            event_type: "transaction.completed",
            node: false,
        },
        Case {
            provider: "hmac",
            headers: vec![],
            body: br#"{"type":"acme.paid","id":7}"#.to_vec(),
            event_type: "acme.paid",
            node: false,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_providers_verify_in_production_and_re_sign_for_their_official_libraries() {
    let py = python();
    let server = TestServer::start_with(|c| c.webhook_sources = provider_sources()).await;
    let (admin, _agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["webhooks:read"]).await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();

    let mut secret_cmd = crate::support::beam(home.path());
    secret_cmd.args(["webhook", "secret"]);
    let (code, out, err) = crate::support::output(secret_cmd);
    assert_eq!(code, 0, "{err}");
    let dev_secret = out.trim().to_string();

    // The local apps verify with the developer's secret only.
    let py_log = work.path().join("py.jsonl");
    let mut py_app = std::process::Command::new(&py);
    py_app
        .arg(APP)
        .arg("serve")
        .arg(&py_log)
        .env("WEBHOOK_SECRET", &dev_secret);
    let (_py_app, py_port) = spawn_app(py_app);
    let node_log = work.path().join("node.jsonl");
    let mut node = node_app();
    node.arg("serve")
        .arg(&node_log)
        .env("WEBHOOK_SECRET", &dev_secret);
    let (_node_app, node_port) = spawn_app(node);

    let cases = cases();
    let routes: Vec<String> = cases
        .iter()
        .map(|c| {
            let port = if c.node { node_port } else { py_port };
            format!("{}=http://127.0.0.1:{port}/{}", c.event_type, c.provider)
        })
        .collect();
    let tunnel = server.tunnel.to_string();
    let mut listen = crate::support::beam(home.path());
    listen
        .args(["webhook", "--project", "shop/production"])
        .args(routes.iter().flat_map(|r| ["--forward", r.as_str()]))
        .args(["--server", &tunnel, "--fingerprint", &server.fingerprint])
        .env("BEAM_TOKEN", &dev);
    let mut cli = Watched::spawn(listen);
    cli.wait_for("beam webhook: ready").await;

    for case in &cases {
        // Twilio signs the URL it called: the receiver's, as the sender saw it.
        let path = format!("/hooks/1/shop/production/{}?src=test", case.provider);
        let url = format!("http://localhost:{}{path}", server.public.port());
        let mut headers: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.extend(official_headers(
            case.provider,
            PROD,
            Some(&url),
            &case.body,
        ));

        // A signature over other bytes is refused, with the reason.
        let mut tampered = case.body.clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x01;
        let r = post_to(server.public, &path, &headers, &tampered).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}: {r:?}",
            case.provider
        );
        assert!(
            r.message().starts_with("signature check failed"),
            "{}: {}",
            case.provider,
            r.message()
        );
        // A request without the signature headers is refused too.
        let unsigned: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = post_to(server.public, &path, &unsigned, &case.body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}: {r:?}",
            case.provider
        );
        assert!(
            r.message().contains("missing"),
            "{}: {}",
            case.provider,
            r.message()
        );

        let r = post_to(server.public, &path, &headers, &case.body).await;
        assert_eq!(r.status, StatusCode::OK, "{}: {r:?}", case.provider);
    }

    // Every event reaches its app re-signed for the developer's secret, byte
    // for byte, and the official library accepts it.
    for case in &cases {
        let log = if case.node { &node_log } else { &py_log };
        let what = format!("the {} event reaches its app", case.provider);
        let entries = wait_log(log, &what, |e| !deliveries_of(e, &case.body).is_empty()).await;
        let d = &deliveries_of(&entries, &case.body)[0];
        assert_eq!(
            d["verified"], true,
            "{}: the official library refused beam's re-signed event: {d}",
            case.provider
        );
        assert_eq!(d["path"], format!("/{}?src=test", case.provider));
    }

    // The history names each provider and the type beam derived; no
    // production signature was stored (re-signing replaced, not kept, it).
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/webhooks/events?limit=50",
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for case in &cases {
        let row = r
            .json
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["provider"] == case.provider)
            .unwrap_or_else(|| panic!("{} is not in the history: {}", case.provider, r.json));
        assert_eq!(row["event_type"], case.event_type, "{row}");
        assert_eq!(row["verified"], true, "{row}");
    }
    drop(cli);
}
