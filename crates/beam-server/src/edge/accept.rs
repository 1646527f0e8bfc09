//! Accepting visitors: one task per connection, TLS first on the HTTPS
//! listener (choosing the configuration from the ClientHello), then HTTP/2 or
//! HTTP/1.1 with header limits and timeouts, graceful at shutdown. Tunnel
//! clients that can only reach this port are handed to the tunnel acceptor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use crate::state::State;

/// The TLS configurations of the HTTPS listener, picked per ClientHello.
#[derive(Clone)]
pub(crate) struct EdgeTls {
    /// Visitors: edge certificates by SNI, ALPN `h2` and `http/1.1`.
    pub(crate) edge: Arc<rustls::ServerConfig>,
    /// Tunnel clients reaching the server on this port: the tunnel
    /// certificate, with ALPN `beam/1` (the protocol directly) and with ALPN
    /// `http/1.1` (the WebSocket carrier). `None` without tunnel TLS.
    pub(crate) carrier: Option<(Arc<rustls::ServerConfig>, Arc<rustls::ServerConfig>)>,
}

impl EdgeTls {
    /// The edge configuration, plus the carrier ones derived from the tunnel
    /// listener's configuration.
    pub(crate) fn new(
        edge: Arc<rustls::ServerConfig>,
        tunnel: Option<&Arc<rustls::ServerConfig>>,
    ) -> Self {
        let carrier = tunnel.map(|t| {
            let with = |alpn: &[u8]| {
                let mut c = (**t).clone();
                c.alpn_protocols = vec![alpn.to_vec()];
                Arc::new(c)
            };
            (with(beam_proto::ALPN), with(b"http/1.1"))
        });
        Self { edge, carrier }
    }

    /// The configuration for a client offering `alpn`.
    fn pick(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        match &self.carrier {
            Some((direct, _)) if alpn.first() == Some(&beam_proto::ALPN) => direct.clone(),
            Some((_, ws)) if alpn.contains(&beam_proto::WS_CARRIER_ALPN) => ws.clone(),
            _ => self.edge.clone(),
        }
    }
}

/// Accepts visitor connections until `shutdown`; each connection is served on its
/// own task (after a TLS handshake when `tls` is set), and asked to finish
/// gracefully at shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<EdgeTls>,
    state: Arc<State>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
    let what = if tls.is_some() { "https" } else { "public" };
    while let Some((stream, peer)) = crate::accept::next(&listener, &shutdown, what).await {
        let state = state.clone();
        let api = api.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        state.tasks.clone().spawn(async move {
            let conn = Conn {
                state,
                api,
                peer,
                shutdown,
                hops: 0,
            };
            match tls {
                None => conn.plain(stream).await,
                Some(tls) => conn.tls(stream, &tls).await,
            }
        });
    }
}

/// Serves a visitor connection another node of the cluster forwarded (HTTP/1.1
/// on a node-to-node stream) as if it had arrived here from `peer`: the
/// visitor policy, limits and analytics apply here, where the tunnel is.
pub(crate) async fn serve_forwarded<IO>(
    state: Arc<State>,
    api: axum::Router,
    io: IO,
    peer: SocketAddr,
    secure: bool,
    hops: u8,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Conn {
        state,
        api,
        peer,
        shutdown,
        hops,
    };
    conn.http1(io, secure).await
}

/// One accepted connection and what serving it needs.
struct Conn {
    state: Arc<State>,
    api: axum::Router,
    peer: SocketAddr,
    shutdown: CancellationToken,
    /// Node-to-node hops the connection took to get here (0: a visitor's own).
    hops: u8,
}

impl Conn {
    /// Plain HTTP: HTTP/2 with prior knowledge (`h2c`, e.g. gRPC clients) when
    /// the client starts with the HTTP/2 preface, else HTTP/1.1.
    async fn plain(self, stream: TcpStream) {
        let limit = self.state.cfg.header_read_timeout;
        match tokio::time::timeout(limit, starts_with_preface(&stream)).await {
            Ok(Ok(true)) => self.http2(stream, false).await,
            Ok(Ok(false)) => self.http1(stream, false).await,
            Ok(Err(_)) => {}
            Err(_) => {
                self.state.metrics.error("header_timeout");
                tracing::debug!(peer = %self.peer, "visitor sent nothing before the header timeout");
            }
        }
    }

