//! Domains of an organization: reserved subdomains of the server's domain, and
//! custom domains proven by a DNS TXT record.

use serde::Serialize;
// Dynamic SQL here is built only from constant column lists and column names;
// every value is bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, on_pool};

/// What a domain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainKind {
    /// A reserved subdomain of the server's domain.
    Subdomain,
    /// A custom domain proven by a DNS TXT record.
    Custom,
}

/// Where a domain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    /// Waiting for its TXT record.
    Pending,
    /// Routing.
    Active,
    /// Never verified in time; anyone may add the host name again.
    Expired,
    /// Its record disappeared; routing stops until it is back.
    Suspended,
}

impl DomainKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subdomain => "subdomain",
            Self::Custom => "custom",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "subdomain" => Ok(Self::Subdomain),
            "custom" => Ok(Self::Custom),
            o => Err(StoreError::Corrupt(format!("unknown domain kind '{o}'"))),
        }
    }
}

impl DomainStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            "expired" => Ok(Self::Expired),
            "suspended" => Ok(Self::Suspended),
            o => Err(StoreError::Corrupt(format!("unknown domain status '{o}'"))),
        }
    }
}

/// A domain as stored (and as the API shows it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainRow {
    /// Domain id.
    pub id: i64,
    /// Owning organization.
    #[serde(skip)]
    pub org_id: i64,
    /// Lower-cased host name.
    pub hostname: String,
    /// `subdomain` (of the server's domain) or `custom`.
    pub kind: DomainKind,
    /// `pending`, `active`, `expired` or `suspended`.
    pub status: DomainStatus,
    /// Value to publish as TXT `_beam-challenge.<hostname>`.
    pub verification_token: String,
    /// Last successful verification, unix ms.
    pub verified_at: Option<i64>,
    /// Last check, unix ms.
    pub checked_at: Option<i64>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    /// Tunnel the domain routes to.
    pub tunnel_id: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

const COLUMNS: &str = "id, org_id, hostname, kind, status, verification_token, verified_at, \
                       checked_at, last_error, tunnel_id, created_at";

