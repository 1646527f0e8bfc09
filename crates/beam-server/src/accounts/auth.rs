//! Token authentication for tunnel clients and the API, with per-IP throttling
//! of failures.
//!
//! Tokens are random (`beam_` + 43 base62 characters ≈ 256 bits), so a fast hash is
//! enough: the store keeps SHA-256 digests only, and the digest found by the lookup
//! is compared again in constant time.

use std::net::IpAddr;
use std::time::Duration;

use beam_proto::{ErrorCode, Refusal, Secret};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounts::scope::{Role, Scope, Scopes};
use crate::accounts::throttle::Throttle;
use crate::store::{Store, TokenKind, now_ms};

/// Prefix of every API token, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "beam_";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh random token. Shown to the user once; only its hash is stored.
pub fn generate_token() -> Secret {
    random_secret(TOKEN_PREFIX)
}

/// `prefix` followed by 43 random base62 characters from the OS-seeded CSPRNG.
pub fn random_secret(prefix: &str) -> Secret {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    for _ in 0..43 {
        s.push(BASE62[rng.random_range(0..BASE62.len())] as char);
    }
    Secret::new(s)
}

/// Stores `token` as an API token of the operator account with every scope
/// (bootstrap and `--dev` tokens). Storing the same token again is a no-op.
pub async fn store_operator_token(
    store: &Store,
    operator: crate::store::Operator,
    token: &str,
    description: &str,
) -> Result<i64, crate::store::StoreError> {
    store
        .insert_token(
            &crate::store::NewToken {
                hash: &hash_secret(token),
                description,
                user_id: operator.user_id,
                org_id: operator.org_id,
                scopes: Scopes::all(),
                kind: TokenKind::Api,
                expires_at: None,
                environment_id: None,
            },
            now_ms(),
        )
        .await
}

/// SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Who is making a request: the token, its user and organization, and what the
/// token may do there (its scopes capped by the user's role).
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token row.
    pub token_id: i64,
    /// What kind of token authenticated.
    pub kind: TokenKind,
    /// The user.
    pub user_id: i64,
    /// The organization the token acts in.
    pub org_id: i64,
    /// The user's role there.
    pub role: Role,
    /// Effective scopes: token scopes ∩ role scopes.
    pub scopes: Scopes,
    /// The environment an agent token publishes for.
    pub environment_id: Option<i64>,
    /// The address it authenticated from (the audit log's source).
    pub ip: IpAddr,
}

impl Principal {
    /// Whether this principal may do what `scope` covers.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Too many failures from this address.
    #[error("too many failed attempts from this address; try again in {0} s")]
    Throttled(u64),
    /// Unknown token.
    #[error("invalid token: it is unknown to this server; run `beam login` or check BEAM_TOKEN")]
    Unknown,
    /// Revoked token.
    #[error("this token was revoked; create a new one with `beam tokens create`")]
    Revoked,
    /// Expired token.
    #[error("this token has expired; log in again or create a new one with `beam tokens create`")]
    Expired,
    /// The token is of a kind that cannot be used here (e.g. a password-reset token).
    #[error("this kind of token cannot be used here")]
    WrongKind,
    /// The token's user is no longer a member of its organization.
    #[error("the token's user is no longer a member of its organization")]
    NotMember,
    /// The store failed.
    #[error("the server hit an internal error")]
    Internal,
    /// The database is full or unreachable for a while.
    #[error("the server's database is unavailable ({}); try again in a few seconds", .0.describe())]
    Unavailable(crate::store::Unavailable),
}

/// A failed store lookup: unavailable (503-like, retried) or internal.
fn store_failure(e: &crate::store::StoreError, what: &str) -> AuthError {
    match e.unavailable() {
        Some(u) => {
            tracing::warn!(error = %e, "{what} failed: the database is unavailable");
            AuthError::Unavailable(u)
        }
        None => {
            tracing::error!(error = %e, "{what} failed");
            AuthError::Internal
        }
    }
}

/// Checks tokens against the store.
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    throttle: Throttle,
    clock: std::sync::Arc<crate::accounts::clock::Clock>,
}

impl Authenticator {
    /// `failures_per_minute` failures per IP, then refusals until the minute is over.
    pub fn new(
        store: Store,
        failures_per_minute: u32,
        clock: std::sync::Arc<crate::accounts::clock::Clock>,
    ) -> Self {
        Self {
            store,
            throttle: Throttle::new(failures_per_minute.max(1), Duration::from_secs(60)),
            clock,
        }
    }

