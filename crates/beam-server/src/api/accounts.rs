//! `/api/auth/*` and `/api/me`: registration with e-mail verification, login
//! sessions, logout and password reset. Responses never reveal whether an
//! email is registered, and every route here is rate-limited per client
//! address.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::credentials::{
    ACCEPTED, Accepted, hash_password, normalize_email, password_matches, rate_limit,
};
use super::email::send_verification;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Ip, Json};
use crate::accounts::auth::{hash_secret, random_secret};
use crate::accounts::password;
use crate::accounts::scope::{Role, Scope};
use crate::audit::Entry;
use crate::state::State;
use crate::store::{NewToken, TokenKind, now_ms};
use beam_proto::Secret;

/// Registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (compared case-insensitively).
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 10 characters. Sent as typed, over TLS; never pre-hashed.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 1024)]
    pub password: Secret,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
    /// Organization the session acts in [default: the user's first organization].
    #[serde(default)]
    pub org_id: Option<i64>,
}

/// A user, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// An organization membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    /// Organization id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The caller's role.
    pub role: Role,
}

impl UserView {
    fn of(u: crate::store::UserRow) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
        }
    }
}

impl OrgView {
    fn of(o: crate::store::OrgRow, role: Role) -> Self {
        Self {
            id: o.id,
            name: o.name,
            role,
        }
    }
}

/// A new login session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Session token for `Authorization: Bearer`; expires at `expires_at`.
    pub token: String,
    /// Unix ms.
    pub expires_at: i64,
    /// The user.
    pub user: UserView,
    /// The organization the session acts in.
    pub org: OrgView,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The user.
    pub user: UserView,
    /// The organization the token acts in.
    pub org: OrgView,
    /// What the token may do (its scopes capped by the role).
    pub scopes: Vec<Scope>,
    /// `api` or `session`.
    pub token_kind: String,
    /// Every organization the user belongs to (a token acts in one of them).
    pub orgs: Vec<OrgView>,
}

/// Creates an account and its personal organization.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Same answer for new and existing emails", body = Accepted),
        (status = 400, body = ErrorBody), (status = 403, description = "Registration is closed", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    rate_limit(&state, ip)?;
    if !state.cfg.registration {
        return Err(ApiError::forbidden(
            "registration is closed on this server; ask its operator for an account",
        ));
    }
    let email = normalize_email(&req.email)?;
    password::check_policy(req.password.expose()).map_err(ApiError::invalid)?;
    let name = req
        .name
        .unwrap_or_default()
        .trim()
        .chars()
        .take(100)
        .collect::<String>();
    // Hash before looking the email up, so both outcomes take the same time.
    let hash = hash_password(&state, req.password).await?;
    let now = now_ms();
    if let Some(user_id) = state
        .store
        .register(&email, &name, &hash, state.cfg.default_limits, now)
        .await?
    {
        tracing::info!(user_id, "account registered");
        // Off the answer's path, so both outcomes take as long.
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = send_verification(&state, user_id).await {
                tracing::warn!(error = %e, "verification mail failed");
            }
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted".into(),
            message: ACCEPTED.into(),
        }),
    ))
}

/// Exchanges email and password for a short-lived session token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "Not a member of the requested organization", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Json(req): Json<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    rate_limit(&state, ip)?;
    let wrong = || ApiError::unauthorized("wrong email or password");
    let user = match normalize_email(&req.email) {
        Ok(email) => state.store.user_by_email(&email).await?,
        Err(_) => None,
    };
    // Verified against a dummy hash when the user is unknown: same time either way.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    if !password_matches(&state, req.password, stored).await? {
        // A wrong password for a real account is that account's business:
        // recorded in its home organization. An unknown address belongs to
        // no organization; the rate limit and the server log cover it.
        if let Some(u) = &user
            && let Ok(Some((org_id, _))) = state.store.home_org(u.id).await
        {
            state.audit.record(
                Entry::user(org_id, u.id, ip, "signin")
                    .with("method", "password")
                    .status(StatusCode::UNAUTHORIZED),
            );
        }
        return Err(wrong());
    }
    let user = user.ok_or_else(wrong)?;
    let (org_id, role) = match req.org_id {
        // The password is proven: saying "not a member" reveals nothing new.
        Some(org) => match state.store.role(org, user.id).await? {
            Some(role) => (org, role),
            None => {
                return Err(ApiError::forbidden(format!(
                    "you are not a member of organization {org}"
                )));
            }
        },
        None => state.store.home_org(user.id).await?.ok_or_else(wrong)?,
    };
    let org = state.store.org(org_id).await?.ok_or_else(wrong)?;
    let (token, expires_at) =
        start_session(&state, (user.id, org_id, role), ip, "password").await?;
    Ok(axum::Json(LoginResponse {
        token: token.expose().to_string(),
        expires_at,
        user: UserView::of(user),
        org: OrgView::of(org, role),
    }))
}

/// Creates a login session of `user_id` in `org_id` with `role`'s scopes,
/// for `--session-ttl`: the token and when it expires (unix ms). The one way
/// sessions start (password login, the dashboard's one-click `--dev` link).
/// Every session start is a `signin` audit entry, with `how`.
pub(crate) async fn start_session(
    state: &State,
    (user_id, org_id, role): (i64, i64, Role),
    ip: std::net::IpAddr,
    how: &str,
) -> ApiResult<(Secret, i64)> {
    let token = random_secret("beamsess_");
    let now = now_ms();
    let expires_at = now + state.cfg.session_ttl.as_millis() as i64;
    let id = state
        .store
        .insert_token(
            &NewToken {
                hash: &hash_secret(token.expose()),
                description: "login session",
                user_id,
                org_id,
                scopes: role.scopes(),
                kind: TokenKind::Session,
                expires_at: Some(expires_at),
                environment_id: None,
            },
            now,
        )
        .await?;
    state.audit.record(
        Entry::user(org_id, user_id, ip, "signin")
            .token(id)
            .with("method", how),
    );
    Ok((token, expires_at))
}

/// Revokes the token that made this request.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Token revoked"), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn logout(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_token(p.token_id, p.user_id, now_ms())
        .await?;
    state.registry.kick_token(p.token_id);
    state.revocation.changed();
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's user, organization and effective scopes.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn me(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
) -> ApiResult<axum::Json<MeResponse>> {
    let user = state
        .store
        .user(p.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    let org = state
        .store
        .org(p.org_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's organization no longer exists"))?;
    Ok(axum::Json(MeResponse {
        user: UserView::of(user),
        org: OrgView::of(org, p.role),
        scopes: p.scopes.list(),
        token_kind: match p.kind {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Reset => "reset",
            TokenKind::Agent => "agent",
            TokenKind::Verify => "verify",
        }
        .into(),
        orgs: state
            .store
            .memberships(p.user_id)
            .await?
            .into_iter()
            .map(|(id, name, role)| OrgView { id, name, role })
            .collect(),
    }))
}
