//! What visitors see when something is missing or broken: unknown hosts,
//! requests without Host, a local service that is down, slow or gone.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn unknown_host_gets_a_404_page() {
    let server = TestServer::start().await;
    let (status, body) = get(server.public, &server.host("nobody-here"), "/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("No tunnel has the name nobody-here.localhost"),
        "{body}"
    );
    let (status, _) = get(server.public, "example.com", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.metric("beam_errors_total{type=\"no_tunnel\"}"), 2.0);
}

#[tokio::test]
async fn request_without_host_gets_400() {
    let server = TestServer::start().await;
    let mut s = tokio::net::TcpStream::connect(server.public).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    within("400", s.read_to_string(&mut out)).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.0 400") || out.starts_with("HTTP/1.1 400"),
        "{out}"
    );
    assert!(out.contains("Host header"), "{out}");
}

#[tokio::test]
async fn local_service_down_gets_a_502_naming_the_address() {
    let server = TestServer::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_client, w) = server.http_client(closed).await;
    let (status, body) = get(server.public, &server.host(&w.name), "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body.contains(&format!(
            "could not connect to the local service at http://{closed}"
        )),
        "{body}"
    );
    assert_eq!(
        server.metric("beam_errors_total{type=\"local_refused\"}"),
        1.0
    );
}

#[tokio::test]
async fn slow_local_service_gets_a_504_after_the_configured_timeout() {
    let server =
        TestServer::start_with(|c| c.upstream_timeout = std::time::Duration::from_millis(300))
            .await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let (status, body) = get(server.public, &server.host(&w.name), "/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        body.contains("did not answer within 0 s") || body.contains("did not answer"),
        "{body}"
    );
    // The tunnel still works afterwards.
    let (status, _) = get(server.public, &server.host(&w.name), "/hello").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn client_gone_mid_request_gets_a_502() {
    let (server, _origin, client, host) = http_tunnel().await;
    let public = server.public;
    let pending = tokio::spawn(async move { get(public, &host, "/slow").await });
    // Wait until the request is inside the client, then kill the client abruptly.
    within("request in flight", async {
        while client.stats.snapshot().0 == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    client.handle.abort();
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("disconnected before it answered"), "{body}");
}
