//! The parity routes under `/api/projects/{project}/{environment}/`: logs,
//! flags, env check, health and sync, each relayed to the environment's
//! production agent. The server checks scopes and organization, then relays;
//! filters run on the agent, in production, and nothing the agent's policy
//! hides reaches the server.

use std::sync::Arc;

use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beam_proto::logs::LogQuery;
use beam_proto::service as route;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Path};
use crate::accounts::scope::Scope;
use crate::audit::Entry;
use crate::state::State;
use crate::store::EnvironmentRow;

use super::projects::find_env;
use crate::parity::fanout;
use crate::parity::logmerge::{Joiner, Merge, Source};
use crate::parity::replicas::{AgentRequest, CallError, Replica, replicas};

/// Streams the environment's production logs as NDJSON, merged over every
/// agent replica in time order: the last `tail` matching entries, then new
/// ones while `follow` (default). Each line is a log entry stamped with its
/// `instance`, `{"dropped": N, "instance": …}`, `{"joined": NAME, "epoch": E}`
/// or `{"left": NAME, "reason": …}`. Resume after a disconnect with
/// `cursor=INSTANCE:EPOCH:SEQ,…` (or, with one replica, `after=<last seq>`).
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/logs", tag = "projects",
    security(("bearer" = [])),
    params(("project" = String, Path), ("environment" = String, Path),
        ("level" = Option<String>, Query, description = "trace, debug, info, warn, error or fatal: that level and above"),
        ("only_level" = Option<bool>, Query, description = "match `level` exactly"),
        ("service" = Option<String>, Query), ("grep" = Option<String>, Query, description = "regular expression on the message"),
        ("since" = Option<i64>, Query, description = "unix ms"), ("tail" = Option<u32>, Query),
        ("follow" = Option<bool>, Query), ("after" = Option<u64>, Query, description = "resume after this seq"),
        ("epoch" = Option<u64>, Query, description = "the `beam-log-epoch` header of the stream `after` came from"),
        ("instance" = Option<String>, Query, description = "only this agent replica"),
        ("cursor" = Option<String>, Query, description = "resume a merged stream: INSTANCE:EPOCH:SEQ,… (epochs from the `beam-log-instances` header and `joined` lines); replicas not named send what they logged since `since`")),
    responses((status = 200, description = "NDJSON log lines", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn logs(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    // Who read which lines: the filters, then (when the stream ends) how
    // long it was open and how many lines it carried.
    let entry = Entry::by(&auth.0, "logs")
        .env(&project, &environment)
        .with("filters", query_fields(raw.as_deref(), LOG_FILTERS));
    let result = open_logs(&state, auth, project, environment, raw).await;
    state.audit.streamed(entry, "lines", result)
}

/// The query fields of a log request worth recording (not resume positions).
const LOG_FILTERS: &[&str] = &[
    "level",
    "only_level",
    "service",
    "grep",
    "since",
    "tail",
    "follow",
    "instance",
];

/// `raw`'s fields named in `keep`, as a JSON object (repeated fields as a list).
fn query_fields(raw: Option<&str>, keep: &[&str]) -> serde_json::Value {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for (k, v) in pairs {
        if !keep.contains(&k.as_str()) {
            continue;
        }
        match out.get_mut(&k) {
            Some(serde_json::Value::Array(list)) => list.push(v.into()),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), v.into()]),
            None => {
                out.insert(k, v.into());
            }
        }
    }
    out.into()
}

