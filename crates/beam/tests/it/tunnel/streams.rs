//! How visitor connections reach the local service: as one byte stream per
//! visitor connection, or one stream per request through the client's pool.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A raw HTTP/1.1 origin that counts the connections it accepts and answers
/// `ok` to every request; with `close_after_one`, it closes each connection
/// shortly after its first answer, as a dev server's idle timeout would.
async fn counting_origin(
    close_after_one: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    if close_after_one {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// `n` GETs of `/` on one keep-alive visitor connection; every answer must be `ok`.
async fn keep_alive_gets(server: &TestServer, host: &str, n: usize, pause: std::time::Duration) {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..n {
        sender.ready().await.unwrap();
        let req = Request::get("/")
            .header("host", host)
            .body(full(""))
            .unwrap();
        let resp = within("response", sender.send_request(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        tokio::time::sleep(pause).await;
    }
}

/// A visitor's keep-alive connection becomes one byte stream to one local
/// connection, and a local connection the service closed while idle is
/// replaced without the visitor seeing an error.
#[tokio::test]
async fn a_visitor_connection_is_one_local_connection_and_survives_local_closes() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let server = TestServer::start().await;
    let (addr, accepted) = counting_origin(false).await;
    let (_client, w) = server.http_client(addr).await;
    let host = server.host(&w.name);
    keep_alive_gets(&server, &host, 20, Duration::ZERO).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "20 requests, one local connection"
    );

    let (addr, accepted) = counting_origin(true).await;
    let (_client, w) = server.http_client(addr).await;
    let host = server.host(&w.name);
    // Long enough between requests for the service to close the idle connection.
    keep_alive_gets(&server, &host, 10, Duration::from_millis(60)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        10,
        "each closed connection was replaced"
    );
}

/// When the client must see each request (here `--compress`), requests go
/// one per stream and share the client's keep-alive pool: separate visitor
/// connections reuse one local connection, and closed ones are replaced.
#[tokio::test]
async fn per_request_streams_share_the_clients_keep_alive_pool() {
    use std::sync::atomic::Ordering;
    let server = TestServer::start().await;
    let start = |addr| {
        let mut cfg = server.client_config(
            beam_proto::TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            addr,
        );
        cfg.proxy.compress = true;
        TestClient::start(cfg)
    };
    let (addr, accepted) = counting_origin(false).await;
    let mut client = start(addr);
    let host = server.host(&client.connected().await.name);
    for _ in 0..20 {
        assert_eq!(
            get(server.public, &host, "/").await,
            (StatusCode::OK, "ok".into())
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one keep-alive connection served all 20"
    );

    let (addr, accepted) = counting_origin(true).await;
    let mut client = start(addr);
    let host = server.host(&client.connected().await.name);
    for _ in 0..10 {
        assert_eq!(
            get(server.public, &host, "/").await,
            (StatusCode::OK, "ok".into())
        );
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        10,
        "each closed connection was replaced"
    );
}

/// An origin answering `ok` to every request that counts its open connections.
async fn open_counting_origin() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicIsize>,
) {
    use std::sync::atomic::{AtomicIsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = std::sync::Arc::new(AtomicIsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(answer).await.is_err() {
                        break;
                    }
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

/// One request on a new raw visitor connection, which stays open.
async fn one_request(server: &TestServer, host: &str) -> tokio::net::TcpStream {
    let mut visitor = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let req = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    visitor.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"ok") {
        let n = within("answer", visitor.read(&mut chunk)).await.unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    visitor
}

/// Visitor connections carried as byte streams are capped per tunnel
/// (`--max-streams-per-tunnel`): past the cap, requests still go through, as
/// streams of their own that share the client's pool, so many open visitor
/// connections cannot open as many connections on the developer's machine.
#[tokio::test]
async fn byte_streams_are_capped_per_tunnel_and_requests_past_the_cap_still_pass() {
    use std::sync::atomic::Ordering;
    let server = TestServer::start_with(|c| c.max_streams_per_tunnel = 2).await;
    let (addr, open) = open_counting_origin().await;
    let (_client, w) = server.http_client(addr).await;
    let host = server.host(&w.name);
    let mut visitors = Vec::new();
    for _ in 0..5 {
        visitors.push(one_request(&server, &host).await);
    }
    // Two links, plus the one pooled connection the other three shared.
    eventually("local connections settle", || {
        let n = open.load(Ordering::SeqCst);
        async move { (n == 3).then_some(()) }
    })
    .await;
    drop(visitors);
}

/// A visitor connection that made one request and then went quiet does not
/// keep a connection to the developer's machine open: the edge closes idle
/// visitor connections after the header-read timeout, and the link and its
/// local connection close with it.
#[tokio::test]
async fn idle_visitor_connections_release_their_local_connection() {
    use std::sync::atomic::Ordering;
    let server =
        TestServer::start_with(|c| c.header_read_timeout = std::time::Duration::from_millis(300))
            .await;
    let (addr, open) = open_counting_origin().await;
    let (_client, w) = server.http_client(addr).await;
    let host = server.host(&w.name);
    let mut visitor = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let req = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    visitor.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"ok") {
        let n = within("answer", visitor.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "the request opened one local connection"
    );
    // Idle: the edge closes the visitor connection, and the local one follows.
    let n = within("idle close", visitor.read(&mut chunk))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle visitor connection was closed");
    eventually("local connection closed", || {
        let open = open.load(Ordering::SeqCst);
        async move { (open == 0).then_some(()) }
    })
    .await;
}

/// Two visitors on one tunnel never share a byte stream: each keep-alive
/// connection gets its own link, so one visitor's answers cannot reach the other.
#[tokio::test]
async fn visitors_on_one_tunnel_never_see_each_others_answers() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let mut senders = Vec::new();
    for _ in 0..2 {
        let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    for round in 0..5 {
        for (who, sender) in senders.iter_mut().enumerate() {
            sender.ready().await.unwrap();
            let req = Request::get("/headers")
                .header("host", host.as_str())
                .header("x-visitor", format!("{who}-{round}"))
                .body(full(""))
                .unwrap();
            let resp = within("response", sender.send_request(req)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let seen: serde_json::Value =
                serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            assert_eq!(seen["x-visitor"], format!("{who}-{round}"), "{seen}");
        }
    }
}
