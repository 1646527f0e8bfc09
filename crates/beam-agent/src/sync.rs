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

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::TryStreamExt;
use ring::hmac;
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::Row;

/// What happens to one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sent as is.
    Keep,
    /// Not sent at all.
    Drop,
    /// Sent as `null`.
    Null,
    /// Keyed HMAC, hex (16 characters).
    Hash,
    /// All but the last 4 characters replaced by `*`.
    Mask,
    /// This value instead.
    Fixed(String),
    /// A deterministic fake of this kind.
    Fake(FakeKind),
}

/// Kinds of fake values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// `u<hex>@sanitized.local`
    Email,
    /// `+1-555-0NNN`
    Phone,
    /// A first and last name from fixed lists.
    Name,
    /// `<n> Main St`
    Address,
    /// `10.x.y.z`
    Ip,
    /// A 4242… test card number.
    Card,
    /// `text-<hex>`
    Text,
}

impl Action {
    /// Parses `keep`, `fake:email`, `fixed:US`, ….
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "null" => Action::Null,
            "hash" => Action::Hash,
            "mask" => Action::Mask,
            _ if s.starts_with("fixed:") => Action::Fixed(s["fixed:".len()..].to_string()),
            _ if s.starts_with("fake:") => Action::Fake(match &s["fake:".len()..] {
                "email" => FakeKind::Email,
                "phone" => FakeKind::Phone,
                "name" => FakeKind::Name,
                "address" => FakeKind::Address,
                "ip" => FakeKind::Ip,
                "card" => FakeKind::Card,
                "text" => FakeKind::Text,
                other => {
                    return Err(format!(
                        "unknown fake kind '{other}' (email, phone, name, address, ip, card, text)"
                    ));
                }
            }),
            _ => {
                return Err(format!(
                    "unknown action '{s}' (keep, drop, null, hash, mask, fixed:VALUE, fake:KIND)"
                ));
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    tables: BTreeMap<String, TableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
}

/// One table's policy.
#[derive(Debug, Clone)]
pub struct TablePolicy {
    /// Columns without an action are dropped (`default = "drop"`) instead of refused.
    pub default_drop: bool,
    /// Action per column.
    pub columns: BTreeMap<String, Action>,
}

/// The agent's sanitization policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Allowlisted tables.
    pub tables: BTreeMap<String, TablePolicy>,
}

impl Policy {
    /// Parses a policy file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut tables = BTreeMap::new();
        for (name, t) in file.tables {
            let default_drop = match t.default.as_deref() {
                None | Some("refuse") => false,
                Some("drop") => true,
                Some(o) => {
                    return Err(format!(
                        "table {name}: default must be \"refuse\" or \"drop\", not \"{o}\""
                    ));
                }
            };
            let mut columns = BTreeMap::new();
            for (c, a) in t.columns {
                columns.insert(
                    c.clone(),
                    Action::parse(&a).map_err(|e| format!("{name}.{c}: {e}"))?,
                );
            }
            tables.insert(
                name,
                TablePolicy {
                    default_drop,
                    columns,
                },
            );
        }
        Ok(Self { tables })
    }
}

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

const FIRST: [&str; 12] = [
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger",
    "Radia", "Donald",
];
const LAST: [&str; 12] = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie",
    "Allen", "Dijkstra", "Perlman", "Knuth",
];

/// Applies one action to a value. `tag` is the keyed HMAC of the value's text.
fn apply(action: &Action, v: Value, key: &hmac::Key) -> Value {
    if v.is_null() {
        return v;
    }
    let text = match &v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tag = || hmac::sign(key, text.as_bytes());
    let hexn = |n: usize| -> String {
        tag()
            .as_ref()
            .iter()
            .take(n / 2)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let num = |m: u32| -> u32 {
        let t = tag();
        u32::from_be_bytes([t.as_ref()[0], t.as_ref()[1], t.as_ref()[2], t.as_ref()[3]]) % m
    };
    match action {
        Action::Keep => v,
        Action::Drop | Action::Null => Value::Null,
        Action::Hash => Value::String(hexn(16)),
        Action::Mask => {
            let chars: Vec<char> = text.chars().collect();
            let keep = chars.len().saturating_sub(4).max(chars.len() / 2);
            Value::String(
                chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i < keep { '*' } else { *c })
                    .collect(),
            )
        }
        Action::Fixed(s) => Value::String(s.clone()),
        Action::Fake(kind) => Value::String(match kind {
            FakeKind::Email => format!("u{}@sanitized.local", hexn(12)),
            FakeKind::Phone => format!("+1-555-{:04}", num(10_000)),
            FakeKind::Name => format!(
                "{} {}",
                FIRST[num(12) as usize],
                LAST[(num(144) / 12) as usize]
            ),
            FakeKind::Address => format!("{} Main St", 1 + num(9_999)),
            FakeKind::Ip => {
                let n = num(1 << 24);
                format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
            }
            FakeKind::Card => format!("4242 4242 4242 {:04}", num(10_000)),
            FakeKind::Text => format!("text-{}", hexn(12)),
        }),
    }
}

