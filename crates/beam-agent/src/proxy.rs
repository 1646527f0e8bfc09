//! The client's HTTP/2 service: every stream the server opens is proxied to the
//! local target. Plain requests go through a pooled HTTP/1.1 client; extended
//! `CONNECT` (`:protocol websocket`) becomes a local WebSocket upgrade; plain
//! `CONNECT` is a raw TCP stream. The server's `:authority` is never used as a
//! destination: this side only ever connects to its configured target.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use beam_proto::TunnelKind;
use beam_proto::headers::{self as bh, strip_hop_by_hop};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::client::Stats;
use crate::compress;
use crate::config::{ClientConfig, HostHeader, LocalTarget};
use crate::connect::{ConnectError, TunnelStream};
use crate::local::LocalDialer;

/// Boxed error for bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type of this service.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|n| match n {}).boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed_unsync()
}

/// Proxies streams to one local target.
#[derive(Clone)]
pub struct LocalProxy {
    kind: TunnelKind,
    target: LocalTarget,
    host_header: HostHeader,
    dialer: LocalDialer,
    client: Client<LocalDialer, Body>,
    compress: bool,
    proxy_protocol: bool,
    agent: Option<crate::agent::AgentServices>,
    stats: Arc<Stats>,
    control: mpsc::UnboundedSender<Control>,
}

/// Messages from the server on `beam-control` streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The tunnel is routable.
    Ready,
    /// The tunnel was stopped through the API; do not reconnect.
    Stop(String),
}

impl LocalProxy {
    /// A proxy for the configuration's local target. Control messages from the
    /// server (ready, stop) are sent to `control`.
    pub fn new(
        cfg: &ClientConfig,
        stats: Arc<Stats>,
        control: mpsc::UnboundedSender<Control>,
    ) -> Self {
        let dialer = LocalDialer::new(cfg.local.clone(), cfg.insecure_upstream);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(dialer.clone());
        Self {
            kind: cfg.tunnel.kind(),
            target: cfg.local.clone(),
            host_header: cfg.host_header.clone(),
            dialer,
            client,
            compress: cfg.compress,
            proxy_protocol: cfg.proxy_protocol,
            agent: cfg.agent.clone(),
            stats,
            control,
        }
    }

