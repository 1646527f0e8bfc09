//! The client's HTTP/2 service: every stream the server opens is proxied to the
//! local target. Plain requests go through a pooled HTTP/1.1 client; extended
//! `CONNECT` (`:protocol websocket`) becomes a local WebSocket upgrade; plain
//! `CONNECT` is a raw TCP stream. The server's `:authority` is never used as a
//! destination: this side only ever connects to its configured target.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use beam_proto::TunnelKind;
use beam_proto::headers::{self as bh, LocalFailure, strip_hop_by_hop};
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::compress;
use crate::config::{HostHeader, LocalTarget, ProxyConfig};
use crate::dial::TunnelStream;
use crate::error::ConnectError;
use crate::handler::{Body, BoxError, StreamHandler, empty, full, status};
use crate::inspect::{Observer, Pending, Recorder, Tap, WsWatch};
use crate::local::LocalDialer;
use crate::origin::{OriginError, OriginPool};
use crate::origin_h2::OriginH2;

/// Live counters for a status line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Streams open right now (requests in flight, WebSockets, TCP connections).
    pub open: AtomicU64,
    /// Streams served since start.
    pub requests: AtomicU64,
}

impl Stats {
    /// `(open, requests)` snapshot.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.open.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

/// Proxies streams to one local target. Cloned once per stream, so it is one
/// `Arc`.
#[derive(Clone)]
pub struct LocalProxy(Arc<Inner>);

struct Inner {
    kind: TunnelKind,
    target: LocalTarget,
    /// The target's `Host` value, for `--host-header rewrite`.
    target_host: HeaderValue,
    host_header: HostHeader,
    dialer: LocalDialer,
    origin: Arc<OriginPool>,
    /// The HTTP/2 connection, with `--upstream-http2`.
    origin_h2: Option<Arc<OriginH2>>,
    compress: bool,
    proxy_protocol: bool,
    stats: Arc<Stats>,
    /// Where the inspector's exchanges go, when it is on.
    recorder: Option<Arc<Recorder>>,
}

impl LocalProxy {
    /// A proxy for a tunnel of `kind` to the configuration's local target,
    /// counting streams in `stats`.
    pub fn new(cfg: &ProxyConfig, kind: TunnelKind, stats: Arc<Stats>) -> Self {
        Self::inspected(cfg, kind, stats, None)
    }

    /// [`LocalProxy::new`], recording every exchange into `recorder` (the
    /// inspector and the terminal's request lines) when one is given.
    pub fn inspected(
        cfg: &ProxyConfig,
        kind: TunnelKind,
        stats: Arc<Stats>,
        recorder: Option<Arc<Recorder>>,
    ) -> Self {
        let dialer = LocalDialer::new(cfg.local.clone(), cfg.insecure_upstream);
        let origin = OriginPool::new(dialer.clone());
        let origin_h2 = cfg.upstream_http2.then(|| OriginH2::new(dialer.clone()));
        let authority = cfg.local.authority();
        Self(Arc::new(Inner {
            kind,
            target: cfg.local.clone(),
            // A LocalTarget is validated when parsed; this cannot fail for one.
            target_host: HeaderValue::from_str(&authority).expect("a valid host:port"),
            host_header: cfg.host_header.clone(),
            dialer,
            origin,
            origin_h2,
            compress: cfg.compress,
            proxy_protocol: cfg.proxy_protocol,
            stats,
            recorder,
        }))
    }
}

impl crate::inspect::replay::Replayer for LocalProxy {
    /// Sends a request again to the local service (the inspector's replay),
    /// recorded as a replay of exchange `of`; returns the new exchange's id
    /// once its response has ended.
    async fn replay(
        &self,
        req: Request<http_body_util::Full<bytes::Bytes>>,
        of: u64,
    ) -> Option<u64> {
        let (resp, pending) = self.0.forward(req, None, Some(of)).await;
        // Reading the body to its end is what records the exchange.
        let _ = resp.into_body().collect().await;
        let pending = pending?;
        pending.finish(None);
        pending.id()
    }
}

impl StreamHandler for LocalProxy {
    /// Never fails: local errors become 502 pages.
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        Inner::handle(&self.0, req).await
    }
}

impl Inner {
    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard::new(self.stats.clone());
        // Each tunnel kind accepts only its own stream shapes: a TCP tunnel only
        // plain CONNECT, an HTTP tunnel requests and WebSocket upgrades.
        let protocol = req.extensions().get::<hyper::ext::Protocol>().cloned();
        let connect = req.method() == Method::CONNECT;
        match (self.kind, connect, protocol.as_ref().map(|p| p.as_str())) {
            (TunnelKind::Tcp, true, None) => self.tcp(req, guard).await,
            (TunnelKind::Http, true, Some(bh::HTTP1_STREAM)) => self.http1_stream(req, guard).await,
            (TunnelKind::Http, true, Some(_)) => self.websocket(req, guard).await,
            (TunnelKind::Http, false, _) => self.forward(req, Some(guard), None).await.0,
            _ => status(StatusCode::METHOD_NOT_ALLOWED),
        }
    }
}

