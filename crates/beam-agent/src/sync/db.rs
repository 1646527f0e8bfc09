//! The production database, read side: PostgreSQL, MySQL/MariaDB or SQLite
//! (read-only) behind one connection type, with the schema questions sync
//! asks (columns and types, primary key, foreign keys) in each dialect. Types
//! are reported with PostgreSQL's names, the one vocabulary [`typed`] reads.

use serde_json::Value;

use super::error::SyncError;

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

/// A MySQL/MariaDB column type under its PostgreSQL name: `tinyint(1)` is
/// how both spell BOOLEAN; DECIMAL stays text (exact digits); MariaDB's JSON
/// is LONGTEXT with a check, so it is text too.
fn mysql_type(data_type: &str, column_type: &str) -> String {
    let column_type = column_type.to_ascii_lowercase();
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") => "boolean",
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => "bigint",
        "float" | "double" | "real" => "double precision",
        "json" => "json",
        _ => "text",
    }
    .to_string()
}

pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A read-only transaction on the production database (see [`crate::proddb`]).
pub(super) use crate::proddb::ReadTx as Conn;

/// Runs `$body` with `$c` bound to the transaction's connection (compiled per
/// back end).
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Pg(tx) => {
                let $c = &mut **tx;
                $body
            }
            Conn::MySql(tx) => {
                let $c = &mut **tx;
                $body
            }
            Conn::Sqlite(tx) => {
                let $c = &mut **tx;
                $body
            }
        }
    };
}

pub(super) fn db_err(e: sqlx::Error) -> SyncError {
    if crate::proddb::timed_out(&e) {
        return SyncError::TimedOut;
    }
    SyncError::Db(e.to_string())
}

