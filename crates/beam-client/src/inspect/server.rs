//! The inspector's web server: the page, its assets and the JSON API, on a
//! loopback address by default. Only requests naming the inspector's own
//! address in `Host` are answered (a DNS-rebinding page cannot read it), and
//! requests that change something must come from its own page (`Origin`,
//! `Sec-Fetch-Site`), so another site open in the browser cannot replay or
//! clear anything.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;

use super::json::{exchange_json, har, summary_json};
use super::record::{Recorder, Update};
use super::replay::Replayer;
use crate::handler::{Body, full};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Largest replay-with-changes body accepted (a replayed body may be up to
/// the capture cap, base64 or not, plus the JSON around it).
const MAX_REPLAY_JSON: usize = 8 << 20;

/// What the inspector serves; `R` sends replays (the local proxy).
#[derive(Clone)]
pub struct Inspector<R> {
    rec: Arc<Recorder>,
    proxy: R,
    /// `Host` values it answers to.
    hosts: Arc<Hosts>,
}

/// The `Host` values the inspector answers to: its own address, `localhost`
/// at its port when it listens on loopback, and, when it listens on every
/// address (`--inspect 0.0.0.0:4040`), any IP address at its port. A DNS
/// rebinding page always arrives with a host *name*, so IP literals are safe
/// to accept; names other than `localhost` never are.
#[derive(Debug)]
struct Hosts {
    names: Vec<String>,
    any_ip_at: Option<u16>,
}

impl Hosts {
    fn new(addr: SocketAddr) -> Self {
        let port = addr.port();
        let mut names = vec![addr.to_string()];
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            names.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        Self {
            names,
            any_ip_at: addr.ip().is_unspecified().then_some(port),
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.names.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self
                .any_ip_at
                .is_some_and(|port| host.parse::<SocketAddr>().is_ok_and(|a| a.port() == port))
    }

    /// An `Origin` of a page the inspector served itself.
    fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.allows(host))
    }
}

impl<R: Replayer> Inspector<R> {
    /// An inspector of `rec`, replaying through `proxy`, answering requests
    /// addressed to `addr` (and `localhost` at its port when it is loopback).
    pub fn new(rec: Arc<Recorder>, proxy: R, addr: SocketAddr) -> Self {
        Self {
            rec,
            proxy,
            hosts: Arc::new(Hosts::new(addr)),
        }
    }

