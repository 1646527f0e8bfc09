//! The tunnel handshake's bad inputs: each gets a clear refusal and a closed
//! connection.

use std::time::Duration;

use beam_client::TlsMode;
use beam_client::connect::{ConnectError, connect};
use beam_proto::{ErrorCode, Hello, Reply, Secret, TunnelRequest, read_frame};
use beam_server::accounts::auth::hash_secret;
use beam_server::accounts::scope::Scopes;
use beam_server::store::{NewToken, TokenKind, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn hello(token: &str) -> Hello {
    Hello {
        token: Secret::new(token),
        tunnel: TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        lease: None,
        client: "test".into(),
        protection: Default::default(),
        http1_streams: false,
    }
}

/// Reads the refusal the server sends on a raw plaintext connection, then checks
/// the server closed it.
async fn refusal_after(bytes: &[u8], server: &TestServer) -> beam_proto::Refusal {
    let mut s = TcpStream::connect(server.tunnel).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let reply: Reply = within("refusal", read_frame(&mut s)).await.unwrap();
    let Reply::Refused(r) = reply else {
        panic!("expected a refusal")
    };
    let mut rest = Vec::new();
    let n = within("close", s.read_to_end(&mut rest)).await.unwrap_or(0);
    assert_eq!(n, 0, "connection closed after the refusal");
    r
}

#[tokio::test]
async fn wrong_token_is_refused_with_a_clear_message() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.token = Secret::new("beam_wrongwrongwrong");
    let r = TestClient::start(cfg).refused().await;
    assert_eq!(r.code, ErrorCode::Unauthorized);
    assert!(r.message.contains("invalid token"), "{}", r.message);
    assert!(
        !r.message.contains("wrongwrong"),
        "the token is never echoed"
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let expired = "beam_expired_token_for_test";
    server
        .store
        .insert_token(
            &NewToken {
                hash: &hash_secret(expired),
                description: "old",
                user_id: server.operator.user_id,
                org_id: server.operator.org_id,
                scopes: Scopes::all(),
                kind: TokenKind::Api,
                expires_at: Some(now_ms() - 1000),
                environment_id: None,
            },
            now_ms(),
        )
        .await
        .unwrap();
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.token = Secret::new(expired);
    let r = TestClient::start(cfg).refused().await;
    assert_eq!(r.code, ErrorCode::TokenExpired);
    assert!(r.message.contains("has expired"), "{}", r.message);
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let server = TestServer::start().await;
    let r = refusal_after(b"BEAM\x09", &server).await;
    assert_eq!(r.code, ErrorCode::UnsupportedVersion);
    assert!(
        r.message
            .contains("speaks beam protocol 1, the client speaks 9"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn garbage_is_refused() {
    let server = TestServer::start().await;
    let r = refusal_after(b"\x05hello there\r\n", &server).await;
    assert_eq!(r.code, ErrorCode::BadHello);
    assert!(
        r.message.contains("not a beam tunnel client"),
        "{}",
        r.message
    );
    let mut bytes = b"BEAM\x01".to_vec();
    bytes.extend_from_slice(&5u32.to_be_bytes());
    bytes.extend_from_slice(b"{nope");
    let r = refusal_after(&bytes, &server).await;
    assert_eq!(r.code, ErrorCode::BadHello);
    assert!(
        r.message.contains("malformed handshake frame"),
        "{}",
        r.message
    );
}

/// Plain HTTP on the tunnel port from loopback is the API (the CLI's path with
/// `--insecure`), not a refused hello.
#[tokio::test]
async fn http_on_the_loopback_tunnel_port_reaches_the_api() {
    let server = TestServer::start().await;
    let mut s = TcpStream::connect(server.tunnel).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    within("API answer", s.read_to_string(&mut out))
        .await
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains(r#""status":"ok""#), "{out}");
}

#[tokio::test]
async fn oversize_hello_is_refused_before_reading_it() {
    let server = TestServer::start().await;
    let mut bytes = b"BEAM\x01".to_vec();
    bytes.extend_from_slice(&(1u32 << 30).to_be_bytes());
    let r = refusal_after(&bytes, &server).await;
    assert_eq!(r.code, ErrorCode::HelloTooLarge);
    assert!(
        r.message.contains("exceeds the 16384-byte limit"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn slow_hello_is_cut_off_at_the_deadline() {
    let server = TestServer::start().await;
    // Preamble, then nothing: the server gives up at HANDSHAKE_TIMEOUT (5 s).
    let r = refusal_after(b"BEAM\x01", &server).await;
    assert_eq!(r.code, ErrorCode::Timeout);
    assert!(
        r.message.contains("not completed within 5 s"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn failed_attempts_are_throttled_per_ip() {
    let server = TestServer::start().await;
    let cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        server.public,
    );
    for _ in 0..10 {
        match connect(&cfg.conn, &hello("beam_bad"), None).await {
            Err(ConnectError::Refused(r)) => assert_eq!(r.code, ErrorCode::Unauthorized),
            other => panic!("{other:?}"),
        }
    }
    // Further guesses are refused with a retry time…
    match connect(&cfg.conn, &hello("beam_bad_again"), None).await {
        Err(ConnectError::Refused(r)) => {
            assert_eq!(r.code, ErrorCode::Throttled);
            assert!(r.retry_after_secs.is_some_and(|s| (1..=60).contains(&s)));
            assert!(
                r.message.contains("too many failed attempts"),
                "{}",
                r.message
            );
        }
        other => panic!("{other:?}"),
    }
    // …but a valid token from the same address (a colleague behind the same
    // NAT) is never refused because someone else failed.
    assert!(
        connect(&cfg.conn, &hello(server.token.expose()), None)
            .await
            .is_ok(),
        "a valid token was refused for others' failures"
    );
}

#[tokio::test]
async fn wrong_pinned_fingerprint_is_a_fatal_tls_error() {
    let server = TestServer::start().await;
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        server.public,
    );
    cfg.conn.tls = TlsMode::Pinned(format!("sha256:{}", "00".repeat(32)));
    let err = connect(&cfg.conn, &hello(server.token.expose()), None)
        .await
        .unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(
        err.to_string().contains("does not match the pinned"),
        "{err}"
    );
}

#[tokio::test]
async fn plaintext_on_loopback_works_and_tls_is_the_default_path() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.tls = TlsMode::Plaintext;
    let mut c = TestClient::start(cfg);
    let w = c.connected().await;
    let (status, _) = get(server.public, &server.host(&w.name), "/hello").await;
    assert_eq!(status, http::StatusCode::OK);
}

#[tokio::test]
async fn unreachable_server_is_retried_not_fatal() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start().await;
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        server.public,
    );
    cfg.conn.server = closed.to_string();
    cfg.conn.connect_timeout = Duration::from_secs(2);
    let mut c = TestClient::start(cfg);
    let reason = c.disconnected().await;
    assert!(reason.contains("cannot reach"), "{reason}");
    let reason = c.disconnected().await;
    assert!(reason.contains("cannot reach"), "retries: {reason}");
}

/// The mistakes a new user makes first get a message that names the cause:
/// the HTTP port given as the tunnel port, a self-signed server without a
/// pinned fingerprint, and a server that is not running at all (which a
/// first connection gives up on instead of retrying forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_connection_mistakes_say_what_to_do() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let setup = |addr: std::net::SocketAddr, tls: TlsMode| {
        let mut cfg = server.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            origin.addr,
        );
        cfg.conn.server = addr.to_string();
        cfg.conn.tls = tls;
        cfg.conn.first_connect_attempts = Some(2);
        cfg
    };
    let fatal_message = |e: beam_client::ClientError| match e {
        beam_client::ClientError::Fatal(e) => e.to_string(),
        other => panic!("expected a fatal error, got {other:?}"),
    };

    // The public HTTP port instead of the tunnel port.
    let pinned = TlsMode::Pinned(server.fingerprint.clone());
    let e = TestClient::start(setup(server.public, pinned))
        .result()
        .await
        .unwrap_err();
    let msg = fatal_message(e);
    assert!(
        msg.contains("did not answer with TLS")
            && msg.contains("HTTP port")
            && msg.contains("8081"),
        "{msg}"
    );
    assert!(!msg.contains("InvalidContentType"), "{msg}");

    // The tunnel port, but nothing pinned: web PKI cannot verify a
    // self-signed certificate.
    let e = TestClient::start(setup(server.tunnel, TlsMode::WebPki))
        .result()
        .await
        .unwrap_err();
    let msg = fatal_message(e);
    assert!(
        msg.contains("no fingerprint is pinned") && msg.contains("--fingerprint"),
        "{msg}"
    );

    // Nothing listening: two tries, then a clear error, not retries forever.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let pinned = TlsMode::Pinned(server.fingerprint.clone());
    let e = TestClient::start(setup(closed, pinned))
        .result()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "could not reach the beam server at {closed} in 2 tries"
        )) && msg.contains("Is `beam server` running there"),
        "{msg}"
    );
}
