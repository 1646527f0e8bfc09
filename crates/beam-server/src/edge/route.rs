//! Routing a visitor request by its host: the server's API, a tunnel's
//! subdomain, a verified custom domain, or nothing. ACME HTTP-01 challenges and
//! the HTTPS redirect are answered here, before any tunnel is involved.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::error::{EdgeError, Side};
use super::proxy::{Visitor, VisitorConn, proxy};
use super::span::Traced;
use crate::body::{Body, Counted, boxed, empty};
use crate::cluster::{Elsewhere, Target};
use crate::state::State;
use crate::store::NameKind;
use crate::telemetry::recorder::{Finisher, Start};

/// Where a request goes, decided from its host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The server's own API.
    Api,
    /// A tunnel subdomain.
    Tunnel(String),
    /// Nothing here.
    Unknown,
}

/// Routes a lower-cased host without port.
pub(crate) fn route(host: &str, domain: &str) -> Route {
    if host == domain || host.strip_prefix("api.") == Some(domain) {
        return Route::Api;
    }
    match host.strip_suffix(domain).and_then(|h| h.strip_suffix('.')) {
        Some(label) if !label.is_empty() && !label.contains('.') => Route::Tunnel(label.into()),
        _ => Route::Unknown,
    }
}

/// The request's host, lower-cased, port and trailing dot removed. Absolute-form
/// URIs win over the `Host` header, as RFC 9112 §3.2.2 says.
pub(crate) fn host_of<B>(req: &Request<B>) -> Option<(String, String)> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().to_string(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_string(),
    };
    let authority: http::uri::Authority = raw.parse().ok()?;
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    // Rebuilt from host and port so user-info (`user:pass@`) never travels on.
    let raw = match authority.port_u16() {
        Some(p) => format!("{}:{p}", authority.host()),
        None => authority.host().to_string(),
    };
    Some((host, raw))
}

/// Path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3).
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Answers an HTTP-01 challenge from the store, so any node can answer for
/// an order another node started.
async fn acme_answer(state: &State, path: &str, request_id: &str) -> Response<Body> {
    let token = &path[ACME_CHALLENGE.len()..];
    let found = match state.store.challenge(token, crate::store::now_ms()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "challenge lookup failed");
            None
        }
    };
    match found {
        Some(answer) => {
            let mut resp = Response::new(crate::body::full(answer));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        None => crate::edge::error::error_response(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nNo ACME challenge with this token.\n".into(),
            request_id,
        ),
    }
}