/// [`logs`] without its audit entry.
async fn open_logs(
    state: &Arc<State>,
    auth: Auth,
    project: String,
    environment: String,
    raw: Option<String>,
) -> ApiResult<Response> {
    let state = state.clone();
    let p = auth.require(Scope::LogsRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let query = LogQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(ApiError::bad_request)?;
    let mut all = replicas(&state, env.id).await;
    if all.is_empty() {
        return Err(offline(&env));
    }
    if let Some(name) = &query.instance {
        let names = instance_list(&all);
        all.retain(|r| &r.instance == name);
        if all.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no agent instance named '{name}' is connected for {}/{} (connected: {names})",
                    env.project, env.name
                ),
            ));
        }
    }
    if query.after.is_some() && query.cursor.is_empty() && all.len() > 1 {
        return Err(ApiError::bad_request(format!(
            "after= resumes one agent's stream, and {}/{} has {} ({}): resume with cursor=INSTANCE:EPOCH:SEQ,… or pick one with instance=",
            env.project,
            env.name,
            all.len(),
            instance_list(&all)
        )));
    }
    let started = crate::store::now_ms();
    let opened = futures_util::future::join_all(
        all.iter()
            .map(|r| open_log_stream(&state, env.id, r, replica_query(&query, r, None))),
    )
    .await;
    let mut sources = Vec::new();
    let mut first_err = None;
    for o in opened {
        match o {
            Ok(s) => sources.push(s),
            // The caller's mistake (a bad --grep) is the same on every replica.
            Err(e) if e.status.is_client_error() => return Err(e),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if sources.is_empty() {
        return Err(first_err.unwrap_or_else(|| offline(&env)));
    }
    let header = sources
        .iter()
        .map(|s| format!("{}:{}", s.instance, s.epoch))
        .collect::<Vec<_>>()
        .join(",");
    let epoch = (sources.len() == 1).then(|| sources[0].epoch);
    let joiner: Option<Joiner> = (query.follow && query.instance.is_none()).then(|| {
        let (state, env_id, query) = (state.clone(), env.id, query.clone());
        Box::new(move |known: std::collections::HashSet<String>| {
            let (state, query) = (state.clone(), query.clone());
            Box::pin(async move {
                let new: Vec<Replica> = replicas(&state, env_id)
                    .await
                    .into_iter()
                    .filter(|r| !known.contains(&r.session))
                    .collect();
                let mut out = Vec::new();
                for r in &new {
                    let q = replica_query(&query, r, Some(started));
                    if let Ok(s) = open_log_stream(&state, env_id, r, q).await {
                        out.push(s);
                    }
                }
                out
            })
                as std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Source>> + Send>>
        }) as Joiner
    });
    let how = Merge {
        // On a resume every line after the cursor is owed.
        tail: query.cursor.is_empty().then_some(query.tail),
        follow: query.follow,
        joiner,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    tokio::spawn(crate::parity::logmerge::merge(sources, how, tx));
    // The reader counts as connected while the stream is open, and the
    // stream ends as soon as its access is revoked.
    let presence = state.developers.enter(env.id, p.user_id);
    let kick = CancellationToken::new();
    let held = state.revocation.hold(
        crate::accounts::revocation::Access::of(p, Some(Scope::LogsRead)),
        kick.clone(),
    );
    let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |b| {
        let _ = (&presence, &held);
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b))
    });
    let body = http_body_util::StreamBody::new(frames.take_until(kick.cancelled_owned()));
    let mut out = Response::new(axum::body::Body::new(body));
    let h = out.headers_mut();
    if let Some(epoch) = epoch {
        h.insert(beam_proto::logs::EPOCH_HEADER, epoch.into());
    }
    if let Ok(v) = HeaderValue::from_str(&header) {
        h.insert(beam_proto::logs::INSTANCES_HEADER, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(out.into_response())
}

/// `a, b, c`: the instance names of `all`.
fn instance_list(all: &[Replica]) -> String {
    all.iter()
        .map(|r| r.instance.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one replica is asked for: the reader's filters, and where to start.
/// On a resume, a replica named in the cursor sends what follows it; one that
/// is not (it connected since) sends what it logged since `since`. A replica
/// that connects while a reader follows (`joined_since`) sends what it logged
/// since the stream began.
fn replica_query(q: &LogQuery, r: &Replica, joined_since: Option<i64>) -> LogQuery {
    let mut out = q.clone();
    out.instance = None;
    out.cursor = Vec::new();
    out.mark_live = q.follow;
    if let Some(start) = joined_since {
        out.after = Some(0);
        out.epoch = None;
        out.since = Some(q.since.map_or(start, |s| s.max(start)));
    } else if !q.cursor.is_empty() {
        match q.cursor.iter().find(|c| c.instance == r.instance) {
            Some(c) => {
                out.after = Some(c.seq);
                out.epoch = Some(c.epoch);
                out.since = None;
                out.tail = 0;
            }
            None => {
                out.after = Some(0);
                out.epoch = None;
            }
        }
    }
    out
}

/// Opens replica `r`'s log stream for `q`.
async fn open_log_stream(
    state: &State,
    env_id: i64,
    r: &Replica,
    q: LogQuery,
) -> Result<Source, ApiError> {
    let qs = serde_urlencoded::to_string(q.to_pairs()).map_err(|e| ApiError::internal(&e))?;
    let req = AgentRequest::get(format!("{}?{qs}", route::LOGS));
    let (resp, gone) = match r.call(state, env_id, &req).await {
        Ok(pair) => pair,
        Err(e) => return Err(call_failed(&e)),
    };
    if resp.status() != StatusCode::OK {
        return Err(agent_error(resp).await);
    }
    let epoch = resp
        .headers()
        .get(beam_proto::logs::EPOCH_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let lines = http_body_util::BodyStream::new(resp.into_body())
        .filter_map(|f| async move {
            match f {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(e.to_string())),
            }
        })
        .take_until(gone.cancelled_owned());
    Ok(Source {
        instance: r.instance.clone(),
        session: r.session.clone(),
        epoch,
        lines: Box::pin(lines),
    })
}

/// No agent of the environment is connected anywhere.
fn offline(env: &EnvironmentRow) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "agent_offline",
        format!(
            "no agent is connected for {project}/{name}; run `beam agent --project {project}/{name} -- <your app>` in production",
            project = env.project,
            name = env.name
        ),
    )
}

/// A replica that could not be asked.
fn call_failed(e: &CallError) -> ApiError {
    tracing::debug!(error = %e, "agent request failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "agent_failed",
        "the agent disconnected before answering; retry",
    )
}

/// A non-200 answer of an agent as an API error carrying its message.
async fn agent_error(resp: axum::http::Response<hyper::body::Incoming>) -> ApiError {
    // The agent explains (a bad --grep, no flags configured); pass it on.
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(resp.into_body(), 16 * 1024))
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
    let (status, code) = agent_status(status);
    let mut err = ApiError::new(status, code, body.trim().to_string());
    if status == StatusCode::TOO_MANY_REQUESTS {
        err.retry_after = Some(retry_after.unwrap_or(5));
    }
    err
}

