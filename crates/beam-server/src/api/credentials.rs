//! What the auth routes share: the address as stored, the per-address rate
//! limit, the answer that never reveals an account, and passwords checked or
//! hashed behind the server's hashing gate.

use axum::http::StatusCode;
use beam_proto::Secret;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::accounts::password;
use crate::state::State;

/// The same answer whether or not the email is known.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// What happens next.
    pub message: String,
}

/// Checks an email address enough to refuse obvious garbage.
pub(crate) fn normalize_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && e.matches('@').count() == 1
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(ApiError::invalid("'email' is not a valid email address"))
    }
}

pub(crate) fn rate_limit(state: &State, ip: std::net::IpAddr) -> Result<(), ApiError> {
    let key = crate::accounts::throttle::client_key(ip);
    state.auth_limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        ApiError::too_many(wait.as_secs().max(1))
    })
}

/// 503 with `Retry-After` when password hashing is saturated.
/// Checks `password` against `stored` (a dummy hash when `None`, so an
/// unknown account takes as long) behind the server's hashing gate.
pub(crate) async fn password_matches(
    state: &State,
    password: Secret,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    state
        .account_hashes
        .run(Vec::new(), move || {
            password::verify_now(&password, stored.as_deref())
        })
        .await
        .map_err(|b| busy(state, b))
}

/// Hashes a new password behind the server's hashing gate.
pub(crate) async fn hash_password(state: &State, password: Secret) -> Result<String, ApiError> {
    state
        .account_hashes
        .run(Vec::new(), move || password::hash_now(&password))
        .await
        .map_err(|b| busy(state, b))?
        .map_err(|e| ApiError::internal(&e))
}

pub(crate) fn busy(state: &State, b: password::Busy) -> ApiError {
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", b.to_string());
    e.retry_after = Some(state.account_hashes.retry_after());
    e
}

pub(crate) const ACCEPTED: &str = "if this address can be registered, a verification mail is on its way; the account can log in now, and create tokens or join organizations once the address is verified (POST /api/auth/verify-email)";
