//! The server's durable state on sqlx: SQLite (embedded default) or PostgreSQL.
//!
//! Both back ends run the same SQL text (`$1` placeholders work on both) through the
//! [`on_pool!`] macro, so a query is written once and compiled per back end. Schema
//! changes live in `migrations/<backend>/NNNN_name.sql` and are applied by
//! [`migrate`](Store::migrate) at start.

mod accounts;
mod analytics;
mod audit;
mod certificates;
mod domains;
mod invitations;
mod migrate;
mod nodes;
pub mod notify;
mod projects;
mod reservations;
mod series;
mod tokens;
mod tunnels;
mod webhooks;

pub use accounts::{Limits, MemberRow, Operator, OrgRow, UserRow};
pub use analytics::{
    Analytics, MINUTES_KEPT_MS, MinuteTotals, PathCount, RequestRecord, Scope as AnalyticsScope,
    hour_of, minute_of, month_start,
};
pub use audit::{AuditFilter, AuditRow, NewAuditEntry};
pub use certificates::CertRow;
pub use domains::{Check, DomainKind, DomainRow, DomainStatus, NewDomain};
pub use invitations::{InvitationRow, NewInvitation};
pub use nodes::{AgentRow, NameHolder, NodeRow, Released};
pub use projects::EnvironmentRow;
pub use reservations::{Claim, NameKind, PublicName};
pub use series::{SeriesPoint, Window as SeriesWindow};
pub use tokens::{NewToken, TokenKind, TokenRow};
pub use tunnels::{TunnelKey, TunnelRow};
pub use webhooks::{NewWebhook, SubscriptionRow, WebhookSummary};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Errors from the store. Messages never include bound values (they may be hashes
/// of secrets), only what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite:` or `postgres:`.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl,
    /// A query or connection failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value is not one this version understands.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// A migration failed; the database is left at the previous version.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
}

/// Why the store cannot take requests right now, when the cause is outside
/// beam (a full disk, an unreachable database) and goes away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The disk holding the database is full (SQLite `SQLITE_FULL` or an I/O
    /// error writing; PostgreSQL `53100 disk_full`).
    DiskFull,
    /// The database cannot be reached, is shutting down or starting up.
    Unreachable,
    /// SQLite's write lock stayed taken past the busy timeout.
    Busy,
}

impl Unavailable {
    /// Words for the response and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DiskFull => "its disk is full",
            Self::Unreachable => "it cannot be reached",
            Self::Busy => "it is busy",
        }
    }
}

impl StoreError {
    /// Whether this error means the database is unavailable for a while
    /// (answered 503 with `Retry-After`) rather than a bug (500).
    pub fn unavailable(&self) -> Option<Unavailable> {
        let Self::Db(e) = self else {
            return None;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Unavailable::Unreachable),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                // SQLite reports (extended) result codes as numbers; the low
                // byte is the primary code: 13 SQLITE_FULL, 10 SQLITE_IOERR
                // (a write refused with ENOSPC surfaces as an I/O error),
                // 5 SQLITE_BUSY and 6 SQLITE_LOCKED.
                if let Ok(n) = code.parse::<u32>() {
                    return match n & 0xff {
                        10 | 13 => Some(Unavailable::DiskFull),
                        5 | 6 => Some(Unavailable::Busy),
                        _ => None,
                    };
                }
                // PostgreSQL SQLSTATEs: class 53 insufficient resources (53100
                // disk_full), class 08 connection exceptions, 57P01-57P03
                // shutdown and start-up.
                match code.as_ref() {
                    "53100" => Some(Unavailable::DiskFull),
                    c if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03") => {
                        Some(Unavailable::Unreachable)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A connection pool to one of the two back ends.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to whichever pool the store holds. The body is
/// compiled once per back end, so it may use back-end specific types freely.
/// The first row of a write's `RETURNING`, read with `fetch_all`.
///
/// `fetch_one` and `fetch_optional` stop stepping after the first row; on
/// SQLite an autocommit write then commits only when sqlx resets the
/// statement, and sqlx drops an error there. With a full disk that error is
/// the failed commit: the caller would get the row of a write that never
/// happened, and the connection could stay inside the open transaction,
/// holding the write lock. `fetch_all` steps to the end, where the commit
/// happens and its error is returned.
pub(crate) fn first<R>(rows: Vec<R>) -> Result<R, sqlx::Error> {
    rows.into_iter().next().ok_or(sqlx::Error::RowNotFound)
}

macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Connects to `url` (`sqlite://path/to/beam.db` or `postgres://…`), creating a
    /// SQLite file if missing. Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets readers proceed while a claim writes.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    // A connection that comes back still counting an open
                    // transaction (its COMMIT or ROLLBACK failed, e.g. on a
                    // full disk, so sqlx's count no longer matches SQLite's)
                    // is closed instead of reused: reused, its next
                    // transaction would end with `ROLLBACK TO SAVEPOINT`
                    // and stay open, holding the write lock and taking the
                    // writes that follow with it.
                    .after_release(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Connection;
                            let stuck = conn.is_in_transaction();
                            if stuck {
                                tracing::warn!(
                                    "closing a SQLite connection left inside a transaction"
                                );
                            }
                            Ok(!stuck)
                        })
                    })
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self { pool })
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Cheap round trip used by `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?);
        Ok(())
    }
}

/// Current time in unix milliseconds (one clock for the whole workspace).
pub use beam_proto::time::now_ms;
