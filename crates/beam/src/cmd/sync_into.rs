//! `beam sync --into postgres://…|mysql://…|sqlite://…`: writes sanitized
//! rows into a local database. The table is created when missing (column
//! types inferred from the first row: integer, float, boolean, text; an `id`
//! column becomes the primary key), and rows go in batches that skip rows
//! already there (`ON CONFLICT DO NOTHING`, MySQL's `INSERT IGNORE`), so a
//! second run adds only rows that are not there yet.

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use sqlx::{ConnectOptions, Connection};

/// Values per batch: one multi-row INSERT into PostgreSQL (under its 65,535
/// parameter limit); for SQLite, one transaction of ~500-value INSERTs (a
/// statement with thousands of placeholders is slow for SQLite to prepare).
const BATCH_PARAMS: usize = 30_000;

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The column type for a sample value. MySQL's TEXT holds 64 KiB and cannot
/// be a key without a length, so text is LONGTEXT there, and VARCHAR(255) as
/// the primary key.
fn sql_type(v: &Value, mysql: bool, key: bool) -> &'static str {
    match v {
        Value::Bool(_) => "BOOLEAN",
        Value::Number(n) if n.is_i64() || n.is_u64() => "BIGINT",
        Value::Number(_) => "DOUBLE PRECISION",
        _ if mysql && key => "VARCHAR(255)",
        _ if mysql => "LONGTEXT",
        _ => "TEXT",
    }
}

/// A local database the rows go into.
pub enum Target {
    /// `postgres://…`
    Postgres(sqlx::PgConnection),
    /// `mysql://…` or `mariadb://…`
    MySql(sqlx::MySqlConnection),
    /// `sqlite://PATH` (created if missing).
    Sqlite(sqlx::SqliteConnection),
}

/// Runs `$body` with `$c` bound to the target's connection (compiled per back end).
macro_rules! on_target {
    ($t:expr, $c:ident => $body:expr) => {
        match $t {
            Target::Postgres($c) => $body,
            Target::MySql($c) => $body,
            Target::Sqlite($c) => $body,
        }
    };
}

/// Rows collected for one table, written in batches.
pub struct Loader {
    target: Target,
    table: String,
    columns: Vec<String>,
    batch: Vec<Map<String, Value>>,
    /// Rows the database took (not already there).
    pub inserted: u64,
}

