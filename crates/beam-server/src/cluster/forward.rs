//! A visitor request for a tunnel another node holds. The visitor's
//! connection gets a link to that node: one extended `CONNECT` stream on the
//! node connection, carrying HTTP/1.1, which the holder serves exactly like
//! a visitor connection of its own (visitor policy, rate limits, analytics
//! and WebSocket upgrades all happen there, once). Keep-alive requests of
//! the same visitor connection reuse the link.
//!
//! This node only routes: it never reads a body, so bodies stream both ways
//! with backpressure, and a WebSocket becomes a byte splice once both sides
//! switched protocols.

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::link::NodeLink;
use super::wire::{NODE_HOPS, NODE_PEER, NODE_SECURE, VISITOR};
use crate::body::{Body, boxed, empty};
use crate::state::State;

/// What became of a request.
pub(crate) enum Forwarded {
    /// The holder answered (or the exchange failed after the request was
    /// sent, which cannot be retried).
    Answered(Result<Response<Body>, hyper::Error>),
    /// Nothing was sent: the node could not be reached, or no longer holds
    /// the tunnel. The request comes back for another try.
    NotSent(Request<Incoming>),
}

/// The visitor as the holder must see it.
#[derive(Clone, Copy)]
pub(crate) struct From<'a> {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) secure: bool,
    /// HTTP/2: requests run in parallel, so none may keep the link.
    pub(crate) multiplexed: bool,
    /// Node-to-node hops the visitor connection already took.
    pub(crate) hops: u8,
    pub(crate) link: &'a NodeLink,
}

/// Sends `req` for `host` (lower-cased; `raw_host` as the visitor sent it)
/// to node `node` at `addr`.
pub(crate) async fn forward(
    state: &State,
    visitor: From<'_>,
    (node, addr): (&str, &str),
    (host, raw_host): (&str, &str),
    mut req: Request<Incoming>,
) -> Forwarded {
    let Some(cluster) = &state.cluster else {
        return Forwarded::NotSent(req);
    };
    let start = Instant::now();
    // A kept link is used when it is still open; otherwise a new one.
    let mut kept = None;
    if !visitor.multiplexed
        && let Some(mut s) = visitor.link.take(node, host)
        && s.ready().await.is_ok()
    {
        kept = Some(s);
    }
    let mut sender = match kept {
        Some(s) => s,
        None => match open(state, node, addr, raw_host, &visitor).await {
            Ok(Some(mut s)) => match s.ready().await {
                Ok(()) => s,
                Err(_) => return Forwarded::NotSent(req),
            },
            Ok(None) => return Forwarded::NotSent(req),
            Err(e) => {
                tracing::debug!(node, error = %e, "forwarding link failed");
                cluster.peers.forget(node);
                return Forwarded::NotSent(req);
            }
        },
    };
    let upgrade = crate::edge::proxy::is_websocket_upgrade(req.headers());
    let visitor_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let resp = match sender.send_request(as_http1(req, raw_host)).await {
        Ok(r) => r,
        Err(e) => return Forwarded::Answered(Err(e)),
    };
    state
        .metrics
        .forwarded(resp.status().as_u16(), start.elapsed().as_secs_f64());
    match visitor_upgrade {
        Some(on) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Forwarded::Answered(Ok(splice(state, on, resp)))
        }
        _ => {
            if !visitor.multiplexed {
                visitor.link.put(node, host, sender);
            }
            Forwarded::Answered(Ok(resp.map(boxed)))
        }
    }
}

/// Why no link was opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Peer(#[from] super::peers::PeerError),
    #[error("stream to the node: {0}")]
    Stream(#[from] hyper::Error),
}

/// Opens a link to `node`: `Ok(None)` when it answers that it does not hold
/// the tunnel (any more).
async fn open(
    state: &State,
    node: &str,
    addr: &str,
    raw_host: &str,
    visitor: &From<'_>,
) -> Result<Option<http1::SendRequest<Body>>, OpenError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let mut h2 = cluster.peers.sender(node, addr).await?;
    let mut req = Request::new(empty());
    *req.method_mut() = Method::CONNECT;
    *req.version_mut() = Version::HTTP_2;
    // The holder routes by this authority, exactly as its own edge would.
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(raw_host)
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| Uri::from_static("http://invalid/"));
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static(VISITOR));
    let h = req.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&visitor.peer.to_string()) {
        h.insert(NODE_PEER, v);
    }
    h.insert(NODE_HOPS, u16::from(visitor.hops + 1).into());
    h.insert(
        NODE_SECURE,
        HeaderValue::from_static(if visitor.secure { "1" } else { "0" }),
    );
    let mut resp = h2.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        return Ok(None);
    }
    let io = hyper::upgrade::on(&mut resp).await?;
    let (sender, conn) = http1::handshake(io).await?;
    tokio::spawn(async move {
        // Errors reach the request that was on the link.
        let _ = conn.with_upgrades().await;
    });
    Ok(Some(sender))
}

/// The request as HTTP/1.1 on the link: origin-form target, `Host` as the
/// visitor sent it (an HTTP/2 visitor's `:authority`).
fn as_http1(req: Request<Incoming>, raw_host: &str) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path);
    parts.version = Version::HTTP_11;
    if let Ok(v) = HeaderValue::from_str(raw_host) {
        parts.headers.insert(header::HOST, v);
    }
    parts.extensions = http::Extensions::new();
    Request::from_parts(parts, boxed(body))
}

/// Answers `101` to the visitor and splices its connection with the link
/// once both have switched protocols.
fn splice(
    state: &State,
    visitor: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
) -> Response<Body> {
    let link = hyper::upgrade::on(&mut resp);
    let idle = state.cfg.idle_timeout;
    state.tasks.spawn(async move {
        let (v, l) = match tokio::try_join!(visitor, link) {
            Ok(pair) => pair,
            Err(e) => return tracing::debug!(error = %e, "forwarded upgrade failed"),
        };
        let (mut v, mut l) = (TokioIo::new(v), TokioIo::new(l));
        let done = beam_proto::splice_idle(&mut v, &mut l, idle).await;
        if let Err(e) = done.result {
            tracing::debug!(error = %e, "forwarded upgraded stream ended");
        }
    });
    resp.map(|_| empty())
}