    /// Counts a failed attempt that never got as far as a token (garbage hellos).
    pub fn record_failure(&self, ip: IpAddr) {
        self.throttle.fail(ip);
    }

    /// Seconds to wait when `ip` failed too often.
    pub fn throttled(&self, ip: IpAddr) -> Option<u64> {
        self.throttle.check(ip)
    }

    /// Authenticates a bearer token of one of `kinds`.
    pub async fn authenticate(
        &self,
        token: &str,
        ip: IpAddr,
        kinds: &[TokenKind],
    ) -> Result<Principal, AuthError> {
        // The token is looked up first: a valid token is never refused because
        // someone else at the same address failed. Tokens are 256-bit random,
        // so guessing is hopeless anyway; the throttle bounds how much a
        // failing address can make the server do beyond one indexed lookup
        // (sessions, logs, handshakes), and a throttled address only learns
        // "throttled".
        let hash = hash_secret(token);
        let row = self
            .store
            .find_token(&hash)
            .await
            .map_err(|e| store_failure(&e, "token lookup"))?;
        let fail = |e: AuthError| {
            if let Some(wait) = self.throttle.check(ip) {
                return Err(AuthError::Throttled(wait));
            }
            self.throttle.fail(ip);
            Err(e)
        };
        let Some(row) = row.filter(|r| bool::from(r.hash.as_slice().ct_eq(&hash))) else {
            return fail(AuthError::Unknown);
        };
        if !kinds.contains(&row.kind) {
            return fail(AuthError::WrongKind);
        }
        if row.revoked_at.is_some() {
            return fail(AuthError::Revoked);
        }
        let now = self.clock.now_ms();
        if row.expires_at.is_some_and(|e| e <= now) {
            return fail(AuthError::Expired);
        }
        let role = match self.store.role(row.org_id, row.user_id).await {
            Ok(Some(role)) => role,
            Ok(None) => return fail(AuthError::NotMember),
            Err(e) => return Err(store_failure(&e, "role lookup")),
        };
        if let Err(e) = self.store.touch_token(row.id, now).await {
            tracing::warn!(error = %e, "could not record token use");
        }
        Ok(Principal {
            token_id: row.id,
            kind: row.kind,
            user_id: row.user_id,
            org_id: row.org_id,
            role,
            scopes: row.scopes.intersect(role.scopes()),
            environment_id: row.environment_id,
            ip,
        })
    }

    /// Checks a tunnel client's token: an API token allowed to open tunnels.
    ///
    /// A production agent (`agent`) needs an agent token instead, and an agent
    /// token opens nothing else: producers cannot read, consumers cannot publish.
    pub async fn verify(
        &self,
        token: &Secret,
        ip: IpAddr,
        agent: bool,
    ) -> Result<Principal, Refusal> {
        let refusal = |code, message: String, retry: Option<u64>| Refusal {
            code,
            message,
            retry_after_secs: retry,
        };
        let kind = if agent {
            TokenKind::Agent
        } else {
            TokenKind::Api
        };
        let p = self
            .authenticate(token.expose(), ip, &[kind])
            .await
            .map_err(|e| match e {
                AuthError::Throttled(s) => refusal(ErrorCode::Throttled, e.to_string(), Some(s)),
                AuthError::Expired => refusal(ErrorCode::TokenExpired, e.to_string(), None),
                AuthError::Internal => internal(),
                AuthError::Unavailable(_) => refusal(ErrorCode::Internal, e.to_string(), Some(5)),
                AuthError::WrongKind if agent => refusal(
                    ErrorCode::Unauthorized,
                    "beam agent needs an agent token of its environment (`beam projects token PROJECT/ENV`); developer tokens cannot publish".into(),
                    None,
                ),
                AuthError::WrongKind => refusal(
                    ErrorCode::Unauthorized,
                    "agent tokens only connect `beam agent`; use an API token for tunnels".into(),
                    None,
                ),
                other => refusal(ErrorCode::Unauthorized, other.to_string(), None),
            })?;
        if agent {
            return Ok(p);
        }
        if !p.allows(Scope::TunnelsWrite) {
            return Err(refusal(
                ErrorCode::Unauthorized,
                "this token lacks the tunnels:write scope; create one with `beam tokens create --scopes tunnels:write`".into(),
                None,
            ));
        }
        Ok(p)
    }
}

/// The refusal for errors that are ours, not the client's.
pub(crate) fn internal() -> Refusal {
    Refusal {
        code: ErrorCode::Internal,
        message: "the server hit an internal error; retrying".into(),
        retry_after_secs: Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_long() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.expose().starts_with("beam_"));
        assert_eq!(a.expose().len(), 48);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose()[5..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
