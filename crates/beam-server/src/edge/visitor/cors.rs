//! Opt-in CORS for a tunnel (`--cors`): preflights answered at the edge,
//! allowed origins echoed on responses, and WebSocket upgrades from other
//! browser origins refused.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

/// Which origins CORS answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cors {
    /// CORS is the app's business: headers pass through untouched.
    Off,
    /// Any origin (`--cors '*'`).
    Any,
    /// Exactly these origins (lower-case `scheme://host[:port]`).
    Origins(Vec<String>),
}

impl Cors {
    /// Whether CORS is handled at the edge for this tunnel.
    pub(crate) fn enabled(&self) -> bool {
        *self != Cors::Off
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        match self {
            Cors::Off => None,
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let o = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&o).then(|| origin.clone())
            }
        }
    }

    /// Whether a WebSocket upgrade from this `Origin` may proceed: with an
    /// allowlist set, a browser origin must be on it. Requests without `Origin`
    /// (non-browser clients) pass; CORS cannot protect against those.
    pub(crate) fn upgrade_allowed(&self, origin: Option<&HeaderValue>) -> bool {
        match (self, origin) {
            (Cors::Off | Cors::Any, _) | (_, None) => true,
            (Cors::Origins(_), Some(_)) => self.allow_origin(origin).is_some(),
        }
    }

    /// Answers a CORS preflight at the edge: 204 with the allow headers for an
    /// allowed origin, 403 otherwise. `None` when this is not a preflight or CORS
    /// is off (the request goes to the app).
    pub(crate) fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<(StatusCode, HeaderMap)> {
        if !self.enabled()
            || method != Method::OPTIONS
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut out = HeaderMap::new();
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allow) = self.allow_origin(headers.get(header::ORIGIN)) else {
            return Some((StatusCode::FORBIDDEN, out));
        };
        let credentials = allow != "*";
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        if let Some(h) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        Some((StatusCode::NO_CONTENT, out))
    }

    /// Adds CORS headers to a response for an allowed origin (replacing the
    /// app's own, since the operator opted in to edge CORS).
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
        if !self.enabled() {
            return;
        }
        resp.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(allow) = self.allow_origin(origin) {
            if allow != "*" {
                resp.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        }
    }
}

pub(super) fn parse_cors(list: &[String]) -> Result<Cors, String> {
    if list.is_empty() {
        return Ok(Cors::Off);
    }
    if list.iter().any(|o| o.trim() == "*") {
        return Ok(Cors::Any);
    }
    let mut out = Vec::new();
    for o in list {
        let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && o.parse::<http::Uri>().is_ok_and(|u| {
                u.host().is_some() && u.path_and_query().is_none_or(|p| p.as_str() == "/")
            });
        if !ok {
            return Err(format!(
                "--cors: '{o}' is not an origin: use scheme://host[:port], e.g. https://app.example.com, or '*'"
            ));
        }
        out.push(o);
    }
    Ok(Cors::Origins(out))
}