    /// Serves `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors, most likely: try again shortly.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return,
            };
            tokio::spawn(self.clone().serve_connection(stream));
        }
    }

    /// Serves one connection (HTTP/1.1) until it closes: what `serve` does
    /// with each accepted socket, and what the fuzzer drives in memory.
    pub async fn serve_connection<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.answer(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        let mut resp = match self.check(&req) {
            Err(refusal) => refusal,
            Ok(()) => self.route(req).await,
        };
        let h = resp.headers_mut();
        for (name, value) in beam_web::security_headers(CSP) {
            h.insert(name, HeaderValue::from_static(value));
        }
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        resp
    }

    /// DNS-rebinding and cross-site checks.
    #[allow(clippy::result_large_err)]
    fn check(&self, req: &Request<Incoming>) -> Result<(), Response<Body>> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.allows(host) {
            return Err(error(
                StatusCode::FORBIDDEN,
                &format!(
                    "the inspector only answers requests addressed to {} (DNS-rebinding protection); this one said Host: {host:?}",
                    self.hosts.names[0]
                ),
            ));
        }
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            return Ok(());
        }
        let origin_ok = match req.headers().get(header::ORIGIN) {
            None => true,
            Some(o) => self.hosts.allows_origin(o.to_str().unwrap_or("")),
        };
        let site_ok = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin" || v == "none");
        if !origin_ok || !site_ok {
            return Err(error(
                StatusCode::FORBIDDEN,
                "cross-site requests cannot change the inspector; use its own page or a script without an Origin",
            ));
        }
        Ok(())
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method().clone(), segments.as_slice()) {
            (Method::GET, [""]) => asset(PAGE, "text/html; charset=utf-8"),
            (Method::GET, ["app.js"]) => asset(SCRIPT, "text/javascript; charset=utf-8"),
            (Method::GET, ["base.css"]) => asset(beam_web::BASE_CSS, "text/css; charset=utf-8"),
            (Method::GET, ["app.css"]) => asset(STYLE, "text/css; charset=utf-8"),
            (Method::GET, ["api", "requests"]) => {
                let limit = param(&query, "limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(50usize);
                let list: Vec<Value> = self
                    .rec
                    .list(limit)
                    .iter()
                    .map(|e| exchange_json(e))
                    .collect();
                json_response(StatusCode::OK, &Value::Array(list))
            }
            (Method::GET, ["api", "summary"]) => {
                let limit = param(&query, "limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(500usize);
                let list: Vec<Value> = self
                    .rec
                    .list(limit)
                    .iter()
                    .map(|e| summary_json(&e.summary()))
                    .collect();
                json_response(StatusCode::OK, &Value::Array(list))
            }
            (Method::DELETE, ["api", "requests"]) => {
                self.rec.clear();
                json_response(StatusCode::OK, &json!({ "cleared": true }))
            }
            (Method::GET, ["api", "requests", "events"]) => self.events(),
            (Method::GET, ["api", "har"]) => {
                let list = self.rec.list(usize::MAX);
                download(&har(&list), "beam-requests.har")
            }
            (Method::GET, ["api", "requests", id]) => match self.find(id) {
                Ok(ex) => json_response(StatusCode::OK, &exchange_json(&ex)),
                Err(r) => r,
            },
            (Method::GET, ["api", "requests", id, "har"]) => match self.find(id) {
                Ok(ex) => download(
                    &har(std::slice::from_ref(&ex)),
                    &format!("beam-request-{}.har", ex.id),
                ),
                Err(r) => r,
            },
            (Method::POST, ["api", "requests", id, "replay"]) => match self.find(id) {
                Ok(ex) => self.replay(&ex, req).await,
                Err(r) => r,
            },
            (_, ["api", ..]) => error(
                StatusCode::NOT_FOUND,
                &format!("no such API route: {} {path}", req.method()),
            ),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    #[allow(clippy::result_large_err)]
    fn find(&self, id: &str) -> Result<Arc<super::record::Exchange>, Response<Body>> {
        let Ok(n) = id.parse::<u64>() else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("request ids are numbers, not {id:?}"),
            ));
        };
        self.rec.get(n).ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                &format!("request {n} is not kept (cleared, or pushed out by newer ones)"),
            )
        })
    }

    /// `POST /api/requests/{id}/replay`, with optional changes.
    async fn replay(&self, ex: &super::record::Exchange, req: Request<Incoming>) -> Response<Body> {
        let json_body = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let raw = match Limited::new(req.into_body(), MAX_REPLAY_JSON)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("replay changes are limited to {MAX_REPLAY_JSON} bytes"),
                );
            }
        };
        let changes: super::replay::Changes = if raw.is_empty() {
            Default::default()
        } else if !json_body {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the changes as JSON (Content-Type: application/json)",
            );
        } else {
            match serde_json::from_slice(&raw) {
                Ok(c) => c,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("the changes are not valid JSON: {e}"),
                    );
                }
            }
        };
        let request = match super::replay::build(ex, changes) {
            Ok(r) => r,
            Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, &why),
        };
        match self.proxy.replay(request, ex.id).await {
            Some(id) => json_response(
                StatusCode::CREATED,
                &json!({ "id": id, "replay_of": ex.id }),
            ),
            None => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the replay was not recorded (is the inspector off?)",
            ),
        }
    }

    /// `GET /api/requests/events`: server-sent events, one `request` event
    /// per recorded exchange (its summary) and `clear` when the list is
    /// emptied; `reload` when this reader fell behind and missed some.
    fn events(&self) -> Response<Body> {
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(64);
        let mut updates = self.rec.subscribe();
        tokio::spawn(async move {
            let every = Duration::from_secs(15);
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // A first line at once, so the browser knows it is connected.
            if tx
                .send_data(Bytes::from_static(b": connected\n\n"))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let chunk = tokio::select! {
                    u = updates.recv() => match u {
                        Ok(Update::Recorded(ex)) => format!("event: request\ndata: {}\n\n", summary_json(&ex)),
                        Ok(Update::Cleared) => "event: clear\ndata: {}\n\n".to_string(),
                        Err(RecvError::Lagged(_)) => "event: reload\ndata: {}\n\n".to_string(),
                        Err(RecvError::Closed) => return,
                    },
                    _ = ping.tick() => ": ping\n\n".to_string(),
                };
                if tx.send_data(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
        });
        let mut resp = Response::new(body.map_err(|n| match n {}).boxed_unsync());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        resp
    }
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn download(v: &Value, name: &str) -> Response<Body> {
    let mut resp = json_response(StatusCode::OK, v);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::Hosts;

    #[test]
    fn only_its_own_address_and_ip_literals_on_an_open_listener_are_answered() {
        let lo = Hosts::new("127.0.0.1:4040".parse().unwrap());
        for ok in [
            "127.0.0.1:4040",
            "localhost:4040",
            "LOCALHOST:4040",
            "[::1]:4040",
        ] {
            assert!(lo.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:4040",
            "127.0.0.1:4041",
            "192.168.1.5:4040",
            "",
            "localhost",
        ] {
            assert!(!lo.allows(bad), "{bad}");
        }
        assert!(lo.allows_origin("http://localhost:4040"));
        assert!(!lo.allows_origin("https://localhost:4040"));
        assert!(!lo.allows_origin("http://evil.example:4040"));

        // Listening on every address: reachable by IP from the network, still
        // never by a name (DNS rebinding).
        let open = Hosts::new("0.0.0.0:4040".parse().unwrap());
        for ok in [
            "192.168.1.5:4040",
            "10.0.0.2:4040",
            "[fe80::1]:4040",
            "localhost:4040",
        ] {
            assert!(open.allows(ok), "{ok}");
        }
        for bad in ["laptop.local:4040", "192.168.1.5:80", "evil.example:4040"] {
            assert!(!open.allows(bad), "{bad}");
        }
    }
}
