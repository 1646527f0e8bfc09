//! What the edge and client do to traffic on the way: opt-in CORS, compression,
//! HTTPS upstreams and PROXY protocol v2.

use beam_proto::{Protection, TunnelRequest};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::helpers::*;
use crate::support::*;

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
