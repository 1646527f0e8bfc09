//! Command-line definition (clap) and dispatch. Secrets are never flags: tokens come
//! from the environment or the config file, so they stay out of `ps` and history.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::parity_args::*;

pub use crate::settings::ConnArgs;

/// Expose localhost to the internet, and see production from your laptop.
#[derive(Debug, Parser)]
#[command(name = "beam", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a beam server (edge, tunnel listener, API).
    Server(Box<ServerArgs>),
    /// Expose a local HTTP service on a public subdomain.
    Http(HttpArgs),
    /// Expose a local TCP port on a public port.
    Tcp(TcpArgs),
    /// Save a token for this machine (from a prompt, a file, BEAM_TOKEN, or an email and password).
    Login(LoginArgs),
    /// Forget the saved token (and revoke it if `beam login --email` created it).
    Logout(ConnArgs),
    /// List your organization's tunnels.
    List(ListArgs),
    /// Stop a tunnel by name or id: the client exits and the name is released.
    Stop(StopArgs),
    /// Reserved subdomains and custom domains.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Your organization: members, invitations, accepting one.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Parity project environments (shop/production) and their agent tokens.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Run next to the production app: `beam agent --project shop/production -- node server.js`.
    Agent(AgentArgs),
    /// Stream production logs; filters run on the agent, in production.
    Logs(LogsArgs),
    /// Deliver production webhooks to a local app, re-signed with your own secret.
    Webhook(WebhookArgs),
    /// Production feature flags (`✓ ON / ✗ OFF`), or one evaluated for a user.
    Flags(FlagsArgs),
    /// Compare your environment with production's (verdicts only, never values).
    #[command(subcommand)]
    Env(EnvCommand),
    /// The production agent's health checks.
    Health(HealthArgs),
    /// Pull sanitized production rows (the agent's policy decides every column).
    Sync(SyncArgs),
    /// Live status of a production environment: connection, latency, parity services.
    Connect(ConnectArgs),
}

/// `beam login` options. The token is never an argument.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Read the token from this file instead of BEAM_TOKEN or a prompt.
    #[arg(long, conflicts_with = "email")]
    pub token_file: Option<PathBuf>,
    /// Log in with an account: asks for the password (or reads BEAM_PASSWORD) and
    /// creates a token for this machine.
    #[arg(long)]
    pub email: Option<String>,
    /// With --email: the organization this machine's token acts in [default: your first].
    #[arg(long, requires = "email")]
    pub org: Option<i64>,
}

/// `beam list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `beam stop` options.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Subdomain, port or tunnel id (see `beam list`).
    pub tunnel: String,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam domains …`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Add a custom domain (then publish the TXT record it prints) or reserve NAME.<server domain>.
    Add(DomainArgs),
    /// List domains.
    List(ListArgs),
    /// Look the TXT record up now.
    Verify(DomainArgs),
    /// Remove a domain.
    Remove(DomainArgs),
}

/// A domain argument.
#[derive(Debug, Args)]
pub struct DomainArgs {
    /// Host name (or id, except for `add`).
    pub hostname: String,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `beam tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once.
    Create(TokenCreateArgs),
    /// List your tokens.
    List(ListArgs),
    /// Revoke a token by id; tunnels using it disconnect.
    Revoke(TokenRevokeArgs),
}

/// `beam tokens create` options.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token is for.
    #[arg(long, short, default_value = "beam CLI")]
    pub description: String,
    /// Comma-separated scopes [default: tunnels:write,tunnels:read,domains:write,domains:read].
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Expire after this many days.
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Organization the token acts in (see `beam login` output / GET /api/me) [default: yours].
    #[arg(long)]
    pub org: Option<i64>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `beam tokens revoke` options.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Token id (see `beam tokens list`).
    pub id: i64,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

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
    /// Requests per second one tunnel may receive (429 with Retry-After above it) [default: no limit].
    #[arg(long, env = "BEAM_TUNNEL_RATE_LIMIT", help_heading = "Edge limits")]
    pub tunnel_rate_limit: Option<u32>,
    /// Requests per second all tunnels of one client token may receive together [default: no limit].
    #[arg(long, env = "BEAM_TOKEN_RATE_LIMIT", help_heading = "Edge limits")]
    pub token_rate_limit: Option<u32>,
    /// How long a rate-limited request is held before its 429 (a tarpit for floods).
    #[arg(long, env = "BEAM_RATE_LIMIT_DELAY", default_value = "250ms", value_parser = parse_duration, help_heading = "Edge limits")]
    pub rate_limit_delay: Duration,
    /// Requests in flight per tunnel before visitors get 503.
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

