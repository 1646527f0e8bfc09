//! One visitor request through a tunnel, in the order it happens:
//! admit (tunnel state, visitor policy, credentials, declared size) → record
//! (analytics) → forward (rewrite and send on the tunnel's HTTP/2 connection)
//! → finish (response headers, or the WebSocket splice).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use beam_proto::headers::{self as bh, LocalFailure, strip_hop_by_hop};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::error::EdgeError;
use super::link::LinkError;
use super::visitor::{AuthCheck, Refused, StreamPermit};
use crate::body::{Body, Capped, Counted, boxed, empty};
use crate::registry::Tunnel;
use crate::state::State;
use crate::telemetry::recorder::{Detail, Start, client_net, redact_headers};

/// One visitor connection, as every request on it sees it.
pub(super) struct VisitorConn {
    pub(super) peer: SocketAddr,
    /// Arrived over TLS.
    pub(super) secure: bool,
    /// HTTP/2: many requests at once, so none of them owns a byte stream.
    pub(super) multiplexed: bool,
    /// Node-to-node hops it took to get here: a visitor connection arrives
    /// with 0; a forwarded one is forwarded again (its tunnel moved on
    /// meanwhile) only up to `cluster::MAX_HOPS`, so a stale view of where
    /// a tunnel is can never bounce a request around.
    pub(super) hops: u8,
    /// This connection's byte stream to a tunnel client, when the tunnel
    /// takes visitor connections as streams.
    pub(super) link: super::link::LinkSlot,
    /// This connection's link to another node, for tunnels held there.
    pub(super) node_link: crate::cluster::link::NodeLink,
}

/// Who is asking, and how they reached the edge.
pub(super) struct Visitor {
    pub(super) peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub(super) scheme: &'static str,
    /// `Host` as the visitor sent it (port included, user-info removed).
    pub(super) raw_host: String,
    /// The connection the request came on.
    pub(super) conn: Arc<VisitorConn>,
}

/// Proxies a request through `tunnel`. Fills `seen` once the request counts for
/// the tunnel's analytics.
pub(super) async fn proxy(
    state: &Arc<State>,
    visitor: Visitor,
    tunnel: &Tunnel,
    request_id: &str,
    mut req: Request<Incoming>,
    seen: &mut Option<Start>,
) -> Result<Response<Body>, EdgeError> {
    let permit = match admit(state, &visitor, tunnel, &mut req).await? {
        Admission::Answered(resp) => return Ok(resp),
        Admission::Forward(permit) => permit,
    };
    let tally = record(state, &visitor, tunnel, &req, seen);
    let origin = req.headers().get(header::ORIGIN).cloned();
    let upgrade = is_websocket_upgrade(req.headers());
    if upgrade && !tunnel.policy.cors.upgrade_allowed(origin.as_ref()) {
        return Err(EdgeError::OriginRefused {
            name: tunnel.name.to_string(),
        });
    }
    let visitor_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let id = id_header(request_id);
    let resp = forward(state, &visitor, tunnel, &id, req, upgrade, tally).await?;
    let resp = finish_headers(state, &visitor, tunnel, &id, resp, origin.as_ref());
    match visitor_upgrade {
        Some(on) if resp.status() == StatusCode::OK => Ok(splice_websocket(
            state, tunnel, request_id, on, resp, permit,
        )),
        Some(_) => Ok(resp.map(boxed)),
        None => {
            let out = state.metrics.bytes_out();
            Ok(resp.map(|b| boxed(Counted::new(b, (out, permit)))))
        }
    }
}

/// The edge's decision on a request before it reaches the tunnel.
enum Admission {
    /// Answered at the edge (a CORS preflight).
    Answered(Response<Body>),
    /// Goes through, holding one of the tunnel's stream slots.
    Forward(StreamPermit),
}

