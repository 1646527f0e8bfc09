//! Local origins (the developer's app) and visitors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Barrier, Notify};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;

pub type TestBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|n| match n {}).boxed_unsync()
}

/// A local HTTP service with routes that exercise the tunnel.
pub struct Origin {
    pub addr: SocketAddr,
    /// `/events` sends its second event only after this is notified.
    pub release: Arc<Notify>,
}

impl Origin {
    pub async fn start() -> Self {
        Self::with_barrier(1).await
    }

    pub async fn with_barrier(n: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let barrier = Arc::new(Barrier::new(n));
        let (r, b) = (release.clone(), barrier);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (r, b) = (r.clone(), b.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| origin(req, r.clone(), b.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, release }
    }
}

/// Bytes of the deterministic pattern `/bytes/N` serves: byte i is `i % 251`.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

async fn origin(
    req: Request<Incoming>,
    release: Arc<Notify>,
    barrier: Arc<Barrier>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/hello" => Response::new(full("hello from origin")),
        "/headers" => {
            let mut map = serde_json::Map::new();
            for (k, v) in req.headers() {
                map.insert(
                    k.as_str().to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
                );
            }
            map.insert("_path".into(), req.uri().to_string().into());
            Response::new(full(serde_json::Value::Object(map).to_string()))
        }
        "/echo" => Response::new(req.into_body().map_err(Into::into).boxed_unsync()),
        "/count" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.map(|f| f.into_data()) {
                    n += d.map(|d| d.len() as u64).unwrap_or(0);
                } else {
                    break;
                }
            }
            Response::new(full(n.to_string()))
        }
        p if p.starts_with("/bytes/") => {
            let n: u64 = p[7..].parse().unwrap_or(0);
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                let mut sent = 0u64;
                while sent < n {
                    let len = (n - sent).min(64 << 10);
                    let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
                    if tx.send_data(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                    sent += len;
                }
            });
            Response::new(body.map_err(|n| match n {}).boxed_unsync())
        }
        "/events" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"data: one\n\n")).await;
                release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"data: two\n\n")).await;
            });
            let mut r = Response::new(body.map_err(|n| match n {}).boxed_unsync());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full("too late"))
        }
        "/barrier" => {
            barrier.wait().await;
            Response::new(full("all here"))
        }
        "/ws" => return Ok(origin_upgrade(req)),
        "/fail" => {
            let mut r = Response::new(full("origin failed"));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
        "/json" => {
            let items: Vec<String> = (0..200)
                .map(|i| format!("{{\"item\": {i}, \"name\": \"widget\"}}"))
                .collect();
            let mut r = Response::new(full(format!("[{}]", items.join(","))));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
        "/own-cors" => {
            let mut r = Response::new(full("app decides"));
            r.headers_mut().insert(
                "access-control-allow-origin",
                "https://app-own.example".parse().unwrap(),
            );
            r
        }
        "/multi-cookie" => {
            let mut r = Response::new(full("cookies"));
            r.headers_mut().append("set-cookie", "a=1".parse().unwrap());
            r.headers_mut().append("set-cookie", "b=2".parse().unwrap());
            r
        }
        // A cookie for each `domain=` in the query, as a hostile app would.
        "/domain-cookies" => {
            let mut r = Response::new(full("cookies"));
            let q = req.uri().query().unwrap_or("");
            for (i, d) in q
                .split('&')
                .filter_map(|p| p.strip_prefix("domain="))
                .enumerate()
            {
                let c = format!("c{i}=v; Domain={d}; Path=/");
                r.headers_mut().append("set-cookie", c.parse().unwrap());
            }
            r
        }
        _ => {
            let mut r = Response::new(full("no such origin route"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

/// The common start of an HTTP test: a server, an origin, a connected
/// `beam http` client for it, and the tunnel's `Host` value.
pub async fn http_tunnel() -> (TestServer, Origin, TestClient, String) {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    (server, origin, client, host)
}

/// A TCP echo server.
pub async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A visitor: one HTTP/1.1 request to the public port with a `Host` header.
pub async fn visit(public: SocketAddr, host: &str, req: Request<TestBody>) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(public).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let (mut parts, body) = req.into_parts();
    parts.headers.insert("host", host.parse().unwrap());
    within(
        "response",
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await
    .unwrap()
}

/// GET `path` and return status and body text.
pub async fn get(public: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let resp = visit(public, host, Request::get(path).body(full("")).unwrap()).await;
    let status = resp.status();
    let body = within("body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends nothing but reads frames: used to assert streaming.
pub async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        match within("body frame", body.frame()).await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) if !d.is_empty() => return Some(d),
                _ => continue,
            },
            _ => return None,
        }
    }
}

/// The origin's `/ws` route: a WebSocket echo server.
pub fn origin_upgrade(mut req: Request<Incoming>) -> Response<TestBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut r = Response::new(full("not a websocket request"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(full(""))
        .unwrap()
}

/// `size` bytes up (a streamed body the origin counts) and `size` bytes down
/// (the origin's pattern, checked byte by byte as it arrives, never
/// collected) through `host` at `public`.
pub async fn stream_both_ways(public: SocketAddr, host: &str, size: u64) {
    // Upload: a streamed request body, counted by the origin.
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(2);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..(size >> 20) {
            if tx.send_data(chunk.clone()).await.is_err() {
                return;
            }
        }
    });
    let req = Request::post("/count")
        .body(body.map_err(|n| match n {}).boxed_unsync())
        .unwrap();
    let resp = visit(public, host, req).await;
    let n = within("upload", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(n, size.to_string());

    // Download: checked byte by byte as it arrives, never collected.
    let resp = visit(
        public,
        host,
        Request::get(format!("/bytes/{size}"))
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut seen = 0u64;
    while let Some(chunk) = next_data(&mut body).await {
        for (i, b) in chunk.iter().enumerate() {
            assert_eq!(
                *b,
                pattern_byte(seen + i as u64),
                "byte {}",
                seen + i as u64
            );
        }
        seen += chunk.len() as u64;
    }
    assert_eq!(seen, size);
}

/// A WebSocket to the origin's `/ws` echo through `host` at `public`: a
/// text and a 300 kB binary message come back unchanged.
pub async fn websocket_echo(public: SocketAddr, host: &str) {
    let stream = tokio::net::TcpStream::connect(public).await.unwrap();
    let url = format!("ws://{}/ws", host);
    let (mut ws, resp) = within("ws handshake", tokio_tungstenite::client_async(url, stream))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello ws")).await.unwrap();
    assert_eq!(
        within("echo", ws.next()).await.unwrap().unwrap(),
        Message::text("hello ws")
    );
    let big = vec![42u8; 300_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(
        within("echo", ws.next()).await.unwrap().unwrap(),
        Message::binary(big)
    );
    ws.close(None).await.unwrap();
}
