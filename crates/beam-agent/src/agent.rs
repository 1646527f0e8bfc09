//! The production agent's built-in services, served on its tunnel connection
//! instead of a local port. The server has already checked the caller's token
//! and scope.
//! - `GET /logs?…` streams the log buffer as NDJSON, filtered here (in
//!   production) by the query.
//! - `GET /flags`, `GET /flags/eval?key=K&user=U`: feature flags.
//! - `POST /env/check`: verdicts per variable name, never values.
//! - `GET /health`: real probes of production.

use std::sync::Arc;

use beam_client::handler::{Body, StreamHandler, full};
use beam_proto::logs::LogQuery;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::envcheck::{CheckRequest, EnvPolicy};
use crate::flags::{Flag, FlagSource};
use crate::health::HealthProbes;
use crate::logs::{LogBuffer, LogReader};
use crate::sync::{Chunk, SyncError, SyncQuery, SyncSource};

/// Most `in=` values in one sync request.
const MAX_IN: usize = 1000;

use beam_proto::service as route;
pub use beam_proto::service::SYNC_TOTAL_HEADER;

/// Lines already waiting are sent together, up to this many bytes per frame.
const BATCH: usize = 64 * 1024;

/// What the agent serves.
#[derive(Clone)]
pub struct AgentServices {
    /// The log buffer the capture side fills.
    pub logs: Arc<LogBuffer>,
    /// Where feature flags come from.
    pub flags: FlagSource,
    /// Which variables `beam env check` may compare.
    pub env: EnvPolicy,
    /// What `beam health` probes.
    pub health: HealthProbes,
    /// Sanitized rows for `beam sync`, when configured.
    pub sync: Option<Arc<SyncSource>>,
}

/// Largest `POST /env/check` body.
const MAX_ENV_BODY: usize = 256 * 1024;

impl std::fmt::Debug for AgentServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentServices").finish_non_exhaustive()
    }
}

fn text(status: StatusCode, msg: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(msg));
    *r.status_mut() = status;
    r
}

