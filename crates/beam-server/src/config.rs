//! Server configuration: built once by the caller (the `beam` binary or a test) and
//! passed down; nothing in the server reads the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use beam_proto::Secret;

use crate::store::Limits;

/// Everything the server needs to know besides its listeners, store and TLS keys.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base domain; tunnels live at `<name>.<domain>`, the API at `<domain>` and `api.<domain>`.
    pub domain: String,
    /// Scheme in printed public URLs (`http` until the edge terminates TLS).
    pub public_scheme: String,
    /// Port in printed public URLs; `None` for the scheme's default port.
    pub public_port: Option<u16>,
    /// Ports `beam tcp` tunnels may be given.
    pub tcp_ports: RangeInclusive<u16>,
    /// Address TCP tunnel ports bind on.
    pub tcp_bind: IpAddr,
    /// Host name printed in `tcp://HOST:PORT` URLs.
    pub tcp_host: String,
    /// How long a dropped client's name stays held for it.
    pub grace: Duration,
    /// How long the edge waits for response headers through a tunnel before 504.
    pub upstream_timeout: Duration,
    /// How long a visitor may take to send request headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// Accept plaintext tunnel connections from non-loopback peers.
    pub insecure: bool,
    /// Extra reserved subdomains (e.g. the server's own host names).
    pub reserved: Vec<String>,
    /// HTTP/2 PING interval on tunnel connections.
    pub keepalive_interval: Duration,
    /// A tunnel connection whose PING is not answered within this is closed.
    pub keepalive_timeout: Duration,
    /// Whether anyone may register an account through the API.
    pub registration: bool,
    /// Lifetime of login sessions.
    pub session_ttl: Duration,
    /// Requests per minute per client address on `/api/auth/*`.
    pub auth_rate_per_minute: u32,
    /// Failed credentials (tokens, hellos) per minute per address before that
    /// address is refused, valid token or not, for the rest of the minute.
    pub auth_failures_per_minute: u32,
    /// DNS server for custom-domain checks; the system resolvers when `None`.
    pub dns_resolver: Option<SocketAddr>,
    /// How often custom domains are re-checked.
    pub domain_recheck: Duration,
    /// How long a custom domain may stay unverified before it expires and its
    /// host name can be added by anyone.
    pub domain_pending_ttl: Duration,
    /// Record request analytics.
    pub analytics: bool,
    /// Full request records sampled per second at most (totals count everything).
    pub analytics_samples_per_sec: u32,
    /// How often analytics are written to the store.
    pub analytics_flush: Duration,
    /// How long request records, hourly totals and records of past tunnels are kept.
    pub retention: Duration,
    /// How long audit log entries are kept.
    pub audit_retention: Duration,
    /// Sends password-reset mail; without it reset tokens cannot be delivered.
    pub mailer: Option<crate::accounts::mail::Mailer>,
    /// Base URL of the API printed in mail, e.g. `https://api.example.com`.
    pub api_url: String,
    /// Plan limits of organizations created by registration (the operator's
    /// own organization is unlimited).
    pub default_limits: Limits,
    /// Requests per second one tunnel may receive (429 above it); `None` = no limit.
    pub tunnel_rate_per_sec: Option<u32>,
    /// Requests per second all tunnels of one client token may receive together.
    pub token_rate_per_sec: Option<u32>,
    /// How long a rate-limited request waits before its 429 (tarpit).
    pub rate_limit_delay: Duration,
    /// Requests in flight per tunnel before visitors get 503.
    pub max_streams_per_tunnel: usize,
    /// Tunnels one client token may have connected at once.
    pub max_tunnels_per_token: usize,
    /// Largest request body on any tunnel (413); tunnels may set a lower one.
    pub max_body: Option<u64>,
    /// Longest request target (path and query) before 414.
    pub max_request_line: usize,
    /// Largest request head (request line and headers) before 431.
    pub max_header_bytes: usize,
    /// WebSocket and TCP streams with no bytes either way for this long are closed.
    pub idle_timeout: Duration,
    /// How often this node renews its lease in the store.
    pub node_heartbeat: Duration,
    /// A node without a heartbeat for this long is dead: the names and
    /// tunnels it held are released.
    pub node_lease: Duration,
    /// Wildcard certificate files of the HTTPS edge; self-signed when `None`.
    pub edge_cert: Option<crate::edge::tls::WildcardFiles>,
    /// Plain HTTP answers with a redirect to HTTPS (ACME challenges excepted).
    pub https_redirect: bool,
    /// Port in HTTPS redirects and URLs; `None` for 443.
    pub https_port: Option<u16>,
    /// How often certificate files and stored certificates are checked for changes.
    pub cert_reload: Duration,
    /// ACME issuance of custom-domain certificates; off when `None`.
    pub acme: Option<crate::edge::acme::AcmeConfig>,
    /// Production signing secrets of webhook sources (public receiver).
    pub webhook_sources: crate::parity::webhooks::Sources,
    /// How often a developer's webhook stream looks for events on its own,
    /// in case a notification from another node was lost.
    pub webhook_poll: Duration,
    /// How long stored webhook events stay deliverable.
    pub webhook_retention: Duration,
    /// Largest webhook body the public receiver accepts (413 above it).
    pub webhook_max_body: usize,
    /// `beam env check` comparisons of one variable per user and environment
    /// per UTC day.
    pub env_check_limit: u32,
    /// Longest a password or visitor-credential check waits for a hashing
    /// slot before the caller gets 503 with `Retry-After`.
    pub hash_queue: Duration,
    /// How long a draining node of a cluster keeps serving visitors after its
    /// clients moved, so load balancers polling `/ready` stop sending new
    /// ones before it closes its listeners.
    pub drain_linger: Duration,
    /// Node-to-node forwarding (a cluster on PostgreSQL); off when `None`.
    pub cluster: Option<ClusterConfig>,
    /// OpenTelemetry traces of visitor requests, sent over OTLP; off when
    /// `None`.
    pub otlp: Option<crate::telemetry::otlp::OtlpConfig>,
    /// How often every live connection's token, membership and role are
    /// re-checked (API changes are applied at once as well).
    pub revalidate_every: Duration,
}

