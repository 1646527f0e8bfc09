//! Tunnel records: one row per (organization, kind, name) with its connection
//! state, pause flag, configuration and running totals.

use serde::Serialize;
// Dynamic SQL here is built only from constant column lists and column names;
// every value is bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{NameKind, Pool, Store, StoreError, first, on_pool};

/// A tunnel as stored (and as the API shows it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TunnelRow {
    /// Tunnel id.
    pub id: i64,
    /// Owning organization.
    #[serde(skip)]
    pub org_id: i64,
    /// User whose token opened (or created) it.
    pub user_id: Option<i64>,
    /// `http` or `tcp`.
    pub kind: String,
    /// Subdomain label or port number.
    pub name: String,
    /// `connecting`, `connected`, `disconnected`, `error`, or `paused` (connected but
    /// refusing visitors).
    pub status: String,
    /// Whether visitors are refused with 503 while connected.
    pub paused: bool,
    /// Reserved through the API: the name stays the organization's.
    pub reserved: bool,
    /// Public address.
    pub public_url: String,
    /// What the client reported (local target, client version, custom domain).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Unix ms.
    pub created_at: i64,
    /// Last connect, unix ms.
    pub connected_at: Option<i64>,
    /// Last disconnect, unix ms.
    pub disconnected_at: Option<i64>,
    /// Requests served since creation.
    pub requests: i64,
    /// Request bytes from visitors.
    pub bytes_in: i64,
    /// Response bytes to visitors.
    pub bytes_out: i64,
    /// The server node whose connection serves it (last one, once disconnected).
    pub node: Option<String>,
}

const COLUMNS: &str = "id, org_id, user_id, kind, name, status, paused, reserved, public_url, \
                       config, created_at, connected_at, disconnected_at, requests, bytes_in, bytes_out, node_id";

macro_rules! tunnel_of {
    ($r:expr) => {{
        let r = $r;
        let paused: bool = r.try_get("paused")?;
        let status: String = r.try_get("status")?;
        let config: String = r.try_get("config")?;
        TunnelRow {
            id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            user_id: r.try_get("user_id")?,
            kind: r.try_get("kind")?,
            name: r.try_get("name")?,
            status: if paused && status == "connected" {
                "paused".into()
            } else {
                status
            },
            paused,
            reserved: r.try_get("reserved")?,
            public_url: r.try_get("public_url")?,
            config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
            created_at: r.try_get("created_at")?,
            connected_at: r.try_get("connected_at")?,
            disconnected_at: r.try_get("disconnected_at")?,
            requests: r.try_get("requests")?,
            bytes_in: r.try_get("bytes_in")?,
            bytes_out: r.try_get("bytes_out")?,
            node: r.try_get("node_id")?,
        }
    }};
}

/// Identity of a tunnel row.
#[derive(Debug, Clone, Copy)]
pub struct TunnelKey<'a> {
    /// Owning organization.
    pub org_id: i64,
    /// Acting user.
    pub user_id: i64,
    /// Namespace.
    pub kind: NameKind,
    /// Subdomain or port.
    pub name: &'a str,
}

fn kind_str(kind: NameKind) -> &'static str {
    match kind {
        NameKind::Subdomain => "http",
        NameKind::TcpPort => "tcp",
    }
}

impl Store {
    /// Records a connect on `node`: creates the row or marks it connected.
    /// Returns the row.
    pub async fn tunnel_connected(
        &self,
        key: TunnelKey<'_>,
        public_url: &str,
        config: &serde_json::Value,
        node: &str,
        now: i64,
    ) -> Result<TunnelRow, StoreError> {
        let sql = format!(
            "INSERT INTO tunnels (org_id, user_id, kind, name, status, public_url, config, created_at, connected_at, node_id, domain) \
             VALUES ($1, $2, $3, $4, 'connected', $5, $6, $7, $7, $8, $9) \
             ON CONFLICT (org_id, kind, name) DO UPDATE SET status = 'connected', user_id = excluded.user_id, \
               public_url = excluded.public_url, config = excluded.config, connected_at = excluded.connected_at, \
               node_id = excluded.node_id, domain = excluded.domain \
             RETURNING {COLUMNS}"
        );
        let row = on_pool!(self, p => {
            let r = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(key.org_id).bind(key.user_id).bind(kind_str(key.kind)).bind(key.name)
                .bind(public_url).bind(config.to_string()).bind(now).bind(node)
                .bind(config.get("domain").and_then(|d| d.as_str()))
                .fetch_all(p).await.and_then(first)?;
            tunnel_of!(r)
        });
        Ok(row)
    }

