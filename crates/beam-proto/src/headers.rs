//! Header names with a meaning between the edge, the tunnel client and the local service.

/// Request id assigned by the edge; sent to the local service and back to the visitor.
pub const REQUEST_ID: &str = "x-request-id";
/// Visitor IP, appended per RFC 7239's de-facto predecessor.
pub const FORWARDED_FOR: &str = "x-forwarded-for";
/// `http` or `https`, as the visitor reached the edge.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The `Host` the visitor asked for.
pub const FORWARDED_HOST: &str = "x-forwarded-host";

/// On a TCP tunnel's `CONNECT` stream: the visitor's `ip:port`.
pub const PEER_ADDR: &str = "beam-peer-addr";
/// On a TCP tunnel's `CONNECT` stream: the public `ip:port` the visitor reached.
pub const PUBLIC_ADDR: &str = "beam-public-addr";

/// Set by the tunnel client on a response it generated itself (not the local service),
/// naming why, so the edge can classify the error and count it. Never reaches visitors.
pub const BEAM_ERROR: &str = "beam-error";

/// Values of [`BEAM_ERROR`].
pub mod beam_error {
    /// The local service refused the connection or is not listening.
    pub const LOCAL_REFUSED: &str = "local-refused";
    /// The local service broke the connection or answered with garbage.
    pub const LOCAL_FAILED: &str = "local-failed";
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
    for name in HOP_BY_HOP {
        headers.remove(*name);
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
        h.insert("te", HeaderValue::from_static("trailers"));
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    }
}
