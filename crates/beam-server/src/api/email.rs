//! The mailed one-time tokens of `/api/auth/*`: verifying an address
//! (`verify-email`) and resetting a password (`forgot-password`,
//! `reset-password`). Answers never reveal whether an address is registered.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::credentials::{Accepted, hash_password, normalize_email, password_matches, rate_limit};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Ip, Json};
use crate::accounts::auth::{hash_secret, random_secret};
use crate::accounts::password;
use crate::state::State;
use crate::store::{NewToken, TokenKind, now_ms};
use beam_proto::Secret;

/// Password reset request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    /// Email address.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

/// Password reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The reset token that was delivered to the user.
    #[schema(value_type = String, format = Password)]
    pub token: Secret,
    /// The new password.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 1024)]
    pub password: Secret,
}

/// E-mail verification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token from the verification mail.
    #[schema(value_type = String, format = Password)]
    pub token: Secret,
    /// The account's password: the mail proves the address, the password
    /// proves the person who registered it is the one at that address.
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
}

/// Hours a verification token stays valid.
const VERIFY_HOURS: i64 = 24;

/// Mails a one-time verification token to `user_id`'s address (only the
/// mail program's stdin sees it).
pub(super) async fn send_verification(
    state: &State,
    user_id: i64,
) -> Result<(), crate::store::StoreError> {
    let (Some(user), Some((org_id, _))) = (
        state.store.user(user_id).await?,
        state.store.home_org(user_id).await?,
    ) else {
        return Ok(());
    };
    let Some(mailer) = state.cfg.mailer.clone() else {
        tracing::warn!(
            user_id,
            "no mail transport (--sendmail): the address cannot be verified by mail"
        );
        return Ok(());
    };
    let token = one_time_token(
        state,
        (user_id, org_id),
        (TokenKind::Verify, "beamverify_"),
        "e-mail verification",
        VERIFY_HOURS,
    )
    .await?;
    let body = serde_json::json!({ "token": token.expose(), "password": "the password you registered with" });
    let text = format!(
        "Someone registered a beam account on {domain} with this address.\n\
         If it was you, confirm the address within {VERIFY_HOURS} hours (with the password\n\
         you chose):\n\n\
         curl -X POST {api}/api/auth/verify-email -H 'Content-Type: application/json' -d '{body}'\n\n\
         Until then the account cannot create tokens or join an organization.\n\
         If it was not you, someone else registered your address: do not confirm it. To take\n\
         the account over, use \"forgot password\" (POST {api}/api/auth/forgot-password):\n\
         a reset proves the address and signs everyone else out.\n",
        domain = state.cfg.domain,
        api = state.cfg.api_url,
    );
    if let Err(e) = mailer
        .send(&user.email, "Confirm your beam address", &text)
        .await
    {
        tracing::warn!(user_id, error = %e, "verification mail failed");
    }
    Ok(())
}

/// Stores a one-time token of `kind` (only its hash) for `(user, org)`, valid
/// for `hours`, and returns the secret for the mail.
async fn one_time_token(
    state: &State,
    (user_id, org_id): (i64, i64),
    (kind, prefix): (TokenKind, &str),
    description: &str,
    hours: i64,
) -> Result<Secret, crate::store::StoreError> {
    let token = random_secret(prefix);
    let now = now_ms();
    state
        .store
        .insert_token(
            &NewToken {
                hash: &hash_secret(token.expose()),
                description,
                user_id,
                org_id,
                scopes: Default::default(),
                kind,
                expires_at: Some(now + hours * 3_600_000),
                environment_id: None,
            },
            now,
        )
        .await?;
    Ok(token)
}

/// Proves the account's e-mail address with the token from the verification mail.
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "auth", request_body = VerifyRequest,
    responses((status = 204, description = "Address verified"), (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn verify_email(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Json(req): Json<VerifyRequest>,
) -> ApiResult<StatusCode> {
    rate_limit(&state, ip)?;
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the verification token or the password is wrong, or the token was used or expired",
        )
    };
    let p = state
        .auth
        .authenticate(req.token.expose(), ip, &[TokenKind::Verify])
        .await
        .map_err(|_| invalid())?;
    // Someone else may have registered this address: the owner of the
    // mailbox confirms only an account whose password they know (else they
    // take it over with a password reset).
    let stored = state
        .store
        .user(p.user_id)
        .await?
        .and_then(|u| u.password_hash);
    if !password_matches(&state, req.password, stored).await? {
        return Err(invalid());
    }
    let now = now_ms();
    state.store.mark_verified(p.user_id, now).await?;
    state
        .store
        .revoke_all(p.user_id, TokenKind::Verify, now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses (403) a user whose address is not verified yet: such an account
/// may be someone else's pre-registration of that address.
pub(crate) async fn require_verified(state: &State, user_id: i64) -> Result<(), ApiError> {
    let user = state
        .store
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    if user.email_verified_at.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "email_unverified",
            format!(
                "verify {} first: follow the verification mail (POST /api/auth/verify-email); until then this account cannot create tokens or join organizations",
                user.email
            ),
        ));
    }
    Ok(())
}

