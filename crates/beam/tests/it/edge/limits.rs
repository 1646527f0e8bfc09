//! Edge limits: CIDR filters, rate limits with Retry-After, body, URI and
//! header limits, slowloris, and caps on tunnels and streams.

use std::time::Duration;

use beam_proto::{ErrorCode, Protection, TunnelRequest};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::helpers::*;
use crate::support::*;

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