    /// Handles one stream. Never fails: local errors become 502 pages.
    pub async fn handle(self, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        if req.headers().contains_key("beam-control")
            && req.uri().authority().map(|a| a.as_str()) == Some("beam-control")
        {
            let msg = match req.headers().get("beam-control").map(|v| v.as_bytes()) {
                Some(b"stop") => Control::Stop(
                    req.headers()
                        .get("beam-reason")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("the tunnel was stopped on the server")
                        .to_string(),
                ),
                _ => Control::Ready,
            };
            let _ = self.control.send(msg);
            return Ok(status(StatusCode::NO_CONTENT));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard::new(self.stats.clone());
        // Each tunnel kind accepts only its own stream shapes: a TCP tunnel only
        // plain CONNECT, an HTTP tunnel requests and WebSocket upgrades.
        let websocket = req.extensions().get::<hyper::ext::Protocol>().is_some();
        if self.kind == TunnelKind::Agent {
            return Ok(match &self.agent {
                Some(agent) => agent.handle(req).await,
                None => status(StatusCode::NOT_FOUND),
            });
        }
        let resp = match (self.kind, req.method() == Method::CONNECT, websocket) {
            (TunnelKind::Tcp, true, false) => self.tcp(req, guard).await,
            (TunnelKind::Http, true, true) => self.websocket(req, guard).await,
            (TunnelKind::Http, false, _) => self.http(req, guard).await,
            _ => status(StatusCode::METHOD_NOT_ALLOWED),
        };
        Ok(resp)
    }

    async fn http(&self, req: Request<Incoming>, guard: StreamGuard) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let visitor_host = parts.uri.authority().map(|a| a.as_str().to_owned());
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // Only origin-form paths: never let a path change the authority we connect to.
        if !path.starts_with('/') {
            return status(StatusCode::BAD_REQUEST);
        }
        parts.uri = match Uri::try_from(format!("http://{}{}", self.target.authority(), path)) {
            Ok(u) => u,
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        self.set_host(&mut parts.headers, visitor_host);
        let gzip_ok =
            self.compress && parts.method != Method::HEAD && compress::accepts_gzip(&parts.headers);
        let req = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = Guarded {
                    inner: body,
                    _guard: guard,
                };
                let body = if gzip_ok
                    && parts.status.is_success()
                    && parts.status != StatusCode::NO_CONTENT
                    && compress::worth_compressing(&parts.headers, body.size_hint())
                {
                    compress::mark(&mut parts.headers);
                    compress::Gzip::new(body).boxed_unsync()
                } else {
                    body.map_err(Into::into).boxed_unsync()
                };
                Response::from_parts(parts, body)
            }
            Err(e) => self.local_error(e.is_connect(), &e),
        }
    }

    fn set_host(&self, headers: &mut HeaderMap, visitor_host: Option<String>) {
        let host = match (&self.host_header, visitor_host) {
            (HostHeader::Preserve, Some(h)) => h,
            _ => self.target.authority(),
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, v);
        }
    }

    /// A 502 naming the local address, tagged so the edge can classify it.
    fn local_error(&self, refused: bool, err: &dyn std::fmt::Display) -> Response<Body> {
        let addr = self.target.url();
        let (kind, page) = if refused {
            (
                bh::beam_error::LOCAL_REFUSED,
                format!(
                    "502 Bad Gateway\n\nbeam could not connect to the local service at {addr}.\nIs it running? Start it, then reload this page.\n"
                ),
            )
        } else {
            (
                bh::beam_error::LOCAL_FAILED,
                format!("502 Bad Gateway\n\nThe local service at {addr} failed to answer: {err}\n"),
            )
        };
        let mut resp = Response::new(full(page));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp.headers_mut()
            .insert(bh::BEAM_ERROR, HeaderValue::from_static(kind));
        resp
    }

    async fn connect_local(&self) -> Result<TunnelStream, ConnectError> {
        self.dialer.dial().await
    }

    async fn websocket(&self, mut req: Request<Incoming>, guard: StreamGuard) -> Response<Body> {
        let tunnel_upgrade = hyper::upgrade::on(&mut req);
        let (mut parts, _) = req.into_parts();
        let visitor_host = parts.uri.authority().map(|a| a.as_str().to_owned());
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let stream = match self.connect_local().await {
            Ok(s) => s,
            Err(e) => return self.local_error(true, &e),
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(p) => p,
                Err(e) => return self.local_error(false, &e),
            };
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        strip_hop_by_hop(&mut parts.headers);
        self.set_host(&mut parts.headers, visitor_host);
        beam_proto::headers::set_websocket_upgrade(&mut parts.headers);
        let mut local_req = Request::new(empty());
        *local_req.method_mut() = Method::GET;
        *local_req.uri_mut() = match Uri::try_from(path) {
            Ok(u) => u,
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        *local_req.headers_mut() = parts.headers;
        let mut resp = match sender.send_request(local_req).await {
            Ok(r) => r,
            Err(e) => return self.local_error(false, &e),
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The app said no (e.g. 403 or 404): the visitor sees its answer.
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, body.map_err(Into::into).boxed_unsync());
        }
        let local_upgrade = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        tokio::spawn(async move {
            let _guard = guard;
            if let Ok((t, l)) = tokio::try_join!(tunnel_upgrade, local_upgrade) {
                let _ = beam_proto::splice(&mut TokioIo::new(t), &mut TokioIo::new(l)).await;
            }
        });
        parts.status = StatusCode::OK;
        parts.version = Version::HTTP_2;
        Response::from_parts(parts, empty())
    }

    async fn tcp(&self, mut req: Request<Incoming>, guard: StreamGuard) -> Response<Body> {
        let tunnel_upgrade = hyper::upgrade::on(&mut req);
        let mut local = match self.connect_local().await {
            Ok(s) => s,
            Err(e) => return self.local_error(true, &e),
        };
        if self.proxy_protocol {
            let addr = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok()?.parse::<std::net::SocketAddr>().ok())
            };
            let (Some(peer), Some(public)) = (addr(bh::PEER_ADDR), addr(bh::PUBLIC_ADDR)) else {
                // Without the visitor's address a PROXY header would lie.
                return status(StatusCode::BAD_REQUEST);
            };
            let header = beam_proto::proxy_v2::header(peer, public);
            if let Err(e) = local.write_all(&header).await {
                return self.local_error(false, &e);
            }
        }
        tokio::spawn(async move {
            let _guard = guard;
            if let Ok(t) = tunnel_upgrade.await {
                let _ = beam_proto::splice(&mut TokioIo::new(t), &mut local).await;
            }
        });
        status(StatusCode::OK)
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

/// Counts a stream as open from creation until drop.
struct StreamGuard(Arc<Stats>);

impl StreamGuard {
    fn new(stats: Arc<Stats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a [`StreamGuard`] alive for as long as the response body streams.
struct Guarded<B> {
    inner: B,
    _guard: StreamGuard,
}

impl<B: HttpBody + Unpin> HttpBody for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
