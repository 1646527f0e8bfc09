//! The server nodes sharing the database, with heartbeat leases: what lets a
//! node joining a shared PostgreSQL database leave alone the names and tunnels
//! live nodes hold, and release those of a node that died (`kill -9`, lost
//! machine) once its lease has run out.

use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool};

/// One node as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Random id chosen at start.
    pub id: String,
    /// Its node-to-node address, when it has one.
    pub addr: String,
    /// Unix ms.
    pub started_at: i64,
    /// Last heartbeat, unix ms.
    pub heartbeat_at: i64,
}

/// Who holds a live public name, as [`Store::name_holder`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameHolder {
    /// The node whose connection holds it (`None` on rows from before nodes
    /// were recorded).
    pub node_id: Option<String>,
    /// That node's node-to-node address; empty when it has none or its row
    /// is gone.
    pub addr: String,
    /// Its last heartbeat, unix ms; `None` when its row is gone (dead).
    pub heartbeat_at: Option<i64>,
}

/// A [`NameHolder`] from a row with `node_id`, `addr` and `heartbeat_at`
/// (the row types differ per back end, hence a macro).
macro_rules! holder_of {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(NameHolder {
            node_id: r.try_get("node_id")?,
            addr: r.try_get::<Option<String>, _>("addr")?.unwrap_or_default(),
            heartbeat_at: r.try_get("heartbeat_at")?,
        })
    }};
}

/// One agent replica connected to another node, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Its session id.
    pub session: String,
    /// Its instance name.
    pub instance: String,
    /// When it connected, unix ms.
    pub connected_at: i64,
    /// The node it is connected to.
    pub node_id: String,
    /// That node's node-to-node address.
    pub addr: String,
}

/// What [`Store::release_orphans`] released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Live names moved into their grace period.
    pub names: u64,
    /// Connected tunnels marked disconnected.
    pub tunnels: u64,
}

/// Names, tunnels and nodes whose node has no heartbeat since `$2` (or no
/// node at all: rows from before nodes were recorded).
const ORPHAN: &str =
    "(node_id IS NULL OR node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2))";