/// Checks the tunnel's state, the visitor policy, the client token's rate and
/// the credentials. Removes the credential beam checked, which was for beam,
/// not for the app behind it.
async fn admit(
    state: &State,
    visitor: &Visitor,
    tunnel: &Tunnel,
    req: &mut Request<Incoming>,
) -> Result<Admission, EdgeError> {
    let name = || tunnel.name.to_string();
    if req.method() == Method::CONNECT {
        return Err(EdgeError::Connect);
    }
    if tunnel.is_paused() {
        return Err(EdgeError::Paused { name: name() });
    }
    if state.over_quota(tunnel.org_id) {
        return Err(EdgeError::OverQuota { name: name() });
    }
    let policy = &tunnel.policy;
    let admitted = policy.admit(visitor.peer.ip()).and_then(|p| {
        super::visitor::check_token(&state.token_limiter, tunnel.token_id).map(|()| p)
    });
    let permit = match admitted {
        Ok(p) => p,
        Err(r @ Refused::Rate { .. }) => {
            // Tarpit: a flooding client (one request per connection at a time)
            // gets one refusal per connection per delay, so refusing it costs the
            // edge almost nothing and other tunnels keep their CPU.
            tokio::time::sleep(state.cfg.rate_limit_delay).await;
            return Err(refused(r, name()));
        }
        Err(r) => return Err(refused(r, name())),
    };
    if let Some((status, headers)) = policy.cors.preflight(req.method(), req.headers()) {
        let mut resp = Response::new(empty());
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        return Ok(Admission::Answered(resp));
    }
    if policy.credentials.needs_auth() {
        authorize(state, visitor, tunnel, req.headers()).await?;
        req.headers_mut().remove(header::AUTHORIZATION);
    }
    if let Some(limit) = policy.max_body {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(EdgeError::BodyTooLarge { limit });
        }
    }
    Ok(Admission::Forward(permit))
}

/// The edge error for a policy refusal.
fn refused(r: Refused, name: String) -> EdgeError {
    match r {
        Refused::Address => EdgeError::AddressRefused { name },
        Refused::Rate { scope, retry_after } => EdgeError::RateLimited {
            name,
            scope,
            retry_after,
        },
        Refused::Streams => EdgeError::TooManyStreams { name },
    }
}

/// Checks `--auth` / `--bearer` credentials.
async fn authorize(
    state: &State,
    visitor: &Visitor,
    tunnel: &Tunnel,
    headers: &HeaderMap,
) -> Result<(), EdgeError> {
    let credentials = &tunnel.policy.credentials;
    let check = credentials
        .authorize(
            headers,
            visitor.peer.ip(),
            &state.visitor_hashes,
            state.org_hashes.of(tunnel.org_id),
        )
        .await;
    let name = tunnel.name.to_string();
    match check {
        AuthCheck::Granted => Ok(()),
        AuthCheck::Denied => Err(EdgeError::Unauthorized {
            challenges: credentials.challenges(&format!("beam tunnel {name}")),
            name,
        }),
        AuthCheck::Throttled(retry_after) => Err(EdgeError::RateLimited {
            name,
            scope: "failed-credentials",
            retry_after,
        }),
        AuthCheck::Busy(retry_after) => Err(EdgeError::AuthBusy { name, retry_after }),
    }
}

/// Starts the request's analytics record (when analytics are on) and returns
/// the counter its body bytes go to. Only sampled requests pay for copying
/// path and headers.
fn record(
    state: &State,
    visitor: &Visitor,
    tunnel: &Tunnel,
    req: &Request<Incoming>,
    seen: &mut Option<Start>,
) -> Option<Arc<AtomicU64>> {
    if !state.recorder.enabled() {
        return None;
    }
    let ts = crate::store::now_ms();
    let detail = state.recorder.sample(ts).then(|| Detail {
        method: req.method().as_str().to_string(),
        path: req.uri().path().chars().take(512).collect(),
        client_net: client_net(visitor.peer.ip()),
        headers: redact_headers(req.headers()),
    });
    let bytes_in = Arc::new(AtomicU64::new(0));
    *seen = Some(Start {
        tunnel_id: tunnel.id,
        org_id: tunnel.org_id,
        ts,
        detail,
        bytes_in: bytes_in.clone(),
    });
    Some(bytes_in)
}