impl Loader {
    /// Connects to `url`.
    pub async fn connect(url: &str, table: &str) -> anyhow::Result<Self> {
        let target = if url.starts_with("sqlite:") {
            let opts: sqlx::sqlite::SqliteConnectOptions =
                url.parse().context("--into: not a sqlite:// URL")?;
            // The library logs every statement (and slow ones with their
            // whole text) through `log`; a CLI must not print those.
            let opts = opts.create_if_missing(true).disable_statement_logging();
            Target::Sqlite(
                sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .context("--into: cannot open the SQLite database")?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts: sqlx::postgres::PgConnectOptions =
                url.parse().context("--into: not a postgres:// URL")?;
            Target::Postgres(
                sqlx::PgConnection::connect_with(&opts.disable_statement_logging())
                    .await
                    .context("--into: cannot connect to PostgreSQL")?,
            )
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url
                .strip_prefix("mariadb:")
                .map_or(url.to_string(), |rest| format!("mysql:{rest}"));
            let opts: sqlx::mysql::MySqlConnectOptions =
                url.parse().context("--into: not a mysql:// URL")?;
            let mut c = sqlx::MySqlConnection::connect_with(&opts.disable_statement_logging())
                .await
                .context("--into: cannot connect to MySQL")?;
            // `"identifier"` quoting, as in the other dialects.
            sqlx::raw_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
                .execute(&mut c)
                .await
                .context("--into: setting ANSI_QUOTES")?;
            Target::MySql(c)
        } else {
            bail!("--into takes postgres://…, mysql://… or sqlite://PATH");
        };
        Ok(Self {
            target,
            table: table.to_string(),
            columns: Vec::new(),
            batch: Vec::new(),
            inserted: 0,
        })
    }

    /// Adds one row; writes a batch when it is full.
    pub async fn row(&mut self, row: Map<String, Value>) -> anyhow::Result<()> {
        let width = row.len().max(1);
        self.batch.push(row);
        if self.batch.len() * width >= BATCH_PARAMS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Creates the table from the first batch: columns of the first row, each
    /// typed by its first non-null value in the batch.
    async fn create(&mut self) -> anyhow::Result<()> {
        let Some(first) = self.batch.first() else {
            return Ok(());
        };
        self.columns = first.keys().cloned().collect();
        let mysql = matches!(self.target, Target::MySql(_));
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|k| {
                let sample = self
                    .batch
                    .iter()
                    .filter_map(|r| r.get(k))
                    .find(|v| !v.is_null())
                    .unwrap_or(&Value::Null);
                let key = k == "id";
                let pk = if key { " PRIMARY KEY" } else { "" };
                format!("{} {}{pk}", quote(k), sql_type(sample, mysql, key))
            })
            .collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote(&self.table),
            cols.join(", ")
        );
        on_target!(&mut self.target, c => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *c).await
                .context("--into: creating the table")?;
        });
        Ok(())
    }

    /// Writes the pending rows: one statement into PostgreSQL, one
    /// transaction of ~500-value inserts into MySQL and SQLite.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.columns.is_empty() {
            self.create().await?;
        }
        let batch = std::mem::take(&mut self.batch);
        let columns = &self.columns;
        let mysql = matches!(self.target, Target::MySql(_));
        let insert = |rows: usize| {
            let n = columns.len();
            let values: Vec<String> = (0..rows)
                .map(|r| {
                    let ps: Vec<String> = (0..n)
                        .map(|c| {
                            if mysql {
                                "?".to_string()
                            } else {
                                format!("${}", r * n + c + 1)
                            }
                        })
                        .collect();
                    format!("({})", ps.join(", "))
                })
                .collect();
            // MySQL has no ON CONFLICT; IGNORE skips rows whose key exists
            // (the table is ours, typed from the rows, so nothing else is
            // there to ignore).
            let (verb, tail) = if mysql {
                ("INSERT IGNORE", "")
            } else {
                ("INSERT", " ON CONFLICT DO NOTHING")
            };
            format!(
                "{verb} INTO {} ({}) VALUES {}{tail}",
                quote(&self.table),
                columns
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                values.join(", ")
            )
        };
        // Statements of ~500 values in one transaction (SQLite: small enough
        // to prepare fast and be reused from the cache for every full chunk;
        // MySQL: far below max_allowed_packet).
        let per = (500 / columns.len().max(1)).max(1);
        macro_rules! chunked {
            ($c:expr) => {{
                let mut tx = $c.begin().await.context("--into: starting a transaction")?;
                let mut done = 0;
                for chunk in batch.chunks(per) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert(chunk.len())));
                    for row in chunk {
                        q = bind_row(q, row, columns);
                    }
                    done += q
                        .execute(&mut *tx)
                        .await
                        .context("--into: inserting rows")?
                        .rows_affected();
                }
                tx.commit().await.context("--into: committing rows")?;
                done
            }};
        }
        let done = match &mut self.target {
            Target::Postgres(c) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(insert(batch.len())));
                for row in &batch {
                    q = bind_row(q, row, columns);
                }
                q.execute(&mut *c)
                    .await
                    .context("--into: inserting rows")?
                    .rows_affected()
            }
            // One transaction of chunked statements (compiled per back end).
            Target::MySql(c) => chunked!(c),
            Target::Sqlite(c) => chunked!(c),
        };
        self.inserted += done;
        Ok(())
    }
}

/// Binds one row's values in column order, typed as JSON gives them.
fn bind_row<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    row: &Map<String, Value>,
    columns: &[String],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for col in columns {
        q = match row.get(col).unwrap_or(&Value::Null) {
            Value::Null => q.bind(None::<String>),
            Value::Bool(b) => q.bind(*b),
            Value::Number(x) if x.is_i64() => q.bind(x.as_i64()),
            Value::Number(x) => q.bind(x.as_f64()),
            Value::String(s) => q.bind(s.clone()),
            other => q.bind(other.to_string()),
        };
    }
    q
}
