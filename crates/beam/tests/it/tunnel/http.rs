//! HTTP through a tunnel: routing, headers, streaming and concurrency.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn get_reaches_the_local_service_with_forwarded_headers() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_client, welcome) = server.http_client(origin.addr).await;
    assert!(welcome.public_url.starts_with("http://"));
    assert!(
        welcome
            .public_url
            .ends_with(&format!(".localhost:{}", server.public.port()))
    );
    let host = server.host(&welcome.name);

    let (status, body) = get(server.public, &host, "/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello from origin");

    // Host is routed case-insensitively and with any port.
    let upper = host.to_uppercase();
    let resp = visit(
        server.public,
        &upper,
        Request::get("/headers?q=1").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], upper.as_str());
    assert_eq!(seen["host"], upper.as_str(), "Host is preserved by default");
    assert_eq!(seen["x-request-id"], rid.as_str());
    assert_eq!(rid.len(), 32);
    assert_eq!(seen["_path"], "/headers?q=1");
}

/// Apps can trust what beam says about the visitor: a forged `Forwarded`,
/// `X-Forwarded-*`, `X-Real-IP` or `beam-*` header never reaches them.
#[tokio::test]
async fn visitor_forged_forwarding_and_internal_headers_are_replaced() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let req = Request::get("/headers")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "bank.example")
        .header("x-forwarded-port", "443")
        .header("x-real-ip", "6.6.6.6")
        .header("beam-peer-addr", "6.6.6.6:1")
        .header("beam-control", "stop")
        .header("x-request-id", "forged")
        .body(full(""))
        .unwrap();
    let resp = visit(server.public, &host, req).await;
    let seen: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], host.as_str());
    assert_ne!(seen["x-request-id"], "forged");
    for gone in [
        "forwarded",
        "x-forwarded-port",
        "beam-peer-addr",
        "beam-control",
    ] {
        assert!(seen.get(gone).is_none(), "{gone} reached the app: {seen}");
    }
    assert!(!seen.to_string().contains("6.6.6.6"), "{seen}");
}

/// Tenants share the parent domain: a tunnel's cookie for that domain (or
/// the API host, or another tenant) is made host-only; its own host and
/// below keep their scope.
#[tokio::test]
async fn tunnel_cookies_cannot_reach_the_parent_domain_or_other_tenants() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let name = host.split('.').next().unwrap().to_string();
    let own = format!("{name}.localhost");
    let path = format!(
        "/domain-cookies?domain=.localhost&domain=localhost&domain=api.localhost&domain=other.localhost&domain={own}&domain=sub.{own}"
    );
    let resp = visit(
        server.public,
        &host,
        Request::get(path).body(full("")).unwrap(),
    )
    .await;
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        vec![
            "c0=v; Path=/".to_string(),
            "c1=v; Path=/".to_string(),
            "c2=v; Path=/".to_string(),
            "c3=v; Path=/".to_string(),
            format!("c4=v; Domain={own}; Path=/"),
            format!("c5=v; Domain=sub.{own}; Path=/"),
        ]
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_repeated_headers_kept() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let req = Request::get("/headers")
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("x-end-to-end", "yes")
        .body(full(""))
        .unwrap();
    let resp = visit(server.public, &host, req).await;
    let seen: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(seen.get("x-private-hop").is_none(), "{seen}");
    assert!(seen.get("keep-alive").is_none(), "{seen}");
    assert_eq!(seen["x-end-to-end"], "yes");

    let resp = visit(
        server.public,
        &host,
        Request::get("/multi-cookie").body(full("")).unwrap(),
    )
    .await;
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
}

#[tokio::test]
async fn post_body_is_echoed() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let req = Request::post("/echo").body(full("ping ✓")).unwrap();
    let resp = visit(server.public, &server.host(&w.name), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "ping ✓"
    );
}

/// 256 MiB up and 256 MiB down through the tunnel while the peak memory of the whole
/// test process (server, client and origin together) grows far less than one body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_without_buffering() {
    const SIZE: u64 = 256 << 20;
    let (server, _origin, _client, host) = http_tunnel().await;
    let before = peak_rss();

    stream_both_ways(server.public, &host, SIZE).await;

    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 96 << 20,
        "peak RSS grew by {} MiB for 2 × 256 MiB of bodies",
        grew >> 20
    );
    assert!(server.metric("beam_bytes_transferred_total{direction=\"in\"}") >= SIZE as f64);
    assert!(server.metric("beam_bytes_transferred_total{direction=\"out\"}") >= SIZE as f64);
}

