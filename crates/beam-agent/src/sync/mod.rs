//! `beam sync` on the agent: sanitized rows from the production database
//! (PostgreSQL, or SQLite opened read-only), streamed as NDJSON. Only the agent's policy decides what leaves
//! production; the caller cannot turn sanitization off.
//!
//! The policy (TOML, on the agent) allowlists tables and gives every column an
//! action: `keep`, `drop`, `null`, `hash` (keyed HMAC, deterministic), `mask`
//! (last 4 characters kept), `fixed:VALUE`, or `fake:KIND` (email, phone, name,
//! address, ip, card, text; deterministic from the same keyed HMAC, so a value
//! maps to the same pseudonym in every table and joins still match). A column
//! without an action is refused, naming it, unless the table says
//! `default = "drop"`: schema drift is an error, not a leak.
//!
//! ```toml
//! [tables.users]
//! columns = { id = "keep", email = "fake:email", password_hash = "drop" }
//! ```

//!
//! Layout: `policy` (actions and applying them), `detect` (proposed
//! policies), `db` (the production database in both dialects), and here the
//! request, the streaming of sanitized rows, and the schema answers.

mod db;
mod detect;
mod policy;

pub use db::Relation;
pub use detect::suggest;
pub use policy::{Action, FakeKind, Policy, TablePolicy, action_text};

use std::path::PathBuf;

use futures_util::TryStreamExt;
use ring::hmac;
use serde_json::Map;
use sqlx::Row;

use db::{Conn, db_err, on_conn, quote, typed};
use policy::apply;

/// Where the agent syncs from.
#[derive(Debug, Clone)]
pub struct SyncSource {
    /// The production database URL (PostgreSQL).
    pub database_url: beam_proto::Secret,
    /// The policy file, re-read per request.
    pub policy: PathBuf,
    /// The pseudonym key (never leaves the agent).
    pub key: beam_proto::Secret,
}

/// A sync request.
#[derive(Debug, Clone, Default)]
pub struct SyncQuery {
    /// The table.
    pub table: String,
    /// Only these columns (after the policy).
    pub select: Vec<String>,
    /// `column = value` filters, values bound as text.
    pub filters: Vec<(String, String)>,
    /// `column IN (values…)` filters (for `--related`), values bound as text.
    pub any_of: Vec<(String, String)>,
    /// Most rows.
    pub limit: Option<u64>,
    /// Rows to skip first (in primary-key order), for resuming.
    pub skip: u64,
}

/// What the row stream sends: the number of rows to expect, then NDJSON chunks.
#[derive(Debug)]
pub enum Chunk {
    /// Rows this request will send (after skip and limit); sent first.
    Total(u64),
    /// NDJSON lines.
    Data(bytes::Bytes),
}

/// Why a sync was refused. Messages name tables and columns, never values.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request is not acceptable (policy, unknown column, …).
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
}

impl SyncSource {
    fn policy(&self) -> Result<Policy, SyncError> {
        let text = std::fs::read_to_string(&self.policy).map_err(|e| {
            SyncError::Refused(format!("the sync policy cannot be read in production: {e}"))
        })?;
        Policy::parse(&text)
            .map_err(|e| SyncError::Refused(format!("the sync policy is invalid: {e}")))
    }

