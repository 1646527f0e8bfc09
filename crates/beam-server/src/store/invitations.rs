//! Invitations to an organization: an admin invites an address with a role;
//! whoever holds the one-time token (mailed to that address, or passed on by
//! the admin) accepts it. Only the token's SHA-256 is stored.

// Dynamic SQL here is built only from a constant column list; every value is
// bound, so `AssertSqlSafe` holds.

use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, first, on_pool};
use crate::accounts::scope::Role;

/// An invitation as stored.
#[derive(Debug, Clone)]
pub struct InvitationRow {
    /// Row id.
    pub id: i64,
    /// The organization.
    pub org_id: i64,
    /// The invited address (lower-cased).
    pub email: String,
    /// The role on acceptance.
    pub role: Role,
    /// The admin who invited (`None` once their account is gone).
    pub invited_by: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms after which it cannot be accepted.
    pub expires_at: i64,
    /// Set once accepted.
    pub accepted_at: Option<i64>,
    /// Set when an admin withdrew it.
    pub revoked_at: Option<i64>,
}

impl InvitationRow {
    /// Whether it can still be accepted at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

const COLUMNS: &str =
    "id, org_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

macro_rules! invitation_of {
    ($r:expr) => {{
        let r = $r;
        let role: String = r.try_get("role")?;
        InvitationRow {
            id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            email: r.try_get("email")?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown role '{role}'")))?,
            invited_by: r.try_get("invited_by")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            accepted_at: r.try_get("accepted_at")?,
            revoked_at: r.try_get("revoked_at")?,
        }
    }};
}

/// An invitation to store.
#[derive(Debug, Clone, Copy)]
pub struct NewInvitation<'a> {
    /// The organization.
    pub org_id: i64,
    /// The invited address.
    pub email: &'a str,
    /// The role on acceptance.
    pub role: Role,
    /// SHA-256 of the accept token.
    pub token_hash: &'a [u8],
    /// The admin who invited.
    pub invited_by: i64,
    /// Unix ms.
    pub expires_at: i64,
}

impl Store {
    /// Stores an invitation; returns its id.
    pub async fn create_invitation(
        &self,
        i: &NewInvitation<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let id: i64 = on_pool!(self, p => sqlx::query(
            "INSERT INTO invitations (org_id, email, role, token_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(i.org_id).bind(i.email.to_lowercase()).bind(i.role.as_str()).bind(i.token_hash)
            .bind(i.invited_by).bind(now).bind(i.expires_at)
            .fetch_all(p).await.and_then(first)?.try_get("id")?);
        Ok(id)
    }

    /// The invitation whose token hashes to `hash`.
    pub async fn invitation_by_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<InvitationRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM invitations WHERE token_hash = $1");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(hash).fetch_optional(p).await? {
                Some(r) => Some(invitation_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Marks invitation `id` accepted, once: `Ok(false)` when it was already
    /// accepted, withdrawn or expired (two racing accepts: one wins).
    pub async fn accept_invitation(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $1")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Open invitations of an organization, newest first.
    pub async fn open_invitations(
        &self,
        org_id: i64,
        now: i64,
    ) -> Result<Vec<InvitationRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM invitations WHERE org_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2 ORDER BY id DESC"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).bind(now).fetch_all(p).await? {
                out.push(invitation_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Withdraws every open invitation `user_id` made in `org_id` (they were
    /// removed or lost the role that let them invite).
    pub async fn revoke_invitations_by(
        &self,
        org_id: i64,
        user_id: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE invitations SET revoked_at = $1 WHERE org_id = $2 AND invited_by = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL")
            .bind(now).bind(org_id).bind(user_id).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Withdraws an open invitation of `org_id`; `Ok(false)` when there is none.
    pub async fn revoke_invitation(
        &self,
        org_id: i64,
        id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND org_id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL")
            .bind(now).bind(id).bind(org_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }
}
