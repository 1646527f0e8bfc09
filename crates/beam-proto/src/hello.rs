//! The handshake messages, one enum or struct per message, each field documented.
//!
//! Flow: client sends [`crate::MAGIC`] + [`crate::VERSION`], then a [`Hello`] frame;
//! the server answers with one [`Reply`] frame. On `Welcome` both sides switch to
//! HTTP/2 on the same connection (server = HTTP/2 client). On `Refused` the server
//! closes the connection.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// What the client asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// API token (`beam_…`). Hashed and compared in constant time by the server.
    pub token: Secret,
    /// The tunnel this connection will carry.
    pub tunnel: TunnelRequest,
    /// Lease from an earlier `Welcome`: proves this client held the name before a drop,
    /// so it gets the same subdomain or port back within the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Secret>,
    /// Free-form client description, e.g. `beam/0.1.0 linux`. Shown in server logs.
    #[serde(default)]
    pub client: String,
    /// What the edge must check before a visitor reaches this tunnel.
    #[serde(default, skip_serializing_if = "Protection::is_open")]
    pub protection: Protection,
    /// The client takes a visitor's HTTP/1.1 connection as one byte stream
    /// (extended `CONNECT` with `:protocol` [`crate::headers::HTTP1_STREAM`])
    /// and splices it to one local connection, instead of one stream per
    /// request. Older servers ignore the field and keep one stream per request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http1_streams: bool,
}

/// Visitor protection the tunnel's owner asks the edge to enforce. The server
/// refuses a hello whose protection it cannot enforce rather than run the tunnel
/// open, and confirms enforcement in [`Welcome::enforced`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// HTTP basic auth: the user name and an argon2id PHC hash of the password.
    /// The password itself never leaves the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer` token, as an argon2id PHC hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    /// Visitor networks allowed in (CIDR); empty means every address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidr: Vec<String>,
    /// Visitor networks refused (CIDR); wins over `allow_cidr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_cidr: Vec<String>,
    /// Requests per minute per visitor address (a burst of at most one
    /// minute's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// Requests per second per visitor address (a burst of at most one
    /// second's worth); wins over `rate_per_minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Origins allowed by CORS (`*` for any); empty leaves CORS to the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<String>,
    /// Largest request body in bytes (413 above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
}

impl Protection {
    /// Whether nothing is asked for.
    pub fn is_open(&self) -> bool {
        self == &Self::default()
    }
}

/// Basic-auth credential as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (may not contain `:`).
    pub user: String,
    /// argon2id PHC string of the password.
    pub hash: String,
}

/// The kind of tunnel and the public name the client would like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TunnelRequest {
    /// HTTP tunnel routed by `Host`.
    Http {
        /// Requested subdomain label; the server allocates one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subdomain: Option<String>,
        /// A verified custom domain of the token's organization to route here too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
    /// Raw TCP tunnel on a public port.
    Tcp {
        /// Requested public port; the server allocates one from its range when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    /// A production agent (`beam agent`): no public name; the server sends it
    /// parity requests (`GET /logs`, …) for one project environment. Needs an
    /// agent token of that environment.
    Agent {
        /// Project name, e.g. `shop`.
        project: String,
        /// Environment name, e.g. `production`.
        environment: String,
        /// This replica's name among the environment's agents (default: the
        /// host name); see [`valid_instance`]. Older agents send none and are
        /// called `default`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
}

/// Whether `name` can name an agent replica: 1 to 64 of `A-Z a-z 0-9 . _ -`,
/// so it needs no escaping in headers, query strings or log lines.
pub fn valid_instance(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// This machine's host name (empty when it cannot be read): a tunnel's
/// client string names it so the dashboard can say which machine started a
/// tunnel, and an agent uses it as its default instance name.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl TunnelRequest {
    /// The kind without the request details.
    pub fn kind(&self) -> TunnelKind {
        match self {
            Self::Http { .. } => TunnelKind::Http,
            Self::Tcp { .. } => TunnelKind::Tcp,
            Self::Agent { .. } => TunnelKind::Agent,
        }
    }
}

/// Tunnel protocol, also the `protocol` label of `beam_tunnels_active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// HTTP (and WebSocket) tunnel.
    Http,
    /// Raw TCP tunnel.
    Tcp,
    /// Production agent.
    Agent,
}

impl TunnelKind {
    /// Lower-case name, as used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Agent => "agent",
        }
    }
}

/// The server's single answer to a [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Reply {
    /// Accepted: HTTP/2 starts right after this frame.
    Welcome(Welcome),
    /// Refused: the connection closes right after this frame.
    Refused(Refusal),
}

/// The tunnel the server set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// Session id for logs on both sides.
    pub session: String,
    /// Public address, e.g. `http://swift-bridge-4k2.localhost:8080` or `tcp://127.0.0.1:20001`.
    pub public_url: String,
    /// Allocated subdomain label (HTTP) or port number as text (TCP).
    pub name: String,
    /// Secret to present on reconnect to get the same name back.
    pub lease: Secret,
    /// How long the server holds the name after this connection drops.
    pub grace_secs: u64,
    /// The server enforces the hello's [`Protection`]. A client that asked for
    /// protection and does not see this (an older server) must not go online.
    #[serde(default)]
    pub enforced: bool,
    /// Other public URLs of this tunnel, for the client to show: the HTTPS
    /// one when the server also serves HTTPS (`beam server --dev`), and its
    /// custom domain (`--domain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_urls: Vec<String>,
}

/// Why the server refused, in words a user can act on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation, safe to print as is.
    pub message: String,
    /// When set, the client should wait this many seconds before trying again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    /// A refusal with `code` and `message`, and no retry hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

/// Machine-readable refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Token unknown or revoked.
    Unauthorized,
    /// Token known but past its expiry.
    TokenExpired,
    /// Client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// The hello was not valid JSON of the right shape, or not a beam client at all.
    BadHello,
    /// The hello exceeded [`crate::MAX_FRAME`].
    HelloTooLarge,
    /// Too many failed attempts from this address.
    Throttled,
    /// The requested subdomain or port is in use or held for someone else.
    NameTaken,
    /// The requested subdomain is not a valid DNS label.
    NameInvalid,
    /// The requested subdomain is reserved by the server.
    NameReserved,
    /// The requested TCP port is outside the server's range.
    PortUnavailable,
    /// Plaintext tunnel connection from a non-loopback address without `--insecure`.
    PlaintextRefused,
    /// The server cannot serve this request right now (no free port, a port still
    /// being released); retry after `retry_after_secs`.
    Unavailable,
    /// The hello did not arrive within [`crate::HANDSHAKE_TIMEOUT`].
    Timeout,
    /// The server hit an internal error; retrying may help.
    Internal,
    /// A plan limit (e.g. tunnels connected at once) is reached.
    LimitReached,
    /// The requested custom domain is unknown, not the token's, or not verified.
    DomainInvalid,
    /// A protection option (CIDR, hash, origin, limit) is malformed or out of bounds.
    InvalidOption,
    /// A code this client does not know (a newer server); the message says more.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Whether retrying the same hello can ever succeed. Fatal refusals stop the
    /// client's reconnect loop with the message instead of retrying forever.
    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            Self::Throttled | Self::Internal | Self::Timeout | Self::Unavailable
        )
    }
}