/// The API status and code for an agent's non-200 answer.
fn agent_status(status: StatusCode) -> (StatusCode, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (StatusCode::NOT_FOUND, "not_found"),
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        // The agent protects production (its sync cap): the caller retries.
        StatusCode::TOO_MANY_REQUESTS => (StatusCode::TOO_MANY_REQUESTS, "agent_busy"),
        s if s.is_client_error() => (StatusCode::BAD_REQUEST, "agent_refused"),
        _ => (StatusCode::BAD_GATEWAY, "agent_failed"),
    }
}

/// Sends `req` to one replica of the environment's agent: the newest that
/// answers. A replica that is gone, cannot be reached, is busy (429) or fails
/// (5xx) is passed over for the next; the caller's mistakes (other 4xx) are
/// answered at once, as every replica would say the same.
pub(super) async fn agent_call(
    state: &State,
    env: &EnvironmentRow,
    req: &AgentRequest,
) -> Result<
    (
        axum::http::Response<hyper::body::Incoming>,
        CancellationToken,
    ),
    ApiError,
> {
    let mut last = None;
    for r in replicas(state, env.id).await {
        match r.call(state, env.id, req).await {
            Ok((resp, gone)) if resp.status() == StatusCode::OK => return Ok((resp, gone)),
            Ok((resp, _)) => {
                let err = agent_error(resp).await;
                if err.status != StatusCode::TOO_MANY_REQUESTS && !err.status.is_server_error() {
                    return Err(err);
                }
                last = Some(err);
            }
            Err(CallError::Gone) => {}
            Err(e) => last = Some(call_failed(&e)),
        }
    }
    Err(last.unwrap_or_else(|| offline(env)))
}

/// Relays the agent's answer (streamed as it comes) with `content_type`.
async fn relay(
    state: &State,
    env: &EnvironmentRow,
    req: AgentRequest,
    content_type: &'static str,
) -> ApiResult<Response> {
    relay_held(state, env, req, content_type, None).await
}

