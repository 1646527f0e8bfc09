//! The production database as the agent reaches it (PostgreSQL, MySQL or
//! MariaDB, SQLite): one small bounded pool per
//! agent, shared by `beam sync` and `beam health`, where every statement runs in
//! a read-only transaction under a statement timeout, and concurrent syncs are
//! capped. Developers' requests must never be able to take production down: a
//! new connection per request, an unbounded number of parallel scans, or a
//! query that runs for an hour would each do that.

use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much of the production database the agent may use.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    /// Most open connections (sync and health together).
    pub max_connections: u32,
    /// Longest a single statement may run, streaming included.
    pub statement_timeout: Duration,
    /// Most syncs served at once; more callers get 429.
    pub max_syncs: usize,
}

impl Default for DbLimits {
    /// 4 connections, 60 s per statement, 2 syncs at a time.
    fn default() -> Self {
        Self {
            max_connections: 4,
            statement_timeout: Duration::from_secs(60),
            max_syncs: 2,
        }
    }
}

/// Why the production database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not one the agent reads.
    #[error(
        "the production database URL must be postgres://…, mysql://…, mariadb://… or sqlite://…"
    )]
    Scheme,
    /// The URL does not parse (the message never includes the password).
    #[error("the production database URL is invalid: {0}")]
    Url(String),
    /// The database failed or refused.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The pool, in either dialect.
#[derive(Debug, Clone)]
enum Pool {
    Pg(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// The agent's handle on the production database (cheap to clone).
#[derive(Debug, Clone)]
pub struct ProdDb {
    pool: Pool,
    limits: DbLimits,
    syncs: Arc<Semaphore>,
}

/// A read-only transaction on one pooled connection; dropped = rolled back.
pub(crate) enum ReadTx {
    /// PostgreSQL: `REPEATABLE READ, READ ONLY`, so the row count and the rows
    /// come from one snapshot.
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    /// MySQL or MariaDB: `READ ONLY, WITH CONSISTENT SNAPSHOT` (InnoDB's
    /// repeatable read), statements bounded by the session's timeout.
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    /// SQLite: opened read-only; the timeout is a progress handler.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl ProdDb {
    /// A pool for `url`; nothing connects until the first request, so a
    /// database that is down at start does not stop the agent (or the app).
    pub fn new(url: &str, limits: DbLimits) -> Result<Self, DbError> {
        fn opts<DB: sqlx::Database>(limits: &DbLimits) -> sqlx::pool::PoolOptions<DB> {
            sqlx::pool::PoolOptions::new()
                .max_connections(limits.max_connections.max(1))
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(300))
        }
        let timeout_ms = limits.statement_timeout.as_millis().max(1).to_string();
        let pool = if url.starts_with("sqlite:") {
            let o: sqlx::sqlite::SqliteConnectOptions = url
                .parse()
                .map_err(|e: sqlx::Error| DbError::Url(e.to_string()))?;
            // Read-only at the file level, and never create a missing file.
            let o = o
                .read_only(true)
                .create_if_missing(false)
                .disable_statement_logging();
            Pool::Sqlite(opts(&limits).connect_lazy_with(o))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let o: sqlx::postgres::PgConnectOptions = url
                .parse()
                .map_err(|e: sqlx::Error| DbError::Url(e.to_string()))?;
            // Session defaults as a second layer under the per-request
            // transaction: even a statement outside it is read-only and bounded.
            let o = o
                .options([
                    ("default_transaction_read_only", "on"),
                    ("statement_timeout", timeout_ms.as_str()),
                    ("idle_in_transaction_session_timeout", timeout_ms.as_str()),
                ])
                .application_name("beam-agent")
                .disable_statement_logging();
            Pool::Pg(opts(&limits).connect_lazy_with(o))
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url
                .strip_prefix("mariadb:")
                .map_or(url.to_string(), |rest| format!("mysql:{rest}"));
            let o: sqlx::mysql::MySqlConnectOptions = url
                .parse()
                .map_err(|e: sqlx::Error| DbError::Url(e.to_string()))?;
            let secs = limits.statement_timeout.as_secs_f64().max(0.001);
            let ms = limits.statement_timeout.as_millis().max(1);
            let pool = opts::<sqlx::MySql>(&limits).after_connect(move |c, _| {
                Box::pin(async move {
                    // Session defaults under the per-request transaction, as
                    // for PostgreSQL: read-only, and ANSI quoting so the
                    // dialect-neutral `"identifier"` quoting means what it says.
                    for set in [
                        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
                        "SET SESSION TRANSACTION READ ONLY",
                    ] {
                        sqlx::raw_sql(set).execute(&mut *c).await?;
                    }
                    // The statement timeout is MariaDB's max_statement_time (s)
                    // or MySQL's max_execution_time (ms, SELECTs only).
                    let mariadb = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "SET SESSION max_statement_time = {secs}"
                    )))
                    .execute(&mut *c)
                    .await;
                    if mariadb.is_err() {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "SET SESSION max_execution_time = {ms}"
                        )))
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok(())
                })
            });
            Pool::MySql(pool.connect_lazy_with(o.disable_statement_logging()))
        } else {
            return Err(DbError::Scheme);
        };
        Ok(Self {
            pool,
            limits,
            syncs: Arc::new(Semaphore::new(limits.max_syncs.max(1))),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> DbLimits {
        self.limits
    }

    /// A slot for one sync, or `None` when the agent already serves its maximum.
    pub fn try_sync(&self) -> Option<OwnedSemaphorePermit> {
        self.syncs.clone().try_acquire_owned().ok()
    }

    /// Starts a read-only transaction whose statements are cut after the
    /// statement timeout.
    pub(crate) async fn begin(&self) -> Result<ReadTx, DbError> {
        match &self.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                let ms = self.limits.statement_timeout.as_millis().max(1);
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {ms}"
                )))
                .execute(&mut *tx)
                .await?;
                Ok(ReadTx::Pg(tx))
            }
            Pool::MySql(p) => Ok(ReadTx::MySql(
                p.begin_with("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
                    .await?,
            )),
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let deadline = tokio::time::Instant::now() + self.limits.statement_timeout;
                // SQLite has no statement timeout; its progress handler is
                // called every ~1000 VM steps and interrupts past the deadline.
                // Set anew on every begin, so a pooled connection never keeps
                // an old deadline.
                tx.lock_handle()
                    .await?
                    .set_progress_handler(1000, move || tokio::time::Instant::now() < deadline);
                Ok(ReadTx::Sqlite(tx))
            }
        }
    }

    /// `SELECT 1` through the pool, for `beam health`.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self.begin().await? {
            ReadTx::Pg(mut tx) => {
                sqlx::query("SELECT 1").execute(&mut *tx).await?;
            }
            ReadTx::MySql(mut tx) => {
                sqlx::query("SELECT 1").execute(&mut *tx).await?;
            }
            ReadTx::Sqlite(mut tx) => {
                sqlx::query("SELECT 1").execute(&mut *tx).await?;
            }
        }
        Ok(())
    }
}

/// Whether a database error is a statement timeout or an interrupt.
pub(crate) fn timed_out(e: &sqlx::Error) -> bool {
    match e {
        // MariaDB 1969 (max_statement_time exceeded), MySQL 3024
        // (max_execution_time exceeded).
        sqlx::Error::Database(d)
            if d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| matches!(m.number(), 1969 | 3024)) =>
        {
            true
        }
        // 57014: query_canceled (statement_timeout); SQLite: SQLITE_INTERRUPT (9).
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("57014") || d.code().as_deref() == Some("9")
        }
        _ => false,
    }
}
