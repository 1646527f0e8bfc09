//! Shared by the edge tests: credentials and visits with extra headers.

use std::time::Duration;

use base64::Engine;
use beam_proto::Secret;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::*;

pub(super) async fn argon(s: &str) -> String {
    beam_server::accounts::password::hash(Secret::new(s))
        .await
        .unwrap()
}

pub(super) fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// Sends a GET with extra headers; returns the response.
pub(super) async fn get_with(
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

pub(super) async fn text(resp: http::Response<hyper::body::Incoming>) -> String {
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

/// Reads from a raw connection until it closes or `limit` passes.
pub(super) async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
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

/// A GET from source address `127.0.0.{from}` (loopback has them all), so a
/// flood can come from many addresses as a botnet's would.
pub(super) async fn get_from(
    server: &TestServer,
    from: u8,
    host: &str,
    authorization: &str,
) -> StatusCode {
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
