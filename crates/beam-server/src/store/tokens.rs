//! Tokens: API tokens for the CLI (`beam_…`), login sessions and password-reset
//! tokens. Only SHA-256 digests are stored.

// Dynamic SQL here is built only from constant column lists and column names;
// every value is bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, on_pool};
use crate::accounts::scope::Scopes;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A long-lived CLI/API token, shown once.
    Api,
    /// A short-lived login session.
    Session,
    /// A one-time password reset.
    Reset,
    /// A production agent's producer token, bound to one environment: it can
    /// connect `beam agent` and nothing else.
    Agent,
    /// A one-time proof of an e-mail address, sent by mail at registration.
    Verify,
}

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Reset => "reset",
            TokenKind::Agent => "agent",
            TokenKind::Verify => "verify",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "api" => Ok(TokenKind::Api),
            "session" => Ok(TokenKind::Session),
            "reset" => Ok(TokenKind::Reset),
            "agent" => Ok(TokenKind::Agent),
            "verify" => Ok(TokenKind::Verify),
            other => Err(StoreError::Corrupt(format!("unknown token kind '{other}'"))),
        }
    }
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// SHA-256 of the secret.
    pub hash: &'a [u8],
    /// What the user called it.
    pub description: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Organization it acts in.
    pub org_id: i64,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Purpose.
    pub kind: TokenKind,
    /// Unix ms after which it is refused.
    pub expires_at: Option<i64>,
    /// The environment an agent token publishes for.
    pub environment_id: Option<i64>,
}

/// A stored token.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the token, for the constant-time comparison.
    pub hash: Vec<u8>,
    /// What the user called it.
    pub description: String,
    /// Owner.
    pub user_id: i64,
    /// Organization it acts in.
    pub org_id: i64,
    /// Granted scopes.
    pub scopes: Scopes,
    /// Purpose.
    pub kind: TokenKind,
    /// Unix ms.
    pub created_at: i64,
    /// Unix milliseconds after which the token is refused.
    pub expires_at: Option<i64>,
    /// Set when the token was revoked.
    pub revoked_at: Option<i64>,
    /// Last successful use.
    pub last_used_at: Option<i64>,
    /// The environment an agent token publishes for.
    pub environment_id: Option<i64>,
}

impl TokenRow {
    /// Whether the token may be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

const COLUMNS: &str = "id, hash, description, user_id, org_id, scopes, kind, created_at, \
                       expires_at, revoked_at, last_used_at, environment_id";

macro_rules! token_of {
    ($r:expr) => {{
        let r = $r;
        let scopes: String = r.try_get("scopes")?;
        let kind: String = r.try_get("kind")?;
        let user_id: Option<i64> = r.try_get("user_id")?;
        let org_id: Option<i64> = r.try_get("org_id")?;
        TokenRow {
            id: r.try_get("id")?,
            hash: r.try_get("hash")?,
            description: r.try_get("description")?,
            // Assigned to the operator at start (`ensure_operator`); 0 matches no one.
            user_id: user_id.unwrap_or(0),
            org_id: org_id.unwrap_or(0),
            scopes: Scopes::parse(&scopes).map_err(StoreError::Corrupt)?,
            kind: TokenKind::parse(&kind)?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
            last_used_at: r.try_get("last_used_at")?,
            environment_id: r.try_get("environment_id")?,
        }
    }};
}

impl Store {
    /// Number of API tokens that exist (revoked or not).
    pub async fn count_tokens(&self) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query("SELECT COUNT(*) AS n FROM tokens WHERE kind = 'api'")
            .fetch_one(p).await?.try_get("n")?);
        Ok(n)
    }

    /// Stores a token. Inserting a hash that exists is a no-op that returns the
    /// existing id, so a bootstrap token given at every start stays one row.
    pub async fn insert_token(&self, t: &NewToken<'_>, now: i64) -> Result<i64, StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO tokens (hash, description, created_at, expires_at, user_id, org_id, scopes, kind, environment_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (hash) DO NOTHING")
            .bind(t.hash).bind(t.description).bind(now).bind(t.expires_at)
            .bind(t.user_id).bind(t.org_id).bind(t.scopes.to_string()).bind(t.kind.as_str())
            .bind(t.environment_id)
            .execute(p).await.map(|_| ())?);
        let id: i64 = on_pool!(self, p => sqlx::query("SELECT id FROM tokens WHERE hash = $1")
            .bind(t.hash).fetch_one(p).await?.try_get("id")?);
        Ok(id)
    }

    /// Looks a token up by its hash.
    pub async fn find_token(&self, hash: &[u8]) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE hash = $1");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(hash).fetch_optional(p).await? {
                Some(r) => Some(token_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Token `id`, revoked or not.
    pub async fn token_by_id(&self, id: i64) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = $1");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await? {
                Some(r) => Some(token_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Whether token `id` is still usable at `now` (not revoked, not expired);
    /// long-lived streams re-check this.
    pub async fn token_active(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let row = on_pool!(self, p => {
            sqlx::query("SELECT revoked_at, expires_at FROM tokens WHERE id = $1")
                .bind(id).fetch_optional(p).await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get::<Option<i64>, _>("revoked_at")?, r.try_get::<Option<i64>, _>("expires_at")?)))
                .transpose()?
        });
        Ok(matches!(row, Some((None, exp)) if exp.is_none_or(|e| e > now)))
    }

    /// API tokens of a user, newest first (sessions and resets are not listed).
    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE user_id = $1 AND kind = 'api' ORDER BY id DESC"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(user_id).fetch_all(p).await? {
                out.push(token_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Live login sessions of a user (not revoked, not expired), newest first.
    pub async fn list_sessions(&self, user_id: i64, now: i64) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE user_id = $1 AND kind = 'session' \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(user_id).bind(now).fetch_all(p).await? {
                out.push(token_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Revokes token `id` of `user_id`; `Ok(false)` when there is no such live token.
    pub async fn revoke_token(&self, id: i64, user_id: i64, now: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now).bind(id).bind(user_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Revokes every live token of `user_id` of `kind` (e.g. sessions after a
    /// password reset).
    pub async fn revoke_all(
        &self,
        user_id: i64,
        kind: TokenKind,
        now: i64,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = $3 AND revoked_at IS NULL")
            .bind(now).bind(user_id).bind(kind.as_str()).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Revokes every live token of `user_id`, of every kind (a password
    /// reset signs the user out everywhere); returns how many.
    pub async fn revoke_user(&self, user_id: i64, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now).bind(user_id).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Agent tokens of an environment, newest first, revoked ones included.
    pub async fn agent_tokens(&self, environment_id: i64) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE environment_id = $1 AND kind = 'agent' ORDER BY id DESC"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(environment_id).fetch_all(p).await? {
                out.push(token_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Revokes agent token `id` of an environment; `Ok(false)` when there is
    /// no such live token.
    pub async fn revoke_agent_token(
        &self,
        environment_id: i64,
        id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND environment_id = $3              AND kind = 'agent' AND revoked_at IS NULL")
            .bind(now).bind(id).bind(environment_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Records that a token was used.
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Deletes expired sessions and reset tokens (API tokens are kept for the audit
    /// trail even when expired or revoked).
    pub async fn purge_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM tokens WHERE kind <> 'api' AND expires_at IS NOT NULL AND expires_at < $1 \
             AND id NOT IN (SELECT token_id FROM reservations)")
            .bind(now).execute(p).await?.rows_affected());
        Ok(n)
    }
}