impl Store {
    /// Records this node as alive (a restart with the same id refreshes it).
    pub async fn node_join(&self, id: &str, addr: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO nodes (id, addr, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, heartbeat_at = excluded.heartbeat_at")
            .bind(id).bind(addr).bind(now).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Renews this node's lease. `false` when its row is gone (another node
    /// declared it dead): the caller joins again.
    pub async fn node_heartbeat(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Removes this node (clean shutdown, after its sessions ended).
    pub async fn node_leave(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Nodes with a heartbeat since `alive_since`, oldest first.
    pub async fn nodes(&self, alive_since: i64) -> Result<Vec<NodeRow>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, addr, started_at, heartbeat_at FROM nodes \
                 WHERE heartbeat_at >= $1 ORDER BY started_at, id")
                .bind(alive_since).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(NodeRow {
                    id: r.try_get("id")?,
                    addr: r.try_get("addr")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                }))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// The holder of a live name (held by a connection, not in its grace
    /// period or merely reserved); `None` when nobody holds it now.
    pub async fn name_holder(
        &self,
        kind: super::reservations::NameKind,
        name: &str,
    ) -> Result<Option<NameHolder>, StoreError> {
        on_pool!(self, p => {
            let row = sqlx::query(
                "SELECT r.node_id, n.addr, n.heartbeat_at FROM reservations r \
                 LEFT JOIN nodes n ON n.id = r.node_id \
                 WHERE r.kind = $1 AND r.name = $2 AND r.expires_at IS NULL")
                .bind(kind.as_str()).bind(name).fetch_optional(p).await?;
            row.map(|r| holder_of!(r)).transpose()
        })
        .map_err(Into::into)
    }

    /// The holder of the live subdomain whose connected tunnel serves custom
    /// domain `host`; `None` when no connected tunnel serves it, or the
    /// domain is no longer active (removed or suspended through any node).
    pub async fn domain_holder(&self, host: &str) -> Result<Option<NameHolder>, StoreError> {
        on_pool!(self, p => {
            let row = sqlx::query(
                "SELECT r.node_id, n.addr, n.heartbeat_at FROM tunnels t \
                 JOIN reservations r ON r.kind = 'subdomain' AND r.name = t.name AND r.expires_at IS NULL \
                 JOIN domains d ON d.hostname = t.domain AND d.org_id = t.org_id AND d.status = 'active' \
                 LEFT JOIN nodes n ON n.id = r.node_id \
                 WHERE t.domain = $1 AND t.status = 'connected' LIMIT 1")
                .bind(host).fetch_optional(p).await?;
            row.map(|r| holder_of!(r)).transpose()
        })
        .map_err(Into::into)
    }

    /// `(port, node id, node address)` of every TCP port held live by a
    /// connection on another node than `me` with a heartbeat since
    /// `alive_since` and a node address.
    pub async fn tcp_holders(
        &self,
        me: &str,
        alive_since: i64,
    ) -> Result<Vec<(u16, String, String)>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT r.name, n.id, n.addr FROM reservations r JOIN nodes n ON n.id = r.node_id \
                 WHERE r.kind = 'tcp' AND r.expires_at IS NULL AND n.id <> $1 \
                 AND n.heartbeat_at >= $2 AND n.addr <> ''")
                .bind(me).bind(alive_since).fetch_all(p).await?;
            rows.iter()
                .filter_map(|r| {
                    let port: Result<String, _> = r.try_get("name");
                    match port.map(|p| p.parse::<u16>()) {
                        Ok(Ok(port)) => Some(Ok((port, r.try_get("id").ok()?, r.try_get("addr").ok()?))),
                        Ok(Err(_)) => None,
                        Err(e) => Some(Err(e)),
                    }
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// Records that agent `session`, replica `instance` of environment
    /// `env_id`, is connected to `node`; an older session of the same replica
    /// is replaced (its node stops it when it sees the row gone).
    pub async fn agent_connected(
        &self,
        session: &str,
        env_id: i64,
        instance: &str,
        node: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO agent_sessions (session, env_id, instance, node_id, connected_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (env_id, instance) DO UPDATE SET \
             session = excluded.session, node_id = excluded.node_id, connected_at = excluded.connected_at")
            .bind(session).bind(env_id).bind(instance).bind(node).bind(now)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Records agent `session` again (its row was lost) unless another
    /// session of the same instance holds the row now; `false` then: it was
    /// replaced.
    pub async fn agent_reclaim(
        &self,
        session: &str,
        env_id: i64,
        instance: &str,
        node: &str,
        connected_at: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO agent_sessions (session, env_id, instance, node_id, connected_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (env_id, instance) DO NOTHING")
            .bind(session).bind(env_id).bind(instance).bind(node).bind(connected_at)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Forgets agent `session` (it disconnected).
    pub async fn agent_disconnected(&self, session: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM agent_sessions WHERE session = $1")
            .bind(session).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// The replicas of `env_id` connected to live nodes other than `me`
    /// that have a node address, newest first.
    pub async fn agent_replicas(
        &self,
        env_id: i64,
        me: &str,
        alive_since: i64,
    ) -> Result<Vec<AgentRow>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT s.session, s.instance, s.connected_at, n.id, n.addr \
                 FROM agent_sessions s JOIN nodes n ON n.id = s.node_id \
                 WHERE s.env_id = $1 AND n.id <> $2 AND n.heartbeat_at >= $3 AND n.addr <> '' \
                 ORDER BY s.connected_at DESC, s.instance")
                .bind(env_id).bind(me).bind(alive_since).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(AgentRow {
                    session: r.try_get("session")?,
                    instance: r.try_get("instance")?,
                    connected_at: r.try_get("connected_at")?,
                    node_id: r.try_get("id")?,
                    addr: r.try_get("addr")?,
                }))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// The agent sessions recorded on `node`: a live one missing here was
    /// replaced by a newer connection of its instance on another node.
    pub async fn node_agent_sessions(&self, node: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query("SELECT session FROM agent_sessions WHERE node_id = $1")
                .bind(node).fetch_all(p).await?;
            rows.iter()
                .map(|r| r.try_get("session"))
                .collect::<Result<Vec<String>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// `(id, paused)` of every tunnel row this node serves (or served last).
    /// A live tunnel missing here was stopped (its row deleted) through
    /// another node's API.
    pub async fn node_tunnels(&self, node: &str) -> Result<Vec<(i64, bool)>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query("SELECT id, paused FROM tunnels WHERE node_id = $1")
                .bind(node).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("paused")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// Releases what nodes without a heartbeat since `alive_since` held:
    /// their live names start a grace period ending at `grace_until` (their
    /// clients come back with leases, to any node), their connected tunnels
    /// become disconnected at `now`, their agents are forgotten, and their
    /// node rows are deleted. Names
    /// and tunnels of live nodes are never touched.
    pub async fn release_orphans(
        &self,
        alive_since: i64,
        now: i64,
        grace_until: i64,
    ) -> Result<Released, StoreError> {
        let names = format!(
            "UPDATE reservations SET expires_at = $1 WHERE expires_at IS NULL AND {ORPHAN}"
        );
        let tunnels = format!(
            "UPDATE tunnels SET status = 'disconnected', disconnected_at = $1 \
             WHERE status IN ('connecting', 'connected') AND {ORPHAN}"
        );
        let released = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let names = sqlx::query(sqlx::AssertSqlSafe(names.as_str()))
                .bind(grace_until).bind(alive_since).execute(&mut *tx).await?.rows_affected();
            let tunnels = sqlx::query(sqlx::AssertSqlSafe(tunnels.as_str()))
                .bind(now).bind(alive_since).execute(&mut *tx).await?.rows_affected();
            sqlx::query(
                "DELETE FROM agent_sessions WHERE node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1)")
                .bind(alive_since).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
                .bind(alive_since).execute(&mut *tx).await?;
            tx.commit().await?;
            Released { names, tunnels }
        });
        Ok(released)
    }
}
