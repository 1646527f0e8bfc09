//! The agent inside an app: the `embedded` example of `beam-agent`, run here
//! against a real server. Its `tracing` events arrive in `beam logs` with
//! their fields (masked like any line), and health and env check answer.

#[allow(dead_code)] // its `main` is for `cargo run --example embedded`
#[path = "../../../../beam-agent/examples/embedded.rs"]
mod example;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::parity::setup;
use crate::support::*;

#[tokio::test]
async fn the_embedded_example_publishes_tracing_events_with_their_fields() {
    let server = TestServer::start().await;
    let (admin, agent_token) = setup(&server).await;
    let agent = example::agent(example::Settings {
        server: server.tunnel.to_string(),
        token: beam_proto::Secret::new(agent_token),
        fingerprint: Some(server.fingerprint.clone()),
        project: "shop/production".into(),
    })
    .unwrap();
    // This test's thread is the app's: its events go to the agent's layer.
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(agent.layer()));
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = tokio::spawn(agent.run(stop.clone().cancelled_owned()));
    example::app(Duration::from_millis(1), Some(3)).await;

    let text = eventually("the agent answers with the app's events", || async {
        let (status, text) = server
            .api_text("/api/projects/shop/production/logs?follow=false", &admin)
            .await;
        (status == StatusCode::OK && text.lines().count() >= 4).then_some(text)
    })
    .await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let orders: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "order placed")
        .collect();
    assert_eq!(orders.len(), 3, "{text}");
    let first = orders[0];
    assert_eq!(first["level"], "info");
    assert_eq!(first["service"], "checkout");
    assert_eq!(first["source"], "tracing");
    assert_eq!(first["context"]["order_id"], 1);
    assert_eq!(first["context"]["amount_cents"], 1999);
    assert_eq!(first["context"]["currency"], "eur");
    let declined = lines
        .iter()
        .find(|l| l["message"] == "card declined")
        .expect("the warning");
    assert_eq!(declined["level"], "warn");
    assert_eq!(declined["context"]["order_id"], 3);
    assert_eq!(
        declined["context"]["card_token"], "****",
        "masked by name before it is stored"
    );
    assert!(!text.contains("tok_live_4242"));
    assert!(
        !text.contains("beam_"),
        "the agent's own transport events are not published: {text}"
    );

    // Health and env check are served by the embedded agent too.
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["instances"][0]["instance"], "embedded-1");

    stop.cancel();
    within("the agent stops at shutdown", publishing)
        .await
        .unwrap()
        .unwrap();
}