/// Rewrites the request for the tunnel (forwarding headers, absolute URI,
/// HTTP/2, extended CONNECT for WebSockets) and sends it, waiting at most the
/// upstream timeout for response headers.
async fn forward(
    state: &State,
    visitor: &Visitor,
    tunnel: &Tunnel,
    request_id: &HeaderValue,
    req: Request<Incoming>,
    upgrade: bool,
    tally: Option<Arc<AtomicU64>>,
) -> Result<Response<Incoming>, EdgeError> {
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, visitor, request_id);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // The visitor's connection as a byte stream (HTTP/1.1 on the wire,
    // origin-form, Host as sent), or one HTTP/2 stream for this request.
    let ticket = (tunnel.http1_streams && !upgrade && !visitor.conn.multiplexed)
        .then(|| visitor.conn.link.ticket(tunnel))
        .flatten();
    let stream = ticket.is_some();
    if stream {
        let host = HeaderValue::from_str(&visitor.raw_host).map_err(|_| EdgeError::BadHost)?;
        parts.headers.insert(header::HOST, host);
        parts.uri = Uri::from(path);
        parts.version = Version::HTTP_11;
    } else {
        parts.headers.remove(header::HOST);
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(visitor.raw_host.as_str())
            .path_and_query(path)
            .build()
            .map_err(|_| EdgeError::BadHost)?;
        parts.version = Version::HTTP_2;
    }
    parts.extensions = http::Extensions::new();
    let max_body = tunnel.policy.max_body;
    let too_large = Arc::new(AtomicBool::new(false));
    let body = if upgrade {
        // RFC 8441 extended CONNECT carries the WebSocket over one HTTP/2 stream.
        parts.method = Method::CONNECT;
        parts
            .extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        empty()
    } else {
        let counted = Counted::new(body, (state.metrics.bytes_in(), tally));
        match max_body {
            Some(limit) => boxed(Capped::new(counted, limit, too_large.clone())),
            None => boxed(counted),
        }
    };
    let req = Request::from_parts(parts, body);
    let timeout = state.cfg.upstream_timeout;
    let sent = if let Some(ticket) = ticket {
        let slot = &visitor.conn.link;
        let link = super::link::send(tunnel, slot, ticket, &visitor.raw_host, req);
        tokio::time::timeout(timeout, link).await
    } else {
        let h2 = tunnel.sender.clone().send_request(req);
        tokio::time::timeout(timeout, async { h2.await.map_err(LinkError::Tunnel) }).await
    };
    let name = || tunnel.name.to_string();
    match sent {
        Ok(Ok(r)) => Ok(r),
        Err(_) => Err(EdgeError::Timeout {
            name: name(),
            secs: timeout.as_secs(),
        }),
        Ok(Err(_)) if max_body.is_some() && too_large.load(Ordering::Relaxed) => {
            Err(EdgeError::BodyTooLarge {
                limit: max_body.unwrap_or_default(),
            })
        }
        Ok(Err(LinkError::Tunnel(e))) => {
            tracing::debug!(error = %e, "tunnel stream failed");
            Err(EdgeError::TunnelGone { name: name() })
        }
        Ok(Err(LinkError::Broken(e))) => {
            tracing::debug!(error = %e, "visitor link broke");
            Err(EdgeError::LocalClosed { name: name() })
        }
    }
}

/// What the visitor may see of the response headers: hop-by-hop headers and
/// beam's own signal removed, cookies confined to the tunnel's host, CORS
/// applied, the request id added.
fn finish_headers(
    state: &State,
    visitor: &Visitor,
    tunnel: &Tunnel,
    request_id: &HeaderValue,
    mut resp: Response<Incoming>,
    origin: Option<&HeaderValue>,
) -> Response<Incoming> {
    if let Some(value) = resp.headers_mut().remove(bh::BEAM_ERROR) {
        let kind = LocalFailure::from_header(value.as_bytes()).kind();
        state.metrics.error(kind);
        tracing::warn!(request_id = request_id.to_str().unwrap_or(""), tunnel = %tunnel.name, kind, "local service error");
    }
    strip_hop_by_hop(resp.headers_mut());
    let raw_host = visitor.raw_host.as_str();
    let host_only = raw_host.rsplit_once(':').map_or(raw_host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            raw_host
        }
    });
    confine_cookies(resp.headers_mut(), host_only, &state.cfg.domain);
    tunnel.policy.cors.apply(origin, resp.headers_mut());
    resp.headers_mut()
        .insert(bh::REQUEST_ID, request_id.clone());
    resp
}

