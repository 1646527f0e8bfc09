//! How connections to the server leave this machine: directly, or through an
//! HTTP proxy named by `HTTPS_PROXY` / `ALL_PROXY` (an HTTP `CONNECT` tunnel,
//! with basic auth from the proxy URL), unless `NO_PROXY` names the server.
//! Only connections to the beam server use it; the local service is always
//! dialled directly.

use base64::Engine;
use beam_proto::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ConnectError;

/// Largest proxy response head read before giving up on it.
const MAX_HEAD: usize = 8 * 1024;

/// Why a proxy setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The URL is not `http://[user:password@]host:port`.
    #[error(
        "{var}: '{shown}' is not a proxy URL beam can use ({why}); use http://[user:password@]host:port"
    )]
    BadUrl {
        /// The variable it came from.
        var: &'static str,
        /// The value with any password masked.
        shown: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// An HTTP proxy that tunnels with `CONNECT`.
#[derive(Clone)]
pub struct HttpProxy {
    /// `host:port` of the proxy.
    authority: String,
    /// `user:password`, base64 encoded for `Proxy-Authorization: Basic`.
    auth: Option<Secret>,
    /// Where it came from, for messages.
    var: &'static str,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpProxy({self})")
    }
}

/// `http://host:port` (with `user:***@` when it has credentials): never the
/// password.
impl std::fmt::Display for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.auth {
            Some(_) => write!(f, "http://***@{} ({})", self.authority, self.var),
            None => write!(f, "http://{} ({})", self.authority, self.var),
        }
    }
}

/// The environment variables read, most specific first. Lower-case wins over
/// upper-case, as in curl.
const PROXY_VARS: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];

impl HttpProxy {
    /// The proxy for connections to `host`, from variables read through
    /// `var` (the process environment at the CLI edge): `None` when none is
    /// set, it is empty, or `NO_PROXY` matches `host`.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        host: &str,
    ) -> Result<Option<Self>, EgressError> {
        let Some((name, url)) = PROXY_VARS
            .iter()
            .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        else {
            return Ok(None);
        };
        let no_proxy = NO_PROXY_VARS.iter().find_map(|n| var(n));
        if no_proxy.is_some_and(|list| bypasses(&list, host)) {
            return Ok(None);
        }
        Self::parse(name, url.trim()).map(Some)
    }

    /// Parses `http://[user:password@]host[:port]` (port 80 when absent, a
    /// bare `host:port` is taken as http).
    pub fn parse(var: &'static str, url: &str) -> Result<Self, EgressError> {
        let bad = |why| EgressError::BadUrl {
            var,
            shown: mask(url),
            why,
        };
        let rest = match url.split_once("://") {
            Some(("http" | "HTTP", rest)) => rest,
            Some(_) => return Err(bad("only http:// proxies are supported")),
            None => url,
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(bad("a proxy URL has no path"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let authority: http::uri::Authority = hostport.parse().map_err(|_| bad("bad host"))?;
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let auth = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let creds = format!(
                "{}:{}",
                beam_proto::urlenc::percent_decode(user),
                beam_proto::urlenc::percent_decode(pass)
            );
            Secret::new(base64::engine::general_purpose::STANDARD.encode(creds))
        });
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
            auth,
            var,
        })
    }

    /// Opens a TCP connection to `target` (`host:port`) through the proxy.
    pub async fn connect(&self, target: &str) -> Result<TcpStream, ConnectError> {
        let unreachable = |source| ConnectError::Unreachable {
            server: format!("proxy {self}"),
            source,
        };
        let mut tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.auth {
            head.push_str(&format!("Proxy-Authorization: Basic {}\r\n", auth.expose()));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await.map_err(unreachable)?;
        let status = read_status(&mut tcp)
            .await
            .map_err(|e| self.refused(target, e))?;
        match status {
            200..=299 => Ok(tcp),
            // 407 is the standard answer; some proxies (tinyproxy) say 401
            // to wrong credentials.
            401 | 407 => Err(ConnectError::Proxy {
                message: match self.auth {
                    Some(_) => {
                        format!("proxy {self} rejected the credentials in its URL ({status})")
                    }
                    None => format!(
                        "proxy {self} wants credentials ({status}): put user:password@ in the proxy URL"
                    ),
                },
                fatal: true,
            }),
            s => Err(self.refused(target, format!("it answered {s}"))),
        }
    }

    fn refused(&self, target: &str, why: String) -> ConnectError {
        ConnectError::Proxy {
            message: format!("proxy {self} did not open a tunnel to {target}: {why}"),
            fatal: false,
        }
    }
}