/// `beam org` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Members and their roles (admins also see open invitations).
    Members {
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Invite EMAIL (admins). With mail configured on the server the
    /// invitation is mailed; without, a one-time token is printed for you to
    /// pass on.
    Invite {
        /// The address to invite.
        email: String,
        /// owner, admin, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Accept an invitation with its one-time token (asks for a password
    /// when the address has no account yet; or reads BEAM_PASSWORD).
    Accept {
        /// The token from the invitation.
        token: String,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
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

/// Options shared by `beam http` and `beam tcp`.
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// Local service: PORT, HOST:PORT or http://HOST:PORT.
    pub target: String,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print one JSON line per connect instead of the interactive display.
    #[arg(long)]
    pub json: bool,
}

/// `beam http` options.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Shared tunnel options.
    #[command(flatten)]
    pub common: TunnelArgs,
    /// Ask for this subdomain instead of a random one [default: `subdomain` in beam.toml].
    #[arg(long, short)]
    pub subdomain: Option<String>,
    /// Also route this verified custom domain here (`beam domains add` first).
    #[arg(long)]
    pub domain: Option<String>,
    /// Host header the local service sees: the visitor's (preserve) or HOST:PORT of the target (rewrite).
    #[arg(long, value_enum, default_value_t = HostHeaderArg::Preserve)]
    pub host_header: HostHeaderArg,
    /// Require HTTP basic auth. The USER:PASSWORD comes from BEAM_AUTH or a hidden
    /// prompt (never argv); the password may contain ':'.
    #[arg(long, help_heading = "Visitor protection")]
    pub auth: bool,
    /// Require `Authorization: Bearer TOKEN`; the token comes from BEAM_BEARER or a prompt.
    #[arg(long, help_heading = "Visitor protection")]
    pub bearer: bool,
    /// Only these visitor networks (CIDR or address; repeat or comma-separate).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "CIDR",
        help_heading = "Visitor protection"
    )]
    pub allow_cidr: Vec<String>,
    /// Refuse these visitor networks (wins over --allow-cidr).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "CIDR",
        help_heading = "Visitor protection"
    )]
    pub deny_cidr: Vec<String>,
    /// Requests per visitor address: N/s or N/m (429 with Retry-After above
    /// it). The burst is one period's worth: N at once, then N per period.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Visitor protection")]
    pub rate_limit: Option<Rate>,
    /// Answer CORS at the edge for these origins (scheme://host[:port], or '*').
    /// Off by default: the app's own CORS policy is left alone.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ORIGIN",
        help_heading = "Visitor protection"
    )]
    pub cors: Vec<String>,
    /// Largest request body (e.g. 10MB, 512KiB); bigger requests get 413.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Visitor protection")]
    pub max_body: Option<u64>,
    /// gzip text responses for visitors that accept it (off by default).
    #[arg(long)]
    pub compress: bool,
    /// The local service speaks HTTPS (same as an https:// target).
    #[arg(long)]
    pub https: bool,
    /// Accept any certificate from an HTTPS local service (self-signed dev certs).
    #[arg(long)]
    pub insecure_upstream: bool,
}

/// `--host-header` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostHeaderArg {
    /// Keep the visitor's Host.
    Preserve,
    /// Use the local target's host:port.
    Rewrite,
}

/// `beam tcp` options.
#[derive(Debug, Args)]
pub struct TcpArgs {
    /// Shared tunnel options.
    #[command(flatten)]
    pub common: TunnelArgs,
    /// Ask for this public port instead of a random one from the server's range.
    #[arg(long)]
    pub remote_port: Option<u16>,
    /// Start each connection to the local service with a PROXY protocol v2
    /// header carrying the visitor's address (the service must expect it).
    #[arg(long)]
    pub proxy_protocol: bool,
}

/// Parses `10/s`, `600/m` or `600` (per minute) into requests per minute.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("'{s}' is not a rate: use N/s or N/m, e.g. 10/s or 600/m");
    let (n, unit) = s.trim().split_once('/').unwrap_or((s.trim(), "m"));
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let rate = match unit.trim() {
        "s" | "sec" | "second" => Rate::PerSecond(n),
        "m" | "min" | "minute" => Rate::PerMinute(n),
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("'{s}': the rate must be at least 1"));
    }
    Ok(rate)
}

