//! The server's durable state on sqlx: SQLite (embedded default) or PostgreSQL.
//!
//! Both back ends run the same SQL text (`$1` placeholders work on both) through the
//! [`on_pool!`] macro, so a query is written once and compiled per back end. Schema
//! changes live in `migrations/<backend>/NNNN_name.sql` and are applied by
//! [`migrate`](Store::migrate) at start.

mod migrate;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
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
    /// A migration failed; the database is left at the previous version.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
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
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A stored API token, without its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the token, for the constant-time comparison.
    pub hash: Vec<u8>,
    /// Unix milliseconds after which the token is refused.
    pub expires_at: Option<i64>,
    /// Set when the token was revoked.
    pub revoked_at: Option<i64>,
}

/// Which namespace a reservation lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A subdomain label.
    Subdomain,
    /// A public TCP port.
    TcpPort,
}

impl NameKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Subdomain => "subdomain",
            Self::TcpPort => "tcp",
        }
    }
}

/// Arguments of [`Store::claim`].
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Namespace.
    pub kind: NameKind,
    /// The subdomain or port.
    pub name: &'a str,
    /// The token the tunnel authenticated with.
    pub token_id: i64,
    /// SHA-256 of the new lease handed to this client.
    pub new_lease_hash: &'a [u8],
    /// SHA-256 of the lease the client presented, if any.
    pub presented_lease_hash: Option<&'a [u8]>,
    /// Session id of the connection taking the name.
    pub session: &'a str,
    /// Current time, unix milliseconds.
    pub now: i64,
}

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

    /// Number of tokens that exist (revoked or not).
    pub async fn count_tokens(&self) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(p).await?.try_get("n")?);
        Ok(n)
    }

    /// Stores a token hash. Inserting a hash that exists is a no-op that returns the
    /// existing id, so a bootstrap token given at every start stays one row.
    pub async fn insert_token(
        &self,
        hash: &[u8],
        description: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<i64, StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO tokens (hash, description, created_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (hash) DO NOTHING")
            .bind(hash).bind(description).bind(now).bind(expires_at)
            .execute(p).await.map(|_| ())?);
        let id: i64 = on_pool!(self, p => sqlx::query("SELECT id FROM tokens WHERE hash = $1")
            .bind(hash).fetch_one(p).await?.try_get("id")?);
        Ok(id)
    }

    /// Looks a token up by its hash.
    pub async fn find_token(&self, hash: &[u8]) -> Result<Option<TokenRow>, StoreError> {
        let row = on_pool!(self, p => {
            let row = sqlx::query(
                "SELECT id, hash, expires_at, revoked_at FROM tokens WHERE hash = $1")
                .bind(hash).fetch_optional(p).await?;
            match row {
                Some(r) => Some(TokenRow {
                    id: r.try_get("id")?,
                    hash: r.try_get("hash")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                }),
                None => None,
            }
        });
        Ok(row)
    }

    /// Records that a token was used.
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Atomically takes a name. Succeeds when the name is free, when its grace period
    /// has ended, or when the caller presents the lease of the current holder under
    /// the same token. Returns whether the name is now this session's.
    ///
    /// One upsert decides, so two concurrent claims can never both win.
    pub async fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        // A lease hash that can match nothing when the caller has none.
        let presented: &[u8] = c.presented_lease_hash.unwrap_or(&[]);
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO reservations (kind, name, token_id, lease_hash, session, expires_at) \
             VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (kind, name) DO UPDATE SET token_id = excluded.token_id, \
               lease_hash = excluded.lease_hash, session = excluded.session, expires_at = NULL \
             WHERE (reservations.expires_at IS NOT NULL AND reservations.expires_at < $6) \
                OR (reservations.lease_hash = $7 AND reservations.token_id = $3)")
            .bind(c.kind.as_str()).bind(c.name).bind(c.token_id).bind(c.new_lease_hash)
            .bind(c.session).bind(c.now).bind(presented)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Starts the grace period of a name if `session` still holds it (a lease
    /// takeover may already have moved it to a newer session).
    pub async fn release(
        &self,
        kind: NameKind,
        name: &str,
        session: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE reservations SET expires_at = $1 WHERE kind = $2 AND name = $3 AND session = $4")
            .bind(expires_at).bind(kind.as_str()).bind(name).bind(session)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Deletes a name outright (a failed bind after a claim).
    pub async fn forget(
        &self,
        kind: NameKind,
        name: &str,
        session: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "DELETE FROM reservations WHERE kind = $1 AND name = $2 AND session = $3")
            .bind(kind.as_str()).bind(name).bind(session)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Starts the grace period of every name held by a connection. Called at start
    /// (connections of a previous process are gone) and at shutdown.
    pub async fn release_all(&self, expires_at: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE reservations SET expires_at = $1 WHERE expires_at IS NULL")
            .bind(expires_at).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Deletes reservations whose grace period ended.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM reservations WHERE expires_at IS NOT NULL AND expires_at < $1")
            .bind(now).execute(p).await?.rows_affected());
        Ok(n)
    }
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