impl Inner {
    /// One request to the local service, over the pooled HTTP/1.1
    /// connections or the HTTP/2 one; recorded when the inspector is on
    /// (`replay_of` marks a replay). Returns the capture with the response.
    async fn forward<B>(
        &self,
        req: Request<B>,
        guard: Option<StreamGuard>,
        replay_of: Option<u64>,
    ) -> (Response<Body>, Option<Pending>)
    where
        B: HttpBody<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError> + std::fmt::Display,
    {
        let (mut parts, body) = req.into_parts();
        let visitor_host = parts.uri.authority().cloned();
        let path = parts.uri.path_and_query().cloned();
        // Only origin-form paths: never let a path change the authority we connect to.
        if path.as_ref().is_some_and(|p| !p.as_str().starts_with('/')) {
            return (status(StatusCode::BAD_REQUEST), None);
        }
        let path = path.unwrap_or_else(|| PathAndQuery::from_static("/"));
        strip_hop_by_hop(&mut parts.headers);
        self.set_host(&mut parts.headers, visitor_host);
        let pending = self.recorder.as_ref().map(|rec| {
            let p = Pending::start(rec, parts.method.as_str(), path.as_str(), &parts.headers);
            if let Some(of) = replay_of {
                p.replay_of(of);
            }
            p
        });
        let body: Body = match &pending {
            Some(p) => p.request_body(body).map_err(Into::into).boxed_unsync(),
            None => body.map_err(Into::into).boxed_unsync(),
        };
        let gzip_ok =
            self.compress && parts.method != Method::HEAD && compress::accepts_gzip(&parts.headers);
        let sent = match &self.origin_h2 {
            Some(h2) => {
                // HTTP/2 carries the host as `:authority`, in an absolute URI.
                let host = parts.headers.remove(header::HOST);
                let host = host
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                parts.uri = match Uri::builder()
                    .scheme(if self.target.https { "https" } else { "http" })
                    .authority(host)
                    .path_and_query(path)
                    .build()
                {
                    Ok(u) => u,
                    Err(_) => return (status(StatusCode::BAD_REQUEST), None),
                };
                parts.version = Version::HTTP_2;
                let req = Request::from_parts(parts, body);
                h2.send(req).await.map(|r| r.map(Either::Right))
            }
            None => {
                // Origin-form: the connection already goes to the target, and
                // some dev servers reject an absolute URI.
                parts.uri = Uri::from(path);
                parts.version = Version::HTTP_11;
                let req = Request::from_parts(parts, body);
                self.origin.send(req).await.map(|r| r.map(Either::Left))
            }
        };
        let resp = match sent {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = Guarded {
                    inner: body,
                    _guard: guard,
                };
                let body: Body = match &pending {
                    Some(p) => p
                        .response_body(parts.status.as_u16(), &parts.headers, body)
                        .map_err(Into::into)
                        .boxed_unsync(),
                    None => body.map_err(Into::into).boxed_unsync(),
                };
                let body = if gzip_ok
                    && parts.status.is_success()
                    && parts.status != StatusCode::NO_CONTENT
                    && compress::worth_compressing(&parts.headers, body.size_hint())
                {
                    compress::mark(&mut parts.headers);
                    compress::Gzip::new(body).boxed_unsync()
                } else {
                    body
                };
                Response::from_parts(parts, body)
            }
            Err(e @ OriginError::Connect(_)) => {
                self.local_error(LocalFailure::Refused, &e, pending.as_ref())
            }
            Err(e) => self.local_error(LocalFailure::Failed, &e, pending.as_ref()),
        };
        (resp, pending)
    }

    fn set_host(&self, headers: &mut HeaderMap, visitor_host: Option<Authority>) {
        let host = match (&self.host_header, visitor_host) {
            (HostHeader::Preserve, Some(h)) => HeaderValue::from_str(h.as_str()).ok(),
            // An HTTP/1.1 request (the byte-stream fallback) carries its Host
            // as a header already.
            (HostHeader::Preserve, None) if headers.contains_key(header::HOST) => return,
            _ => None,
        };
        headers.insert(
            header::HOST,
            host.unwrap_or_else(|| self.target_host.clone()),
        );
    }

    /// A 502 naming the local address, tagged so the edge can classify it;
    /// recorded as the answer of `pending` when the inspector is on.
    fn local_error(
        &self,
        failure: LocalFailure,
        err: &dyn std::fmt::Display,
        pending: Option<&Pending>,
    ) -> Response<Body> {
        let addr = self.target.url();
        let page = match failure {
            LocalFailure::Refused => format!(
                "502 Bad Gateway\n\nbeam could not connect to the local service at {addr}.\nIs it running? Start it, then reload this page.\n"
            ),
            LocalFailure::Failed => {
                format!("502 Bad Gateway\n\nThe local service at {addr} failed to answer: {err}\n")
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            bh::BEAM_ERROR,
            HeaderValue::from_static(failure.as_header()),
        );
        if let Some(p) = pending {
            let why = match failure {
                LocalFailure::Refused => format!("could not connect to {addr}: {err}"),
                LocalFailure::Failed => format!("{addr} failed to answer: {err}"),
            };
            p.answered(502, &headers, page.as_bytes(), why);
        }
        let mut resp = Response::new(full(page));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        *resp.headers_mut() = headers;
        resp
    }

    async fn connect_local(&self) -> Result<TunnelStream, ConnectError> {
        self.dialer.dial().await
    }

    async fn websocket(&self, mut req: Request<Incoming>, guard: StreamGuard) -> Response<Body> {
        let tunnel_upgrade = hyper::upgrade::on(&mut req);
        let (mut parts, _) = req.into_parts();
        let visitor_host = parts.uri.authority().cloned();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        strip_hop_by_hop(&mut parts.headers);
        self.set_host(&mut parts.headers, visitor_host);
        beam_proto::headers::set_websocket_upgrade(&mut parts.headers);
        let pending = self
            .recorder
            .as_ref()
            .map(|rec| Pending::start(rec, "GET", &path, &parts.headers));
        let pending = pending.as_ref();
        let stream = match self.connect_local().await {
            Ok(s) => s,
            Err(e) => return self.local_error(LocalFailure::Refused, &e, pending),
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(p) => p,
                Err(e) => return self.local_error(LocalFailure::Failed, &e, pending),
            };
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut local_req = Request::new(empty());
        *local_req.method_mut() = Method::GET;
        *local_req.uri_mut() = match Uri::try_from(path) {
            Ok(u) => u,
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        *local_req.headers_mut() = parts.headers;
        let mut resp = match sender.send_request(local_req).await {
            Ok(r) => r,
            Err(e) => return self.local_error(LocalFailure::Failed, &e, pending),
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The app said no (e.g. 403 or 404): the visitor sees its answer.
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = match pending {
                Some(p) => p
                    .response_body(parts.status.as_u16(), &parts.headers, body)
                    .map_err(Into::into)
                    .boxed_unsync(),
                None => body.map_err(Into::into).boxed_unsync(),
            };
            return Response::from_parts(parts, body);
        }
        let local_upgrade = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The upgrade is recorded now; its frames fill in while it lives.
        let log = pending.map(|p| p.upgraded(101, &parts.headers));
        tokio::spawn(async move {
            let _guard = guard;
            if let Ok((t, l)) = tokio::try_join!(tunnel_upgrade, local_upgrade) {
                let mut t = TokioIo::new(t);
                let l = TokioIo::new(l);
                let _ = match log {
                    Some(log) => {
                        beam_proto::splice(&mut t, &mut Tap::new(l, WsWatch::new(log))).await
                    }
                    None => beam_proto::splice(&mut t, &mut { l }).await,
                };
            }
        });
        parts.status = StatusCode::OK;
        parts.version = Version::HTTP_2;
        Response::from_parts(parts, empty())
    }

    /// One visitor connection's HTTP/1.1 bytes, spliced to one local
    /// connection: the edge already parsed, checked and rewrote every request,
    /// so this side only copies.
    ///
    /// With the inspector on, a [`Tap`] watches the bytes; and when the local
    /// service is down, the connection is served request by request instead
    /// (each one answered with the 502 page, or proxied once the service is
    /// up), so every failed request shows in the inspector and terminal.
    async fn http1_stream(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        guard: StreamGuard,
    ) -> Response<Body> {
        let tunnel_upgrade = hyper::upgrade::on(&mut req);
        let local = match (self.connect_local().await, &self.recorder) {
            (Ok(s), _) => s,
            (Err(_), Some(_)) => {
                let this = self.clone();
                tokio::spawn(async move {
                    let Ok(t) = tunnel_upgrade.await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move {
                            let (resp, _) = this.forward(req, None, None).await;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _guard = guard;
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(t, service)
                        .await;
                });
                return status(StatusCode::OK);
            }
            (Err(e), None) => return self.local_error(LocalFailure::Refused, &e, None),
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Ok(t) = tunnel_upgrade.await {
                let mut t = TokioIo::new(t);
                let _ = match recorder {
                    Some(rec) => {
                        beam_proto::splice(&mut t, &mut Tap::new(local, Observer::new(rec))).await
                    }
                    None => beam_proto::splice(&mut t, &mut { local }).await,
                };
            }
        });
        status(StatusCode::OK)
    }

    async fn tcp(&self, mut req: Request<Incoming>, guard: StreamGuard) -> Response<Body> {
        let tunnel_upgrade = hyper::upgrade::on(&mut req);
        let mut local = match self.connect_local().await {
            Ok(s) => s,
            Err(e) => return self.local_error(LocalFailure::Refused, &e, None),
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
                return self.local_error(LocalFailure::Failed, &e, None);
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
    _guard: Option<StreamGuard>,
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
