//! Opening a tunnel connection: TCP (with `TCP_NODELAY`, through an HTTP
//! proxy when one is set), TLS unless plaintext was asked for, then the beam
//! handshake, along each route the transport allows until one answers.
//! Returns the stream ready for HTTP/2.

use std::sync::Arc;

use beam_proto::{Hello, Refusal, Reply, Welcome, read_frame, write_frame, write_preamble};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::carrier::{CarrierStream, Route, open, routes};
use crate::config::{ClientConfig, TlsMode};
use crate::egress::HttpProxy;
use crate::verify::Pinned;

/// The connection after a successful handshake.
pub type TunnelStream = Either<TcpStream, TlsStream<TcpStream>>;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the hello; the message is meant for the user.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// TCP connect or I/O failed (server down, network gone): retry.
    #[error("cannot reach {server}: {source}")]
    Unreachable {
        /// The server address.
        server: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS failed; a certificate mismatch is fatal, other TLS errors are retried.
    #[error("TLS with {server} failed: {message}")]
    Tls {
        /// The server address.
        server: String,
        /// Why.
        message: String,
        /// Whether retrying can help.
        fatal: bool,
    },
    /// The server closed or sent garbage during the handshake.
    #[error("handshake with {server} failed: {message}")]
    Handshake {
        /// The server address.
        server: String,
        /// Why.
        message: String,
    },
    /// The HTTP proxy refused or failed the `CONNECT`.
    #[error("{message}")]
    Proxy {
        /// What happened, for the user (never the proxy password).
        message: String,
        /// Whether retrying can help (a 407 cannot).
        fatal: bool,
    },
    /// The whole attempt took longer than the connect timeout.
    #[error("connecting to {0} timed out")]
    Timeout(String),
}

impl ConnectError {
    /// Whether retrying the same configuration can never succeed.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Refused(r) => r.code.is_fatal(),
            Self::Tls { fatal, .. } | Self::Proxy { fatal, .. } => *fatal,
            _ => false,
        }
    }
}

/// rustls client configuration for `mode`, offering `alpn`.
pub(crate) fn tls_config(mode: &TlsMode, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut cfg = match mode {
        TlsMode::Pinned(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(fp, provider)))
            .with_no_client_auth(),
        TlsMode::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::any(provider)))
            .with_no_client_auth(),
        _ => {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// Connects along the routes the transport allows (`first`, the one that
/// worked last time, ahead), authenticates, and returns the server's welcome,
/// the stream and the route taken. A refusal from the server ends the
/// search (another route reaches the same server); any other failure moves
/// on to the next route. When every route fails, the first route's error
/// is returned: it is the one the user configured.
pub async fn connect(
    cfg: &ClientConfig,
    hello: &Hello,
    first: Option<Route>,
) -> Result<(Welcome, CarrierStream, Route), ConnectError> {
    let routes = routes(cfg, first);
    let mut first_error = None;
    for (i, route) in routes.iter().enumerate() {
        // A blackholed port must not use up the whole budget when there
        // are other routes to try.
        let limit = if i + 1 < routes.len() {
            cfg.connect_timeout.min(FALLBACK_AFTER)
        } else {
            cfg.connect_timeout
        };
        let attempt = tokio::time::timeout(limit, attempt(cfg, hello, *route)).await;
        match attempt.unwrap_or_else(|_| Err(ConnectError::Timeout(cfg.server.clone()))) {
            Ok((welcome, stream)) => return Ok((welcome, stream, *route)),
            Err(e @ ConnectError::Refused(_)) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ConnectError::Timeout(cfg.server.clone())))
}

/// How long `auto` waits on one route before trying the next.
const FALLBACK_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// TCP (with `TCP_NODELAY`) and, unless plaintext, TLS offering `alpn`: the
/// tunnel protocol (`beam/1`) or the API over HTTP/1.1 (`http/1.1`). Always
/// direct: the local service is dialled with this too.
pub async fn dial(
    server: &str,
    tls: &TlsMode,
    alpn: &[&[u8]],
) -> Result<TunnelStream, ConnectError> {
    dial_via(server, tls, alpn, None).await
}

/// [`dial`], through `proxy` when there is one.
pub async fn dial_via(
    server: &str,
    tls: &TlsMode,
    alpn: &[&[u8]],
    proxy: Option<&HttpProxy>,
) -> Result<TunnelStream, ConnectError> {
    let unreachable = |source| ConnectError::Unreachable {
        server: server.to_string(),
        source,
    };
    let tcp = match proxy {
        Some(p) => p.connect(server).await?,
        None => TcpStream::connect(server).await.map_err(unreachable)?,
    };
    tcp.set_nodelay(true).map_err(unreachable)?;
    match tls {
        TlsMode::Plaintext => Ok(Either::Left(tcp)),
        mode => {
            let host = server
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(server)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = ServerName::try_from(host).map_err(|e| ConnectError::Tls {
                server: server.to_string(),
                message: e.to_string(),
                fatal: true,
            })?;
            let connector = tokio_rustls::TlsConnector::from(tls_config(mode, alpn));
            let tls = connector.connect(name, tcp).await.map_err(|e| {
                // A certificate problem will not fix itself; a reset might.
                let fatal = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::General(_) | rustls::Error::InvalidCertificate(_)
                        )
                    });
                ConnectError::Tls {
                    server: server.to_string(),
                    message: e.to_string(),
                    fatal,
                }
            })?;
            Ok(Either::Right(tls))
        }
    }
}

/// One route: open it, then the beam handshake.
async fn attempt(
    cfg: &ClientConfig,
    hello: &Hello,
    route: Route,
) -> Result<(Welcome, CarrierStream), ConnectError> {
    let server = cfg.server.clone();
    let mut stream = open(cfg, route).await?;
    let hs = |e: beam_proto::ProtoError| ConnectError::Handshake {
        server: server.clone(),
        message: e.to_string(),
    };
    write_preamble(&mut stream).await.map_err(hs)?;
    write_frame(&mut stream, hello).await.map_err(hs)?;
    match read_frame::<_, Reply>(&mut stream).await {
        Ok(Reply::Welcome(w)) => Ok((w, stream)),
        Ok(Reply::Refused(r)) => Err(ConnectError::Refused(r)),
        Err(beam_proto::ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(ConnectError::Handshake {
                server,
                message: "the server closed the connection during the handshake (is this a beam tunnel port? plaintext to a TLS port?)".into(),
            })
        }
        Err(e) => Err(hs(e)),
    }
}
