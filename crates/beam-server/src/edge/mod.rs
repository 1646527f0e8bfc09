//! The public edge: accepts visitor HTTP connections, routes each request by `Host`
//! to a tunnel (or to the server's API), and streams it through the tunnel's HTTP/2
//! connection. Bodies are never buffered: frames flow through with backpressure.

pub mod acme;
pub mod error;
pub(crate) mod io;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod visitor;
mod x509;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use beam_proto::headers::{self as bh, strip_hop_by_hop};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::State;
use crate::body::{Body, Capped, Counted, boxed, empty};
use crate::edge::error::{EdgeError, Side};
use crate::edge::visitor::{AuthCheck, Refused};
use crate::registry::Tunnel;
use crate::telemetry::recorder::{Detail, Finisher, Start, client_net, redact_headers};

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

/// Accepts visitor connections until `shutdown`; each connection is served on its
/// own task (after a TLS handshake when `tls` is set), and asked to finish
/// gracefully at shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
    let what = if tls.is_some() { "https" } else { "public" };
    while let Some((stream, peer)) = crate::accept::next(&listener, &shutdown, what).await {
        let state = state.clone();
        let api = api.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        state.tasks.clone().spawn(async move {
            match tls {
                None => serve_conn(state, api, stream, peer, false, shutdown).await,
                Some(acceptor) => {
                    // The handshake gets the same budget as request headers.
                    let limit = state.cfg.header_read_timeout;
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_conn(state, api, tls, peer, true, shutdown).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "visitor TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "visitor TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves HTTP/1.1 on one visitor connection.
async fn serve_conn<IO>(
    state: Arc<State>,
    api: axum::Router,
    io: IO,
    peer: SocketAddr,
    secure: bool,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_state = state.clone();
    let svc = service_fn(move |req| handle(svc_state.clone(), api.clone(), peer, secure, req));
    let (io, watcher) = crate::edge::io::watch(io);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.cfg.header_read_timeout)
        .max_header_size(state.cfg.max_header_bytes)
        .max_headers(128)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            if e.is_timeout() {
                state.metrics.error("header_timeout");
                watcher.timed_out(std::time::Duration::from_secs(1)).await;
            } else {
                tracing::debug!(%peer, error = %e, "visitor connection ended with error");
            }
        },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
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
async fn handle(
    state: Arc<State>,
    api: axum::Router,
    peer: SocketAddr,
    secure: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = new_request_id();
    let mut seen: Option<Start> = None;
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let scheme = if secure { "https" } else { "http" };
    let resp = match host_of(&req) {
        _ if target_len > state.cfg.max_request_line => Err(EdgeError::UriTooLong {
            limit: state.cfg.max_request_line,
        }),
        // ACME challenges are answered on plain HTTP for any host, before routing.
        Some(_) if !secure && req.uri().path().starts_with(ACME_CHALLENGE) => {
            Ok(acme_answer(&state, req.uri().path(), &request_id).await)
        }
        Some((_, raw_host)) if !secure && state.cfg.https_redirect => {
            Ok(https_redirect(&state, &raw_host, &req))
        }
        None => Err(EdgeError::BadHost),
        Some((host, raw_host)) => match route(&host, &state.cfg.domain) {
            Route::Api => match crate::api::call(api, peer, req).await {
                Ok(resp) => Ok(resp),
                Err(never) => match never {},
            },
            Route::Tunnel(name) => match state.registry.http(&name) {
                Some(t) => {
                    let visitor = Visitor {
                        peer,
                        scheme,
                        raw_host,
                    };
                    proxy(&state, visitor, &t, &request_id, req, &mut seen).await
                }
                None => Err(EdgeError::NoTunnel {
                    host: format!("{name}.{}", state.cfg.domain),
                }),
            },
            // Not ours by name: maybe a verified custom domain.
            Route::Unknown => match state.registry.domain(&host) {
                Some(t) => {
                    if !secure
                        && let Some(tx) = &state.acme_tx
                        && !state.edge_certs.has(&host)
                    {
                        // Plain-HTTP traffic to a custom domain also starts issuance.
                        let _ = tx.try_send(host.clone());
                    }
                    let visitor = Visitor {
                        peer,
                        scheme,
                        raw_host,
                    };
                    proxy(&state, visitor, &t, &request_id, req, &mut seen).await
                }
                None => Err(EdgeError::NoTunnel { host }),
            },
        },
    };
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
    state
        .metrics
        .request(&method, status, elapsed.as_secs_f64());
    let resp = match seen {
        Some(seen) => resp.map(|b| {
            boxed(Counted::new(
                b,
                Finisher::new(
                    state.recorder.clone(),
                    seen,
                    status,
                    elapsed.as_micros() as i64,
                ),
            ))
        }),
        None => resp,
    };
    Ok(resp)
}

/// A random 128-bit request id in hex.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Is this an HTTP/1.1 WebSocket upgrade request?
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Proxies a request through `tunnel`. Fills `seen` once the request counts for
/// the tunnel's analytics.
/// Who is asking, and how they reached the edge.
struct Visitor {
    peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    scheme: &'static str,
    /// `Host` as the visitor sent it (port included, user-info removed).
    raw_host: String,
}

async fn proxy(
    state: &Arc<State>,
    visitor: Visitor,
    tunnel: &Tunnel,
    request_id: &str,
    mut req: Request<Incoming>,
    seen: &mut Option<Start>,
) -> Result<Response<Body>, EdgeError> {
    let Visitor {
        peer,
        scheme,
        raw_host,
    } = visitor;
    let name = tunnel.name.to_string();
    let name = name.as_str();
    if req.method() == Method::CONNECT {
        return Err(EdgeError::Connect);
    }
    if tunnel.is_paused() {
        return Err(EdgeError::Paused { name: name.into() });
    }
    if state.over_quota(tunnel.org_id) {
        return Err(EdgeError::OverQuota { name: name.into() });
    }
    let policy = &tunnel.policy;
    let refused = |r: Refused| match r {
        Refused::Address => EdgeError::AddressRefused { name: name.into() },
        Refused::Rate { scope, retry_after } => EdgeError::RateLimited {
            name: name.into(),
            scope,
            retry_after,
        },
        Refused::Streams => EdgeError::TooManyStreams { name: name.into() },
    };
    let admitted = policy.admit(peer.ip()).and_then(|p| {
        crate::edge::visitor::check_token(&state.token_limiter, tunnel.token_id).map(|()| p)
    });
    let permit = match admitted {
        Ok(p) => p,
        Err(r @ Refused::Rate { .. }) => {
            // Tarpit: a flooding client (one request per connection at a time)
            // gets one refusal per connection per delay, so refusing it costs the
            // edge almost nothing and other tunnels keep their CPU.
            tokio::time::sleep(state.cfg.rate_limit_delay).await;
            return Err(refused(r));
        }
        Err(r) => return Err(refused(r)),
    };
    if let Some((status, headers)) = policy.preflight(req.method(), req.headers()) {
        let mut resp = Response::new(empty());
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        return Ok(resp);
    }
    if policy.needs_auth() {
        match policy
            .authorize(
                req.headers(),
                peer.ip(),
                &state.visitor_hashes,
                state.org_hashes.of(tunnel.org_id),
            )
            .await
        {
            AuthCheck::Granted => {}
            AuthCheck::Denied => {
                return Err(EdgeError::Unauthorized {
                    name: name.into(),
                    challenges: policy.challenges(&format!("beam tunnel {name}")),
                });
            }
            AuthCheck::Throttled(retry_after) => {
                return Err(EdgeError::RateLimited {
                    name: name.into(),
                    scope: "failed-credentials",
                    retry_after,
                });
            }
            AuthCheck::Busy(retry_after) => {
                return Err(EdgeError::AuthBusy {
                    name: name.into(),
                    retry_after,
                });
            }
        }
        // The credential was for beam, not for the app behind it.
        req.headers_mut().remove(header::AUTHORIZATION);
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let too_large = Arc::new(AtomicBool::new(false));
    if let Some(limit) = policy.max_body {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(EdgeError::BodyTooLarge { limit });
        }
    }
    let tally = if state.recorder.enabled() {
        let ts = crate::store::now_ms();
        // Only sampled requests pay for copying path and headers.
        let detail = state.recorder.sample(ts).then(|| Detail {
            method: req.method().as_str().to_string(),
            path: req.uri().path().chars().take(512).collect(),
            client_net: client_net(peer.ip()),
            headers: redact_headers(req.headers()),
        });
        let bytes_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
        *seen = Some(Start {
            tunnel_id: tunnel.id,
            org_id: tunnel.org_id,
            ts,
            detail,
            bytes_in: bytes_in.clone(),
        });
        Some(bytes_in)
    } else {
        None
    };
    let upgrade = is_websocket_upgrade(req.headers());
    if upgrade && !policy.upgrade_allowed(origin.as_ref()) {
        return Err(EdgeError::OriginRefused { name: name.into() });
    }
    let visitor_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    set_forwarded(&mut parts.headers, peer, scheme, &raw_host, request_id);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(raw_host.as_str())
        .path_and_query(path)
        .build()
        .map_err(|_| EdgeError::BadHost)?;
    parts.version = Version::HTTP_2;
    parts.extensions = http::Extensions::new();
    let body = if upgrade {
        // RFC 8441 extended CONNECT carries the WebSocket over one HTTP/2 stream.
        parts.method = Method::CONNECT;
        parts
            .extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        empty()
    } else {
        let counted = Counted::new(body, (state.metrics.bytes_in(), tally));
        match policy.max_body {
            Some(limit) => boxed(Capped::new(counted, limit, too_large.clone())),
            None => boxed(counted),
        }
    };

    let mut sender = tunnel.sender.clone();
    let timeout = state.cfg.upstream_timeout;
    let sent = tokio::time::timeout(
        timeout,
        sender.send_request(Request::from_parts(parts, body)),
    );
    let mut resp = match sent.await {
        Err(_) => {
            return Err(EdgeError::Timeout {
                name: name.into(),
                secs: timeout.as_secs(),
            });
        }
        Ok(Err(e)) => {
            if let Some(limit) = policy
                .max_body
                .filter(|_| too_large.load(Ordering::Relaxed))
            {
                return Err(EdgeError::BodyTooLarge { limit });
            }
            tracing::debug!(error = %e, "tunnel stream failed");
            return Err(EdgeError::TunnelGone { name: name.into() });
        }
        Ok(Ok(r)) => r,
    };

    if let Some(kind) = resp.headers_mut().remove(bh::BEAM_ERROR) {
        let kind = match kind.as_bytes() {
            b"local-refused" => "local_refused",
            _ => "local_failed",
        };
        state.metrics.error(kind);
        tracing::warn!(request_id, tunnel = name, kind, "local service error");
    }
    strip_hop_by_hop(resp.headers_mut());
    let host_only = raw_host
        .rsplit_once(':')
        .map_or(raw_host.as_str(), |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw_host.as_str()
            }
        });
    confine_cookies(resp.headers_mut(), host_only, &state.cfg.domain);
    policy.apply_cors(origin.as_ref(), resp.headers_mut());
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(bh::REQUEST_ID, v);
    }

    if let Some(visitor_upgrade) = visitor_upgrade {
        if resp.status() != StatusCode::OK {
            return Ok(resp.map(boxed));
        }
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
            // A WebSocket occupies one of the tunnel's streams until it closes.
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
        return Ok(Response::from_parts(parts, empty()));
    }

    let out = state.metrics.bytes_out();
    Ok(resp.map(|b| boxed(Counted::new(b, (out, permit)))))
}

/// Sets what the app may trust about the visitor: `X-Forwarded-For`,
/// `X-Real-IP`, `X-Forwarded-Proto/-Host` and the request id, each overwriting
/// whatever the visitor sent. The visitor's own `Forwarded` and beam's
/// internal `beam-*` headers are removed, so no header an app reads for the
/// client address or beam's signals can be forged from outside. beam is the
/// first proxy a visitor reaches, so the chain starts here.
fn set_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    scheme: &str,
    raw_host: &str,
    request_id: &str,
) {
    bh::strip_spoofable(headers);
    let ip = peer.ip().to_string();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(bh::FORWARDED_FOR, &ip);
    set(bh::REAL_IP, &ip);
    set(bh::FORWARDED_PROTO, scheme);
    set(bh::FORWARDED_HOST, raw_host);
    set(bh::REQUEST_ID, request_id);
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
