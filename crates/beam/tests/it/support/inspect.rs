//! A `beam http` client with its inspector on, a local service that records
//! what reaches it, and calls to the inspector's API.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use beam_client::inspect::{Inspector, Limits, Recorder};
use beam_client::{LocalProxy, Stats};
use beam_proto::TunnelRequest;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

/// What `/br` answers: `{"compressed":"` + `"brotli "` × 40 + `"}`, compressed
/// by Google's reference encoder (Python `brotli.compress`).
pub const BROTLI: [u8; 43] = [
    27, 40, 1, 248, 157, 9, 118, 108, 5, 28, 165, 57, 227, 82, 139, 232, 236, 245, 45, 177, 177, 4,
    105, 163, 235, 52, 182, 55, 57, 41, 73, 43, 187, 85, 2, 43, 53, 107, 231, 190, 140, 91, 224,
];

/// What a [`RecordingOrigin`] received: method, path, `Host` and body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub host: String,
    pub body: Bytes,
}

/// A local service that keeps every request it answers. `/json` answers
/// JSON, `/gzip` gzipped JSON, `/down/...` a 503, anything else a short text.
pub struct RecordingOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingOrigin {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// On a chosen address (a dev server that starts late, on its port).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let path = parts
                                .uri
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_string();
                            let host = parts
                                .headers
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            log.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                path: path.clone(),
                                host,
                                body: body.clone(),
                            });
                            let resp = match parts.uri.path() {
                                "/json" => Response::builder()
                                    .header("content-type", "application/json")
                                    .body(full(r#"{"ok":true,"items":[1,2,3],"name":"beam"}"#)),
                                "/gzip" => {
                                    let mut gz = flate2::write::GzEncoder::new(
                                        Vec::new(),
                                        flate2::Compression::default(),
                                    );
                                    gz.write_all(br#"{"compressed":true}"#).unwrap();
                                    Response::builder()
                                        .header("content-type", "application/json")
                                        .header("content-encoding", "gzip")
                                        .body(full(gz.finish().unwrap()))
                                }
                                // Brotli of `{"compressed":"brotli brotli …"}`
                                // (40 times), made with Google's brotli.
                                "/br" => Response::builder()
                                    .header("content-type", "application/json")
                                    .header("content-encoding", "br")
                                    .body(full(BROTLI.to_vec())),
                                p if p.starts_with("/down") => Response::builder()
                                    .status(StatusCode::SERVICE_UNAVAILABLE)
                                    .body(full("the app is unhappy")),
                                _ => Response::builder()
                                    .header("content-type", "text/plain")
                                    .body(full(format!(
                                        "seen {} {path} {} bytes",
                                        parts.method,
                                        body.len()
                                    ))),
                            };
                            Ok::<_, std::convert::Infallible>(resp.unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    /// What reached it so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A connected `beam http` client with its inspector listening.
pub struct Inspected {
    /// Held so the tunnel stays up as long as this does.
    _client: TestClient,
    pub rec: Arc<Recorder>,
    /// The inspector's address.
    pub addr: SocketAddr,
    /// Its page, `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The tunnel's `Host`.
    pub host: String,
    stop: CancellationToken,
}

impl Drop for Inspected {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestServer {
    /// An HTTP tunnel to `local` through a client whose inspector keeps to
    /// `limits`; `setup` may change the proxy (gzip, Host rewrite…).
    pub async fn inspected(
        &self,
        local: SocketAddr,
        limits: Limits,
        setup: impl FnOnce(&mut ClientSetup),
    ) -> Inspected {
        let mut cfg = self.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            local,
        );
        setup(&mut cfg);
        cfg.conn.http1_streams = cfg.proxy.streams_http1();
        let stats = Arc::new(Stats::default());
        let rec = Recorder::new(limits);
        let proxy = LocalProxy::inspected(
            &cfg.proxy,
            cfg.conn.tunnel.kind(),
            stats.clone(),
            Some(rec.clone()),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(
            Inspector::new(rec.clone(), proxy.clone(), addr)
                .serve(listener, stop.clone().cancelled_owned()),
        );
        let mut client = TestClient::serve(cfg.conn, proxy, stats);
        let w = client.connected().await;
        Inspected {
            _client: client,
            rec,
            addr,
            url: format!("http://{addr}/"),
            host: self.host(&w.name),
            stop,
        }
    }
}

/// An answer of the inspector's API.
#[derive(Debug)]
pub struct InspectorReply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Inspected {
    /// `method path` on the inspector, with `Host` its own address unless
    /// `headers` name another, and a JSON body when given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> InspectorReply {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req = req.header("host", self.addr.to_string());
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let typed = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        let req = match body {
            // A string with a content type of the caller's is sent as is.
            Some(serde_json::Value::String(raw)) if typed => req.body(full(raw)),
            Some(b) => req
                .header("content-type", "application/json")
                .body(full(b.to_string())),
            None => req.body(full("")),
        }
        .unwrap();
        let resp = within("inspector answer", sender.send_request(req))
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = within("inspector body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        InspectorReply {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            text,
        }
    }

    /// Waits until the inspector holds at least `n` exchanges.
    pub async fn wait_for(&self, n: usize) {
        eventually("the inspector records the requests", || async {
            (self.rec.held().0 >= n).then_some(())
        })
        .await;
    }
}
