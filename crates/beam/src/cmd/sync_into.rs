//! `beam sync --into postgres://…|sqlite://…`: writes sanitized rows into a
//! local database. The table is created when missing (column types inferred
//! from the first row: integer, float, boolean, text; an `id` column becomes
//! the primary key), and rows go in batches with `ON CONFLICT DO NOTHING`, so a
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

fn sql_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "BOOLEAN",
        Value::Number(n) if n.is_i64() || n.is_u64() => "BIGINT",
        Value::Number(_) => "DOUBLE PRECISION",
        _ => "TEXT",
    }
}

/// A local database the rows go into.
pub enum Target {
    /// `postgres://…`
    Postgres(sqlx::PgConnection),
    /// `sqlite://PATH` (created if missing).
    Sqlite(sqlx::SqliteConnection),
}

/// Runs `$body` with `$c` bound to the target's connection (compiled per back end).
macro_rules! on_target {
    ($t:expr, $c:ident => $body:expr) => {
        match $t {
            Target::Postgres($c) => $body,
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
        } else {
            bail!("--into takes postgres://… or sqlite://PATH");
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
                let pk = if k == "id" { " PRIMARY KEY" } else { "" };
                format!("{} {}{pk}", quote(k), sql_type(sample))
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
    /// transaction of ~500-value inserts into SQLite.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.columns.is_empty() {
            self.create().await?;
        }
        let batch = std::mem::take(&mut self.batch);
        let columns = &self.columns;
        let insert = |rows: usize| {
            let n = columns.len();
            let values: Vec<String> = (0..rows)
                .map(|r| {
                    let ps: Vec<String> = (0..n).map(|c| format!("${}", r * n + c + 1)).collect();
                    format!("({})", ps.join(", "))
                })
                .collect();
            format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT DO NOTHING",
                quote(&self.table),
                columns
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                values.join(", ")
            )
        };
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
            Target::Sqlite(c) => {
                // Statements of ~500 values: few round trips to SQLite's
                // worker, and a statement small enough to prepare fast (and
                // be reused from the cache for every full chunk).
                let per = (500 / columns.len().max(1)).max(1);
                let mut tx = c.begin().await.context("--into: starting a transaction")?;
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
            }
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