/// A refused schema request is the caller's mistake (400); anything else
/// failed in production (502).
fn sync_failure(e: SyncError) -> Response<Body> {
    match e {
        SyncError::Refused(m) => text(StatusCode::BAD_REQUEST, format!("{m}\n")),
        e => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

/// A streamed NDJSON answer with one header of the service contract.
fn ndjson<S>(frames: S, name: &'static str, value: http::HeaderValue) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Send + 'static,
{
    let mut resp = Response::new(
        StreamBody::new(frames)
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut().insert(name, value);
    resp
}

fn json_reply(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = text(status, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl AgentServices {
    /// Services over `logs` with nothing else configured.
    pub fn new(logs: Arc<LogBuffer>, environment: impl Into<String>) -> Self {
        Self {
            logs,
            flags: FlagSource::default(),
            env: EnvPolicy::default(),
            health: HealthProbes {
                database: None,
                app_url: None,
                environment: environment.into(),
                started: tokio::time::Instant::now(),
            },
            sync: None,
        }
    }
}

impl StreamHandler for AgentServices {
    /// Serves one request from the server.
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let query = req.uri().query().unwrap_or("").to_string();
        match (req.method(), req.uri().path()) {
            (&Method::GET, route::LOGS) => self.logs(&query),
            (&Method::GET, route::FLAGS) => self.flags(),
            (&Method::GET, route::FLAGS_EVAL) => self.evaluate(&query),
            (&Method::POST, route::ENV_CHECK) => self.env_check(req.into_body()).await,
            (&Method::GET, route::HEALTH) => {
                json_reply(StatusCode::OK, &self.health.run(&self.logs).await)
            }
            (&Method::GET, route::SYNC) => self.sync(&query).await,
            (&Method::GET, route::SYNC_SUGGEST) => self.suggest(&query).await,
            (&Method::GET, route::SYNC_RELATIONS) => self.relations(&query).await,
            (_, p) if route::is_route(p) => text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("this agent serves {}\n", route::routes_text()),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                format!("this agent serves {}\n", route::routes_text()),
            ),
        }
    }
}

impl AgentServices {
    /// The flags, or the status and message that explain why there are none.
    fn load_flags(&self) -> Result<std::collections::BTreeMap<String, Flag>, (StatusCode, String)> {
        if !self.flags.is_configured() {
            return Err((
                StatusCode::NOT_FOUND,
                "no feature flags on this agent: start it with --flags-file or --flags-env-prefix\n"
                    .into(),
            ));
        }
        self.flags.load().map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("flags could not be read in production: {e}\n"),
            )
        })
    }

    fn flags(&self) -> Response<Body> {
        match self.load_flags() {
            Ok(f) => json_reply(StatusCode::OK, &f.into_values().collect::<Vec<_>>()),
            Err((status, msg)) => text(status, msg),
        }
    }

    fn evaluate(&self, raw: &str) -> Response<Body> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(key) = get("key") else {
            return text(StatusCode::BAD_REQUEST, "key is required\n");
        };
        let flags = match self.load_flags() {
            Ok(f) => f,
            Err((status, msg)) => return text(status, msg),
        };
        match flags.get(&crate::flags::normalize_key(key)) {
            Some(flag) => json_reply(StatusCode::OK, &crate::flags::evaluate(flag, get("user"))),
            None => text(StatusCode::NOT_FOUND, format!("no flag '{key}'\n")),
        }
    }

    /// The sync source, or the 404 that says how to turn it on.
    fn sync_source(&self) -> Result<Arc<SyncSource>, Box<Response<Body>>> {
        self.sync.clone().ok_or_else(|| {
            Box::new(text(
                StatusCode::NOT_FOUND,
                "sync is off on this agent: start it with --sync-policy and --database-env\n",
            ))
        })
    }

    /// The sync source and the `table` a schema request names.
    fn sync_table(&self, raw: &str) -> Result<(Arc<SyncSource>, String), Box<Response<Body>>> {
        let src = self.sync_source()?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        match pairs.into_iter().find(|(k, _)| k == "table") {
            Some((_, table)) => Ok((src, table)),
            None => Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                "table is required\n",
            ))),
        }
    }

    async fn relations(&self, raw: &str) -> Response<Body> {
        let (src, table) = match self.sync_table(raw) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        match src.relations(&table).await {
            Ok(r) => json_reply(StatusCode::OK, &r),
            Err(e) => sync_failure(e),
        }
    }

    async fn suggest(&self, raw: &str) -> Response<Body> {
        let (src, table) = match self.sync_table(raw) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        match src.suggest_policy(&table).await {
            Ok(t) => text(StatusCode::OK, t),
            Err(e) => sync_failure(e),
        }
    }

    /// Streams sanitized rows as NDJSON. Policy refusals are a 400 before the
    /// first row; a failure after it ends the stream with `{"error": …}`.
    async fn sync(&self, raw: &str) -> Response<Body> {
        let src = match self.sync_source() {
            Ok(s) => s,
            Err(r) => return *r,
        };
        let q = match sync_query(raw) {
            Ok(q) => q,
            Err(m) => return text(StatusCode::BAD_REQUEST, format!("{m}\n")),
        };
        // Held until the stream ends: production serves at most this many
        // table scans at once, whoever asks.
        let Some(permit) = src.db.try_sync() else {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this agent is already serving {} syncs (its limit, --db-max-syncs); try again shortly\n",
                    src.db.limits().max_syncs
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
            return r;
        };
        // Chunks of ~64 KiB; a slow reader slows the query (bounded channel).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk, SyncError>>(8);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = src.stream(&q, &tx, BATCH).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        // The stream starts with the row count, or with the refusal.
        let total = match rx.recv().await {
            Some(Ok(Chunk::Total(n))) => n,
            Some(Err(SyncError::Refused(m))) => {
                return text(StatusCode::BAD_REQUEST, format!("{m}\n"));
            }
            Some(Err(e)) => return text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            Some(Ok(Chunk::Data(_))) | None => {
                return text(StatusCode::BAD_GATEWAY, "the sync ended before it began\n");
            }
        };
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let frame = match rx.recv().await? {
                Ok(Chunk::Data(b)) => Frame::data(b),
                Ok(Chunk::Total(_)) => Frame::data(Bytes::new()),
                Err(e) => {
                    let line = serde_json::json!({ "error": e.to_string() }).to_string() + "\n";
                    Frame::data(Bytes::from(line))
                }
            };
            Some((Ok::<_, std::convert::Infallible>(frame), rx))
        });
        ndjson(stream, SYNC_TOTAL_HEADER, http::HeaderValue::from(total))
    }

    async fn env_check(&self, body: Incoming) -> Response<Body> {
        let bytes = match http_body_util::Limited::new(body, MAX_ENV_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("at most {MAX_ENV_BODY} bytes\n"),
                );
            }
        };
        let req: CheckRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        match crate::envcheck::check(&req, &self.env, |n| std::env::var(n).ok()) {
            Ok(v) => json_reply(StatusCode::OK, &serde_json::json!({ "results": v })),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
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
        let epoch = http::HeaderValue::from(self.logs.epoch());
        ndjson(stream, beam_proto::logs::EPOCH_HEADER, epoch)
    }
}

/// Parses `table=&limit=&select=a,b&where=col=value` (repeatable `where`).
fn sync_query(raw: &str) -> Result<SyncQuery, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|e| format!("query string: {e}"))?;
    let mut q = SyncQuery::default();
    for (k, v) in pairs {
        match k.as_str() {
            "table" => q.table = v,
            // Clamped to what SQL's BIGINT holds.
            "limit" => {
                q.limit = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("limit '{v}' is not a number"))?
                        .min(i64::MAX as u64),
                )
            }
            "select" => {
                q.select = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "skip" => {
                q.skip = v
                    .parse::<u64>()
                    .map_err(|_| format!("skip '{v}' is not a number"))?
                    .min(i64::MAX as u64)
            }
            "in" => {
                let (c, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("in '{v}' is not COLUMN=VALUE"))?;
                q.any_of.push((c.trim().to_string(), val.to_string()));
                if q.any_of.len() > MAX_IN {
                    return Err(format!("at most {MAX_IN} `in` values per request"));
                }
            }
            "where" => {
                let (c, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--where '{v}' is not COLUMN=VALUE"))?;
                q.filters.push((c.trim().to_string(), val.to_string()));
            }
            other => return Err(format!("unknown sync parameter '{other}'")),
        }
    }
    if q.table.is_empty() {
        return Err("table is required".into());
    }
    Ok(q)
}

fn push_line(buf: &mut BytesMut, line: &beam_proto::logs::LogLine) {
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, line).is_ok() {
        w.get_mut().put_u8(b'\n');
    }
}