impl ServerConfig {
    /// The embedded default: `localhost`, public HTTP on port 8080, TCP ports
    /// 20000-20999 on loopback, 2-minute grace period.
    pub fn dev() -> Self {
        Self {
            domain: "localhost".into(),
            public_scheme: "http".into(),
            public_port: Some(8080),
            tcp_ports: 20000..=20999,
            tcp_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            tcp_host: "127.0.0.1".into(),
            grace: Duration::from_secs(120),
            // Cloudflare's well-known origin timeout: long polls up to ~90 s still work.
            upstream_timeout: Duration::from_secs(100),
            header_read_timeout: Duration::from_secs(10),
            insecure: false,
            reserved: Vec::new(),
            keepalive_interval: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(20),
            registration: true,
            session_ttl: Duration::from_secs(12 * 3600),
            auth_rate_per_minute: 20,
            auth_failures_per_minute: 10,
            dns_resolver: None,
            domain_recheck: Duration::from_secs(3600),
            domain_pending_ttl: Duration::from_secs(72 * 3600),
            analytics: true,
            analytics_samples_per_sec: 100,
            analytics_flush: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
            mailer: None,
            api_url: "http://localhost:8080".into(),
            default_limits: Limits::NEW_ORG,
            tunnel_rate_per_sec: None,
            token_rate_per_sec: None,
            rate_limit_delay: Duration::from_millis(250),
            max_streams_per_tunnel: 4096,
            max_tunnels_per_token: 50,
            max_body: None,
            max_request_line: 8 * 1024,
            max_header_bytes: 32 * 1024,
            idle_timeout: Duration::from_secs(3600),
            node_heartbeat: Duration::from_secs(1),
            node_lease: Duration::from_secs(6),
            edge_cert: None,
            https_redirect: false,
            https_port: None,
            cert_reload: Duration::from_secs(10),
            acme: None,
            webhook_sources: crate::parity::webhooks::Sources::default(),
            // Three days: a developer away over a weekend still gets Friday's events.
            webhook_retention: Duration::from_secs(72 * 3600),
            webhook_max_body: 1 << 20,
            webhook_poll: Duration::from_secs(30),
            env_check_limit: 20,
            hash_queue: Duration::from_secs(2),
            revalidate_every: Duration::from_secs(2),
            cluster: None,
            otlp: None,
            drain_linger: Duration::ZERO,
        }
    }

    /// The public URL of custom domain `host` (same scheme and port as the
    /// subdomains: its DNS points at this server).
    pub fn domain_url(&self, host: &str) -> String {
        match self.public_port {
            Some(p) => format!("{}://{host}:{p}", self.public_scheme),
            None => format!("{}://{host}", self.public_scheme),
        }
    }

    /// The public URL of subdomain `name`.
    pub fn http_url(&self, name: &str) -> String {
        match self.public_port {
            Some(p) => format!("{}://{}.{}:{}", self.public_scheme, name, self.domain, p),
            None => format!("{}://{}.{}", self.public_scheme, name, self.domain),
        }
    }

    /// The public URL of `name`.
    pub fn public_url(&self, name: &crate::store::PublicName) -> String {
        match name {
            crate::store::PublicName::Subdomain(s) => self.http_url(s),
            crate::store::PublicName::Port(p) => self.tcp_url(*p),
        }
    }

    /// The public URL of TCP port `port`.
    pub fn tcp_url(&self, port: u16) -> String {
        format!("tcp://{}:{}", self.tcp_host, port)
    }
}

/// Node-to-node settings; clustering is on when the server has them.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The address other nodes dial to reach this one (`--node-addr`),
    /// recorded in the store with this node's heartbeat.
    pub node_addr: String,
    /// Shared by every node of the cluster: each node-to-node connection is
    /// trusted only once both ends proved they know it.
    pub secret: Secret,
    /// How long a visitor request waits for a tunnel whose client is moving
    /// between nodes (a drained or dead node) before it gets `502`.
    pub move_wait: Duration,
}

impl ClusterConfig {
    /// Clustering on `node_addr` with `secret`; requests wait up to 5 s for
    /// a moving tunnel (a client reconnects within about a second).
    pub fn new(node_addr: impl Into<String>, secret: Secret) -> Self {
        Self {
            node_addr: node_addr.into(),
            secret,
            move_wait: Duration::from_secs(5),
        }
    }
}
