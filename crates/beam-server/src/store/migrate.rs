//! A small migration runner: numbered SQL files per back end, each applied once in
//! its own transaction, the current version kept in `beam_schema`.

use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool};

/// Advisory lock key for migrations ("beam" in ASCII).
const MIGRATION_LOCK: i64 = 0x6265_616d;

/// `(version, sql)` pairs of both back ends, in order. One list, so a migration
/// cannot be added to one back end and forgotten for the other.
macro_rules! migrations {
    ($($version:literal => $file:literal),+ $(,)?) => {
        const SQLITE: &[(i64, &str)] =
            &[$(($version, include_str!(concat!("../../migrations/sqlite/", $file)))),+];
        const POSTGRES: &[(i64, &str)] =
            &[$(($version, include_str!(concat!("../../migrations/postgres/", $file)))),+];
    };
}

migrations! {
    1 => "0001_init.sql",
    2 => "0002_accounts.sql",
    3 => "0003_org_usage.sql",
    4 => "0004_certificates.sql",
    5 => "0005_projects.sql",
    6 => "0006_webhooks.sql",
    7 => "0007_security.sql",
    8 => "0008_nodes.sql",
    9 => "0009_agent_sessions.sql",
    10 => "0010_agent_instances.sql",
    11 => "0011_request_minutes.sql",
    12 => "0012_audit.sql",
    13 => "0013_webhook_schemes.sql",
}

impl Store {
    /// Applies every migration newer than the database's version. Returns the
    /// number applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let list = match self.pool {
            Pool::Sqlite(_) => SQLITE,
            Pool::Postgres(_) => POSTGRES,
        };
        // Several nodes may start at once against one PostgreSQL: a session-level
        // advisory lock makes them migrate one after the other, and each reads the
        // version only once it holds the lock.
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(self, p => {
            let mut conn = p.acquire().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
            }
            let result = async {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS beam_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                    .execute(&mut *conn).await?;
                let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM beam_schema")
                    .fetch_one(&mut *conn).await?.try_get("v")?;
                let mut applied = 0;
                for (version, sql) in list.iter().filter(|(v, _)| *v > current) {
                    let mig = |source| StoreError::Migration { version: *version, source };
                    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(mig)?;
                    sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(mig)?;
                    sqlx::query("INSERT INTO beam_schema (version, applied_at) VALUES ($1, $2)")
                        .bind(*version).bind(super::now_ms())
                        .execute(&mut *tx).await.map_err(mig)?;
                    tx.commit().await.map_err(mig)?;
                    applied += 1;
                }
                Ok::<usize, StoreError>(applied)
            }
            .await;
            if postgres {
                // Released even when a migration failed, so the pooled connection
                // does not keep other nodes waiting.
                sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
            }
            result
        })
    }
}