/// Answers `101` and splices the visitor's connection with the tunnel stream
/// once both sides upgrade. The WebSocket holds one of the tunnel's stream
/// slots until it closes.
fn splice_websocket(
    state: &State,
    tunnel: &Tunnel,
    request_id: &str,
    visitor_upgrade: OnUpgrade,
    mut resp: Response<Incoming>,
    permit: StreamPermit,
) -> Response<Body> {
    let tunnel_upgrade = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    parts.status = StatusCode::SWITCHING_PROTOCOLS;
    parts.version = Version::HTTP_11;
    beam_proto::headers::set_websocket_upgrade(&mut parts.headers);
    let (bytes_in, bytes_out) = (state.metrics.bytes_in(), state.metrics.bytes_out());
    let request_id = request_id.to_string();
    let (recorder, tunnel_id, org_id) = (state.recorder.clone(), tunnel.id, tunnel.org_id);
    let idle = state.cfg.idle_timeout;
    state.tasks.spawn(async move {
        let _permit = permit;
        let (visitor, tunnel) = match tokio::try_join!(visitor_upgrade, tunnel_upgrade) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(request_id, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let (mut v, mut t) = (TokioIo::new(visitor), TokioIo::new(tunnel));
        let done = beam_proto::splice_idle(&mut v, &mut t, idle).await;
        bytes_in.inc_by(done.up);
        bytes_out.inc_by(done.down);
        recorder.add_bytes(tunnel_id, org_id, done.up, done.down);
        if let Err(e) = done.result {
            tracing::debug!(request_id, error = %e, "websocket stream ended");
        }
    });
    Response::from_parts(parts, empty())
}

/// Is this an HTTP/1.1 WebSocket upgrade request?
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Sets what the app may trust about the visitor: `X-Forwarded-For`,
/// `X-Real-IP`, `X-Forwarded-Proto/-Host` and the request id, each overwriting
/// whatever the visitor sent. The visitor's own `Forwarded` and beam's
/// internal `beam-*` headers are removed, so no header an app reads for the
/// client address or beam's signals can be forged from outside. beam is the
/// first proxy a visitor reaches, so the chain starts here.
fn set_forwarded(headers: &mut HeaderMap, visitor: &Visitor, request_id: &HeaderValue) {
    bh::strip_spoofable(headers);
    let ip = visitor.peer.ip().to_string();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(bh::FORWARDED_FOR, &ip);
    set(bh::REAL_IP, &ip);
    set(bh::FORWARDED_PROTO, visitor.scheme);
    set(bh::FORWARDED_HOST, &visitor.raw_host);
    headers.insert(bh::REQUEST_ID, request_id.clone());
}

/// The request id as a header value, made once and shared by the request and
/// the response. Marked sensitive so HPACK sends it as a never-indexed literal:
/// a value that changes on every request would otherwise evict the tunnel
/// connection's stable table entries each time.
fn id_header(request_id: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(request_id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    v.set_sensitive(true);
    v
}

/// Makes every `Set-Cookie` of a tunnel's response host-only when its
/// `Domain=` reaches beyond the tunnel's own host: tenants share the parent
/// domain, and a cookie for `.<domain>` would be sent to the API host and to
/// every other tenant's tunnel.
fn confine_cookies(headers: &mut HeaderMap, host: &str, base: &str) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    // A value that is not text (bytes ≥ 0x80) cannot be checked: it is
    // dropped rather than passed on with whatever `Domain` it carries.
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| match v.to_str() {
            Ok(s) => match bh::confine_cookie(s, host, base) {
                std::borrow::Cow::Borrowed(_) => Some(v.clone()),
                std::borrow::Cow::Owned(c) => HeaderValue::from_str(&c).ok(),
            },
            Err(_) => None,
        })
        .collect();
    headers.remove(header::SET_COOKIE);
    for c in cookies {
        headers.append(header::SET_COOKIE, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_values_that_are_not_text_are_dropped() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_bytes(b"a=\xff; Domain=.beam.example").unwrap(),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("b=1; Domain=.beam.example"),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("c=1"));
        confine_cookies(&mut h, "demo.beam.example", "beam.example");
        let left: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, ["b=1", "c=1"]);
    }
}
