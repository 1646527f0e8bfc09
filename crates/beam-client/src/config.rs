//! Client configuration, built once by the caller: the connection
//! ([`ClientConfig`]) apart from what the local proxy does ([`ProxyConfig`]),
//! so a handler that never dials a local service needs no local target.

use std::str::FromStr;
use std::time::Duration;

use beam_proto::{Secret, TunnelRequest};
use rand::Rng;

/// How the tunnel connection is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS, accepting only the certificate with this `sha256:…` fingerprint
    /// (self-hosted servers with a self-signed certificate).
    Pinned(String),
    /// TLS verified against the web PKI roots (servers with a public certificate).
    WebPki,
    /// No TLS. Only for loopback or an explicit `--insecure`.
    Plaintext,
    /// TLS accepting any certificate: only towards the local service with
    /// `--insecure-upstream` (a dev server's self-signed certificate).
    AnyCertificate,
}

/// What `Host` header the local service sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// The visitor's host (`name.example.dev`), like most tunnels do.
    Preserve,
    /// `host:port` of the local target, for dev servers that check `Host`.
    Rewrite,
}

/// The local service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// Host name or IP, usually `localhost`.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The service speaks TLS (`https://…` target or `--https`).
    pub https: bool,
}

impl LocalTarget {
    /// `host:port`, bracketing IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `http://host:port` or `https://host:port`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    /// Parses `PORT`, `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let https = s.starts_with("https://");
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        let bad = || {
            format!(
                "'{s}' is not a local address: use PORT, HOST:PORT or http(s)://HOST:PORT (port 1-65535)"
            )
        };
        let port_of = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        if let Ok(port) = port_of(rest) {
            return Ok(Self {
                host: "localhost".into(),
                port,
                https,
            });
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(Self {
            host: host.into(),
            port: port_of(port)?,
            https,
        })
    }
}

/// Reconnect delays: exponential with full jitter (AWS architecture blog's
/// "full jitter": sleep a uniform random time in `[0, min(cap, base·2^n)]`), so a
/// server restart is not met by every client at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First ceiling.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(3),
            cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

/// What `--transport` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Direct first, then the HTTPS port, then a WebSocket on it.
    #[default]
    Auto,
    /// The beam protocol over TLS to `--server` only.
    Tls,
    /// A WebSocket on the server's HTTPS port only.
    WebSocket,
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "tls" => Ok(Self::Tls),
            "websocket" | "ws" => Ok(Self::WebSocket),
            _ => Err(format!(
                "'{s}' is not a transport: use auto, tls or websocket"
            )),
        }
    }
}

/// The addresses in a `--server` value: `host:port`, or several separated
/// by commas; empty entries are ignored.
pub fn servers(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Where and how to connect: everything the tunnel connection itself needs,
/// whatever answers its streams.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Tunnel listener, `host:port`, or several separated by commas (the
    /// nodes of a cluster), tried in turn.
    pub server: String,
    /// API token.
    pub token: Secret,
    /// Transport protection.
    pub tls: TlsMode,
    /// What to ask the server for.
    pub tunnel: TunnelRequest,
    /// Reconnect policy.
    pub backoff: Backoff,
    /// Limit for TCP connect + TLS + handshake.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval.
    pub keepalive_interval: Duration,
    /// Close the connection when a PING is not answered within this.
    pub keepalive_timeout: Duration,
    /// Visitor protection the edge enforces (HTTP tunnels).
    pub protection: beam_proto::Protection,
    /// Take each visitor connection as one spliced byte stream (see
    /// `Hello::http1_streams`); only for a handler that can, like a
    /// [`ProxyConfig`] with [`ProxyConfig::streams_http1`].
    pub http1_streams: bool,
    /// Which ways to the server may be tried (`--transport`).
    pub transport: Transport,
    /// The server's HTTPS port, for the `auto` and `websocket` transports.
    pub edge_port: u16,
    /// The HTTP proxy to reach the server through (`HTTPS_PROXY`…), if any.
    pub egress: Option<crate::egress::HttpProxy>,
    /// Give up after this many failed attempts when the tunnel has never
    /// been up (a server that is not running, a wrong address); `None`
    /// retries forever, as an agent started before its server should. Once
    /// connected, a client always retries forever.
    pub first_connect_attempts: Option<u32>,
}

impl ClientConfig {
    /// The tunnel addresses in `server`: one, or several separated by commas
    /// (the nodes of a cluster), tried in turn.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        servers(&self.server)
    }

    /// Defaults for everything but the essentials.
    pub fn new(server: String, token: Secret, tunnel: TunnelRequest) -> Self {
        Self {
            server,
            token,
            tls: TlsMode::WebPki,
            tunnel,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(20),
            protection: beam_proto::Protection::default(),
            http1_streams: false,
            transport: Transport::Auto,
            edge_port: 443,
            egress: None,
            first_connect_attempts: None,
        }
    }
}

/// What the local proxy (`beam http`, `beam tcp`) sends traffic to, and how.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to send traffic.
    pub local: LocalTarget,
    /// `Host` header policy towards the local service.
    pub host_header: HostHeader,
    /// Accept any certificate from an `https` local service.
    pub insecure_upstream: bool,
    /// gzip responses for visitors that accept it (when the app did not).
    pub compress: bool,
    /// Send a PROXY protocol v2 header to the local service on each TCP connection.
    pub proxy_protocol: bool,
    /// Speak HTTP/2 to the local service (gRPC): h2c, or ALPN `h2` over TLS.
    pub upstream_http2: bool,
}

impl ProxyConfig {
    /// Whether visitor connections can be spliced to the local service as
    /// bytes: only when nothing here needs to see each request (gzip and a
    /// rewritten `Host` do).
    pub fn streams_http1(&self) -> bool {
        !self.compress && !self.upstream_http2 && self.host_header == HostHeader::Preserve
    }

    /// Defaults for everything but the target.
    pub fn new(local: LocalTarget) -> Self {
        Self {
            local,
            host_header: HostHeader::Preserve,
            insecure_upstream: false,
            compress: false,
            proxy_protocol: false,
            upstream_http2: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_targets_parse_with_clear_errors() {
        assert_eq!(
            LocalTarget::parse("3000").unwrap().authority(),
            "localhost:3000"
        );
        assert_eq!(
            LocalTarget::parse("127.0.0.1:8080").unwrap().authority(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            LocalTarget::parse("http://app.internal:81/")
                .unwrap()
                .authority(),
            "app.internal:81"
        );
        assert_eq!(
            LocalTarget::parse("[::1]:9").unwrap().authority(),
            "[::1]:9"
        );
        let tls = LocalTarget::parse("https://localhost:8443").unwrap();
        assert!(tls.https);
        assert_eq!(tls.url(), "https://localhost:8443");
        assert!(!LocalTarget::parse("8443").unwrap().https);
        for bad in ["0", "99999", "abc", "host:", ":80", "http://x/y:1"] {
            let e = LocalTarget::parse(bad).unwrap_err();
            assert!(e.contains("is not a local address"), "{bad}: {e}");
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_with_full_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for attempt in 0..40 {
            let ceiling = (100u64 << attempt.min(20)).min(1000);
            for _ in 0..20 {
                assert!(b.delay(attempt).as_millis() as u64 <= ceiling);
            }
        }
        // Jitter: not every delay is the same.
        let set: std::collections::HashSet<_> = (0..50).map(|_| b.delay(5)).collect();
        assert!(set.len() > 1);
    }
}