macro_rules! domain_of {
    ($r:expr) => {{
        let r = $r;
        DomainRow {
            id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            hostname: r.try_get("hostname")?,
            kind: DomainKind::parse(&r.try_get::<String, _>("kind")?)?,
            status: DomainStatus::parse(&r.try_get::<String, _>("status")?)?,
            verification_token: r.try_get("verification_token")?,
            verified_at: r.try_get("verified_at")?,
            checked_at: r.try_get("checked_at")?,
            last_error: r.try_get("last_error")?,
            tunnel_id: r.try_get("tunnel_id")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

/// A new domain.
#[derive(Debug, Clone, Copy)]
pub struct NewDomain<'a> {
    /// Owning organization.
    pub org_id: i64,
    /// Lower-cased host name.
    pub hostname: &'a str,
    /// What it is.
    pub kind: DomainKind,
    /// Initial status.
    pub status: DomainStatus,
    /// Random challenge value.
    pub verification_token: &'a str,
}

/// The outcome of a check, for [`Store::record_check`].
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// New status.
    pub status: DomainStatus,
    /// Set when the check passed.
    pub verified: bool,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// Unix ms.
    pub now: i64,
}

impl Store {
    /// Adds a domain; `Ok(None)` when the host name is taken (by anyone). An
    /// `expired` claim (never verified in time) is replaced.
    pub async fn create_domain(
        &self,
        d: NewDomain<'_>,
        now: i64,
    ) -> Result<Option<DomainRow>, StoreError> {
        let sql = format!(
            "INSERT INTO domains (org_id, hostname, kind, status, verification_token, created_at, verified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 = 'active' THEN $6 ELSE NULL END) \
             ON CONFLICT (hostname) DO UPDATE SET org_id = excluded.org_id, kind = excluded.kind, \
               status = excluded.status, verification_token = excluded.verification_token, \
               created_at = excluded.created_at, verified_at = excluded.verified_at, \
               checked_at = NULL, last_error = NULL, tunnel_id = NULL \
             WHERE domains.status = 'expired' RETURNING {COLUMNS}"
        );
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(d.org_id).bind(d.hostname).bind(d.kind.as_str()).bind(d.status.as_str())
                .bind(d.verification_token).bind(now)
                .fetch_all(p).await?.into_iter().next() {
                Some(r) => Some(domain_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Domains of an organization, by name.
    pub async fn domains(&self, org_id: i64) -> Result<Vec<DomainRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM domains WHERE org_id = $1 ORDER BY hostname");
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).fetch_all(p).await? {
                out.push(domain_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// One domain of an organization.
    pub async fn domain(&self, org_id: i64, id: i64) -> Result<Option<DomainRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM domains WHERE org_id = $1 AND id = $2");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).bind(id).fetch_optional(p).await? {
                Some(r) => Some(domain_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// A domain by host name, whoever owns it.
    pub async fn domain_by_host(&self, hostname: &str) -> Result<Option<DomainRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM domains WHERE hostname = $1");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(hostname).fetch_optional(p).await? {
                Some(r) => Some(domain_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Custom domains not checked since `before`, oldest check first.
    pub async fn domains_due(&self, before: i64, limit: i64) -> Result<Vec<DomainRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM domains WHERE kind = 'custom' AND status <> 'expired' \
             AND (checked_at IS NULL OR checked_at < $1) ORDER BY COALESCE(checked_at, 0), id LIMIT $2"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(before).bind(limit).fetch_all(p).await? {
                out.push(domain_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Stores the result of a verification.
    pub async fn record_check(&self, id: i64, c: Check<'_>) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE domains SET status = $1, checked_at = $2, last_error = $3, \
             verified_at = CASE WHEN $4 THEN $2 ELSE verified_at END WHERE id = $5")
            .bind(c.status.as_str()).bind(c.now).bind(c.error).bind(c.verified).bind(id)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Marks custom domains still `pending` that were added before `before` as
    /// `expired`, so an unverified claim cannot hold a host name forever.
    pub async fn expire_pending(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE domains SET status = 'expired' WHERE kind = 'custom' AND status = 'pending' \
             AND created_at < $1")
            .bind(before).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Routes a domain to a tunnel.
    pub async fn attach_domain(&self, id: i64, tunnel_id: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE domains SET tunnel_id = $1 WHERE id = $2")
            .bind(tunnel_id).bind(id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Removes a domain; `Ok(None)` when the organization has no such domain.
    pub async fn delete_domain(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<Option<DomainRow>, StoreError> {
        let Some(d) = self.domain(org_id, id).await? else {
            return Ok(None);
        };
        on_pool!(self, p => sqlx::query("DELETE FROM domains WHERE org_id = $1 AND id = $2")
            .bind(org_id).bind(id).execute(p).await.map(|_| ())?);
        Ok(Some(d))
    }

    /// `(host name, organization)` of every active domain of the
    /// organizations with tunnels on `node`: what that node may keep routing.
    /// A domain removed or suspended through another node is missing here.
    pub async fn active_domains_for_node(
        &self,
        node: &str,
    ) -> Result<std::collections::HashSet<(String, i64)>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT hostname, org_id FROM domains WHERE status = 'active' \
                 AND org_id IN (SELECT org_id FROM tunnels WHERE node_id = $1)")
                .bind(node).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("hostname")?, r.try_get("org_id")?)))
                .collect::<Result<_, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// Custom domains of an organization (plan limit).
    pub async fn count_custom_domains(&self, org_id: i64) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query(
            "SELECT COUNT(*) AS n FROM domains WHERE org_id = $1 AND kind = 'custom'")
            .bind(org_id).fetch_one(p).await?.try_get("n")?);
        Ok(n)
    }
}
