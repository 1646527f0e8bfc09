//! Options of `beam server`.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse::{parse_duration, parse_port_range, parse_size};

/// `beam server` options. Every option also reads a `BEAM_*` variable.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Local development: also write the server address, a token and the
    /// certificate fingerprint to your config file so `beam http` just works.
    #[arg(long)]
    pub dev: bool,
    /// Where the SQLite store and certificates live [default: ~/.local/share/beam].
    #[arg(long, env = "BEAM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [default: sqlite in the data dir].
    #[arg(long, env = "BEAM_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Base domain: tunnels are served at <name>.<domain>.
    #[arg(long, env = "BEAM_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Public HTTP listen address (visitors and the API).
    #[arg(
        long = "http",
        env = "BEAM_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub http_addr: SocketAddr,
    /// Tunnel listen address (beam clients connect here).
    #[arg(
        long = "tunnel",
        env = "BEAM_TUNNEL_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub tunnel_addr: SocketAddr,
    /// Port printed in public URLs, if a proxy in front changes it [default: the --http port; 0 = none].
    #[arg(long, env = "BEAM_PUBLIC_PORT")]
    pub public_port: Option<u16>,
    /// Ports that `beam tcp` tunnels may get, as FIRST-LAST.
    #[arg(long, env = "BEAM_TCP_PORTS", default_value = "20000-20999", value_parser = parse_port_range)]
    pub tcp_ports: RangeInclusive<u16>,
    /// Address TCP tunnel ports listen on [default: the --http address's IP].
    #[arg(long, env = "BEAM_TCP_BIND")]
    pub tcp_bind: Option<IpAddr>,
    /// Host name printed in tcp:// URLs [default: the TCP bind address].
    #[arg(long, env = "BEAM_TCP_HOST")]
    pub tcp_host: Option<String>,
    /// How long a disconnected client's subdomain or port is held for it.
    #[arg(long, env = "BEAM_GRACE", default_value = "2m", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long to wait for a local service's response headers before 504.
    #[arg(long, env = "BEAM_UPSTREAM_TIMEOUT", default_value = "100s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Accept plaintext tunnel connections from non-loopback addresses.
    #[arg(long)]
    pub insecure: bool,
    /// Public HTTPS listen address (e.g. 0.0.0.0:443). With it, plain HTTP redirects
    /// to HTTPS (except ACME challenges) and URLs use https [default: no HTTPS; --dev: 127.0.0.1:8443].
    #[arg(long = "https", env = "BEAM_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// Serve Prometheus `GET /metrics` without a token on this address (keep it
    /// private). On the API host `/metrics` needs an operator token.
    #[arg(long = "metrics", env = "BEAM_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Join a cluster of nodes on one PostgreSQL database: the address other
    /// nodes dial to reach this one (a name or IP they can reach, not 0.0.0.0).
    /// Needs --database postgres://… and the cluster secret in
    /// BEAM_CLUSTER_SECRET or BEAM_CLUSTER_SECRET_FILE (never a flag).
    #[arg(long, env = "BEAM_NODE_ADDR", value_name = "HOST:PORT")]
    pub node_addr: Option<String>,
    /// Where the node listener binds, when it differs from --node-addr (e.g.
    /// 0.0.0.0:7000 behind NAT) [default: --node-addr].
    #[arg(
        long,
        env = "BEAM_NODE_BIND",
        value_name = "ADDR",
        requires = "node_addr"
    )]
    pub node_bind: Option<SocketAddr>,
    /// On SIGTERM in a cluster: how long to keep serving visitors after the
    /// node's clients moved, while load balancers see /ready fail (set it
    /// above their health-check interval).
    #[arg(long, env = "BEAM_DRAIN_LINGER", default_value = "2s", value_parser = parse_duration)]
    pub drain_linger: Duration,
    /// PEM certificate chain for <domain> and *.<domain> on the HTTPS edge; reloaded
    /// when the file changes [default: self-signed].
    #[arg(long, env = "BEAM_EDGE_CERT", requires = "edge_key")]
    pub edge_cert: Option<PathBuf>,
    /// PEM private key for --edge-cert.
    #[arg(long, env = "BEAM_EDGE_KEY", requires = "edge_cert")]
    pub edge_key: Option<PathBuf>,
    /// ACME directory for automatic certificates of verified custom domains (HTTP-01;
    /// e.g. https://acme-v02.api.letsencrypt.org/directory) [default: no ACME].
    #[arg(long, env = "BEAM_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact address for the ACME account.
    #[arg(long, env = "BEAM_ACME_EMAIL", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// Extra CA certificate (PEM) to trust for the ACME directory's HTTPS (private CAs).
    #[arg(long, env = "BEAM_ACME_CA_FILE", requires = "acme_directory")]
    pub acme_ca_file: Option<PathBuf>,
    /// Renew certificates this long before they expire.
    #[arg(long, env = "BEAM_ACME_RENEW_BEFORE", default_value = "720h", value_parser = parse_duration)]
    pub acme_renew_before: Duration,
    /// Keep serving tunnels on plain HTTP when --https is set (no redirect).
    #[arg(long, env = "BEAM_NO_HTTPS_REDIRECT")]
    pub no_https_redirect: bool,
    /// PEM certificate chain for the tunnel listener [default: self-signed, in the data dir].
    #[arg(long, env = "BEAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "BEAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "BEAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Who may create accounts through the API: open (anyone, who must then
    /// verify their address by mail) or closed (people join by invitation)
    /// [default: open with --sendmail, closed without: an address that
    /// cannot be verified could be someone else's].
    #[arg(long, env = "BEAM_REGISTRATION", value_enum)]
    pub registration: Option<Registration>,
    /// Requests per minute per client address on /api/auth/* (login, register, …).
    #[arg(long, env = "BEAM_AUTH_RATE_LIMIT", default_value_t = 20)]
    pub auth_rate_limit: u32,
    /// Failed credentials per minute per address before it is refused for the rest of the minute.
    #[arg(long, env = "BEAM_AUTH_FAILURES", default_value_t = 10)]
    pub auth_failures: u32,
    /// sendmail-compatible program for password-reset mail (run as `PROGRAM -t -i`, message on stdin).
    #[arg(long, env = "BEAM_SENDMAIL")]
    pub sendmail: Option<PathBuf>,
    /// From: address of mail the server sends [default: beam@<domain>].
    #[arg(long, env = "BEAM_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// API base URL printed in mail [default: http://<domain>:<public port>].
    #[arg(long, env = "BEAM_API_URL")]
    pub api_url: Option<String>,
    /// Lifetime of login sessions.
    #[arg(long, env = "BEAM_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// DNS server (IP:PORT) for custom-domain TXT checks [default: the system's resolvers].
    #[arg(long, env = "BEAM_DNS_RESOLVER")]
    pub dns_resolver: Option<SocketAddr>,
    /// How often custom domains are re-checked (a domain whose TXT record is gone is suspended).
    #[arg(long, env = "BEAM_DOMAIN_RECHECK", default_value = "1h", value_parser = parse_duration)]
    pub domain_recheck: Duration,
    /// How long a custom domain may stay unverified before it expires (anyone may add it then).
    #[arg(long, env = "BEAM_DOMAIN_PENDING_TTL", default_value = "72h", value_parser = parse_duration)]
    pub domain_pending_ttl: Duration,
    /// Do not record request analytics.
    #[arg(long, env = "BEAM_NO_ANALYTICS")]
    pub no_analytics: bool,
    /// TOML file naming the production signing secret of each webhook source
    /// (see the README); without it the public receiver refuses events.
    #[arg(long, env = "BEAM_WEBHOOK_SOURCES", value_name = "FILE")]
    pub webhook_sources: Option<PathBuf>,
    /// How long stored webhook events stay deliverable to developers.
    #[arg(long, env = "BEAM_WEBHOOK_RETENTION", default_value = "72h", value_parser = parse_duration)]
    pub webhook_retention: Duration,
    /// Largest webhook body accepted (413 above it).
    #[arg(long, env = "BEAM_WEBHOOK_MAX_BODY", default_value = "1M", value_parser = parse_size)]
    pub webhook_max_body: u64,
    /// Plan limits of new organizations: KEY=N,… with keys tunnels, tcp_ports,
    /// reserved_names, custom_domains, members, bandwidth (bytes/month); N or
    /// `none` [default: tunnels=20,tcp_ports=5,reserved_names=20,custom_domains=10].
    #[arg(long, env = "BEAM_DEFAULT_LIMITS", value_name = "LIMITS",
        value_parser = beam_server::store::Limits::parse)]
    pub default_limits: Option<beam_server::store::Limits>,
    /// `beam env check` comparisons of one variable per user and environment
    /// per UTC day (a verdict answers a guess, so guesses are rationed).
    #[arg(long, env = "BEAM_ENV_CHECK_LIMIT", default_value_t = 20)]
    pub env_check_limit: u32,
    /// How long request records, hourly totals and past tunnels are kept.
    #[arg(long, env = "BEAM_RETENTION", default_value = "720h", value_parser = parse_duration)]
    pub retention: Duration,
    /// How long audit log entries are kept (`beam audit`).
    #[arg(long, env = "BEAM_AUDIT_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// Requests per second one tunnel may receive (429 with Retry-After above it) [default: no limit].
    #[arg(long, env = "BEAM_TUNNEL_RATE_LIMIT", help_heading = "Edge limits")]
    pub tunnel_rate_limit: Option<u32>,
    /// Requests per second all tunnels of one client token may receive together [default: no limit].
    #[arg(long, env = "BEAM_TOKEN_RATE_LIMIT", help_heading = "Edge limits")]
    pub token_rate_limit: Option<u32>,
    /// How long a rate-limited request is held before its 429 (a tarpit for floods).
    #[arg(long, env = "BEAM_RATE_LIMIT_DELAY", default_value = "250ms", value_parser = parse_duration, help_heading = "Edge limits")]
    pub rate_limit_delay: Duration,
    /// Requests in flight per tunnel before visitors get 503; also the most
    /// visitor connections carried as byte streams (each holds a local connection).
    #[arg(
        long,
        env = "BEAM_MAX_STREAMS",
        default_value_t = 4096,
        help_heading = "Edge limits"
    )]
    pub max_streams_per_tunnel: usize,
    /// Tunnels one client token may have connected at once.
    #[arg(
        long,
        env = "BEAM_MAX_TUNNELS_PER_TOKEN",
        default_value_t = 50,
        help_heading = "Edge limits"
    )]
    pub max_tunnels_per_token: usize,
    /// Largest request body on any tunnel (413 above it); tunnels may set lower [default: no limit].
    #[arg(long, env = "BEAM_MAX_BODY", value_parser = parse_size, help_heading = "Edge limits")]
    pub max_body: Option<u64>,
    /// Longest request target (path and query) before 414.
    #[arg(long, env = "BEAM_MAX_REQUEST_LINE", default_value = "8k", value_parser = parse_size, help_heading = "Edge limits")]
    pub max_request_line: u64,
    /// Largest request head (request line and headers) before 431.
    #[arg(long, env = "BEAM_MAX_HEADER_BYTES", default_value = "32k", value_parser = parse_size, help_heading = "Edge limits")]
    pub max_header_bytes: u64,
    /// Time a visitor has to send request headers (slowloris guard); also how long
    /// an idle keep-alive connection stays open.
    #[arg(long, env = "BEAM_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, help_heading = "Edge limits")]
    pub header_timeout: Duration,
    /// WebSocket and TCP streams with no bytes either way for this long are closed.
    #[arg(long, env = "BEAM_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration, help_heading = "Edge limits")]
    pub idle_timeout: Duration,
}

/// `--registration` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    /// Anyone who can reach the API may register.
    Open,
    /// Only the operator creates accounts (registration answers 403).
    Closed,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
