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
mod error;
mod policy;
#[cfg(test)]
mod properties;

pub use db::Relation;
pub use detect::suggest;
pub use error::SyncError;
pub use policy::{Action, FakeKind, Policy, TablePolicy, action_text};

use std::path::PathBuf;

use futures_util::TryStreamExt;
use ring::hmac;
use serde_json::Map;
use sqlx::Row;

use db::{Conn, db_err, on_conn, quote, typed};

/// A filter value the column's type cannot hold is the caller's mistake (400),
/// not a database failure.
fn filter_err(e: sqlx::Error) -> SyncError {
    if let sqlx::Error::Database(d) = &e
        && d.code().is_some_and(|c| c.starts_with("22"))
    {
        return SyncError::Refused(format!(
            "a filter value does not fit its column's type: {}",
            d.message()
        ));
    }
    db_err(e)
}

/// Why a foreign key cannot be followed under the policy, if it cannot.
fn follow_refusal(policy: &Policy, tp: &TablePolicy, r: &Relation) -> Option<String> {
    let kept = |tp: &TablePolicy, c: &str| tp.columns.get(c) == Some(&Action::Keep);
    if !kept(tp, &r.column) {
        return Some(format!(
            "{} is not kept by the policy (its values are not the real keys)",
            r.column
        ));
    }
    match policy.tables.get(&r.references_table) {
        None => Some(format!(
            "table '{}' is not in the agent's sync policy",
            r.references_table
        )),
        Some(rt) if !kept(rt, &r.references_column) => Some(format!(
            "{}.{} is not kept by the policy",
            r.references_table, r.references_column
        )),
        Some(_) => None,
    }
}
use policy::apply;

/// Where the agent syncs from.
#[derive(Debug, Clone)]
pub struct SyncSource {
    /// The production database (the agent's bounded, read-only pool).
    pub db: crate::proddb::ProdDb,
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

/// A filter column the policy does not keep is refused, naming the column and
/// its action: comparing a dropped, hashed, masked, faked, nulled or fixed
/// column with a guessed value would tell the caller whether the guess is the
/// raw production value.
fn filterable<'a>(
    flag: &str,
    table: &str,
    col: &str,
    cols: &'a [(String, String)],
    tp: &TablePolicy,
) -> Result<&'a str, SyncError> {
    let Some((_, sql_type)) = cols.iter().find(|(name, _)| name == col) else {
        return Err(SyncError::Refused(format!(
            "{flag} {col}: no such column in {table}"
        )));
    };
    let action = match tp.columns.get(col) {
        Some(a) => a.clone(),
        None if tp.default_drop => Action::Drop,
        None => {
            return Err(SyncError::Refused(format!(
                "{flag} {col}: column {table}.{col} has no sanitization policy"
            )));
        }
    };
    if action != Action::Keep {
        return Err(SyncError::Refused(format!(
            "{flag} {col}: column {table}.{col} is `{}` in the agent's policy; filters may only use columns the policy keeps",
            action_text(&action)
        )));
    }
    Ok(sql_type)
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
        let mut conn = self.db.begin().await?;
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
        let t = q.table.as_str();
        let mut sql = format!(
            "SELECT {} FROM {}",
            plan.iter()
                .map(|(c, _, _)| format!("{} AS {}", conn.as_text(t, c), quote(c)))
                .collect::<Vec<_>>()
                .join(", "),
            quote(t)
        );
        // Values are bound, never spliced: they cannot change the query.
        let mut binds: Vec<String> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        for (c, v) in &q.filters {
            let sql_type = filterable("--where", t, c, &cols, tp)?;
            binds.push(conn.bound("--where", c, sql_type, v)?);
            conditions.push(conn.equals(t, c, sql_type, binds.len()));
        }
        let mut in_columns: Vec<&str> = q.any_of.iter().map(|(c, _)| c.as_str()).collect();
        in_columns.sort_unstable();
        in_columns.dedup();
        for col in in_columns {
            let sql_type = filterable("in", t, col, &cols, tp)?;
            let mut ns = Vec::new();
            for (_, v) in q.any_of.iter().filter(|(c, _)| c == col) {
                binds.push(conn.bound("in", col, sql_type, v)?);
                ns.push(binds.len());
            }
            conditions.push(conn.any_of(t, col, sql_type, &ns));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        // A stable order makes --skip (and so resuming) mean the same rows.
        // Qualified, so it sorts by the column itself (and its index), not by
        // the text alias of the same name. Only a key the policy keeps may
        // order: rows ranked by a hidden key (an e-mail, an SSN) would leak
        // its order through --skip and --limit.
        let pk = conn.primary_key(t).await?;
        let count_sql = format!("SELECT COUNT(*) FROM ({sql}) AS counted");
        let pk_kept = !pk.is_empty() && pk.iter().all(|c| tp.columns.get(c) == Some(&Action::Keep));
        if pk_kept {
            sql.push_str(&format!(
                " ORDER BY {}",
                pk.iter()
                    .map(|c| format!("{}.{}", quote(t), quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if q.skip > 0 {
            return Err(SyncError::Refused(format!(
                "--skip and --resume need rows in primary-key order, and {t}'s key is not kept by the agent's policy (or it has none)"
            )));
        }
        match (q.limit, q.skip, &conn) {
            (Some(l), 0, _) => sql.push_str(&format!(" LIMIT {l}")),
            (Some(l), s, _) => sql.push_str(&format!(" LIMIT {l} OFFSET {s}")),
            (None, 0, _) => {}
            // SQLite needs a LIMIT before OFFSET; -1 means none.
            (None, s, Conn::Sqlite(_)) => sql.push_str(&format!(" LIMIT -1 OFFSET {s}")),
            (None, s, Conn::Pg(_)) => sql.push_str(&format!(" OFFSET {s}")),
            // MySQL too, and its documented "no limit" is the largest u64.
            (None, s, Conn::MySql(_)) => {
                sql.push_str(&format!(" LIMIT {} OFFSET {s}", u64::MAX));
            }
        }
        let matching: i64 = on_conn!(&mut conn, c => {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql));
            for v in &binds {
                query = query.bind(v.as_str());
            }
            query.fetch_one(&mut *c).await.map_err(filter_err)?
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
                query = query.bind(v.as_str());
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
    /// Only keys the policy keeps on both sides can be followed: a follow
    /// is an `in=` filter on the referenced column, and a hashed or faked key
    /// holds pseudonyms that match nothing.
    pub async fn relations(&self, table: &str) -> Result<Vec<Relation>, SyncError> {
        let policy = self.policy()?;
        let Some(tp) = policy.tables.get(table) else {
            return Err(SyncError::Refused(format!(
                "table '{table}' is not in the agent's sync policy"
            )));
        };
        let mut conn = self.db.begin().await?;
        let mut rels = conn.relations(table).await?;
        for r in &mut rels {
            r.refused = follow_refusal(&policy, tp, r);
        }
        Ok(rels)
    }

    /// A proposed policy for `table` from the default detectors, as TOML.
    pub async fn suggest_policy(&self, table: &str) -> Result<String, SyncError> {
        let mut conn = self.db.begin().await?;
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