    /// TLS, with the configuration the ClientHello asks for; then the
    /// protocol ALPN settled on.
    async fn tls(self, stream: TcpStream, tls: &EdgeTls) {
        let peer = self.peer;
        // The handshake gets the same budget as request headers.
        let deadline = Instant::now() + self.state.cfg.header_read_timeout;
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let handshake = async {
            let start = acceptor.await?;
            let offered: Vec<&[u8]> = start
                .client_hello()
                .alpn()
                .map(|i| i.collect())
                .unwrap_or_default();
            let cfg = tls.pick(&offered);
            start.into_stream(cfg).await
        };
        let stream = match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "visitor TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "visitor TLS handshake timed out"),
        };
        match stream.get_ref().1.alpn_protocol() {
            Some(beam_proto::ALPN) => {
                let deadline = Instant::now() + beam_proto::HANDSHAKE_TIMEOUT;
                crate::tunnel::handshake(self.state, stream, peer, deadline, self.shutdown).await
            }
            Some(b"h2") => self.http2(stream, true).await,
            _ => self.http1(stream, true).await,
        }
    }

    /// The service answering every request of this connection: routing by
    /// host, with what the connection is (peer, TLS, multiplexed) attached.
    fn service(
        &self,
        secure: bool,
        multiplexed: bool,
    ) -> impl hyper::service::Service<
        http::Request<hyper::body::Incoming>,
        Response = http::Response<crate::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        let conn = Arc::new(super::proxy::VisitorConn {
            peer: self.peer,
            secure,
            multiplexed,
            hops: self.hops,
            link: Default::default(),
            node_link: Default::default(),
        });
        let (state, api) = (self.state.clone(), self.api.clone());
        service_fn(move |req| super::route::handle(state.clone(), api.clone(), conn.clone(), req))
    }

    /// Serves HTTP/1.1 on one visitor connection.
    async fn http1<IO>(self, io: IO, secure: bool)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let svc = self.service(secure, false);
        let Self {
            state,
            peer,
            shutdown,
            ..
        } = &self;
        let (io, watcher) = crate::edge::io::watch(io);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(state.cfg.header_read_timeout)
            .max_header_size(state.cfg.max_header_bytes)
            .max_headers(128)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r {
                if e.is_timeout() {
                    state.metrics.error("header_timeout");
                    watcher.timed_out(Duration::from_secs(1)).await;
                } else {
                    tracing::debug!(%peer, error = %e, "visitor connection ended with error");
                }
            },
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    /// Serves HTTP/2 on one visitor connection, its frames under a budget.
    async fn http2<IO>(self, io: IO, secure: bool)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let svc = self.service(secure, true);
        let Self {
            state,
            peer,
            shutdown,
            ..
        } = &self;
        let io = TokioIo::new(super::h2::Guarded::new(io));
        let conn = super::h2::builder(&state.cfg).serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r {
                if is_flood(&e) {
                    state.metrics.error("h2_flood");
                    tracing::warn!(%peer, "HTTP/2 visitor connection closed: frame flood");
                } else {
                    tracing::debug!(%peer, error = %e, "HTTP/2 visitor connection ended with error");
                }
            },
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// Whether the connection ended for flooding: its frame budget ran out, or
/// h2's own guards (too many resets before accept, too many small DATA
/// frames, CONTINUATION or header-list abuse) sent `ENHANCE_YOUR_CALM`.
fn is_flood(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>()
            && h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
        {
            return true;
        }
        if s.to_string() == super::h2::FLOOD {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether the client opened with the HTTP/2 preface (`PRI * HTTP/2.0…`).
/// Three bytes decide it: no HTTP/1.1 method starts with `PRI`. Peeks, so
/// the bytes stay for whichever protocol serves the connection.
async fn starts_with_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut head = [0u8; 3];
    loop {
        let n = stream.peek(&mut head).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if head[..n] != b"PRI"[..n] {
            return Ok(false);
        }
        if n == 3 {
            return Ok(true);
        }
        // A prefix of `PRI` arrived alone: wait for the rest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