/// A visitor rate limit as given: the period decides the burst (one
/// period's worth), so `5/s` never lets 300 requests through at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// N per second.
    PerSecond(u32),
    /// N per minute.
    PerMinute(u32),
}

/// Parses `1048576`, `512k`, `10MB`, `1GiB` (k/M/G are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size: use e.g. 512k, 10MB, 1G"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("'{s}' has an unknown unit: use k, M or G")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' must be between 1 byte and 16 EiB"))
}

/// Parses `120`, `250ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: use e.g. 250ms, 30s, 2m, 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("'{s}' has an unknown unit: use ms, s, m or h")),
    }
}

/// Parses `FIRST-LAST` (or a single port).
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("'{s}' is not a port range: use FIRST-LAST, e.g. 20000-20999");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

/// Whether to use colour on stdout: a terminal and no `NO_COLOR`.
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runtime size: `BEAM_WORKER_THREADS` if set, else tokio's default (one worker per
/// core). Read here, once, because the runtime exists before any config is built.
fn worker_threads(_command: &Command) -> Option<usize> {
    std::env::var("BEAM_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process; every TLS user here is on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads(&cli.command) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        let done = match cli.command {
            Command::Server(args) => {
                init_tracing("info", args.log_format);
                crate::server_cmd::run(*args).await
            }
            Command::Http(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::tunnel_cmd::run_http(args).await
            }
            Command::Tcp(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::tunnel_cmd::run_tcp(args).await
            }
            Command::Login(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::account_cmd::login(args).await
            }
            Command::Logout(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::account_cmd::logout(args).await
            }
            Command::List(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::manage_cmd::list(args).await
            }
            Command::Stop(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::manage_cmd::stop(args).await
            }
            Command::Domains(cmd) => {
                init_tracing("warn", LogFormat::Text);
                crate::manage_cmd::domains(cmd).await
            }
            Command::Tokens(cmd) => {
                init_tracing("warn", LogFormat::Text);
                crate::account_cmd::tokens(cmd).await
            }
            Command::Org(cmd) => {
                init_tracing("warn", LogFormat::Text);
                crate::org_cmd::run(cmd).await
            }
            Command::Projects(cmd) => {
                init_tracing("warn", LogFormat::Text);
                crate::parity_cmd::projects(cmd).await
            }
            Command::Agent(args) => {
                init_tracing("warn", LogFormat::Text);
                // The app's exit code is the agent's.
                return crate::parity_cmd::agent(args)
                    .await
                    .map(|code| ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Command::Logs(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::parity_cmd::logs(args).await
            }
            Command::Webhook(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::webhook_cmd::run(args).await
            }
            Command::Flags(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::inspect_cmd::flags(args).await
            }
            Command::Env(EnvCommand::Check(args)) => {
                init_tracing("warn", LogFormat::Text);
                let strict = args.strict;
                return crate::inspect_cmd::env_check(args).await.map(|equal| {
                    if strict && !equal {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                });
            }
            Command::Sync(args) => {
                init_tracing("warn", LogFormat::Text);
                crate::sync_cmd::run(args).await
            }
            Command::Connect(args) => {
                init_tracing("warn", LogFormat::Text);
                return crate::inspect_cmd::connect(args).await.map(|online| {
                    if online {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                });
            }
            Command::Health(args) => {
                init_tracing("warn", LogFormat::Text);
                return crate::inspect_cmd::health(args).await.map(|ok| {
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                });
            }
        };
        done.map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ranges_parse_with_clear_errors() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_port_range("20000-20010").unwrap(), 20000..=20010);
        assert_eq!(parse_port_range("5000").unwrap(), 5000..=5000);
        assert_eq!(parse_rate("10/s").unwrap(), Rate::PerSecond(10));
        assert_eq!(parse_rate("90").unwrap(), Rate::PerMinute(90));
        assert!(parse_rate("0/m").unwrap_err().contains("at least 1"));
        assert!(parse_rate("5/h").unwrap_err().contains("not a rate"));
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("0").is_err());
        for bad in ["0-10", "10-5", "a-b", "70000-70001"] {
            assert!(
                parse_port_range(bad)
                    .unwrap_err()
                    .contains("not a port range")
            );
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