/// Starts a password reset. The answer is the same for unknown emails.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "auth", request_body = ForgotRequest,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn forgot_password(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Json(req): Json<ForgotRequest>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    rate_limit(&state, ip)?;
    let email = normalize_email(&req.email)?;
    // Everything that depends on whether the account exists runs after the
    // answer, so the answer takes as long either way.
    tokio::spawn(async move {
        if let Err(e) = send_reset(&state, &email).await {
            tracing::warn!(error = %e, "password reset failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted".into(),
            message:
                "if an account with a password exists for this address, a reset token is on its way"
                    .into(),
        }),
    ))
}

/// Creates a reset token for `email`'s account, if it has a password, and mails
/// it. The token goes to the mail program's stdin only, never to logs.
async fn send_reset(state: &State, email: &str) -> Result<(), crate::store::StoreError> {
    let Some(user) = state.store.user_by_email(email).await? else {
        return Ok(());
    };
    let Some((org_id, _)) = state.store.home_org(user.id).await? else {
        return Ok(());
    };
    if user.password_hash.is_none() {
        return Ok(());
    }
    let Some(mailer) = state.cfg.mailer.clone() else {
        tracing::warn!(
            user_id = user.id,
            "password reset requested, but no mail transport is configured (--sendmail)"
        );
        return Ok(());
    };
    let token = one_time_token(
        state,
        (user.id, org_id),
        (TokenKind::Reset, "beamreset_"),
        "password reset",
        1,
    )
    .await?;
    let body = reset_mail(&state.cfg.domain, &state.cfg.api_url, token.expose());
    match mailer
        .send(&user.email, "Reset your beam password", &body)
        .await
    {
        Ok(()) => tracing::info!(user_id = user.id, "password reset mail handed to sendmail"),
        Err(e) => tracing::warn!(user_id = user.id, error = %e, "password reset mail failed"),
    }
    Ok(())
}

/// The text of a password-reset mail.
fn reset_mail(domain: &str, api_url: &str, token: &str) -> String {
    let body = serde_json::json!({ "token": token, "password": "your new password" });
    format!(
        "Someone asked to reset the password of your beam account on {domain}.\n\
         If it was you, set a new password within the hour, in the dashboard:\n\n\
         {api_url}/reset#token={token}\n\n\
         or from a terminal:\n\n\
         curl -X POST {api_url}/api/auth/reset-password -H 'Content-Type: application/json' -d '{body}'\n\n\
         The token works once. Setting a new password signs you out everywhere: every\n\
         session and token of your account is revoked, and your tunnels, agents and\n\
         streams disconnect. If it was not you, ignore this message; your password is unchanged.\n"
    )
}

/// Sets a new password with a reset token. The user is signed out
/// everywhere: every session and token of theirs (API, agent, session,
/// reset, verification) is revoked, and their tunnels, agents and streams
/// disconnect, because a reset usually means the old password leaked.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "auth", request_body = ResetRequest,
    responses((status = 204, description = "Password changed"), (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn reset_password(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Json(req): Json<ResetRequest>,
) -> ApiResult<StatusCode> {
    rate_limit(&state, ip)?;
    password::check_policy(req.password.expose()).map_err(ApiError::invalid)?;
    let p = state
        .auth
        .authenticate(req.token.expose(), ip, &[TokenKind::Reset])
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "the reset token is invalid, used or expired",
            )
        })?;
    let hash = hash_password(&state, req.password).await?;
    let now = now_ms();
    state.store.set_password(p.user_id, &hash).await?;
    // The reset proved the address too.
    state.store.mark_verified(p.user_id, now).await?;
    let revoked = state.store.revoke_user(p.user_id, now).await?;
    state.revocation.changed();
    tracing::info!(
        user_id = p.user_id,
        revoked,
        "password reset: signed out everywhere"
    );
    Ok(StatusCode::NO_CONTENT)
}
