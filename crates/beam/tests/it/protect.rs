//! Visitor protection and edge limits: basic and bearer auth, CIDR filters, rate
//! limits with Retry-After, opt-in CORS, body/URI/header limits, slowloris, stream
//! and tunnel caps, compression, HTTPS upstreams and PROXY protocol v2.

use std::time::Duration;

use base64::Engine;
use beam_proto::{BasicAuth, ErrorCode, Protection, Secret, TunnelRequest};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn argon(s: &str) -> String {
    beam_server::accounts::password::hash(Secret::new(s))
        .await
        .unwrap()
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// Sends a GET with extra headers; returns the response.
async fn get_with(
    server: &TestServer,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    visit(server.public, host, req.body(full("")).unwrap()).await
}

async fn text(resp: http::Response<hyper::body::Incoming>) -> String {
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test]
async fn basic_auth_missing_wrong_and_right_and_the_app_never_sees_it() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let protection = Protection {
        // The password contains ':' — split on the first one only.
        basic_auth: Some(BasicAuth {
            user: "ada".into(),
            hash: argon("pa:ss:word").await,
        }),
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, protection).await;

    let resp = get_with(&server, &host, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Basic realm=\"beam tunnel "),
        "{challenge}"
    );
    assert!(text(resp).await.contains("is protected"));

    for wrong in ["ada:pa", "ada:pa:ss:wor", "eve:pa:ss:word", "ada"] {
        let resp = get_with(
            &server,
            &host,
            "/hello",
            &[("authorization", &basic(wrong))],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let resp = get_with(
        &server,
        &host,
        "/headers",
        &[("authorization", &basic("ada:pa:ss:word"))],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
    assert!(
        seen.get("authorization").is_none(),
        "the tunnel's credential must not reach the app: {seen}"
    );
    assert!(server.metric("beam_errors_total{type=\"unauthorized\"}") >= 5.0);
}

#[tokio::test]
async fn bearer_token_missing_wrong_and_right() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let protection = Protection {
        bearer: Some(argon("s3cret-token").await),
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, protection).await;
    let resp = get_with(&server, &host, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );
    let resp = get_with(
        &server,
        &host,
        "/hello",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = get_with(
        &server,
        &host,
        "/hello",
        &[("authorization", &basic("x:s3cret-token"))],
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "basic is not accepted for bearer"
    );
    let resp = get_with(
        &server,
        &host,
        "/hello",
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(text(resp).await, "hello from origin");
}

#[tokio::test]
async fn cidr_allow_and_deny() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let only_tens = Protection {
        allow_cidr: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    let (_a, outside) = server.protected_client(origin.addr, only_tens).await;
    let resp = get_with(&server, &outside, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        text(resp)
            .await
            .contains("does not accept visitors from your network")
    );

    let deny_loopback = Protection {
        allow_cidr: vec!["127.0.0.0/8".into()],
        deny_cidr: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let (_b, denied) = server.protected_client(origin.addr, deny_loopback).await;
    assert_eq!(
        get(server.public, &denied, "/hello").await.0,
        StatusCode::FORBIDDEN
    );

    let allow_loopback = Protection {
        allow_cidr: vec!["127.0.0.0/8".into(), "::1/128".into()],
        ..Default::default()
    };
    let (_c, allowed) = server.protected_client(origin.addr, allow_loopback).await;
    assert_eq!(
        get(server.public, &allowed, "/hello").await.0,
        StatusCode::OK
    );

    // A malformed network is refused at connect time, not ignored.
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.protection.deny_cidr = vec!["10.0.0.300/8".into()];
    let r = TestClient::start(cfg).refused().await;
    assert_eq!(r.code, ErrorCode::InvalidOption);
    assert!(
        r.message
            .contains("--deny-cidr: '10.0.0.300/8' is not a network"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_a_correct_retry_after() {
    // Per tunnel (server) and per visitor address (tunnel owner).
    let server = TestServer::start_with(|c| c.tunnel_rate_per_sec = Some(1)).await;
    let origin = Origin::start().await;
    let (_c, host) = server.http_client(origin.addr).await;
    let host = server.host(&host.name);
    assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
    let resp = get_with(&server, &host, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(text(resp).await.contains("its tunnel limit"));
    // After Retry-After, a request goes through again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);

    let server = TestServer::start().await;
    let per_visitor = Protection {
        rate_per_minute: Some(2),
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, per_visitor).await;
    for _ in 0..2 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
    }
    let resp = get_with(&server, &host, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Two per minute: the next request is allowed about 30 s after the first.
    assert!((28..=30).contains(&wait), "Retry-After {wait}");
}

/// `--rate-limit 5/s` means 5 per second with a burst of 5: a volley of 60
/// parallel requests gets 5 through, plus what one second's refill allows
/// for however long the volley took (it used to become 300/min with a burst
/// of 300).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_rate_limit_allows_at_most_a_one_second_burst() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let per_second = Protection {
        rate_per_second: Some(5),
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, per_second).await;
    let start = tokio::time::Instant::now();
    let volley = (0..60).map(|_| {
        let host = host.clone();
        let public = server.public;
        tokio::spawn(async move { get(public, &host, "/hello").await.0 })
    });
    let mut ok = 0u64;
    let mut limited = 0u64;
    for r in futures_util::future::join_all(volley).await {
        match r.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let refill = (start.elapsed().as_secs_f64() * 5.0).ceil() as u64;
    assert!(ok >= 5, "the burst itself is allowed: {ok}");
    assert!(
        ok <= 5 + refill,
        "{ok} of 60 passed a 5/s limit in {:?}",
        start.elapsed()
    );
    assert_eq!(ok + limited, 60);
}

#[tokio::test]
async fn token_rate_limit_is_shared_by_the_tokens_tunnels() {
    let server = TestServer::start_with(|c| c.token_rate_per_sec = Some(1)).await;
    let origin = Origin::start().await;
    let (_a, wa) = server.http_client(origin.addr).await;
    let (_b, wb) = server.http_client(origin.addr).await;
    assert_eq!(
        get(server.public, &server.host(&wa.name), "/hello").await.0,
        StatusCode::OK
    );
    let resp = get_with(&server, &server.host(&wb.name), "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(text(resp).await.contains("its token limit"));
}

#[tokio::test]
async fn cors_is_answered_at_the_edge_only_when_opted_in() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "x-custom"),
    ];

    // Not opted in: the preflight and the app's own CORS headers pass untouched.
    let (_plain, w) = server.http_client(origin.addr).await;
    let plain = server.host(&w.name);
    let mut req = Request::options("/own-cors");
    for (k, v) in preflight {
        req = req.header(k, v);
    }
    let resp = visit(server.public, &plain, req.body(full("")).unwrap()).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the app answered the preflight"
    );
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app-own.example"
    );

    let cors = Protection {
        cors: vec!["https://app.example.com".into()],
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, cors).await;
    let mut req = Request::options("/anything");
    for (k, v) in preflight {
        req = req.header(k, v);
    }
    let resp = visit(server.public, &host, req.body(full("")).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-headers"], "x-custom");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );

    let mut req = Request::options("/anything")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET");
    req = req.header("x-probe", "1");
    let resp = visit(server.public, &host, req.body(full("")).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    // A simple request gets the header for an allowed origin, not for others.
    let resp = get_with(
        &server,
        &host,
        "/hello",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let resp = get_with(
        &server,
        &host,
        "/hello",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "CORS does not block; browsers do"
    );
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    // WebSocket upgrades from another browser origin are refused.
    let ws = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut evil = ws.to_vec();
    evil.push(("origin", "https://evil.example"));
    let resp = get_with(&server, &host, "/ws", &evil).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(text(resp).await.contains("WebSocket"));
    let mut good = ws.to_vec();
    good.push(("origin", "https://app.example.com"));
    let resp = get_with(&server, &host, "/ws", &good).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
}

#[tokio::test]
async fn body_limit_gives_413_for_declared_and_streamed_bodies() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let limited = Protection {
        max_body: Some(1000),
        ..Default::default()
    };
    let (_c, host) = server.protected_client(origin.addr, limited).await;
    let ok = visit(
        server.public,
        &host,
        Request::post("/count")
            .body(full(vec![b'x'; 1000]))
            .unwrap(),
    )
    .await;
    assert_eq!(text(ok).await, "1000");
    let declared = visit(
        server.public,
        &host,
        Request::post("/count")
            .body(full(vec![b'x'; 1001]))
            .unwrap(),
    )
    .await;
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text(declared).await.contains("up to 1000 bytes"));

    // Chunked: no length up front, cut off when it passes the limit.
    let (mut tx, body) =
        http_body_util::channel::Channel::<bytes::Bytes, std::convert::Infallible>::new(4);
    tokio::spawn(async move {
        for _ in 0..10 {
            if tx
                .send_data(bytes::Bytes::from(vec![b'y'; 500]))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let streamed = visit(
        server.public,
        &host,
        Request::post("/count")
            .body(body.map_err(|n| match n {}).boxed_unsync())
            .unwrap(),
    )
    .await;
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// Reads from a raw connection until it closes or `limit` passes.
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test]
async fn oversized_heads_get_431_and_long_targets_414() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let mut s = TcpStream::connect(server.public).await.unwrap();
    let big = "a".repeat(40 * 1024);
    s.write_all(format!("GET /hello HTTP/1.1\r\nhost: {host}\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (reply, _) = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    let long = format!("/hello?{}", "q".repeat(9000));
    let (status, body) = get(server.public, &host, &long).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert!(body.contains("up to 8192 bytes"), "{body}");
    // Normal requests are unaffected.
    assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_slowloris_connection_is_dropped_while_normal_traffic_flows() {
    let server = TestServer::start_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let origin = Origin::start().await;
    let (_c, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    let mut slow = TcpStream::connect(server.public).await.unwrap();
    let started = tokio::time::Instant::now();
    let dripping = async {
        let head = format!("GET /hello HTTP/1.1\r\nhost: {host}\r\nx-slow: ");
        slow.write_all(head.as_bytes()).await.unwrap();
        // One byte every 200 ms: never completes the head.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let normal = async {
        for _ in 0..10 {
            assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(4), dripping)
                .await
                .ok();
        },
        normal
    );
    let (reply, closed) = read_until_close(&mut slow, Duration::from_secs(3)).await;
    assert!(closed, "the slow connection is still open");
    assert!(reply.starts_with("HTTP/1.1 408 Request Timeout"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(8));

    // An idle keep-alive connection is closed quietly: no 408 into a connection
    // a client may be about to reuse.
    let mut idle = TcpStream::connect(server.public).await.unwrap();
    idle.write_all(format!("GET /hello HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (reply, closed) = read_until_close(&mut idle, Duration::from_secs(4)).await;
    assert!(closed, "an idle keep-alive connection stays open");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(!reply.contains("408"), "{reply}");
}

#[tokio::test]
async fn tunnels_per_token_and_streams_per_tunnel_are_capped() {
    let server = TestServer::start_with(|c| {
        c.max_tunnels_per_token = 1;
        c.max_streams_per_tunnel = 1;
    })
    .await;
    let origin = Origin::start().await;
    let (_a, w) = server.http_client(origin.addr).await;
    let second = TestClient::start(server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    ));
    let r = second.refused().await;
    assert_eq!(r.code, ErrorCode::LimitReached);
    assert!(
        r.message.contains("already has 1 tunnels connected"),
        "{}",
        r.message
    );

    // One stream in flight (a held SSE response): the next request gets 503.
    let host = server.host(&w.name);
    let mut events = visit(
        server.public,
        &host,
        Request::get("/events").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(next_data(events.body_mut()).await.unwrap(), "data: one\n\n");
    let resp = get_with(&server, &host, "/hello", &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    origin.release.notify_one();
    drop(events);
    eventually("the stream slot is free again", || async {
        (get(server.public, &host, "/hello").await.0 == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn compression_is_opt_in_and_round_trips() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_plain, w) = server.http_client(origin.addr).await;
    let resp = get_with(
        &server,
        &server.host(&w.name),
        "/json",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert!(
        !resp.headers().contains_key("content-encoding"),
        "off by default"
    );
    let original = text(resp).await;

    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.proxy.compress = true;
    let mut c = TestClient::start(cfg);
    let w = c.connected().await;
    let host = server.host(&w.name);
    let resp = get_with(&server, &host, "/json", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(
        resp.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("Accept-Encoding")
    );
    let gz = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        gz.len() < original.len() / 3,
        "{} vs {}",
        gz.len(),
        original.len()
    );
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, original);
    // Visitors that do not accept gzip, and tiny bodies, get identity.
    let resp = get_with(&server, &host, "/json", &[]).await;
    assert!(!resp.headers().contains_key("content-encoding"));
    let resp = get_with(&server, &host, "/hello", &[("accept-encoding", "gzip")]).await;
    assert!(!resp.headers().contains_key("content-encoding"));
}

/// An HTTPS origin with a self-signed certificate, answering "secure hello".
async fn https_origin() -> std::net::SocketAddr {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(full("secure hello")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstreams_are_verified_unless_insecure_upstream() {
    let server = TestServer::start().await;
    let local = https_origin().await;
    let tunnel = |insecure: bool| {
        let mut cfg = server.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            local,
        );
        cfg.proxy.local.host = "localhost".into();
        cfg.proxy.local.https = true;
        cfg.proxy.insecure_upstream = insecure;
        cfg
    };
    let mut strict = TestClient::start(tunnel(false));
    let w = strict.connected().await;
    let (status, body) = get(server.public, &server.host(&w.name), "/").await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "a self-signed cert is not trusted"
    );
    assert!(body.contains("https://localhost:"), "{body}");

    let mut insecure = TestClient::start(tunnel(true));
    let w = insecure.connected().await;
    let (status, body) = get(server.public, &server.host(&w.name), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "secure hello");
}

#[tokio::test]
async fn proxy_protocol_v2_carries_the_visitor_address() {
    let server = TestServer::start().await;
    // The local service: reads and parses a PROXY v2 header, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                s.read_exact(&mut head).await.unwrap();
                assert_eq!(&head[..12], b"\r\n\r\n\0\r\nQUIT\n", "v2 signature");
                assert_eq!(head[12], 0x21, "version 2, PROXY");
                assert_eq!(head[13], 0x11, "TCP over IPv4");
                let len = u16::from_be_bytes([head[14], head[15]]) as usize;
                let mut addrs = vec![0u8; len];
                s.read_exact(&mut addrs).await.unwrap();
                let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
                let src = std::net::SocketAddr::from((
                    ip(&addrs[0..4]),
                    u16::from_be_bytes([addrs[8], addrs[9]]),
                ));
                let dst = std::net::SocketAddr::from((
                    ip(&addrs[4..8]),
                    u16::from_be_bytes([addrs[10], addrs[11]]),
                ));
                seen_tx.send((src, dst)).unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let mut cfg = server.client_config(TunnelRequest::Tcp { port: None }, local);
    cfg.proxy.proxy_protocol = true;
    let mut c = TestClient::start(cfg);
    let w = c.connected().await;
    let port: u16 = w.name.parse().unwrap();
    let mut visitor = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let visitor_addr = visitor.local_addr().unwrap();
    visitor.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    within("echo", visitor.read_exact(&mut back)).await.unwrap();
    assert_eq!(
        &back, b"ping",
        "the stream after the header is the visitor's"
    );
    let (src, dst) = within("header", seen_rx.recv()).await.unwrap();
    assert_eq!(src, visitor_addr);
    assert_eq!(dst.port(), port);
}

/// A GET from source address `127.0.0.{from}` (loopback has them all), so a
/// flood can come from many addresses as a botnet's would.
async fn get_from(server: &TestServer, from: u8, host: &str, authorization: &str) -> StatusCode {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(std::net::SocketAddr::from(([127, 0, 0, from], 0)))
        .unwrap();
    let stream = sock.connect(server.public).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/hello")
        .header("host", host)
        .header("authorization", authorization)
        .body(full(""))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    status
}

/// One tenant cannot slow another through visitor auth: wrong credentials
/// from one address are refused without hashing after 10 a minute (and a
/// flood of distinct wrong guesses cannot flush the correct visitor's
/// cached grant); checks beyond a tunnel's budget wait briefly, then get 503
/// with Retry-After; and a correct login on another tunnel goes through
/// while the first is flooded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_flood_on_one_tunnel_does_not_hold_another() {
    let server = TestServer::start_with(|c| c.hash_queue = Duration::from_millis(300)).await;
    let origin = Origin::start().await;
    let protect = |hash: String| Protection {
        basic_auth: Some(BasicAuth {
            user: "ada".into(),
            hash,
        }),
        ..Default::default()
    };
    let (_a, host_a) = server
        .protected_client(origin.addr, protect(argon("tunnel-a-password").await))
        .await;
    let (_b, host_b) = server
        .protected_client(origin.addr, protect(argon("tunnel-b-password").await))
        .await;
    let right_a = basic("ada:tunnel-a-password");

    // The owner of A logs in once: granted, and remembered.
    assert_eq!(
        get_from(&server, 1, &host_a, &right_a).await,
        StatusCode::OK
    );
    // One address guessing: 10 wrong answers, then 429 without hashing.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(get_from(&server, 2, &host_a, &basic(&format!("ada:guess-{i}"))).await);
    }
    assert_eq!(&statuses[..10], &[StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(&statuses[10..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    // A credential already proven right is still granted from that address
    // (a colleague behind the same NAT is not locked out)…
    assert_eq!(
        get_from(&server, 2, &host_a, &right_a).await,
        StatusCode::OK
    );
    // …and the owner, elsewhere, too.
    assert_eq!(
        get_from(&server, 1, &host_a, &right_a).await,
        StatusCode::OK
    );

    // A botnet: 60 addresses at once, each a distinct wrong guess. Checks
    // past A's budget that cannot start within the queue time get 503.
    let flood = (0..60u8).map(|i| {
        let host = host_a.clone();
        let server = &server;
        async move { get_from(server, 10 + i, &host, &basic(&format!("ada:bot-{i}"))).await }
    });
    let b_login = async {
        // B's correct login, started while A's flood is queued.
        tokio::time::sleep(Duration::from_millis(20)).await;
        get_from(&server, 200, &host_b, &basic("ada:tunnel-b-password")).await
    };
    let (flooded, b) = tokio::join!(futures_util::future::join_all(flood), b_login);
    assert_eq!(
        b,
        StatusCode::OK,
        "tunnel B's visitor was held by A's flood"
    );
    let busy = flooded
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let denied = flooded
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(busy + denied, 60, "{flooded:?}");
    assert!(
        busy > 0,
        "a 60-wide flood must overflow a budget of 2: {flooded:?}"
    );
    // The owner's grant survived 60 distinct wrong credentials.
    assert_eq!(
        get_from(&server, 1, &host_a, &right_a).await,
        StatusCode::OK
    );
    assert!(
        server.metrics.render().contains("auth_busy"),
        "503s are counted as auth_busy"
    );
}

/// Measurement for BENCHMARKS.md (not a test of timing): the time to a first
/// correct login on tunnel B while tunnel A is flooded with wrong
/// credentials from many addresses. Run with
/// `cargo nextest run --run-ignored only -E 'test(measure_auth_isolation)' --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, run by hand"]
async fn measure_auth_isolation() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let protect = |hash: String| Protection {
        basic_auth: Some(BasicAuth {
            user: "ada".into(),
            hash,
        }),
        ..Default::default()
    };
    let (_a, host_a) = server
        .protected_client(origin.addr, protect(argon("tunnel-a-password").await))
        .await;
    let mut tunnels = Vec::new();
    for i in 0..8 {
        let pw = format!("tunnel-b{i}-password");
        let (c, host) = server
            .protected_client(origin.addr, protect(argon(&pw).await))
            .await;
        tunnels.push((c, host, basic(&format!("ada:{pw}"))));
    }
    let quiet_host = tunnels.pop().unwrap();
    let t = tokio::time::Instant::now();
    assert_eq!(
        get_from(&server, 250, &quiet_host.1, &quiet_host.2).await,
        StatusCode::OK
    );
    println!("no flood: first correct login {:?}", t.elapsed());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for w in 0..64u8 {
        let (host, stop, public) = (host_a.clone(), stop.clone(), server.public);
        flooders.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut codes = std::collections::BTreeMap::<u16, u64>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A new address per request (the per-address limit must not
                // be what protects B here).
                let from = 10 + ((u64::from(w) * 1000 + n) % 200) as u8;
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(std::net::SocketAddr::from(([127, 0, from, w], 0)))
                    .unwrap();
                let Ok(stream) = sock.connect(public).await else {
                    continue;
                };
                let Ok((mut sender, conn)) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                else {
                    continue;
                };
                tokio::spawn(conn);
                let req = Request::get("/hello")
                    .header("host", &host)
                    .header("authorization", basic(&format!("ada:bot-{w}-{n}")))
                    .body(full(""))
                    .unwrap();
                if let Ok(r) = sender.send_request(req).await {
                    *codes.entry(r.status().as_u16()).or_default() += 1;
                }
                n += 1;
            }
            codes
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut times = Vec::new();
    for (_c, host, cred) in &tunnels {
        let t = tokio::time::Instant::now();
        let s = get_from(&server, 251, host, cred).await;
        times.push((t.elapsed(), s));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut codes = std::collections::BTreeMap::<u16, u64>::new();
    for f in flooders {
        for (k, v) in f.await.unwrap() {
            *codes.entry(k).or_default() += v;
        }
    }
    let mut ms: Vec<f64> = times
        .iter()
        .map(|(d, _)| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "flooded: first correct login on B, ms: {ms:.0?}; statuses {:?}; flood answers {codes:?}",
        times.iter().map(|(_, s)| s.as_u16()).collect::<Vec<_>>()
    );
}