/// `308` to the same URL on HTTPS.
fn https_redirect(state: &State, raw_host: &str, req: &Request<Incoming>) -> Response<Body> {
    let host = raw_host
        .parse::<http::uri::Authority>()
        .map_or_else(|_| raw_host.to_string(), |a| a.host().to_string());
    let port = state
        .cfg
        .https_port
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Serves one visitor request. Never fails: every error becomes a response.
pub(super) async fn handle(
    state: Arc<State>,
    api: axum::Router,
    conn: Arc<VisitorConn>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = new_request_id();
    let mut seen: Option<Start> = None;
    let mut span: Option<Traced> = None;
    let resp = dispatch(&state, api, &conn, req, &request_id, &mut seen, &mut span).await;
    let resp = resp.unwrap_or_else(|e| {
        state.metrics.error(e.kind());
        match e.side() {
            Side::Visitor => tracing::debug!(request_id, error = %e, "visitor error"),
            _ => tracing::warn!(request_id, side = ?e.side(), error = %e, "edge error"),
        }
        e.response(&request_id)
    });
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    if let (Some(span), Some(tracer)) = (span, &state.tracer) {
        span.finish(tracer, status, &state.node_id);
    }
    state
        .metrics
        .request(&method, status, elapsed.as_secs_f64());
    // A request that reached a tunnel is recorded once its response body ends.
    Ok(match seen {
        Some(seen) => {
            let done = Finisher::new(
                state.recorder.clone(),
                seen,
                status,
                elapsed.as_micros() as i64,
            );
            resp.map(|b| boxed(Counted::new(b, done)))
        }
        None => resp,
    })
}

/// Decides who answers: limits and ACME first, then the host's route.
async fn dispatch(
    state: &Arc<State>,
    api: axum::Router,
    conn: &Arc<VisitorConn>,
    mut req: Request<Incoming>,
    request_id: &str,
    seen: &mut Option<Start>,
    span: &mut Option<Traced>,
) -> Result<Response<Body>, EdgeError> {
    let (peer, secure) = (conn.peer, conn.secure);
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > state.cfg.max_request_line {
        return Err(EdgeError::UriTooLong {
            limit: state.cfg.max_request_line,
        });
    }
    let (host, raw_host) = host_of(&req).ok_or(EdgeError::BadHost)?;
    // ACME challenges are answered on plain HTTP for any host, before routing.
    if !secure && req.uri().path().starts_with(ACME_CHALLENGE) {
        return Ok(acme_answer(state, req.uri().path(), request_id).await);
    }
    if !secure && state.cfg.https_redirect {
        return Ok(https_redirect(state, &raw_host, &req));
    }
    let route = route(&host, &state.cfg.domain);
    if req.uri().path() == beam_proto::WS_CARRIER_PATH
        && super::proxy::is_websocket_upgrade(req.headers())
        && is_servers_own(state, &route, &host)
    {
        return super::carrier::accept(state, conn, req);
    }
    if route != Route::Api
        && let Some(tracer) = &state.tracer
    {
        *span = Traced::start(tracer, &mut req, conn.hops, &host, peer.ip());
    }
    let forwarded = |span: &mut Option<Traced>| {
        if let Some(s) = span {
            s.forwarded = true;
        }
    };
    let tunnel = match route {
        Route::Api => match crate::api::call(api, (peer, secure), req).await {
            Ok(resp) => return Ok(resp),
            Err(never) => match never {},
        },
        Route::Tunnel(name) => {
            let target = Target::Name(NameKind::Subdomain, name);
            match locate(state, conn, target, (&host, &raw_host), req).await? {
                Elsewhere::Answered(resp) => {
                    forwarded(span);
                    return Ok(resp);
                }
                Elsewhere::Here(t, r) => {
                    req = r;
                    t
                }
            }
        }
        // Not ours by name: maybe a verified custom domain.
        Route::Unknown => {
            let target = Target::Domain(host.clone());
            let t = match locate(state, conn, target, (&host, &raw_host), req).await? {
                Elsewhere::Answered(resp) => {
                    forwarded(span);
                    return Ok(resp);
                }
                Elsewhere::Here(t, r) => {
                    req = r;
                    t
                }
            };
            if !secure
                && let Some(tx) = &state.acme_tx
                && !state.edge_certs.has(&host)
            {
                // Plain-HTTP traffic to a custom domain also starts issuance.
                let _ = tx.try_send(host);
            }
            t
        }
    };
    let visitor = Visitor {
        peer,
        scheme: if secure { "https" } else { "http" },
        raw_host,
        conn: conn.clone(),
    };
    proxy(state, visitor, &tunnel, request_id, req, seen).await
}

/// The tunnel for `target` on this node, or, in a cluster, the answer of
/// the node that holds it (see `cluster::elsewhere`).
async fn locate(
    state: &State,
    conn: &VisitorConn,
    target: Target,
    (host, raw_host): (&str, &str),
    req: Request<Incoming>,
) -> Result<Elsewhere, EdgeError> {
    if let Some(t) = crate::cluster::held_here(state, &target) {
        return Ok(Elsewhere::Here(t, req));
    }
    if conn.hops >= crate::cluster::MAX_HOPS || state.cluster.is_none() {
        return Err(EdgeError::NoTunnel {
            host: host.to_string(),
        });
    }
    let from = crate::cluster::From {
        peer: conn.peer,
        secure: conn.secure,
        multiplexed: conn.multiplexed,
        hops: conn.hops,
        link: &conn.node_link,
    };
    crate::cluster::elsewhere(state, from, target, (host, raw_host), req).await
}

/// Whether `host` names the server itself (its API host, or a name that is
/// neither a tunnel nor a custom domain), where the tunnel carrier lives: a
/// tenant's own `/_beam/tunnel` path stays theirs.
fn is_servers_own(state: &State, route: &Route, host: &str) -> bool {
    match route {
        Route::Api => true,
        Route::Tunnel(_) => false,
        Route::Unknown => state.registry.domain(host).is_none(),
    }
}

/// A random 128-bit request id in hex.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host_ignoring_case_and_port() {
        assert_eq!(route("localhost", "localhost"), Route::Api);
        assert_eq!(route("api.localhost", "localhost"), Route::Api);
        assert_eq!(
            route("demo.localhost", "localhost"),
            Route::Tunnel("demo".into())
        );
        assert_eq!(route("a.b.localhost", "localhost"), Route::Unknown);
        assert_eq!(route("demolocalhost", "localhost"), Route::Unknown);
        assert_eq!(route("example.com", "localhost"), Route::Unknown);
        let req = Request::get("/")
            .header("host", "Demo.LocalHost.:8080")
            .body(())
            .unwrap();
        assert_eq!(host_of(&req).unwrap().0, "demo.localhost");
    }
}