    /// Streams the sanitized rows of `q` as NDJSON chunks of about `chunk`
    /// bytes into `tx` (a slow reader slows the query: the channel is bounded).
    /// Fails closed before the first row. Returns the number of rows.
    pub async fn stream(
        &self,
        q: &SyncQuery,
        tx: &tokio::sync::mpsc::Sender<Result<Chunk, SyncError>>,
        chunk: usize,
    ) -> Result<u64, SyncError> {
        let policy = self.policy()?;
        let Some(tp) = policy.tables.get(&q.table) else {
            return Err(SyncError::Refused(format!(
                "table '{}' is not in the agent's sync policy (allowlisted: {})",
                q.table,
                policy.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let mut conn = Conn::open(self.database_url.expose()).await?;
        let cols = conn.columns(&q.table).await?;
        if cols.is_empty() {
            return Err(SyncError::Refused(format!(
                "table '{}' does not exist in production",
                q.table
            )));
        }
        // Fail closed: every column needs an action unless the table drops by default.
        let mut plan: Vec<(String, String, Action)> = Vec::new();
        for (c, t) in &cols {
            let action = match tp.columns.get(c) {
                Some(a) => a.clone(),
                None if tp.default_drop => Action::Drop,
                None => {
                    return Err(SyncError::Refused(format!(
                        "column {}.{c} has no sanitization policy; add it to the agent's policy (or set default = \"drop\" for the table)",
                        q.table
                    )));
                }
            };
            if action != Action::Drop {
                plan.push((c.clone(), t.clone(), action));
            }
        }
        if !q.select.is_empty() {
            for s in &q.select {
                if !plan.iter().any(|(c, _, _)| c == s) {
                    return Err(SyncError::Refused(format!(
                        "--select {s}: no such column (or dropped by the policy) in {}",
                        q.table
                    )));
                }
            }
            plan.retain(|(c, _, _)| q.select.contains(c));
        }
        let mut sql = format!(
            "SELECT {} FROM {}",
            plan.iter()
                .map(|(c, _, _)| format!("{} AS {}", conn.as_text(c), quote(c)))
                .collect::<Vec<_>>()
                .join(", "),
            quote(&q.table)
        );
        // Values are bound, never spliced: they cannot change the query.
        let mut binds: Vec<&str> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        for (c, v) in &q.filters {
            if !cols.iter().any(|(name, _)| name == c) {
                return Err(SyncError::Refused(format!(
                    "--where {c}: no such column in {}",
                    q.table
                )));
            }
            binds.push(v);
            conditions.push(format!("{} = ${}", conn.as_text(c), binds.len()));
        }
        let mut in_columns: Vec<&str> = q.any_of.iter().map(|(c, _)| c.as_str()).collect();
        in_columns.dedup();
        for col in in_columns {
            if !cols.iter().any(|(name, _)| name == col) {
                return Err(SyncError::Refused(format!(
                    "no such column {col} in {}",
                    q.table
                )));
            }
            let mut ps = Vec::new();
            for (_, v) in q.any_of.iter().filter(|(c, _)| c == col) {
                binds.push(v);
                ps.push(format!("${}", binds.len()));
            }
            conditions.push(format!("{} IN ({})", conn.as_text(col), ps.join(", ")));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        // A stable order makes --skip (and so resuming) mean the same rows.
        let pk = conn.primary_key(&q.table).await?;
        let count_sql = format!("SELECT COUNT(*) FROM ({sql}) AS counted");
        if !pk.is_empty() {
            sql.push_str(&format!(
                " ORDER BY {}",
                pk.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            ));
        }
        match (q.limit, q.skip, &conn) {
            (Some(l), 0, _) => sql.push_str(&format!(" LIMIT {l}")),
            (Some(l), s, _) => sql.push_str(&format!(" LIMIT {l} OFFSET {s}")),
            (None, 0, _) => {}
            // SQLite needs a LIMIT before OFFSET; -1 means none.
            (None, s, Conn::Sqlite(_)) => sql.push_str(&format!(" LIMIT -1 OFFSET {s}")),
            (None, s, Conn::Pg(_)) => sql.push_str(&format!(" OFFSET {s}")),
        }
        let matching: i64 = on_conn!(&mut conn, c => {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql));
            for v in &binds {
                query = query.bind(*v);
            }
            query.fetch_one(&mut *c).await.map_err(db_err)?
        });
        let total = u64::try_from(matching).unwrap_or(0).saturating_sub(q.skip);
        let total = q.limit.map_or(total, |l| total.min(l));
        if tx.send(Ok(Chunk::Total(total))).await.is_err() {
            return Ok(0);
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.expose().as_bytes());
        let mut n = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(chunk + 4096);
        on_conn!(&mut conn, c => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in &binds {
                query = query.bind(*v);
            }
            let mut rows = query.fetch(c);
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                let mut obj = Map::with_capacity(plan.len());
                for (i, (col, t, action)) in plan.iter().enumerate() {
                    let text: Option<String> = row.try_get(i).map_err(db_err)?;
                    obj.insert(col.clone(), apply(action, typed(text, t), &key));
                }
                n += 1;
                if serde_json::to_writer(&mut buf, &obj).is_ok() {
                    buf.push(b'\n');
                }
                if buf.len() >= chunk {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk + 4096));
                    if tx.send(Ok(Chunk::Data(bytes::Bytes::from(full)))).await.is_err() {
                        // The reader went away: stop reading production.
                        return Ok(n);
                    }
                }
            }
        });
        if !buf.is_empty() {
            let _ = tx.send(Ok(Chunk::Data(bytes::Bytes::from(buf)))).await;
        }
        Ok(n)
    }
}

impl SyncSource {
    /// The foreign keys of an allowlisted table (`--related` follows them).
    pub async fn relations(&self, table: &str) -> Result<Vec<Relation>, SyncError> {
        let policy = self.policy()?;
        if !policy.tables.contains_key(table) {
            return Err(SyncError::Refused(format!(
                "table '{table}' is not in the agent's sync policy"
            )));
        }
        let mut conn = Conn::open(self.database_url.expose()).await?;
        conn.relations(table).await
    }

    /// A proposed policy for `table` from the default detectors, as TOML.
    pub async fn suggest_policy(&self, table: &str) -> Result<String, SyncError> {
        let mut conn = Conn::open(self.database_url.expose()).await?;
        let cols = conn.columns(table).await?;
        if cols.is_empty() {
            return Err(SyncError::Refused(format!(
                "table '{table}' does not exist in production"
            )));
        }
        let mut out = format!(
            "# Proposed by `beam sync policy suggest` from column names and types: review it.\n[tables.{table}]\ncolumns = {{ "
        );
        let parts: Vec<String> = cols
            .iter()
            .map(|(c, t)| format!("{} = \"{}\"", quote(c), action_text(&suggest(c, t))))
            .collect();
        out.push_str(&parts.join(", "));
        out.push_str(" }\n");
        Ok(out)
    }
}