/// As [`relay`]; with `access`, the stream also ends as soon as that access
/// is revoked (a sync can stream for up to the agent's statement timeout).
async fn relay_held(
    state: &State,
    env: &EnvironmentRow,
    req: AgentRequest,
    content_type: &'static str,
    access: Option<crate::accounts::revocation::Access>,
) -> ApiResult<Response> {
    let (resp, agent_gone) = agent_call(state, env, &req).await?;
    let stop = agent_gone.child_token();
    let held = access.map(|a| state.revocation.hold(a, stop.clone()));
    // The agent's own `beam-*` headers (row totals, epochs) pass through.
    let beam_headers: Vec<_> = resp
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("beam-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A streamed answer ends when the agent is disconnected (revoked,
    // replaced): it must not hold the agent's connection open. With
    // `access`, it also ends when the caller's access is revoked.
    let frames = http_body_util::BodyStream::new(resp.into_body())
        .map(move |f| {
            let _ = &held;
            f
        })
        .take_until(stop.cancelled_owned());
    let mut out = Response::new(axum::body::Body::new(http_body_util::StreamBody::new(
        frames,
    )));
    for (k, v) in beam_headers {
        out.headers_mut().insert(k, v);
    }
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(out)
}

/// Checks `scope` and the environment's organization, then relays
/// `GET path?query` to its agent, answering with `content_type`.
#[allow(clippy::too_many_arguments)] // one relay for five routes; a struct would only rename them
async fn relay_get(
    state: &State,
    auth: Auth,
    scope: Scope,
    (project, environment): (String, String),
    path: &str,
    query: &[(&str, String)],
    content_type: &'static str,
    kind: &str,
) -> ApiResult<Response> {
    let mut entry = Entry::by(&auth.0, kind).env(&project, &environment);
    for (k, v) in query {
        entry = entry.with(k, v.as_str());
    }
    let result = relay_checked(
        state,
        auth,
        scope,
        (project, environment),
        path,
        query,
        content_type,
    )
    .await;
    state.audit.outcome(entry, result)
}

/// [`relay_get`] without its audit entry.
async fn relay_checked(
    state: &State,
    auth: Auth,
    scope: Scope,
    (project, environment): (String, String),
    path: &str,
    query: &[(&str, String)],
    content_type: &'static str,
) -> ApiResult<Response> {
    let p = auth.require(scope)?;
    let env = find_env(state, p.org_id, &project, &environment).await?;
    let qs = serde_urlencoded::to_string(query).map_err(|e| ApiError::internal(&e))?;
    let target = if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{qs}")
    };
    relay(state, &env, AgentRequest::get(target), content_type).await
}

/// The environment's feature flags, read by its agent in production.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/flags", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 200, description = "Flags: key, enabled, description, environment, rollout, variants"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn flags(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(env): Path<(String, String)>,
) -> ApiResult<Response> {
    let json = "application/json";
    relay_get(
        &state,
        auth,
        Scope::FlagsRead,
        env,
        route::FLAGS,
        &[],
        json,
        "flags.read",
    )
    .await
}

/// Flag evaluation parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EvalParams {
    /// The user to evaluate for (rollout bucket and variant).
    #[serde(default)]
    pub user: Option<String>,
}

/// One flag evaluated for a user, in production.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/flags/{key}", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path),
        ("key" = String, Path), EvalParams),
    responses((status = 200, description = "key, enabled, variant, bucket, reason"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn evaluate_flag(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment, key)): Path<(String, String, String)>,
    super::extract::Query(q): super::extract::Query<EvalParams>,
) -> ApiResult<Response> {
    let mut pairs = vec![("key", key)];
    if let Some(u) = q.user {
        pairs.push(("user", u));
    }
    let env = (project, environment);
    let json = "application/json";
    relay_get(
        &state,
        auth,
        Scope::FlagsRead,
        env,
        route::FLAGS_EVAL,
        &pairs,
        json,
        "flags.eval",
    )
    .await
}