#[tokio::test]
async fn sse_events_arrive_as_they_are_sent() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let resp = visit(
        server.public,
        &server.host(&w.name),
        Request::get("/events").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // The origin holds the second event until we have read the first: if anything
    // buffered the response, this read would never complete.
    assert_eq!(next_data(&mut body).await.unwrap(), "data: one\n\n");
    origin.release.notify_one();
    assert_eq!(next_data(&mut body).await.unwrap(), "data: two\n\n");
    assert!(next_data(&mut body).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_share_one_client_connection() {
    const N: usize = 500;
    let server = TestServer::start().await;
    // The origin answers only when all N requests are inside it at the same time.
    let origin = Origin::with_barrier(N).await;
    let (client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    let mut tasks = Vec::new();
    for _ in 0..N {
        let host = host.clone();
        let public = server.public;
        tasks.push(tokio::spawn(
            async move { get(public, &host, "/barrier").await },
        ));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "all here");
    }
    assert_eq!(server.metric("beam_tunnels_active{protocol=\"http\"}"), 1.0);
    assert_eq!(client.stats.snapshot().1, N as u64);
}

#[tokio::test]
async fn api_host_serves_health_ready_and_metrics() {
    let server = TestServer::start().await;
    let api = format!("localhost:{}", server.public.port());
    let (status, body) = get(server.public, &api, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"ok\""));
    let (status, body) = get(server.public, &format!("api.{api}"), "/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"ready\""));
    let origin = Origin::start().await;
    let (_c, w) = server.http_client(origin.addr).await;
    get(server.public, &server.host(&w.name), "/hello").await;
    // On the API host only an operator token reads them; the --metrics
    // listener needs none (it is for the operator's private network).
    let (status, _) = get(server.public, &api, "/metrics").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let member = server.user("metrics-reader@example.com").await;
    let r = server.api("GET", "/metrics", Some(&member), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let operator = server.token.expose().to_string();
    let resp = visit(
        server.public,
        &api,
        Request::get("/metrics")
            .header("authorization", format!("Bearer {operator}"))
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = get(server.metrics_addr, "127.0.0.1", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "beam_tunnels_active{protocol=\"http\"} 1",
        "beam_requests_total{method=\"GET\",status_code=\"200\"}",
        "beam_request_duration_seconds_bucket{le=\"0.005\"}",
        "beam_bytes_transferred_total{direction=\"out\"}",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
    assert!(!body.contains("tunnel_id"), "no per-tunnel labels");
}

/// Visitors that hang up right after sending (a load tester stopping, browsers
/// cancelling) make the edge reset their streams; the tunnel must shrug that off
/// instead of treating it as an HTTP/2 "rapid reset" attack from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_abandoning_requests_do_not_drop_the_tunnel() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (mut client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    let mut tasks = Vec::new();
    for _ in 0..2000 {
        let (public, host) = (server.public, host.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(public).await.unwrap();
            let req = format!("GET /hello HTTP/1.1\r\nhost: {host}\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            // Hang up without reading the answer.
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (status, body) = get(server.public, &host, "/hello").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from origin")
    );
    while let Ok(ev) = client.events.try_recv() {
        assert!(
            !matches!(ev, beam_client::Event::Disconnected { .. }),
            "tunnel dropped: {ev:?}"
        );
    }
}

async fn raw_exchange(public: std::net::SocketAddr, request: String) -> String {
    let mut s = tokio::net::TcpStream::connect(public).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the headers and a little body have arrived or the server closes.
    loop {
        let n = within("raw response", s.read(&mut buf)).await.unwrap();
        out.extend_from_slice(&buf[..n]);
        if n == 0 || out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 200 {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connect_requests_are_refused_at_the_edge() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let out = raw_exchange(
        server.public,
        format!("CONNECT {host} HTTP/1.1\r\nhost: {host}\r\n\r\n"),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(out.contains("expose raw TCP with `beam tcp`"), "{out}");
}

#[tokio::test]
async fn user_info_in_an_absolute_uri_never_reaches_the_local_service() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let out = raw_exchange(
        server.public,
        format!("GET http://user:pw@{host}/headers HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(!out.contains("user:pw"), "{out}");
    assert!(
        out.contains(&format!("\"x-forwarded-host\":\"{host}\"")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_when_the_store_stops_taking_this_nodes_heartbeat() {
    // A heartbeat far apart from a short lease: the node's membership goes
    // stale after the first beat, as when the database is out of reach.
    let server = TestServer::start_with(|c| {
        c.node_heartbeat = std::time::Duration::from_secs(3600);
        c.node_lease = std::time::Duration::from_millis(500);
    })
    .await;
    let api = format!("api.localhost:{}", server.public.port());
    let (status, body) = get(server.public, &api, "/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["node"].as_str().map(str::len), Some(16), "{body}");
    let body = eventually("ready turns 503", || async {
        let (status, body) = get(server.public, &api, "/ready").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    assert!(
        body.contains("has not taken this node's heartbeat"),
        "{body}"
    );
}
