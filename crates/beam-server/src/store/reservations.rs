//! Public names (subdomains, TCP ports) held by live tunnels, by their leases
//! during the grace period, or reserved for an organization through the API.

use super::{Pool, Store, StoreError, on_pool};

/// Which namespace a reservation lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A subdomain label.
    Subdomain,
    /// A public TCP port.
    TcpPort,
}

impl NameKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subdomain => "subdomain",
            Self::TcpPort => "tcp",
        }
    }
}

/// A tunnel's public name: a subdomain of the server's domain or a public TCP
/// port. Stored as its [`NameKind`] and [`PublicName::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicName {
    /// `name.<domain>`.
    Subdomain(String),
    /// `tcp://<tcp host>:port`.
    Port(u16),
}

impl PublicName {
    /// The namespace it lives in.
    pub fn kind(&self) -> NameKind {
        match self {
            Self::Subdomain(_) => NameKind::Subdomain,
            Self::Port(_) => NameKind::TcpPort,
        }
    }

    /// The name as stored: the label, or the port's digits.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The name a stored `(kind, key)` pair stands for; `None` for a port
    /// that is not a number (a corrupt row).
    pub fn from_stored(kind: NameKind, key: &str) -> Option<Self> {
        match kind {
            NameKind::Subdomain => Some(Self::Subdomain(key.to_string())),
            NameKind::TcpPort => key.parse().ok().map(Self::Port),
        }
    }
}

impl std::fmt::Display for PublicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subdomain(s) => f.write_str(s),
            Self::Port(p) => write!(f, "{p}"),
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
    /// The token's organization: names it reserved through the API are its own.
    pub org_id: i64,
    /// SHA-256 of the new lease handed to this client.
    pub new_lease_hash: &'a [u8],
    /// SHA-256 of the lease the client presented, if any.
    pub presented_lease_hash: Option<&'a [u8]>,
    /// Session id of the connection taking the name.
    pub session: &'a str,
    /// The node whose connection takes it.
    pub node: &'a str,
    /// Current time, unix milliseconds.
    pub now: i64,
}

impl Store {
    /// Atomically takes a name. Succeeds when the name is free, when its grace period
    /// has ended, or when the caller presents the lease of the current holder under
    /// the same token. Returns whether the name is now this session's.
    ///
    /// One upsert decides, so two concurrent claims can never both win.
    pub async fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        // A lease hash that can match nothing when the caller has none.
        let presented: &[u8] = c.presented_lease_hash.unwrap_or(&[]);
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO reservations (kind, name, token_id, lease_hash, session, expires_at, org_id, node_id) \
             VALUES ($1, $2, $3, $4, $5, NULL, $8, $9) \
             ON CONFLICT (kind, name) DO UPDATE SET token_id = excluded.token_id, \
               lease_hash = excluded.lease_hash, session = excluded.session, expires_at = NULL, \
               org_id = excluded.org_id, node_id = excluded.node_id \
             WHERE (reservations.expires_at IS NOT NULL AND reservations.expires_at < $6 \
                    AND (reservations.persistent = FALSE OR reservations.org_id = $8)) \
                OR (reservations.lease_hash = $7 AND reservations.token_id = $3)")
            .bind(c.kind.as_str()).bind(c.name).bind(c.token_id).bind(c.new_lease_hash)
            .bind(c.session).bind(c.now).bind(presented).bind(c.org_id).bind(c.node)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Names held live by connections of token `token_id`, on every node,
    /// other than `except` (the name being claimed).
    pub async fn live_names_of_token(
        &self,
        token_id: i64,
        except: (NameKind, &str),
    ) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM reservations WHERE token_id = $1 AND expires_at IS NULL \
             AND NOT (kind = $2 AND name = $3)")
            .bind(token_id).bind(except.0.as_str()).bind(except.1)
            .fetch_one(p).await?);
        Ok(n)
    }

    /// Names held live by connections of organization `org_id` on every node
    /// (only of kind `only`, when given), other than `except` (the name
    /// being claimed). A claim is recorded before this is counted, so two
    /// admissions racing on different nodes each see the other: neither can
    /// take the organization past a limit.
    pub async fn live_names_of_org(
        &self,
        org_id: i64,
        only: Option<NameKind>,
        except: (NameKind, &str),
    ) -> Result<i64, StoreError> {
        let only = only.map_or("", NameKind::as_str);
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM reservations WHERE org_id = $1 AND expires_at IS NULL \
             AND ($2 = '' OR kind = $2) AND NOT (kind = $3 AND name = $4)")
            .bind(org_id).bind(only).bind(except.0.as_str()).bind(except.1)
            .fetch_one(p).await?);
        Ok(n)
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

    /// Deletes reservations whose grace period ended (API reservations stay).
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM reservations WHERE expires_at IS NOT NULL AND expires_at < $1 AND persistent = FALSE")
            .bind(now).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Reserves a name for `org_id` until [`unreserve`](Store::unreserve): only the
    /// organization's tokens can claim it. `Ok(false)` when another organization
    /// holds it (live, in its grace period, or reserved).
    pub async fn reserve(
        &self,
        kind: NameKind,
        name: &str,
        org_id: i64,
        token_id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // A name whose grace period is over is free: clear it first, then one
        // atomic upsert decides between organizations.
        on_pool!(self, p => sqlx::query(
            "DELETE FROM reservations WHERE kind = $1 AND name = $2 AND persistent = FALSE \
             AND expires_at IS NOT NULL AND expires_at < $3")
            .bind(kind.as_str()).bind(name).bind(now).execute(p).await.map(|_| ())?);
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO reservations (kind, name, token_id, lease_hash, session, expires_at, org_id, persistent) \
             VALUES ($1, $2, $3, $4, '', 0, $5, TRUE) \
             ON CONFLICT (kind, name) DO UPDATE SET persistent = TRUE \
             WHERE reservations.org_id = excluded.org_id")
            .bind(kind.as_str()).bind(name).bind(token_id).bind(&[] as &[u8]).bind(org_id)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Ends `org_id`'s reservation of a name. A connection still holding it keeps
    /// it (as an ordinary claim that ends with the grace period), unless it is
    /// `stopped_session`, the session the caller just stopped.
    pub async fn unreserve(
        &self,
        kind: NameKind,
        name: &str,
        org_id: i64,
        stopped_session: Option<&str>,
    ) -> Result<(), StoreError> {
        let stopped = stopped_session.unwrap_or("");
        on_pool!(self, p => {
            sqlx::query(
                "DELETE FROM reservations WHERE kind = $1 AND name = $2 AND org_id = $3 \
                 AND (expires_at IS NOT NULL OR session = $4)")
                .bind(kind.as_str()).bind(name).bind(org_id).bind(stopped)
                .execute(p).await?;
            sqlx::query(
                "UPDATE reservations SET persistent = FALSE WHERE kind = $1 AND name = $2 AND org_id = $3")
                .bind(kind.as_str()).bind(name).bind(org_id)
                .execute(p).await?;
        });
        Ok(())
    }
}
