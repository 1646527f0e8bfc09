//! Reconnect leases: a client that drops gets its name back; nobody else can take
//! it during the grace period.

use std::time::Duration;

use beam_proto::{ErrorCode, TunnelRequest};
use http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn client_gets_its_subdomain_back_after_a_server_restart() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (mut client, first) = server.http_client(origin.addr).await;
    let server = server.restart().await;
    client.disconnected().await;
    let again = client.connected().await;
    assert_eq!(again.name, first.name);
    assert_eq!(again.public_url, first.public_url);
    let (status, body) = get(server.public, &server.host(&again.name), "/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello from origin");
}

#[tokio::test]
async fn tcp_client_gets_its_port_back_after_a_server_restart() {
    let server = TestServer::start().await;
    let echo = tcp_echo().await;
    let mut client =
        TestClient::start(server.client_config(TunnelRequest::Tcp { port: None }, echo));
    let first = client.connected().await;
    let _server = server.restart().await;
    client.disconnected().await;
    let again = client.connected().await;
    assert_eq!(again.name, first.name);
}

#[tokio::test]
async fn nobody_else_can_take_a_name_during_the_grace_period() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let request = TunnelRequest::Http {
        subdomain: Some("held-name".into()),
        domain: None,
    };
    let mut a = TestClient::start(server.client_config(request.clone(), origin.addr));
    a.connected().await;
    // A vanishes without a goodbye (laptop sleep, network drop).
    a.handle.abort();
    // Same token, but no lease: refused while the name is held.
    let b = TestClient::start(server.client_config(request.clone(), origin.addr));
    let r = b.refused().await;
    assert_eq!(r.code, ErrorCode::NameTaken);
    assert!(
        r.message.contains("held for its last user for up to 120 s"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn a_name_is_free_again_after_the_grace_period() {
    let server = TestServer::start_with(|c| c.grace = Duration::ZERO).await;
    let origin = Origin::start().await;
    let request = TunnelRequest::Http {
        subdomain: Some("short-grace".into()),
        domain: None,
    };
    let mut a = TestClient::start(server.client_config(request.clone(), origin.addr));
    a.connected().await;
    a.shutdown.cancel();
    a.result().await.unwrap();
    // The server notices the closed connection and releases the name; with a zero
    // grace period the next claim wins as soon as that has happened.
    let mut b = None;
    within("name released", async {
        loop {
            let mut c = TestClient::start(server.client_config(request.clone(), origin.addr));
            match c.outcome().await {
                Ok(w) => {
                    b = Some(w);
                    break;
                }
                Err(err) => assert!(err.to_string().contains("in use"), "{err}"),
            }
        }
    })
    .await;
    assert_eq!(b.unwrap().name, "short-grace");
}

/// A reconnect that dies right after the server answers (before the client could read
/// or use the answer) must not strand the client's lease.
#[tokio::test]
async fn a_reconnect_that_dies_mid_handshake_keeps_the_lease_valid() {
    use beam_client::connect::connect;
    use beam_proto::Hello;
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let request = TunnelRequest::Http {
        subdomain: Some("sticky".into()),
        domain: None,
    };
    let cfg = server.client_config(request.clone(), origin.addr);
    let hello = |lease| Hello {
        token: server.token.clone(),
        tunnel: request.clone(),
        lease,
        client: "test".into(),
        protection: Default::default(),
        http1_streams: false,
    };
    let (first, stream, _) = connect(&cfg.conn, &hello(None), None).await.unwrap();
    drop(stream);
    // Reconnect with the lease, then vanish without using the new Welcome.
    let (_second, stream, _) = connect(&cfg.conn, &hello(Some(first.lease.clone())), None)
        .await
        .unwrap();
    drop(stream);
    // The lease the client still holds is the first one: it must still work.
    let (third, _stream, _) = connect(&cfg.conn, &hello(Some(first.lease.clone())), None)
        .await
        .unwrap();
    assert_eq!(third.name, "sticky");
}
