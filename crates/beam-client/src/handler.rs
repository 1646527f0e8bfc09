//! The seam between a tunnel connection and whatever answers its streams: the
//! local proxy for `beam http` and `beam tcp`, the production agent's services
//! for `beam agent`. The connection never needs to know which one it carries.

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;

/// Boxed error for bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type every handler answers with.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Answers the streams the server opens on a tunnel connection (visitor
/// requests, WebSockets, TCP connections, or calls to an agent's services).
///
/// Cloned once per stream, so clones should be cheap (an `Arc` or a few of them).
pub trait StreamHandler: Clone + Send + Sync + 'static {
    /// Serves one stream. Never fails: errors become responses, because a
    /// failed stream must not take the whole tunnel connection down.
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|n| match n {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed_unsync()
}

/// A response with `code` and no body.
pub fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}
