//! `/api/projects`: parity project environments (`shop/production`) and the
//! agent tokens their production agents publish with. What developers read
//! through an environment's agent is in [`super::parity`].

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::accounts::auth::{generate_token, hash_secret};
use crate::accounts::scope::{Scope, Scopes};
use crate::audit::Entry;
use crate::state::State;
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
    let entry = Entry::by(&auth.0, "project.create").env(&body.project, &body.environment);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        check_name("project", &body.project)?;
        check_name("environment", &body.environment)?;
        let env = state
            .store
            .ensure_environment(p.org_id, &body.project, &body.environment, now_ms())
            .await?;
        Ok((StatusCode::CREATED, axum::Json(env)))
    }
    .await;
    state.audit.outcome(entry, result)
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
    let entry = Entry::by(&auth.0, "project.agent_token.create").env(&project, &environment);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        super::email::require_verified(&state, p.user_id).await?;
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
    .await;
    state.audit.outcome(entry, result)
}

/// An agent token as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentTokenRow {
    /// Token id (for revoking).
    pub id: i64,
    /// What it was created for.
    pub description: String,
    /// Who created it.
    pub created_by: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Last time an agent connected with it (unix ms).
    pub last_used_at: Option<i64>,
    /// Set once revoked (unix ms).
    pub revoked_at: Option<i64>,
}

/// The environment's agent tokens, newest first, with when each was last
/// used (admin).
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/agent-tokens", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 200, body = Vec<AgentTokenRow>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list_agent_tokens(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<AgentTokenRow>>> {
    let p = auth.require(Scope::Admin)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let rows = state.store.agent_tokens(env.id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|t| AgentTokenRow {
                id: t.id,
                description: t.description,
                created_by: t.user_id,
                created_at: t.created_at,
                last_used_at: t.last_used_at,
                revoked_at: t.revoked_at,
            })
            .collect(),
    ))
}

/// Revokes an agent token of the environment (any admin of the
/// organization, not only its creator); agents connected with it disconnect
/// within seconds and cannot reconnect.
#[utoipa::path(delete, path = "/api/projects/{project}/{environment}/agent-tokens/{id}", tag = "projects",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke_agent_token(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment, id)): Path<(String, String, i64)>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&auth.0, "project.agent_token.revoke")
        .env(&project, &environment)
        .with("token", id);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        let env = find_env(&state, p.org_id, &project, &environment).await?;
        if !state.store.revoke_agent_token(env.id, id, now_ms()).await? {
            return Err(ApiError::not_found("live agent token of this environment"));
        }
        state.revocation.changed();
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.audit.outcome(entry, result)
}
