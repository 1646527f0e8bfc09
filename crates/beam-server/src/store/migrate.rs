//! A small migration runner: numbered SQL files per back end, each applied once in
//! its own transaction, the current version kept in `beam_schema`.

use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool};

/// `(version, sql)` pairs, in order.
const SQLITE: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_init.sql"))];
const POSTGRES: &[(i64, &str)] = &[(1, include_str!("../../migrations/postgres/0001_init.sql"))];

impl Store {
    /// Applies every migration newer than the database's version. Returns the
    /// number applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let list = match self.pool {
            Pool::Sqlite(_) => SQLITE,
            Pool::Postgres(_) => POSTGRES,
        };
        on_pool!(self, p => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS beam_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(p).await?;
            let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM beam_schema")
                .fetch_one(p).await?.try_get("v")?;
            let mut applied = 0;
            for (version, sql) in list.iter().filter(|(v, _)| *v > current) {
                let mig = |source| StoreError::Migration { version: *version, source };
                let mut tx = p.begin().await.map_err(mig)?;
                sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(mig)?;
                sqlx::query("INSERT INTO beam_schema (version, applied_at) VALUES ($1, $2)")
                    .bind(*version).bind(super::now_ms())
                    .execute(&mut *tx).await.map_err(mig)?;
                tx.commit().await.map_err(mig)?;
                applied += 1;
            }
            Ok(applied)
        })
    }
}
