//! Why connecting to the server failed, classified by whether retrying can
//! help: shared by every way of dialling (direct, proxy, carriers).

use beam_proto::Refusal;

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