/// Compares variable fingerprints with production's; the answer holds only a
/// verdict per name (`equal`, `different`, `missing_in_production`,
/// `missing_locally`, `missing_both`, `refused`).
#[utoipa::path(post, path = "/api/projects/{project}/{environment}/env/check", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{\"nonce\": hex of 32 fresh random bytes, \"vars\": {NAME: hex HMAC-SHA256(nonce, local value) or null}}"),
    responses((status = 200, description = "{\"results\": {NAME: verdict or \"disagree\"}}; with several replicas also \"instances\": {INSTANCE: {\"results\": …} or {\"error\": …}} and \"disagree\": [NAME]"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn env_check(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Names {
        vars: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    // Names and verdicts are recorded; values and fingerprints never are.
    let mut entry = Entry::by(&auth.0, "env.check").env(&project, &environment);
    let result = async {
        let names: Vec<String> = serde_json::from_slice::<Names>(&body)
            .map_err(|e| ApiError::bad_request(format!("body: {e}")))?
            .vars
            .into_keys()
            .collect();
        entry = entry.clone().with("names", names.clone());
        check_env(&state, &auth, &project, &environment, names, body).await
    }
    .await;
    if let Ok(v) = &result {
        entry = entry.with("verdicts", v["results"].clone());
    }
    state
        .audit
        .outcome(entry, result)
        .map(|v| axum::Json(v).into_response())
}

/// [`env_check`] without its audit entry: the combined verdicts.
async fn check_env(
    state: &Arc<State>,
    auth: &Auth,
    project: &str,
    environment: &str,
    names: Vec<String>,
    body: axum::body::Bytes,
) -> ApiResult<serde_json::Value> {
    let state = state.clone();
    let p = auth.require(Scope::EnvCheck)?;
    let env = find_env(&state, p.org_id, project, environment).await?;
    let now = crate::store::now_ms();
    if let Err(m) = state.env_checks.take(p.user_id, env.id, &names, now) {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "env_check_limit", m);
        e.retry_after = Some(crate::parity::envcap::EnvCheckCap::retry_after(now));
        return Err(e);
    }
    let all = replicas(&state, env.id).await;
    if all.is_empty() {
        return Err(offline(&env));
    }
    let req = AgentRequest {
        method: axum::http::Method::POST,
        path: route::ENV_CHECK.to_string(),
        body,
    };
    let answers = fanout::ask_all(&state, env.id, &all, &req).await;
    fanout::combine_env_check(answers).map_err(failure_error)
}

/// A replica's failure as an API error: the agent's own answer keeps its
/// meaning (a refusal is the caller's to fix); no answer is a bad gateway.
fn failure_error(f: fanout::Failure) -> ApiError {
    let (status, code) = match f.status {
        Some(s) => agent_status(s),
        None => (StatusCode::BAD_GATEWAY, "agent_failed"),
    };
    ApiError::new(status, code, f.message)
}

/// The agent's health report: database, app health URL, log buffer, last
/// error, uptime and version. Needs `logs:read`: the last error is a log line,
/// and the database host and app URL are not for every member's token; the
/// public `/health` stays minimal.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/health", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 200, description = "status (over every replica), healthy, total, summary (\"2 of 3 healthy\"), instances [{instance, node, status, checks [{name, status, detail, ms}], uptime_s, version, environment} or {instance, status, error}], nodes [{id, addr, this, started_at, heartbeat_age_ms, agents}], connected_developers, and the first healthy report's fields"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn health(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let entry = Entry::by(&auth.0, "health").env(&project, &environment);
    let result = health_report(&state, &auth, &project, &environment).await;
    state
        .audit
        .outcome(entry, result)
        .map(|v| axum::Json(v).into_response())
}

/// [`health`] without its audit entry.
async fn health_report(
    state: &Arc<State>,
    auth: &Auth,
    project: &str,
    environment: &str,
) -> ApiResult<serde_json::Value> {
    let state = state.clone();
    let p = auth.require(Scope::LogsRead)?;
    let env = find_env(&state, p.org_id, project, environment).await?;
    let all = replicas(&state, env.id).await;
    if all.is_empty() {
        return Err(offline(&env));
    }
    let answers = fanout::ask_all(&state, env.id, &all, &AgentRequest::get(route::HEALTH)).await;
    let mut report = fanout::combine_health(answers);
    // Only the server knows who is connected: developers with an open log or
    // webhook stream on this environment.
    report["connected_developers"] = state.developers.count(env.id).into();
    report["nodes"] = nodes_report(&state, &all).await;
    Ok(report)
}

/// Every live server node: its id and address, when it started and last
/// renewed its lease, whether it answered this call, and which of the
/// environment's agent instances are connected to it.
async fn nodes_report(state: &State, all: &[Replica]) -> serde_json::Value {
    let now = crate::store::now_ms();
    let alive_since = now - state.cfg.node_lease.as_millis() as i64;
    let mut nodes = state.store.nodes(alive_since).await.unwrap_or_default();
    if nodes.iter().all(|n| n.id != state.node_id) {
        // One node on SQLite, or a node whose row is being renewed.
        nodes.push(crate::store::NodeRow {
            id: state.node_id.clone(),
            addr: String::new(),
            started_at: now,
            heartbeat_at: now,
        });
    }
    let list: Vec<serde_json::Value> = nodes
        .into_iter()
        .map(|n| {
            let this = n.id == state.node_id;
            let agents: Vec<&str> = all
                .iter()
                .filter(|r| r.node().map_or(this, |id| id == n.id))
                .map(|r| r.instance.as_str())
                .collect();
            serde_json::json!({
                "id": n.id,
                "addr": n.addr,
                "this": this,
                "started_at": n.started_at,
                "heartbeat_age_ms": (now - n.heartbeat_at).max(0),
                "agents": agents,
            })
        })
        .collect();
    list.into()
}

/// Streams sanitized production rows as NDJSON (the agent's policy decides
/// every column; the caller cannot turn sanitization off). Query:
/// `table`, `limit`, `select=a,b`, repeatable `where=COLUMN=VALUE` (bound).
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/sync", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path),
        ("table" = String, Query), ("limit" = Option<u64>, Query), ("select" = Option<String>, Query),
        ("where" = Option<String>, Query, description = "COLUMN=VALUE, repeatable")),
    responses((status = 200, description = "NDJSON rows; a last `{\"error\": …}` line if the database failed mid-stream", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn sync(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    // The table, filters and columns asked for, then the rows returned.
    let entry = Entry::by(&auth.0, "sync").env(&project, &environment).with(
        "request",
        query_fields(raw.as_deref(), &["table", "limit", "select", "where"]),
    );
    let result = async {
        let p = auth.require(Scope::DataRead)?;
        let env = find_env(&state, p.org_id, &project, &environment).await?;
        let req = AgentRequest::get(format!("{}?{}", route::SYNC, raw.unwrap_or_default()));
        let access = crate::accounts::revocation::Access::of(p, Some(Scope::DataRead));
        relay_held(&state, &env, req, "application/x-ndjson", Some(access)).await
    }
    .await;
    state.audit.streamed(entry, "rows", result)
}

/// The foreign keys of an allowlisted table, read from the production schema
/// by the agent (`beam sync --related` follows them).
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/sync/relations", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), TableParam),
    responses((status = 200, description = "[{column, references_table, references_column}]"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn sync_relations(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(env): Path<(String, String)>,
    super::extract::Query(q): super::extract::Query<TableParam>,
) -> ApiResult<Response> {
    let table = [("table", q.table)];
    let ctype = "application/json";
    relay_get(
        &state,
        auth,
        Scope::DataRead,
        env,
        route::SYNC_RELATIONS,
        &table,
        ctype,
        "sync.relations",
    )
    .await
}

/// Table parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableParam {
    /// The table.
    pub table: String,
}

/// A proposed sanitization policy for a table, from the default detectors
/// run on the agent over the production schema (column names and types only).
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/sync/suggest", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), TableParam),
    responses((status = 200, description = "Policy TOML", content_type = "text/plain"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn sync_suggest(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(env): Path<(String, String)>,
    super::extract::Query(q): super::extract::Query<TableParam>,
) -> ApiResult<Response> {
    let table = [("table", q.table)];
    let ctype = "text/plain; charset=utf-8";
    relay_get(
        &state,
        auth,
        Scope::DataRead,
        env,
        route::SYNC_SUGGEST,
        &table,
        ctype,
        "sync.suggest",
    )
    .await
}
