//! Header names with a meaning between the edge, the tunnel client and the local service.

/// Request id assigned by the edge; sent to the local service and back to the visitor.
pub const REQUEST_ID: &str = "x-request-id";
/// Visitor IP, appended per RFC 7239's de-facto predecessor.
pub const FORWARDED_FOR: &str = "x-forwarded-for";
/// `http` or `https`, as the visitor reached the edge.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The `Host` the visitor asked for.
pub const FORWARDED_HOST: &str = "x-forwarded-host";
/// The visitor IP alone (nginx's convention), set by the edge.
pub const REAL_IP: &str = "x-real-ip";
/// RFC 7239's header; the edge removes a visitor's, never forwarding a forged one.
pub const FORWARDED: &str = "forwarded";

/// On a TCP tunnel's `CONNECT` stream: the visitor's `ip:port`.
pub const PEER_ADDR: &str = "beam-peer-addr";
/// On a TCP tunnel's `CONNECT` stream: the public `ip:port` the visitor reached.
pub const PUBLIC_ADDR: &str = "beam-public-addr";

/// The `:protocol` of an extended `CONNECT` stream that carries one visitor's
/// HTTP/1.1 connection as bytes (see `Hello::http1_streams`).
pub const HTTP1_STREAM: &str = "beam-http1";

/// Set by the tunnel client on a response it generated itself (not the local service),
/// naming why, so the edge can classify the error and count it. Never reaches visitors.
pub const BEAM_ERROR: &str = "beam-error";

/// Why the tunnel client answered for the local service: the value of
/// [`BEAM_ERROR`]. The edge counts it and logs it on the local side, never as
/// the tunnel's or the server's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFailure {
    /// The local service refused the connection or is not listening.
    Refused,
    /// The local service broke the connection or answered with garbage.
    Failed,
}

impl LocalFailure {
    /// The header value.
    pub fn as_header(self) -> &'static str {
        match self {
            Self::Refused => "local-refused",
            Self::Failed => "local-failed",
        }
    }

    /// The failure a header value names; anything unknown is a failure.
    pub fn from_header(value: &[u8]) -> Self {
        match value {
            b"local-refused" => Self::Refused,
            _ => Self::Failed,
        }
    }

    /// The `type` label of `beam_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Refused => "local_refused",
            Self::Failed => "local_failed",
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward, besides any
/// header named in `Connection`.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list above and every
/// header named in `Connection`. Both the edge and the client call this on each hop.
pub fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<http::HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| http::HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    // `TE: trailers` is the one TE value HTTP/2 allows, and gRPC servers
    // require it: it says the client (beam, end to end) accepts trailers.
    let trailers = headers
        .get(http::header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if trailers {
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
}

/// Client-address headers that libraries and CDNs trust, which a visitor
/// could send to claim any address (beam is the first proxy, so none of
/// them can be genuine when they arrive at the edge).
pub const CLIENT_ADDRESS_HEADERS: &[&str] = &[
    FORWARDED,
    REAL_IP,
    "x-forwarded",
    "forwarded-for",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-original-forwarded-for",
];

/// Removes what a visitor could forge to fool the app or beam: `Forwarded`,
/// `X-Forwarded-*`, `X-Real-IP` and the other [`CLIENT_ADDRESS_HEADERS`],
/// and beam's own `beam-*` headers. The edge sets the forwarding headers
/// itself afterwards.
pub fn strip_spoofable(headers: &mut http::HeaderMap) {
    let internal: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("beam-") || k.starts_with("x-forwarded-")
        })
        .cloned()
        .collect();
    for k in internal {
        headers.remove(k);
    }
    for h in CLIENT_ADDRESS_HEADERS {
        headers.remove(*h);
    }
}

/// `cookie` (a `Set-Cookie` value) without its `Domain` attribute when that
/// domain is beam's shared `base` domain (or under it) but not `host` or
/// inside it, which makes the cookie host-only. A custom domain's owner may
/// still set cookies for their own parent domain, which no other tenant can
/// serve. Borrowed when nothing changes.
pub fn confine_cookie<'a>(cookie: &'a str, host: &str, base: &str) -> std::borrow::Cow<'a, str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let base = base.trim_end_matches('.').to_ascii_lowercase();
    let within = |d: &str, parent: &str| d == parent || d.ends_with(&format!(".{parent}"));
    let mut changed = false;
    let kept: Vec<&str> = cookie
        .split(';')
        .enumerate()
        .filter(|(i, attr)| {
            if *i == 0 {
                return true;
            }
            let Some((name, value)) = attr.split_once('=') else {
                return true;
            };
            if !name.trim().eq_ignore_ascii_case("domain") {
                return true;
            }
            let d = value
                .trim()
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            // Shared: beam's domain, or any parent of it (`example` for
            // `beam.example`), which covers the API host and every tenant.
            let shared = within(&d, &base) || within(&base, &d);
            let allowed = within(&d, &host) || !shared;
            changed |= !allowed;
            allowed
        })
        .map(|(_, a)| a)
        .collect();
    if changed {
        std::borrow::Cow::Owned(kept.join(";"))
    } else {
        std::borrow::Cow::Borrowed(cookie)
    }
}

/// Adds `Connection: upgrade` and `Upgrade: websocket`: the HTTP/1.1 form of a
/// WebSocket upgrade, which HTTP/2 (RFC 8441) carries as `:protocol` instead. Both
/// ends of the tunnel restore it on their HTTP/1.1 side.
pub fn set_websocket_upgrade(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_named_ones_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        // `TE: trailers` alone survives: gRPC needs it end to end.
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("Trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn cookies_reaching_beyond_the_tunnel_host_become_host_only() {
        let host = "demo.beam.example";
        for (cookie, want) in [
            (
                "a=1; Path=/; Domain=.beam.example; HttpOnly",
                "a=1; Path=/; HttpOnly",
            ),
            ("a=1; domain=beam.example", "a=1"),
            ("a=1; Domain=api.beam.example", "a=1"),
            ("a=1; Domain=other.beam.example; Secure", "a=1; Secure"),
            ("a=1; Domain=example", "a=1"),
            // Not beam's domain: another site's business (the browser
            // rejects it for this host anyway).
            ("a=1; Domain=unrelated.test", "a=1; Domain=unrelated.test"),
            (
                "a=1; Domain=demo.beam.example; Secure",
                "a=1; Domain=demo.beam.example; Secure",
            ),
            (
                "a=1; Domain=.Demo.Beam.Example",
                "a=1; Domain=.Demo.Beam.Example",
            ),
            (
                "a=1; Domain=x.demo.beam.example",
                "a=1; Domain=x.demo.beam.example",
            ),
            ("a=1; Path=/", "a=1; Path=/"),
            ("a=b=c; Domain=other.beam.example.", "a=b=c"),
        ] {
            assert_eq!(
                confine_cookie(cookie, host, "beam.example"),
                want,
                "{cookie}"
            );
        }
        // A custom domain's owner may scope cookies to their own parent.
        let c = "a=1; Domain=example.com";
        assert_eq!(confine_cookie(c, "app.example.com", "beam.example"), c);
        assert_eq!(
            confine_cookie(
                "a=1; Domain=beam.example",
                "app.example.com",
                "beam.example"
            ),
            "a=1"
        );
    }

    #[test]
    fn forged_forwarding_and_internal_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "1.2.3.4"),
            ("x-client-ip", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("cf-connecting-ip", "1.2.3.4"),
            ("beam-error", "local-refused"),
            ("beam-peer-addr", "1.2.3.4:1"),
            ("x-app", "kept"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        strip_spoofable(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-app"], "kept");
    }
}
