//! Server configuration: built once by the caller (the `beam` binary or a test) and
//! passed down; nothing in the server reads the environment.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

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
        }
    }

    /// The public URL of subdomain `name`.
    pub fn http_url(&self, name: &str) -> String {
        match self.public_port {
            Some(p) => format!("{}://{}.{}:{}", self.public_scheme, name, self.domain, p),
            None => format!("{}://{}.{}", self.public_scheme, name, self.domain),
        }
    }

    /// The public URL of TCP port `port`.
    pub fn tcp_url(&self, port: u16) -> String {
        format!("tcp://{}:{}", self.tcp_host, port)
    }
}
