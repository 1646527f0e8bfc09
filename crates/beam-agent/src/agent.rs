//! The production agent's built-in services, served on its tunnel connection
//! instead of a local port: `GET /logs?…` streams the log buffer as NDJSON,
//! filtered here (in production) by the query. The server has already checked
//! the reader's token and scope.

use std::sync::Arc;

use beam_proto::logs::LogQuery;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::logs::{LogBuffer, LogReader};
use crate::proxy::Body;

/// Lines already waiting are sent together, up to this many bytes per frame.
const BATCH: usize = 64 * 1024;

/// What the agent serves.
#[derive(Clone)]
pub struct AgentServices {
    /// The log buffer the capture side fills.
    pub logs: Arc<LogBuffer>,
}

impl std::fmt::Debug for AgentServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentServices").finish_non_exhaustive()
    }
}

fn text(status: StatusCode, msg: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        http_body_util::Full::new(msg.into())
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

impl AgentServices {
    /// Serves one request from the server.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/logs") => self.logs(req.uri().query().unwrap_or("")),
            (_, "/logs") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET /logs\n"),
            _ => text(StatusCode::NOT_FOUND, "this agent serves /logs\n"),
        }
    }

    fn logs(&self, raw: &str) -> Response<Body> {
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(raw) {
            Ok(p) => p,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("query string: {e}\n")),
        };
        let query = match LogQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            Ok(q) => q,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        let reader = match self.logs.reader(&query) {
            Ok(r) => r,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        let stream = futures_util::stream::unfold(reader, |mut reader: LogReader| async move {
            let first = reader.next().await?;
            let mut buf = BytesMut::with_capacity(512);
            push_line(&mut buf, &first);
            // Whatever is already waiting goes in the same frame.
            while buf.len() < BATCH {
                match reader.next().now_or_never() {
                    Some(Some(line)) => push_line(&mut buf, &line),
                    _ => break,
                }
            }
            Some((
                Ok::<_, std::convert::Infallible>(Frame::data(buf.freeze())),
                reader,
            ))
        });
        let mut resp = Response::new(
            StreamBody::new(stream)
                .map_err(|n| match n {})
                .boxed_unsync(),
        );
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-ndjson"),
        );
        resp.headers_mut().insert(
            beam_proto::logs::EPOCH_HEADER,
            http::HeaderValue::from(self.logs.epoch()),
        );
        resp
    }
}

fn push_line(buf: &mut BytesMut, line: &beam_proto::logs::LogLine) {
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, line).is_ok() {
        w.get_mut().put_u8(b'\n');
    }
}
