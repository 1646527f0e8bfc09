//! The production database, read side: PostgreSQL or SQLite (read-only)
//! behind one connection type, with the schema questions sync asks (columns
//! and types, primary key, foreign keys) in each dialect.

use serde_json::Value;

use super::SyncError;

/// The JSON value of a column read as text, by its PostgreSQL type.
pub(super) fn typed(text: Option<String>, data_type: &str) -> Value {
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

pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A production database connection (read side).
pub(super) enum Conn {
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

pub(super) fn db_err(e: sqlx::Error) -> SyncError {
    SyncError::Db(e.to_string())
}

impl Conn {
    /// Opens `url`: PostgreSQL, or an existing SQLite file read-only.
    pub(super) async fn open(url: &str) -> Result<Self, SyncError> {
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
    pub(super) async fn columns(
        &mut self,
        table: &str,
    ) -> Result<Vec<(String, String)>, SyncError> {
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
    pub(super) async fn primary_key(&mut self, table: &str) -> Result<Vec<String>, SyncError> {
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
    pub(super) fn as_text(&self, col: &str) -> String {
        match self {
            Conn::Pg(_) => format!("{}::text", quote(col)),
            Conn::Sqlite(_) => format!("CAST({} AS TEXT)", quote(col)),
        }
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
    pub(super) async fn relations(&mut self, table: &str) -> Result<Vec<Relation>, SyncError> {
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

pub(super) use on_conn;
