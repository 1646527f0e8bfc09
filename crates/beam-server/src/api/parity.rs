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
use crate::state::State;
use crate::store::EnvironmentRow;

use super::projects::find_env;

/// Streams the environment's production logs as NDJSON: the last `tail`
/// matching entries, then new ones while `follow` (default). Each line is a log
/// entry or `{"dropped": N}`. Resume after a disconnect with `after=<last seq>`.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/logs", tag = "projects",
    security(("bearer" = [])),
    params(("project" = String, Path), ("environment" = String, Path),
        ("level" = Option<String>, Query, description = "trace, debug, info, warn, error or fatal: that level and above"),
        ("only_level" = Option<bool>, Query, description = "match `level` exactly"),
        ("service" = Option<String>, Query), ("grep" = Option<String>, Query, description = "regular expression on the message"),
        ("since" = Option<i64>, Query, description = "unix ms"), ("tail" = Option<u32>, Query),
        ("follow" = Option<bool>, Query), ("after" = Option<u64>, Query, description = "resume after this seq"),
        ("epoch" = Option<u64>, Query, description = "the `beam-log-epoch` header of the stream `after` came from")),
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
    let p = auth.require(Scope::LogsRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let query = LogQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(ApiError::bad_request)?;
    let qs = serde_urlencoded::to_string(query.to_pairs()).map_err(|e| ApiError::internal(&e))?;
    let req = agent_request(
        axum::http::Method::GET,
        &format!("{}?{qs}", route::LOGS),
        crate::body::empty(),
    )?;
    let (resp, agent_gone) = agent_call(&state, &env, req).await?;
    let epoch = resp.headers().get(beam_proto::logs::EPOCH_HEADER).cloned();
    // The reader counts as connected while the stream is open, and the
    // stream ends as soon as its access is revoked.
    let presence = state.developers.enter(env.id, p.user_id);
    // Ends with the reader's access, or with the agent's connection (a
    // relay must not keep a disconnected agent's connection open).
    let kick = agent_gone.child_token();
    let held = state.revocation.hold(
        crate::accounts::revocation::Access::of(p, Some(Scope::LogsRead)),
        kick.clone(),
    );
    let frames = http_body_util::BodyStream::new(resp.into_body()).map(move |f| {
        let _ = (&presence, &held);
        f
    });
    let body = http_body_util::StreamBody::new(frames.take_until(kick.cancelled_owned()));
    let mut out = Response::new(axum::body::Body::new(body));
    let h = out.headers_mut();
    if let Some(epoch) = epoch {
        h.insert(beam_proto::logs::EPOCH_HEADER, epoch);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(out.into_response())
}

/// Sends one request to the environment's agent (the newest, when several
/// replicas are connected); a non-200 answer becomes an API error carrying the
/// agent's message.
pub(super) async fn agent_call(
    state: &State,
    env: &EnvironmentRow,
    req: axum::http::Request<crate::body::Body>,
) -> Result<
    (
        axum::http::Response<hyper::body::Incoming>,
        CancellationToken,
    ),
    ApiError,
> {
    let offline = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent_offline",
            format!(
                "no agent is connected for {project}/{name}; run `beam agent --project {project}/{name} -- <your app>` in production",
                project = env.project,
                name = env.name
            ),
        )
    };
    let failed = || {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_failed",
            "the agent disconnected before answering; retry",
        )
    };
    let (resp, gone) = match state.registry.agents(env.id).pop() {
        Some(agent) => {
            let mut sender = agent.sender.clone();
            let resp = sender.send_request(req).await.map_err(|e| {
                tracing::debug!(error = %e, "agent request failed");
                failed()
            })?;
            (resp, agent.kick.clone())
        }
        // In a cluster the agent may be connected to another node; the
        // relayed answer ends when that node's agent goes.
        None => match crate::cluster::agents::relay(state, env.id, req).await {
            Ok(resp) => (resp, CancellationToken::new()),
            Err(crate::cluster::agents::RelayError::Offline) => return Err(offline()),
            Err(e) => {
                tracing::debug!(error = %e, "relaying to another node's agent failed");
                return Err(failed());
            }
        },
    };
    if resp.status() == StatusCode::OK {
        return Ok((resp, gone));
    }
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
    let (status, code) = match status {
        StatusCode::NOT_FOUND => (StatusCode::NOT_FOUND, "not_found"),
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        // The agent protects production (its sync cap): the caller retries.
        StatusCode::TOO_MANY_REQUESTS => (StatusCode::TOO_MANY_REQUESTS, "agent_busy"),
        s if s.is_client_error() => (StatusCode::BAD_REQUEST, "agent_refused"),
        _ => (StatusCode::BAD_GATEWAY, "agent_failed"),
    };
    let mut err = ApiError::new(status, code, body.trim().to_string());
    if status == StatusCode::TOO_MANY_REQUESTS {
        err.retry_after = Some(retry_after.unwrap_or(5));
    }
    Err(err)
}

