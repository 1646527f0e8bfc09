//! Test stores: SQLite in a temp dir, or a throwaway PostgreSQL database, and
//! the `both!` macro that runs a test on each.

use std::sync::Arc;

use beam_server::Store;

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temp dir.
    Sqlite,
    /// A throwaway database on the machine's PostgreSQL.
    Postgres,
}

/// Runs an async test body once per back end: `both!(name, |backend| async move { … })`
/// makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                ($body)($crate::support::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                ($body)($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// A fresh PostgreSQL database, dropped when the guard goes out of scope.
pub struct PgDb {
    admin: String,
    name: String,
}

impl PgDb {
    /// Creates the database; returns the guard and its URL.
    pub async fn create() -> (Self, String) {
        use sqlx::Connection;
        let admin = std::env::var("BEAM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("beam_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must be running for store tests ({admin}): {e}")
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("BEAM_TEST_POSTGRES needs a database path"),
        };
        (Self { admin, name }, url)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop from a separate thread: Drop cannot await inside the test runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A throwaway database on the machine's MySQL/MariaDB server
/// (`BEAM_TEST_MYSQL`, default `mysql://root@127.0.0.1:3306/test`), dropped
/// with the guard.
pub struct MyDb {
    admin: String,
    name: String,
}

impl MyDb {
    /// Creates the database; returns the guard and its URL.
    pub async fn create() -> (Self, String) {
        use sqlx::Connection;
        let admin = std::env::var("BEAM_TEST_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        let name = format!("beam_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB/MySQL must be running for these tests ({admin}): {e}")
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("BEAM_TEST_MYSQL needs a database path"),
        };
        (Self { admin, name }, url)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::MySqlConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A store on `backend`, with the guard that drops a PostgreSQL database.
pub async fn test_store(backend: Backend, dir: &std::path::Path) -> (Store, Option<Arc<PgDb>>) {
    match backend {
        Backend::Sqlite => (
            Store::connect(&format!("sqlite://{}", dir.join("beam.db").display()))
                .await
                .unwrap(),
            None,
        ),
        Backend::Postgres => {
            let (db, url) = PgDb::create().await;
            (Store::connect(&url).await.unwrap(), Some(Arc::new(db)))
        }
    }
}
