//! WebSockets end to end: visitor (HTTP/1.1 upgrade) → edge → extended CONNECT over
//! HTTP/2 → client → local HTTP/1.1 upgrade.

use http::StatusCode;

use crate::support::*;

#[tokio::test]
async fn websocket_echo_through_the_tunnel() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    websocket_echo(server.public, &server.host(&w.name)).await;
}

#[tokio::test]
async fn websocket_refused_by_the_app_passes_its_answer_through() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let url = format!("ws://{}/no-such-socket", server.host(&w.name));
    let err = within("ws handshake", tokio_tungstenite::client_async(url, stream))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), StatusCode::NOT_FOUND)
        }
        other => panic!("expected the app's 404, got {other}"),
    }
}