/// Reads the proxy's response head and returns its status code. Reads byte
/// by byte so nothing after the head (the server's bytes) is consumed.
async fn read_status(tcp: &mut TcpStream) -> Result<u16, String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err("its response headers are too large".into());
        }
        match tcp.read(&mut byte).await {
            Ok(0) => return Err("it closed the connection".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().and_then(|s| s.parse().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(format!("it answered '{}', not HTTP", line.trim())),
    }
}

/// Whether a `NO_PROXY` list names `host`: `*`, the host itself, a domain
/// suffix (`example.com` and `.example.com` both match `a.example.com`), an
/// IP address, or a CIDR range containing it. Ports in entries are ignored.
pub fn bypasses(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (ip, entry.parse::<ipnet::IpNet>()) {
                return net.contains(&ip);
            }
            let entry = strip_port(&entry);
            if let (Some(ip), Ok(e)) = (ip, entry.parse::<std::net::IpAddr>()) {
                return ip == e;
            }
            let domain = entry.trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

fn strip_port(entry: &str) -> &str {
    let e = entry.trim_start_matches('[');
    match e.split_once(']') {
        Some((ip6, _)) => ip6,
        None => match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => entry,
        },
    }
}

/// The URL with its password replaced, for error messages.
fn mask(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let shown = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}:***@{host}")
        }
        None => rest.to_string(),
    };
    if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxies_come_from_the_environment_most_specific_first() {
        let p = HttpProxy::from_env(
            env(&[
                ("ALL_PROXY", "http://all:1"),
                ("HTTPS_PROXY", "http://u%40corp:p%3Ass@proxy.corp:3128/"),
            ]),
            "beam.example.com",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.authority, "proxy.corp:3128");
        let auth = base64::engine::general_purpose::STANDARD
            .decode(p.auth.as_ref().unwrap().expose())
            .unwrap();
        assert_eq!(auth, b"u@corp:p:ss");
        // Shown without the password, in Display and Debug alike.
        assert_eq!(p.to_string(), "http://***@proxy.corp:3128 (HTTPS_PROXY)");
        assert!(!format!("{p:?}").contains("p:ss"));
        let all = HttpProxy::from_env(env(&[("ALL_PROXY", "all.corp")]), "h")
            .unwrap()
            .unwrap();
        assert_eq!(all.authority, "all.corp:80");
        assert!(HttpProxy::from_env(env(&[]), "h").unwrap().is_none());
        assert!(
            HttpProxy::from_env(env(&[("HTTPS_PROXY", " ")]), "h")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn no_proxy_names_hosts_domains_addresses_and_ranges() {
        let list = "localhost, .internal.corp,example.com:443, 10.0.0.0/8, ::1, 192.168.1.7";
        for yes in [
            "localhost",
            "a.internal.corp",
            "internal.corp",
            "example.com",
            "api.example.com",
            "10.1.2.3",
            "[::1]",
            "192.168.1.7",
        ] {
            assert!(bypasses(list, yes), "{yes}");
        }
        for no in ["beam.dev", "notexample.com", "11.0.0.1", "192.168.1.8"] {
            assert!(!bypasses(list, no), "{no}");
        }
        assert!(bypasses("*", "anything"));
        let vars = [
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", "beam.example.com"),
        ];
        assert!(
            HttpProxy::from_env(env(&vars), "beam.example.com")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_showing_the_password() {
        for (url, why) in [
            ("socks5://u:secret@h:1080", "only http://"),
            ("http://u:secret@h:1080/path", "no path"),
            ("http://u:secret@:1", "no host"),
        ] {
            let e = HttpProxy::parse("HTTPS_PROXY", url)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("secret"), "{url}: {e}");
            assert!(e.contains("HTTPS_PROXY"), "{e}");
        }
    }
}