/// Relays the agent's answer (streamed as it comes) with `content_type`.
async fn relay(
    state: &State,
    env: &EnvironmentRow,
    req: axum::http::Request<crate::body::Body>,
    content_type: &'static str,
) -> ApiResult<Response> {
    relay_held(state, env, req, content_type, None).await
}

/// As [`relay`]; with `access`, the stream also ends as soon as that access
/// is revoked (a sync can stream for up to the agent's statement timeout).
async fn relay_held(
    state: &State,
    env: &EnvironmentRow,
    req: axum::http::Request<crate::body::Body>,
    content_type: &'static str,
    access: Option<crate::accounts::revocation::Access>,
) -> ApiResult<Response> {
    let (resp, agent_gone) = agent_call(state, env, req).await?;
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

fn agent_request(
    method: axum::http::Method,
    path_and_query: &str,
    body: crate::body::Body,
) -> Result<axum::http::Request<crate::body::Body>, ApiError> {
    axum::http::Request::builder()
        .method(method)
        .uri(format!("http://beam-agent{path_and_query}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::internal(&e))
}

/// Checks `scope` and the environment's organization, then relays
/// `GET path?query` to its agent, answering with `content_type`.
async fn relay_get(
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
    let req = agent_request(axum::http::Method::GET, &target, crate::body::empty())?;
    relay(state, &env, req, content_type).await
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
    relay_get(&state, auth, Scope::FlagsRead, env, route::FLAGS, &[], json).await
}

/// Flag evaluation parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
    responses((status = 200, description = "{\"results\": {NAME: verdict}}"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn env_check(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let p = auth.require(Scope::EnvCheck)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    #[derive(Deserialize)]
    struct Names {
        vars: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    let names: Vec<String> = serde_json::from_slice::<Names>(&body)
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))?
        .vars
        .into_keys()
        .collect();
    let now = crate::store::now_ms();
    if let Err(m) = state.env_checks.take(p.user_id, env.id, &names, now) {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "env_check_limit", m);
        e.retry_after = Some(crate::parity::envcap::EnvCheckCap::retry_after(now));
        return Err(e);
    }
    let req = agent_request(
        axum::http::Method::POST,
        route::ENV_CHECK,
        crate::body::full(body),
    )?;
    relay(&state, &env, req, "application/json").await
}

/// The agent's health report: database, app health URL, log buffer, last
/// error, uptime and version. Needs `logs:read`: the last error is a log line,
/// and the database host and app URL are not for every member's token; the
/// public `/health` stays minimal.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/health", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 200, description = "status, checks [{name, status, detail, ms}], uptime_s, version, environment"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "No agent connected", body = ErrorBody)))]
pub async fn health(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let p = auth.require(Scope::LogsRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let req = agent_request(axum::http::Method::GET, route::HEALTH, crate::body::empty())?;
    let (resp, _) = agent_call(&state, &env, req).await?;
    let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(
        resp.into_body(),
        256 * 1024,
    ))
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_failed",
            "the agent's health report broke off",
        )
    })?
    .to_bytes();
    let mut report: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_failed",
            "the agent's health report is not JSON",
        )
    })?;
    // Only the server knows who is connected: developers with an open log or
    // webhook stream on this environment.
    report["connected_developers"] = state.developers.count(env.id).into();
    Ok(axum::Json(report).into_response())
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
    let p = auth.require(Scope::DataRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let req = agent_request(
        axum::http::Method::GET,
        &format!("{}?{}", route::SYNC, raw.unwrap_or_default()),
        crate::body::empty(),
    )?;
    let access = crate::accounts::revocation::Access::of(p, Some(Scope::DataRead));
    relay_held(&state, &env, req, "application/x-ndjson", Some(access)).await
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
    )
    .await
}

/// Table parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
    )
    .await
}
