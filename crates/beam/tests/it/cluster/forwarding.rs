//! Visitors reach every tunnel through every node: a request, a WebSocket, a
//! 64 MiB body each way and a TCP connection that arrive at a node without
//! the tunnel are forwarded to the node that holds it, where the tunnel's
//! protection and analytics apply once. A node with another cluster secret
//! is refused.

use std::time::Duration;

use beam_proto::{Protection, Secret, TunnelRequest};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_reach_a_tunnel_through_every_node() {
    let a = TestServer::cluster(|_| {}).await;
    let (b, c) = (a.join().await, a.join().await);
    let origin = Origin::start().await;
    let (client, w) = a.http_client(origin.addr).await;
    let host = a.host(&w.name);

    for node in [&a, &b, &c] {
        let (status, body) = get(node.public, &host, "/hello").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello from origin")
        );
    }
    // The holder sets the forwarding headers from the visitor as the first
    // node saw it, not from the node hop. A visitor forging the nodes' own
    // headers (or X-Forwarded-For) changes nothing, and the app sees none.
    let forged = Request::get("/headers")
        .header("beam-node-peer", "6.6.6.6:1")
        .header("beam-node-secure", "1")
        .header("beam-node-hops", "0")
        .header("beam-node-agent", "1")
        .header("x-forwarded-for", "6.6.6.6")
        .body(full(""))
        .unwrap();
    let resp = visit(b.public, &host, forged).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = resp.into_body().collect().await.unwrap().to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&seen).unwrap();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(seen["x-forwarded-host"], host.as_str(), "{seen}");
    let leaked: Vec<_> = seen
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("beam-node"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");

    // A burst of new connections once b's cached placement expired: more at
    // once than b looks up in the store, and a flood of made-up names
    // alongside. Every request for the real tunnel is answered by it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let burst = (0..64).map(|i| {
        let (host, bogus) = (host.clone(), format!("nobody-{i}.localhost"));
        let public = b.public;
        tokio::spawn(async move {
            let (real, made_up) = tokio::join!(
                try_get(public, &host, "/hello"),
                try_get(public, &bogus, "/hello")
            );
            (real.map(|r| r.0), made_up.map(|r| r.0))
        })
    });
    for r in futures_util::future::join_all(burst).await {
        let (real, made_up) = r.unwrap();
        assert_eq!(real, Ok(StatusCode::OK));
        assert_eq!(made_up, Ok(StatusCode::NOT_FOUND));
    }

    websocket_echo(b.public, &host).await;
    stream_both_ways(c.public, &host, 64 << 20).await;

    // b and c forwarded; a served everything, and counted each request once.
    assert!(b.metric("beam_forwarded_requests_total{status=\"2xx\"}") >= 2.0);
    assert!(c.metric("beam_forwarded_requests_total{status=\"2xx\"}") >= 2.0);
    assert_eq!(a.metric("beam_forwarded_requests_total"), 0.0);
    let token = a.token.expose().to_string();
    eventually("requests counted once, at the holder", || async {
        let row = c.tunnel_row(&token, &w.name).await?;
        // /hello ×3, /headers, the burst's 64, the WebSocket, /count and /bytes.
        (row["requests"] == 71).then_some(())
    })
    .await;

    // Gone everywhere once the client stops.
    client.handle.abort();
    for node in [&b, &c] {
        eventually("no tunnel on every node", || async {
            (get(node.public, &host, "/hello").await.0 == StatusCode::NOT_FOUND).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_visitor_meets_the_tunnels_protection_at_the_holder() {
    let a = TestServer::cluster(|_| {}).await;
    let b = a.join().await;
    let origin = Origin::start().await;
    let bearer = beam_server::accounts::password::hash(Secret::new("s3cret-token"))
        .await
        .unwrap();
    let protection = Protection {
        bearer: Some(bearer),
        ..Default::default()
    };
    let (_c, host) = a.protected_client(origin.addr, protection).await;
    let ask = |auth: Option<&'static str>| {
        let mut req = Request::get("/headers");
        if let Some(v) = auth {
            req = req.header("authorization", v);
        }
        visit(b.public, &host, req.body(full("")).unwrap())
    };
    assert_eq!(ask(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        ask(Some("Bearer nope")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = ask(Some("Bearer s3cret-token")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let seen = ok.into_body().collect().await.unwrap().to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&seen).unwrap();
    assert!(
        seen.get("authorization").is_none(),
        "the app never sees beam's credential"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_is_refused() {
    let a = TestServer::cluster(|_| {}).await;
    let stranger = a
        .join_with(|c| {
            let cluster = c.cluster.as_mut().unwrap();
            cluster.secret = Secret::new("not-the-cluster-secret-at-all");
            cluster.move_wait = Duration::from_millis(300);
        })
        .await;
    let origin = Origin::start().await;
    let (_client, w) = a.http_client(origin.addr).await;
    let host = a.host(&w.name);
    let (status, page) = get(stranger.public, &host, "/hello").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("could not be reached"), "{page}");
    assert!(a.metric("beam_errors_total{type=\"node_refused\"}") >= 1.0);
    assert!(stranger.metric("beam_errors_total{type=\"node_unreachable\"}") >= 1.0);

    // Not a node at all: a plain HTTP request on the node port gets nothing.
    let mut raw = tokio::net::TcpStream::connect(a.node.unwrap())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = within("closed", raw.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{buf:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_tunnel_port_is_open_on_every_node() {
    let a = TestServer::cluster(|_| {}).await;
    let b = a.join().await;
    let echo = tcp_echo().await;
    let mut client = TestClient::start(a.client_config(TunnelRequest::Tcp { port: None }, echo));
    let port: u16 = client.connected().await.name.parse().unwrap();
    // b mirrors the port on its own address within a heartbeat.
    let mut s = eventually("b opens the port", || async {
        tokio::net::TcpStream::connect((b.cfg.tcp_bind, port))
            .await
            .ok()
    })
    .await;
    s.write_all(b"through b").await.unwrap();
    let mut got = [0u8; 9];
    within("echo", s.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"through b");
}

/// A custom domain's visitors reach its tunnel through a node the tunnel is
/// not connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_is_served_through_every_node() {
    let dns = DnsServer::start().await;
    let a = TestServer::cluster(|c| c.dns_resolver = Some(dns.addr)).await;
    let b = a.join().await;
    let origin = Origin::start().await;
    let admin = a.token.expose().to_string();
    let r = a
        .api(
            "POST",
            "/api/domains",
            Some(&admin),
            Some(serde_json::json!({ "hostname": "shop.example.test" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.json["id"].as_i64().unwrap();
    let txt = r.json["dns"]["txt_value"].as_str().unwrap().to_string();
    dns.set("_beam-challenge.shop.example.test", &[&txt]);
    let r = a
        .api(
            "POST",
            &format!("/api/domains/{id}/verify"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let mut client = TestClient::start(a.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: Some("shop.example.test".into()),
        },
        origin.addr,
    ));
    client.connected().await;
    for node in [&a, &b] {
        let host = format!("shop.example.test:{}", node.public.port());
        let (status, body) = get(node.public, &host, "/hello").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello from origin")
        );
    }
    // A domain nobody serves is still not found on the other node.
    let host = format!("other.example.test:{}", b.public.port());
    assert_eq!(
        get(b.public, &host, "/hello").await.0,
        StatusCode::NOT_FOUND
    );

    // Removed through the node that does not hold the tunnel: both nodes
    // stop routing it (the holder's reconcile runs on its 1 s heartbeat; the
    // time is printed, not asserted, as timings are not unit-tested).
    let r = b
        .api("DELETE", &format!("/api/domains/{id}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let removed = tokio::time::Instant::now();
    eventually("the removed domain stops routing on every node", || async {
        for node in [&a, &b] {
            let host = format!("shop.example.test:{}", node.public.port());
            if get(node.public, &host, "/hello").await.0 != StatusCode::NOT_FOUND {
                return None;
            }
        }
        Some(())
    })
    .await;
    eprintln!(
        "domain removal reached every node in {:?}",
        removed.elapsed()
    );
}
