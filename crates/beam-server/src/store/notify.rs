//! Change notifications between the nodes of a cluster: PostgreSQL's
//! `LISTEN/NOTIFY`, so a node learns at once that another node stored
//! something its own waiters care about (a webhook event for a developer's
//! stream) instead of every waiter polling the database. On SQLite there is
//! one node, which wakes its own waiters directly: both calls do nothing.

use sqlx::postgres::PgListener;

use super::{Pool, Store, StoreError};

/// The channel a stored webhook event is announced on.
pub const WEBHOOKS: &str = "beam_webhooks";

/// What a [`Listener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification on this channel.
    Channel(String),
    /// The connection was lost and made again: notifications sent meanwhile
    /// are gone, so whoever waits should look for themselves once.
    Reconnected,
}

/// A connection listening for notifications.
pub struct Listener(PgListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// The next notification; reconnects by itself after a lost connection.
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        Ok(match self.0.try_recv().await? {
            Some(n) => Heard::Channel(n.channel().to_string()),
            None => Heard::Reconnected,
        })
    }
}

impl Store {
    /// Announces a change on `channel` to every node (PostgreSQL).
    pub async fn notify(&self, channel: &str) -> Result<(), StoreError> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(channel)
                .execute(p)
                .await?;
        }
        Ok(())
    }

    /// A connection listening on `channels`; `None` on SQLite.
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Listener>, StoreError> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let mut l = PgListener::connect_with(p).await?;
        l.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener(l)))
    }
}