/// The JSON value of a column read as text, by its PostgreSQL type.
fn typed(text: Option<String>, data_type: &str) -> Value {
    let Some(t) = text else { return Value::Null };
    match data_type {
        "smallint" | "integer" | "bigint" => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(t)),
        "real" | "double precision" => t
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(t)),
        // PostgreSQL says t/f, SQLite stores 1/0.
        "boolean" => Value::Bool(t == "t" || t == "true" || t == "1"),
        "json" | "jsonb" => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        _ => Value::String(t),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A production database connection (read side).
enum Conn {
    Pg(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

/// Runs `$body` with `$c` bound to the connection (compiled per back end).
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Pg($c) => $body,
            Conn::Sqlite($c) => $body,
        }
    };
}

fn db_err(e: sqlx::Error) -> SyncError {
    SyncError::Db(e.to_string())
}

impl Conn {
    /// Opens `url`: PostgreSQL, or an existing SQLite file read-only.
    async fn open(url: &str) -> Result<Self, SyncError> {
        use sqlx::Connection;
        if url.starts_with("sqlite:") {
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(db_err)?;
            let opts = opts.read_only(true).create_if_missing(false);
            Ok(Conn::Sqlite(
                sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .map_err(db_err)?,
            ))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Conn::Pg(
                sqlx::PgConnection::connect(url).await.map_err(db_err)?,
            ))
        } else {
            Err(SyncError::Refused(
                "the production database URL must be postgres://… or sqlite://…".into(),
            ))
        }
    }

    /// The table's columns and their types (PostgreSQL type names; SQLite's
    /// declared types mapped onto them), in order.
    async fn columns(&mut self, table: &str) -> Result<Vec<(String, String)>, SyncError> {
        let rows: Vec<(String, String)> = match self {
            Conn::Pg(c) => sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?,
            Conn::Sqlite(c) => {
                let raw: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                        .bind(table)
                        .fetch_all(&mut *c)
                        .await
                        .map_err(db_err)?;
                raw.into_iter()
                    .map(|(n, t)| {
                        let t = t.to_ascii_lowercase();
                        // SQLite type affinity rules, simplified.
                        let mapped = if t.contains("int") {
                            "bigint"
                        } else if t.contains("bool") {
                            "boolean"
                        } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
                            "double precision"
                        } else if t.contains("json") {
                            "json"
                        } else {
                            "text"
                        };
                        (n, mapped.to_string())
                    })
                    .collect()
            }
        };
        Ok(rows)
    }

    /// The table's primary-key columns, in key order (empty without one).
    async fn primary_key(&mut self, table: &str) -> Result<Vec<String>, SyncError> {
        let rows: Vec<(String,)> = match self {
            Conn::Pg(c) => sqlx::query_as(
                "SELECT kcu.column_name::text FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name \
                 AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name \
                 WHERE tc.table_schema = current_schema() AND tc.table_name = $1 \
                 AND tc.constraint_type = 'PRIMARY KEY' ORDER BY kcu.ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?,
            Conn::Sqlite(c) => sqlx::query_as(
                "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?,
        };
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// `col` as text in this dialect.
    fn as_text(&self, col: &str) -> String {
        match self {
            Conn::Pg(_) => format!("{}::text", quote(col)),
            Conn::Sqlite(_) => format!("CAST({} AS TEXT)", quote(col)),
        }
    }
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

/// A foreign key of a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Relation {
    /// The referencing column.
    pub column: String,
    /// The referenced table.
    pub references_table: String,
    /// The referenced column.
    pub references_column: String,
}

impl Conn {
    /// The table's foreign keys (single-column ones).
    async fn relations(&mut self, table: &str) -> Result<Vec<Relation>, SyncError> {
        let rows: Vec<(String, String, String)> = match self {
            Conn::Pg(c) => sqlx::query_as(
                "SELECT kcu.column_name::text, ccu.table_name::text, ccu.column_name::text \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name \
                 AND kcu.table_schema = tc.table_schema \
                 JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name \
                 AND ccu.table_schema = tc.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema() \
                 AND tc.table_name = $1 ORDER BY kcu.column_name",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?,
            Conn::Sqlite(c) => sqlx::query_as(
                "SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list($1) ORDER BY \"from\"",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?,
        };
        Ok(rows
            .into_iter()
            .map(|(column, references_table, references_column)| Relation {
                column,
                references_table,
                references_column,
            })
            .collect())
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

/// Words of a column name: `stripeCustomerId` → stripe, customer, id.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch == '_' || ch == '-' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        cur.push(ch.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The default detectors: a proposed action for a column from its name and
/// type (`beam sync policy suggest`). Whole words only, so `author` is not
/// `auth`; booleans and timestamps are kept (`emailVerified`); external
/// customer ids are hashed (`stripeCustomerId`).
pub fn suggest(column: &str, data_type: &str) -> Action {
    let w = words(column);
    let has = |x: &str| w.iter().any(|v| v == x);
    let non_text = matches!(
        data_type,
        "boolean"
            | "smallint"
            | "integer"
            | "bigint"
            | "real"
            | "double precision"
            | "numeric"
            | "date"
    ) || data_type.starts_with("timestamp");
    if has("password")
        || has("passwd")
        || has("secret")
        || has("token")
        || has("auth") && !non_text
        || (has("api") && has("key"))
        || has("apikey")
        || has("salt")
        || has("otp")
        || has("totp")
        || has("mfa")
        || has("recovery")
        || has("credential")
        || has("private")
    {
        return Action::Drop;
    }
    if non_text {
        return Action::Keep;
    }
    if has("email") || has("mail") {
        return Action::Fake(FakeKind::Email);
    }
    if has("phone") || has("mobile") || has("tel") {
        return Action::Fake(FakeKind::Phone);
    }
    if has("ssn") || (has("national") && has("id")) || has("passport") || has("tax") {
        return Action::Mask;
    }
    if has("card") || has("cc") || has("pan") || has("iban") {
        return Action::Fake(FakeKind::Card);
    }
    if has("address") || has("street") || has("zip") || has("postcode") {
        return Action::Fake(FakeKind::Address);
    }
    if has("ip") {
        return Action::Fake(FakeKind::Ip);
    }
    if has("name") && !has("user") && !has("file") && !has("product") && !has("company") {
        return Action::Fake(FakeKind::Name);
    }
    if has("customer")
        || has("stripe")
        || has("external")
        || has("username")
        || (has("user") && has("name"))
    {
        return Action::Hash;
    }
    Action::Keep
}

/// The action as policy text.
pub fn action_text(a: &Action) -> String {
    match a {
        Action::Keep => "keep".into(),
        Action::Drop => "drop".into(),
        Action::Null => "null".into(),
        Action::Hash => "hash".into(),
        Action::Mask => "mask".into(),
        Action::Fixed(v) => format!("fixed:{v}"),
        Action::Fake(k) => format!("fake:{}", format!("{k:?}").to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detectors_fix_the_seeds_misses_and_false_positives() {
        assert_eq!(
            suggest("author", "text"),
            Action::Keep,
            "author is not auth"
        );
        assert_eq!(suggest("emailVerified", "boolean"), Action::Keep);
        assert_eq!(suggest("stripeCustomerId", "text"), Action::Hash);
        assert_eq!(suggest("email", "text"), Action::Fake(FakeKind::Email));
        assert_eq!(suggest("password_hash", "text"), Action::Drop);
        assert_eq!(suggest("api_key", "text"), Action::Drop);
        assert_eq!(suggest("authToken", "text"), Action::Drop);
        assert_eq!(
            suggest("phone_number", "text"),
            Action::Fake(FakeKind::Phone)
        );
        assert_eq!(suggest("ssn", "text"), Action::Mask);
        assert_eq!(suggest("first_name", "text"), Action::Fake(FakeKind::Name));
        assert_eq!(suggest("username", "text"), Action::Hash);
        assert_eq!(
            suggest("created_at", "timestamp with time zone"),
            Action::Keep
        );
        assert_eq!(suggest("plan", "text"), Action::Keep);
        assert_eq!(suggest("recovery_codes", "text"), Action::Drop);
    }

    #[test]
    fn actions_are_deterministic_and_keyed() {
        let k = hmac::Key::new(hmac::HMAC_SHA256, b"key-1");
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, b"key-2");
        let email = Value::String("ada@example.com".into());
        let a = apply(&Action::Fake(FakeKind::Email), email.clone(), &k);
        assert_eq!(a, apply(&Action::Fake(FakeKind::Email), email.clone(), &k));
        assert_ne!(a, apply(&Action::Fake(FakeKind::Email), email.clone(), &k2));
        assert!(a.as_str().unwrap().ends_with("@sanitized.local"));
        assert_eq!(
            apply(&Action::Mask, Value::String("123-45-6789".into()), &k),
            "*******6789"
        );
        assert_eq!(apply(&Action::Hash, Value::Null, &k), Value::Null);
        assert!(
            Action::parse("fake:dog")
                .unwrap_err()
                .contains("unknown fake kind")
        );
        assert!(
            Policy::parse("[tables.u]\ncolumns = { a = \"kepp\" }")
                .unwrap_err()
                .contains("u.a")
        );
    }
}