impl Conn {
    /// The table's columns and their types (PostgreSQL type names; SQLite's
    /// declared types mapped onto them), in order.
    pub(super) async fn columns(
        &mut self,
        table: &str,
    ) -> Result<Vec<(String, String)>, SyncError> {
        let rows: Vec<(String, String)> = match self {
            // format_type gives the type (`integer`, `numeric`, `"Status"`),
            // which filters cast their bound value to, so the comparison is
            // typed and indexes apply. Without the type modifier: a cast to
            // `varchar(5)` would truncate and `numeric(10,2)` round a value,
            // so a wrong value could match.
            Conn::Pg(c) => sqlx::query_as(
                "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
            Conn::MySql(c) => {
                // information_schema's own columns are binary strings on some
                // servers: read them as text explicitly.
                let raw: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), \
                     CAST(column_type AS CHAR) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&mut **c)
                .await
                .map_err(db_err)?;
                raw.into_iter()
                    .map(|(n, data_type, column_type)| (n, mysql_type(&data_type, &column_type)))
                    .collect()
            }
            Conn::Sqlite(c) => {
                let raw: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                        .bind(table)
                        .fetch_all(&mut **c)
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
            Conn::MySql(c) => sqlx::query_as(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.key_column_usage \
                 WHERE table_schema = DATABASE() AND table_name = ? \
                 AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
            Conn::Pg(c) => sqlx::query_as(
                "SELECT kcu.column_name::text FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name \
                 AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name \
                 WHERE tc.table_schema = current_schema() AND tc.table_name = $1 \
                 AND tc.constraint_type = 'PRIMARY KEY' ORDER BY kcu.ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
            Conn::Sqlite(c) => sqlx::query_as(
                "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
        };
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// `table.col` as text in this dialect (qualified, so it never resolves to
    /// an output alias of the same name).
    pub(super) fn as_text(&self, table: &str, col: &str) -> String {
        match self {
            Conn::Pg(_) => format!("{}.{}::text", quote(table), quote(col)),
            Conn::MySql(_) => format!("CAST({}.{} AS CHAR)", quote(table), quote(col)),
            Conn::Sqlite(_) => format!("CAST({}.{} AS TEXT)", quote(table), quote(col)),
        }
    }

    /// `table.col = <bind n>` compared in the column's own type: PostgreSQL
    /// casts the bound text to the column's type; SQLite applies the column's
    /// affinity to a bound value by itself, and MySQL converts the bound
    /// string to the column's type. Either way an index on the column is
    /// usable, which `col::text = $1` would prevent. MySQL's placeholders are
    /// positional (`?`): binds are numbered in the order they appear.
    pub(super) fn equals(&self, table: &str, col: &str, sql_type: &str, n: usize) -> String {
        format!(
            "{}.{} = {}",
            quote(table),
            quote(col),
            self.param(sql_type, n)
        )
    }

    /// The value to bind for a filter on a column of `sql_type`. MySQL turns
    /// a string that is not a number into its numeric prefix (`1' OR '1'='1`
    /// compares as 1, `abc` as 0) with only a warning, so numbers and
    /// booleans are checked here and refused with a clear message, as
    /// PostgreSQL's typed cast refuses them; other dialects take the text.
    pub(super) fn bound(
        &self,
        flag: &str,
        col: &str,
        sql_type: &str,
        v: &str,
    ) -> Result<String, SyncError> {
        if !matches!(self, Conn::MySql(_)) {
            return Ok(v.to_string());
        }
        let refuse = |what: &str| {
            Err(SyncError::Refused(format!(
                "{flag} {col}: '{v}' is not {what} (the column's type)"
            )))
        };
        match sql_type {
            "bigint" if v.trim().parse::<i128>().is_err() => refuse("an integer"),
            "double precision" if v.trim().parse::<f64>().is_err() => refuse("a number"),
            "boolean" => match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "t" => Ok("1".into()),
                "0" | "false" | "f" => Ok("0".into()),
                _ => refuse("a boolean (true/false/1/0)"),
            },
            _ => Ok(v.trim().to_string()),
        }
    }

    /// Placeholder `n` in this dialect, typed where the dialect needs it.
    fn param(&self, sql_type: &str, n: usize) -> String {
        match self {
            Conn::Pg(_) => format!("${n}::{sql_type}"),
            Conn::MySql(_) => "?".into(),
            Conn::Sqlite(_) => format!("${n}"),
        }
    }

    /// `table.col IN (binds…)`, typed as in [`Conn::equals`].
    pub(super) fn any_of(&self, table: &str, col: &str, sql_type: &str, ns: &[usize]) -> String {
        let ps: Vec<String> = ns.iter().map(|n| self.param(sql_type, *n)).collect();
        format!("{}.{} IN ({})", quote(table), quote(col), ps.join(", "))
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
    /// Why the policy does not let this key be followed (`None`: it can be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl Conn {
    /// The table's foreign keys (single-column ones).
    pub(super) async fn relations(&mut self, table: &str) -> Result<Vec<Relation>, SyncError> {
        let rows: Vec<(String, String, String)> = match self {
            Conn::MySql(c) => sqlx::query_as(
                "SELECT CAST(column_name AS CHAR), CAST(referenced_table_name AS CHAR), \
                 CAST(referenced_column_name AS CHAR) FROM information_schema.key_column_usage \
                 WHERE table_schema = DATABASE() AND table_name = ? \
                 AND referenced_table_name IS NOT NULL ORDER BY column_name",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
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
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
            Conn::Sqlite(c) => sqlx::query_as(
                "SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list($1) ORDER BY \"from\"",
            )
            .bind(table)
            .fetch_all(&mut **c)
            .await
            .map_err(db_err)?,
        };
        Ok(rows
            .into_iter()
            .map(|(column, references_table, references_column)| Relation {
                column,
                references_table,
                references_column,
                refused: None,
            })
            .collect())
    }
}

pub(super) use on_conn;

impl From<crate::proddb::DbError> for SyncError {
    fn from(e: crate::proddb::DbError) -> Self {
        match e {
            crate::proddb::DbError::Db(e) => db_err(e),
            other => SyncError::Db(other.to_string()),
        }
    }
}
