//! Connections to the other nodes: one authenticated, encrypted HTTP/2
//! connection per peer, dialed on first use and shared by every request
//! forwarded there (each visitor connection or TCP stream is one HTTP/2
//! stream on it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::auth::{self, AuthError};
use crate::body::Body;

/// How long dialing a peer (TCP, TLS and the proofs) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a peer could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// TCP or TLS failed, or took too long.
    #[error("cannot reach node {addr}: {reason}")]
    Unreachable {
        /// The address dialed.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The peer is not trusted, or does not trust us.
    #[error("node {addr}: {source}")]
    Auth {
        /// The address dialed.
        addr: String,
        /// Why.
        source: AuthError,
    },
    /// HTTP/2 on the connection failed.
    #[error("node {addr}: {source}")]
    Http {
        /// The address dialed.
        addr: String,
        /// Why.
        source: hyper::Error,
    },
}

/// One peer's connection, dialed at most once at a time.
type Slot = Arc<tokio::sync::Mutex<Option<(String, SendRequest<Body>)>>>;

/// The connections to other nodes, by node id.
pub(crate) struct Peers {
    tls: tokio_rustls::TlsConnector,
    secret: beam_proto::Secret,
    conns: Mutex<HashMap<String, Slot>>,
}

impl Peers {
    /// Dials with `secret`; certificates are checked only for the handshake
    /// signature, because trust comes from the secret (see `auth`).
    pub(crate) fn new(secret: beam_proto::Secret) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.3"))
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(beam_proto::verify::Pinned::any(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![auth::ALPN.to_vec()];
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            secret,
            conns: Mutex::default(),
        }
    }

    /// A sender on the connection to node `id` at `addr`, dialing when there
    /// is none or the last one closed (or the node moved to another address).
    pub(crate) async fn sender(
        &self,
        id: &str,
        addr: &str,
    ) -> Result<SendRequest<Body>, PeerError> {
        let slot = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some((at, s)) = held.as_ref()
            && at == addr
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let sender = self.dial(addr).await?;
        *held = Some((addr.to_string(), sender.clone()));
        Ok(sender)
    }

    /// Drops node `id`'s connection (it failed), so the next use dials again.
    pub(crate) fn forget(&self, id: &str) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Forgets every node not in `alive` (nodes that left or died).
    pub(crate) fn retain(&self, alive: &std::collections::HashSet<&str>) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| alive.contains(id.as_str()));
    }

    async fn dial(&self, addr: &str) -> Result<SendRequest<Body>, PeerError> {
        let unreachable = |reason: String| PeerError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            // Any name: the certificate is not what is trusted.
            let name = rustls::pki_types::ServerName::try_from("beam-node")
                .unwrap_or_else(|_| unreachable!("a valid DNS name"));
            let mut tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            let ekm = auth::exporter(tls.get_ref().1).map_err(|source| PeerError::Auth {
                addr: addr.to_string(),
                source,
            })?;
            auth::dial(&mut tls, self.secret.expose().as_bytes(), &ekm)
                .await
                .map_err(|source| PeerError::Auth {
                    addr: addr.to_string(),
                    source,
                })?;
            Ok(tls)
        };
        let tls = tokio::time::timeout(DIAL_TIMEOUT, connect)
            .await
            .map_err(|_| unreachable(format!("no answer within {DIAL_TIMEOUT:?}")))??;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(beam_proto::H2_STREAM_WINDOW)
            .initial_connection_window_size(beam_proto::H2_CONNECTION_WINDOW)
            .max_frame_size(beam_proto::MAX_H2_FRAME)
            // Visitors hanging up make this side reset their streams.
            .max_local_error_reset_streams(None)
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .max_send_buf_size(1 << 20)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|source| PeerError::Http {
                addr: addr.to_string(),
                source,
            })?;
        let at = addr.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(node = %at, error = %e, "node connection ended");
            }
        });
        Ok(sender)
    }
}
