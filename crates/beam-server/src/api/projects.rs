//! `/api/projects`: parity project environments (`shop/production`), the agent
//! tokens their production agents publish with, and the live log stream that
//! developers read. Log filters are passed to the agent, which applies them in
//! production; the server only checks scopes and relays the NDJSON stream.

use std::sync::Arc;

use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beam_proto::logs::LogQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::State;
use crate::auth::{generate_token, hash_secret};
use crate::scope::{Scope, Scopes};
use crate::store::{EnvironmentRow, NewToken, TokenKind, now_ms};

/// A project environment to create (both parts are created when missing).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    /// Project name, e.g. `shop`.
    pub project: String,
    /// Environment name, e.g. `production`.
    pub environment: String,
}

/// An agent token request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentToken {
    /// What the token is for (e.g. the host it runs on).
    #[serde(default)]
    pub description: Option<String>,
}

/// A new agent token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentTokenView {
    /// Token id.
    pub id: i64,
    /// The secret: give it to `beam agent` as `BEAM_TOKEN`. Shown only here.
    pub token: String,
    /// The environment it publishes for.
    pub environment: EnvironmentRow,
}

/// Project and environment names: lower-case DNS-label style, 1-63 characters.
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what} '{name}' must be 1-63 lower-case letters, digits or '-' (not at either end)"
        )))
    }
}

/// Environment `project/env` of the organization, or 404.
pub(super) async fn find_env(
    state: &State,
    org_id: i64,
    project: &str,
    env: &str,
) -> Result<EnvironmentRow, ApiError> {
    state
        .store
        .environment(org_id, project, env)
        .await?
        .ok_or_else(|| ApiError::not_found("project environment"))
}

/// The organization's project environments.
#[utoipa::path(get, path = "/api/projects", tag = "projects", security(("bearer" = [])),
    responses((status = 200, body = Vec<EnvironmentRow>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<Vec<EnvironmentRow>>> {
    let p = auth.require(Scope::OrgRead)?;
    Ok(axum::Json(state.store.environments(p.org_id).await?))
}

/// Creates a project environment (admin).
#[utoipa::path(post, path = "/api/projects", tag = "projects", security(("bearer" = [])), request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn create(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Json(body): Json<CreateEnvironment>,
) -> ApiResult<(StatusCode, axum::Json<EnvironmentRow>)> {
    let p = auth.require(Scope::Admin)?;
    check_name("project", &body.project)?;
    check_name("environment", &body.environment)?;
    let env = state
        .store
        .ensure_environment(p.org_id, &body.project, &body.environment, now_ms())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(env)))
}

/// Creates an agent (producer) token for one environment (admin). It can only
/// connect `beam agent` for that environment; it cannot read anything.
#[utoipa::path(post, path = "/api/projects/{project}/{environment}/agent-tokens", tag = "projects",
    security(("bearer" = [])), request_body = CreateAgentToken,
    params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 201, body = AgentTokenView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_agent_token(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    Json(body): Json<CreateAgentToken>,
) -> ApiResult<(StatusCode, axum::Json<AgentTokenView>)> {
    let p = auth.require(Scope::Admin)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let token = generate_token();
    let description = body
        .description
        .unwrap_or_else(|| format!("agent for {project}/{environment}"));
    if description.len() > 200 {
        return Err(ApiError::invalid("description must be at most 200 bytes"));
    }
    let id = state
        .store
        .insert_token(
            &NewToken {
                hash: &hash_secret(token.expose()),
                description: &description,
                user_id: p.user_id,
                org_id: p.org_id,
                scopes: Scopes::default(),
                kind: TokenKind::Agent,
                expires_at: None,
                environment_id: Some(env.id),
            },
            now_ms(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AgentTokenView {
            id,
            token: token.expose().to_string(),
            environment: env,
        }),
    ))
}

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
    // The newest agent serves the stream (several replicas: see the README).
    let Some(agent) = state.registry.agents(env.id).pop() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent_offline",
            format!(
                "no agent is connected for {project}/{environment}; run `beam agent --project {project}/{environment} -- <your app>` in production"
            ),
        ));
    };
    let qs = serde_urlencoded::to_string(query.to_pairs()).map_err(|e| ApiError::internal(&e))?;
    let req = axum::http::Request::get(format!("http://beam-agent/logs?{qs}"))
        .body(crate::body::empty())
        .map_err(|e| ApiError::internal(&e))?;
    let mut sender = agent.sender.clone();
    let resp = sender.send_request(req).await.map_err(|e| {
        tracing::debug!(error = %e, "agent stream failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_failed",
            "the agent disconnected before answering; retry",
        )
    })?;
    if resp.status() != StatusCode::OK {
        // The agent explains (e.g. a bad --grep); pass its message on.
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let status = if status.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::BAD_GATEWAY
        };
        return Err(ApiError::new(
            status,
            "agent_refused",
            body.trim().to_string(),
        ));
    }
    let epoch = resp.headers().get(beam_proto::logs::EPOCH_HEADER).cloned();
    let mut out = Response::new(axum::body::Body::new(resp.into_body()));
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
