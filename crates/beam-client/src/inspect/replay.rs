//! Builds the request a replay sends: the recorded one, with the changes
//! the user made (method, path, headers, body).

use base64::Engine;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;

use super::record::Exchange;

/// Sends a request again to the local service and records it as a replay
/// of exchange `of`; answers the new exchange's id once its response has
/// ended. The local proxy does this (it owns the connections and the
/// capture); the inspector only asks.
pub trait Replayer: Clone + Send + Sync + 'static {
    /// Sends `req`; `None` when nothing was recorded.
    fn replay(
        &self,
        req: Request<Full<Bytes>>,
        of: u64,
    ) -> impl std::future::Future<Output = Option<u64>> + Send;
}

/// What `POST /api/requests/{id}/replay` may change; anything left out is
/// sent as recorded.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Another method.
    pub method: Option<String>,
    /// Another path and query (starting with `/`).
    pub path: Option<String>,
    /// Every header, replacing the recorded ones: `[[name, value], …]`.
    pub headers: Option<Vec<(String, String)>>,
    /// Another body, as text.
    pub body: Option<String>,
    /// Another body, as base64 (binary).
    pub body_base64: Option<String>,
}

/// Headers a replay never copies: the body's framing is recomputed, and
/// connection-level ones belong to the original connection.
const DROPPED: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// The request to send, or why it cannot be sent.
pub fn build(ex: &Exchange, changes: Changes) -> Result<Request<Full<Bytes>>, String> {
    let method = changes.method.as_deref().unwrap_or(&ex.method);
    let method = Method::from_bytes(method.trim().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let path = changes.path.as_deref().unwrap_or(&ex.path);
    if !path.starts_with('/') {
        return Err(format!("the path must start with '/', not {path:?}"));
    }
    let uri: Uri = path
        .parse()
        .map_err(|e| format!("{path:?} is not a valid path: {e}"))?;
    let body = match (changes.body, changes.body_base64) {
        (Some(_), Some(_)) => return Err("give `body` or `body_base64`, not both".into()),
        (Some(text), None) => Bytes::from(text),
        (None, Some(b64)) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("body_base64 is not base64: {e}"))?,
        ),
        (None, None) if ex.request.body.truncated() => {
            return Err(format!(
                "the recorded body was cut at {} of its {} bytes, so it cannot be sent again as it was; replay with changes that give the whole body",
                ex.request.body.bytes.len(),
                ex.request.body.size
            ));
        }
        (None, None) => Bytes::from(ex.request.body.bytes.clone()),
    };
    let headers: Vec<(String, Vec<u8>)> = match changes.headers {
        Some(h) => h.into_iter().map(|(n, v)| (n, v.into_bytes())).collect(),
        None => ex.request.headers.clone(),
    };
    let method_name = method.as_str().to_string();
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let map = req.headers_mut();
    for (name, value) in headers {
        if DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            continue;
        }
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let v = HeaderValue::from_bytes(&value).map_err(|_| {
            format!("the value of header {name:?} has characters a header cannot carry")
        })?;
        map.append(n, v);
    }
    if !body.is_empty() || matches!(method_name.as_str(), "POST" | "PUT" | "PATCH") {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::record::Building;

    fn recorded(body: &[u8], cap: usize) -> Exchange {
        let mut b = Building::new(
            "POST",
            "/hook?x=1",
            vec![
                ("Host".into(), b"app.example".to_vec()),
                ("Content-Length".into(), body.len().to_string().into_bytes()),
                ("X-Sig".into(), b"abc".to_vec()),
            ],
            cap,
        );
        b.ex.request.body.push(body);
        b.finish(None)
    }

    #[test]
    fn a_replay_sends_the_recorded_request_or_the_changes() {
        let ex = recorded(b"{\"a\":1}", 1024);
        let req = build(&ex, Changes::default()).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/hook?x=1");
        assert_eq!(req.headers()["x-sig"], "abc");
        assert_eq!(req.headers()["content-length"], "7");
        let req = build(
            &ex,
            Changes {
                method: Some("PUT".into()),
                path: Some("/other".into()),
                headers: Some(vec![("X-New".into(), "1".into())]),
                body: Some("changed".into()),
                body_base64: None,
            },
        )
        .unwrap();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/other");
        assert!(req.headers().get("x-sig").is_none());
        assert_eq!(req.headers()["content-length"], "7");
    }

    #[test]
    fn bad_changes_and_truncated_bodies_are_refused_with_the_reason() {
        let ex = recorded(&[b'x'; 100], 10);
        let e = build(&ex, Changes::default()).unwrap_err();
        assert!(e.contains("10 of its 100 bytes"), "{e}");
        let ok = recorded(b"", 10);
        for (changes, says) in [
            (
                Changes {
                    path: Some("http://evil/".into()),
                    ..Default::default()
                },
                "must start with '/'",
            ),
            (
                Changes {
                    method: Some("GE T".into()),
                    ..Default::default()
                },
                "not an HTTP method",
            ),
            (
                Changes {
                    headers: Some(vec![("bad name".into(), "v".into())]),
                    ..Default::default()
                },
                "not a valid header name",
            ),
            (
                Changes {
                    body_base64: Some("***".into()),
                    ..Default::default()
                },
                "not base64",
            ),
        ] {
            let e = build(&ok, changes).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
