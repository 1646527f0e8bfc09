//! The audit log's rows: appended in batches, read newest first with a
//! cursor or oldest first for export, deleted only by retention.

use serde::Serialize;
// Dynamic SQL here is built only from constant fragments; every value is
// bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, on_pool};

/// One entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Unix ms.
    pub at: i64,
    /// The organization it happened in.
    pub org_id: i64,
    /// Who, when known (a failed sign-in of an unknown address has no user).
    pub user_id: Option<i64>,
    /// The token that made the call.
    pub token_id: Option<i64>,
    /// What: `logs`, `sync`, `env.check`, `token.create`, `signin`, …
    pub kind: String,
    /// Project, for parity entries.
    pub project: Option<String>,
    /// Environment, for parity entries.
    pub environment: Option<String>,
    /// The client's address.
    pub source: String,
    /// `ok`, `denied` (401/403), `refused` (another 4xx) or `failed`.
    pub outcome: String,
    /// What was asked and answered, as JSON (never a secret or a value).
    pub detail: serde_json::Value,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Entry id (increasing; the export cursor).
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// Organization id.
    pub org_id: i64,
    /// User id, when known.
    pub user_id: Option<i64>,
    /// The user's e-mail when the entry was written.
    pub user_email: Option<String>,
    /// Token id, when a token made the call.
    pub token_id: Option<i64>,
    /// What happened.
    pub kind: String,
    /// Project, for parity entries.
    pub project: Option<String>,
    /// Environment, for parity entries.
    pub environment: Option<String>,
    /// The client's address.
    pub source: String,
    /// `ok`, `denied`, `refused` or `failed`.
    pub outcome: String,
    /// Details (JSON object).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The organization (always set: nothing crosses organizations).
    pub org_id: i64,
    /// Only this user's entries.
    pub user_id: Option<i64>,
    /// Only entries written for this e-mail address.
    pub user_email: Option<String>,
    /// `sync` matches `sync` and `sync.*`.
    pub kind: Option<String>,
    /// Only this project…
    pub project: Option<String>,
    /// …and environment.
    pub environment: Option<String>,
    /// From this time (unix ms, inclusive).
    pub since: Option<i64>,
    /// Before this time (unix ms, exclusive).
    pub until: Option<i64>,
}

const COLUMNS: &str = "id, at, org_id, user_id, user_email, token_id, kind, project, environment, \
                       source, outcome, detail";

impl Store {
    /// Appends `entries` in one transaction (the e-mail is copied from the
    /// user's row as it is now).
    pub async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            for e in entries {
                sqlx::query(
                    "INSERT INTO audit_log (at, org_id, user_id, user_email, token_id, kind, project, \
                     environment, source, outcome, detail) VALUES ($1, $2, $3, \
                     (SELECT email FROM users WHERE id = $3), $4, $5, $6, $7, $8, $9, $10)")
                    .bind(e.at).bind(e.org_id).bind(e.user_id).bind(e.token_id).bind(&e.kind)
                    .bind(&e.project).bind(&e.environment).bind(&e.source).bind(&e.outcome)
                    .bind(e.detail.to_string())
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Entries matching `f`: newest first below `before` (an id), or oldest
    /// first above `after` (export); at most `limit`.
    pub async fn audit_entries(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        // Each optional filter is `($n IS NULL OR …)` so the text is constant
        // and every value is bound.
        let kind_prefix = f.kind.as_ref().map(|k| format!("{k}.%"));
        let order = if after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 \
             AND ($2 IS NULL OR user_id = $2) \
             AND ($3 IS NULL OR user_email = $3) \
             AND ($4 IS NULL OR kind = $4 OR kind LIKE $5) \
             AND ($6 IS NULL OR project = $6) AND ($7 IS NULL OR environment = $7) \
             AND ($8 IS NULL OR at >= $8) AND ($9 IS NULL OR at < $9) \
             AND ($10 IS NULL OR id < $10) AND ($11 IS NULL OR id > $11) \
             ORDER BY id {order} LIMIT $12"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(f.org_id).bind(f.user_id).bind(&f.user_email).bind(&f.kind).bind(&kind_prefix)
                .bind(&f.project).bind(&f.environment).bind(f.since).bind(f.until)
                .bind(before).bind(after).bind(limit)
                .fetch_all(p).await?
            {
                let detail: String = r.try_get("detail")?;
                out.push(AuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    org_id: r.try_get("org_id")?,
                    user_id: r.try_get("user_id")?,
                    user_email: r.try_get("user_email")?,
                    token_id: r.try_get("token_id")?,
                    kind: r.try_get("kind")?,
                    project: r.try_get("project")?,
                    environment: r.try_get("environment")?,
                    source: r.try_get("source")?,
                    outcome: r.try_get("outcome")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                });
            }
            out
        });
        Ok(rows)
    }

    /// Deletes entries older than `before` (retention); returns how many.
    pub async fn purge_audit(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before).execute(p).await?.rows_affected());
        Ok(n)
    }
}