    /// Records a disconnect on `node`; nothing when the tunnel has meanwhile
    /// reconnected on another node (a client moving off a draining node).
    pub async fn tunnel_disconnected(
        &self,
        id: i64,
        node: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE tunnels SET status = 'disconnected', disconnected_at = $1 \
             WHERE id = $2 AND (node_id = $3 OR node_id IS NULL)")
            .bind(now).bind(id).bind(node).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Creates a reserved tunnel definition (API), or marks an existing row of the
    /// same organization reserved.
    pub async fn create_tunnel(
        &self,
        key: TunnelKey<'_>,
        public_url: &str,
        now: i64,
    ) -> Result<TunnelRow, StoreError> {
        let sql = format!(
            "INSERT INTO tunnels (org_id, user_id, kind, name, status, reserved, public_url, created_at) \
             VALUES ($1, $2, $3, $4, 'disconnected', TRUE, $5, $6) \
             ON CONFLICT (org_id, kind, name) DO UPDATE SET reserved = TRUE \
             RETURNING {COLUMNS}"
        );
        let row = on_pool!(self, p => {
            let r = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(key.org_id).bind(key.user_id).bind(kind_str(key.kind)).bind(key.name)
                .bind(public_url).bind(now)
                .fetch_all(p).await.and_then(first)?;
            tunnel_of!(r)
        });
        Ok(row)
    }

    /// Tunnels of an organization, newest activity first.
    pub async fn tunnels(&self, org_id: i64) -> Result<Vec<TunnelRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tunnels WHERE org_id = $1 \
             ORDER BY COALESCE(connected_at, created_at) DESC, id DESC"
        );
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).fetch_all(p).await? {
                out.push(tunnel_of!(r));
            }
            out
        });
        Ok(rows)
    }

    /// One tunnel of an organization; `None` for other organizations' tunnels too.
    pub async fn tunnel(&self, org_id: i64, id: i64) -> Result<Option<TunnelRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tunnels WHERE org_id = $1 AND id = $2");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).bind(id).fetch_optional(p).await? {
                Some(r) => Some(tunnel_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Pauses or resumes; `Ok(false)` when the organization has no such tunnel.
    pub async fn set_paused(&self, org_id: i64, id: i64, paused: bool) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE tunnels SET paused = $1 WHERE org_id = $2 AND id = $3")
            .bind(paused).bind(org_id).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Deletes a tunnel record (its analytics go with it).
    pub async fn delete_tunnel(&self, org_id: i64, id: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM tunnels WHERE org_id = $1 AND id = $2")
            .bind(org_id).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Connected tunnels of an organization (plan limit).
    pub async fn count_connected(&self, org_id: i64) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query(
            "SELECT COUNT(*) AS n FROM tunnels WHERE org_id = $1 AND status = 'connected'")
            .bind(org_id).fetch_one(p).await?.try_get("n")?);
        Ok(n)
    }

    /// Names an organization holds on reserve: reserved tunnels (subdomains
    /// and ports) and reserved subdomains.
    pub async fn count_reserved_names(&self, org_id: i64) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, p => sqlx::query(
            "SELECT (SELECT COUNT(*) FROM tunnels WHERE org_id = $1 AND reserved = TRUE) \
             + (SELECT COUNT(*) FROM domains WHERE org_id = $1 AND kind = 'subdomain') AS n")
            .bind(org_id).fetch_one(p).await?.try_get("n")?);
        Ok(n)
    }

    /// Deletes unreserved tunnel records disconnected before `before`.
    pub async fn purge_tunnels(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM tunnels WHERE reserved = FALSE AND status = 'disconnected' \
             AND disconnected_at IS NOT NULL AND disconnected_at < $1")
            .bind(before).execute(p).await?.rows_affected());
        Ok(n)
    }
}
