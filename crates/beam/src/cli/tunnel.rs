//! Options of `beam http` and `beam tcp`.

use clap::{Args, ValueEnum};

use super::parse::{Rate, parse_backoff, parse_rate, parse_size};
use crate::settings::ConnArgs;

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
    /// What `beam http` and `beam dev` share.
    #[command(flatten)]
    pub opts: HttpOptions,
}

/// `beam dev [PORT]`: `beam http` for the project in the current directory.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Local service: PORT or HOST:PORT [default: found from the project's
    /// files (package.json, vite.config.*, manage.py…), else `port` in beam.toml].
    pub target: Option<String>,
    /// The local port (same as the positional PORT).
    #[arg(long, value_name = "PORT", conflicts_with = "target")]
    pub port: Option<u16>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print JSON lines instead of the interactive display.
    #[arg(long)]
    pub json: bool,
    /// Do not open the browser at the public URL.
    #[arg(long)]
    pub no_open: bool,
    /// Do not print a QR code of the public URL.
    #[arg(long)]
    pub no_qr: bool,
    /// Every `beam http` option.
    #[command(flatten)]
    pub opts: HttpOptions,
}

/// The options of an HTTP tunnel, shared by `beam http` and `beam dev`.
#[derive(Debug, Args)]
pub struct HttpOptions {
    /// Ask for this subdomain instead of a random one [default: `subdomain` in beam.toml].
    #[arg(long, short)]
    pub subdomain: Option<String>,
    /// Reconnect timing.
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    /// Also route this verified custom domain here (`beam domains add` first).
    #[arg(long)]
    pub domain: Option<String>,
    /// Host header the local service sees: the visitor's (preserve) or
    /// HOST:PORT of the target (rewrite) [default: preserve; `beam dev`
    /// rewrites for dev servers that check it (Vite, webpack-dev-server)].
    #[arg(long, value_enum)]
    pub host_header: Option<HostHeaderArg>,
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
    /// Speak HTTP/2 to the local service (gRPC): h2c, or h2 over TLS with --https.
    #[arg(long)]
    pub upstream_http2: bool,
    /// The request inspector.
    #[command(flatten)]
    pub inspect: InspectArgs,
}

/// Options of the request inspector (`beam http`, `beam dev`).
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Serve the inspector here [default: 127.0.0.1:4040, or the next free
    /// port]. Another address than loopback shows your traffic to that network.
    #[arg(long, value_name = "ADDR", help_heading = "Inspector")]
    pub inspect: Option<std::net::SocketAddr>,
    /// No inspector (and no request capture unless --log-requests).
    #[arg(long, conflicts_with = "inspect", help_heading = "Inspector")]
    pub no_inspect: bool,
    /// Requests the inspector keeps (the oldest go first).
    #[arg(
        long,
        default_value_t = 500,
        value_name = "N",
        help_heading = "Inspector"
    )]
    pub inspect_max_requests: usize,
    /// Memory the inspector may use for requests, headers and bodies (e.g. 64MB).
    #[arg(long, default_value = "64MB", value_parser = parse_size, value_name = "SIZE", help_heading = "Inspector")]
    pub inspect_max_bytes: u64,
    /// Bytes kept of each body; larger ones are marked truncated with their size.
    #[arg(long, default_value = "1MB", value_parser = parse_size, value_name = "SIZE", help_heading = "Inspector")]
    pub inspect_body_cap: u64,
    /// One line per request: in the terminal when output is not one, and as
    /// JSON lines with --json (a terminal shows them anyway).
    #[arg(long, help_heading = "Inspector")]
    pub log_requests: bool,
}

/// `--host-header` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostHeaderArg {
    /// Keep the visitor's Host.
    Preserve,
    /// Use the local target's host:port.
    Rewrite,
}

/// How long a tunnel client waits before reconnecting (`beam http`, `beam dev`, `beam tcp`).
#[derive(Debug, Args)]
pub struct ReconnectArgs {
    /// Wait before reconnecting: a random time up to BASE, the ceiling doubling
    /// after each failed try up to CAP, so a restarted server is not met by
    /// every client at once (e.g. 250ms,5s) [default: 3s,10s].
    #[arg(long, env = "BEAM_RECONNECT", value_name = "BASE[,CAP]", value_parser = parse_backoff)]
    pub reconnect: Option<beam_client::Backoff>,
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
    /// Reconnect timing.
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    /// Start each connection to the local service with a PROXY protocol v2
    /// header carrying the visitor's address (the service must expect it).
    #[arg(long)]
    pub proxy_protocol: bool,
}
