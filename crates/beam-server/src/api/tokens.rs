//! `/api/tokens`: a user's API tokens. A token is shown once, at creation; the
//! server keeps its SHA-256 only. Managing tokens needs a login session or the
//! `admin` scope, and nobody can mint a token with more than they hold.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::accounts::auth::{Principal, generate_token, hash_secret};
use crate::accounts::scope::{Scope, Scopes};
use crate::audit::Entry;
use crate::state::State;
use crate::store::{NewToken, TokenKind, TokenRow, now_ms};

/// A token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Token id (for revoke).
    pub id: i64,
    /// What the user called it.
    pub description: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, if it expires.
    pub expires_at: Option<i64>,
    /// Unix ms, if revoked.
    pub revoked_at: Option<i64>,
    /// Unix ms of the last use.
    pub last_used_at: Option<i64>,
}

impl From<TokenRow> for TokenView {
    fn from(t: TokenRow) -> Self {
        Self {
            id: t.id,
            description: t.description,
            scopes: t.scopes.list(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for, e.g. `laptop`.
    pub description: String,
    /// Scopes; default `tunnels:write tunnels:read domains:write domains:read`.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// Organization the token acts in [default: the caller's]; the caller's role
    /// there caps the scopes.
    #[serde(default)]
    pub org_id: Option<i64>,
    /// Lifetime in days (1–3650); none for a token that does not expire.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A created token: the secret appears here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token, `beam_…`. Store it now.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub info: TokenView,
}

fn may_manage(p: &Principal) -> Result<(), ApiError> {
    if p.kind == TokenKind::Session || p.scopes.contains(Scope::Admin) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "managing tokens needs a login session or a token with the 'admin' scope",
        ))
    }
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
) -> ApiResult<axum::Json<Vec<TokenView>>> {
    may_manage(&p)?;
    let rows = state.store.list_tokens(p.user_id).await?;
    Ok(axum::Json(rows.into_iter().map(TokenView::from).collect()))
}

/// Creates an API token for the caller.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", security(("bearer" = [])), request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "Not a member of that organization", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let entry = Entry::by(&p, "token.create")
        .with("description", req.description.as_str())
        .with(
            "scopes",
            req.scopes
                .as_ref()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>()),
        )
        .with("expires_in_days", req.expires_in_days);
    let result = async {
        may_manage(&p)?;
        super::email::require_verified(&state, p.user_id).await?;
        let description = req.description.trim();
        if description.is_empty() || description.chars().count() > 100 {
            return Err(ApiError::invalid(
                "'description' must be 1 to 100 characters",
            ));
        }
        let scopes = Scopes::of(req.scopes.as_deref().unwrap_or(&Scope::CLI_DEFAULT));
        if scopes.is_empty() {
            return Err(ApiError::invalid("'scopes' must name at least one scope"));
        }
        // In another organization of the user, the user's role there is the cap.
        let (org_id, held) = match req.org_id {
            Some(org) if org != p.org_id => {
                // Reaching into another organization takes the password (a session),
                // not a token that was scoped for this one.
                if p.kind != TokenKind::Session {
                    return Err(ApiError::forbidden(
                        "creating a token for another organization needs a login session",
                    ));
                }
                match state.store.role(org, p.user_id).await? {
                    Some(role) => (org, role.scopes()),
                    None => return Err(ApiError::not_found("organization")),
                }
            }
            _ => (p.org_id, p.scopes),
        };
        if !scopes.is_subset_of(held) {
            return Err(ApiError::forbidden(format!(
                "you cannot grant scopes you do not hold; yours there: {held}"
            )));
        }
        let now = now_ms();
        let expires_at = match req.expires_in_days {
            None => None,
            Some(d @ 1..=3650) => Some(now + i64::from(d) * 86_400_000),
            Some(_) => {
                return Err(ApiError::invalid(
                    "'expires_in_days' must be between 1 and 3650",
                ));
            }
        };
        let token = generate_token();
        let id = state
            .store
            .insert_token(
                &NewToken {
                    hash: &hash_secret(token.expose()),
                    description,
                    user_id: p.user_id,
                    org_id,
                    scopes,
                    kind: TokenKind::Api,
                    expires_at,
                    environment_id: None,
                },
                now,
            )
            .await?;
        Ok((
            StatusCode::CREATED,
            axum::Json(CreatedToken {
                token: token.expose().to_string(),
                info: TokenView {
                    id,
                    description: description.to_string(),
                    scopes: scopes.list(),
                    created_at: now,
                    expires_at,
                    revoked_at: None,
                    last_used_at: None,
                },
            }),
        ))
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Revokes one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&p, "token.revoke").with("token", id);
    let result = async {
        may_manage(&p)?;
        if state.store.revoke_token(id, p.user_id, now_ms()).await? {
            // Tunnels opened with it end now, and so does everything else it
            // holds (agents, streams); reconnects are refused.
            state.registry.kick_token(id);
            state.revocation.changed();
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("token"))
        }
    }
    .await;
    state.audit.outcome(entry, result)
}
