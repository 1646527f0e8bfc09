//! Several `beam server` nodes on one PostgreSQL database serving as one:
//! any node answers any visitor. A request for a tunnel another node holds
//! is forwarded to that node over an authenticated, encrypted node-to-node
//! connection, and TCP tunnel ports are open on every node.
//!
//! - [`auth`]: how nodes trust each other (the cluster secret, proven per TLS session).
//! - `peers`: the connections to other nodes, dialed on first use.
//! - `listen`: the node listener (`--node-addr`) and the streams it serves.
//! - `placement`: which node holds a name, from the store, cached briefly.
//! - `forward`: a visitor request through another node.
//! - `agents`: parity calls relayed to the node an agent is connected to.
//! - `tcp` (with `mirrors`): TCP tunnel ports mirrored on every node.
//! - `node`: what a clustered node keeps; `link`: a visitor connection's
//!   kept link; `wire`: the names node-to-node streams use.
//!
//! Nodes find each other in the store: each records its node address in the
//! `nodes` table with its heartbeat, and each live name records the node whose
//! connection holds it.

pub(crate) mod agents;
pub(crate) mod auth;
mod forward;
pub(crate) mod link;
pub(crate) mod listen;
mod mirrors;
pub(crate) mod node;
mod peers;
mod placement;
mod tcp;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

pub(crate) use forward::From;
pub(crate) use placement::Target;

use crate::body::Body;
use crate::edge::error::EdgeError;
use crate::registry::Tunnel;
use crate::state::State;

/// Node-to-node hops a visitor connection may take: the first node's, and
/// one more when the tunnel moved on while the request was on its way.
pub(crate) const MAX_HOPS: u8 = 2;

/// What became of a request for a tunnel this node does not hold.
pub(crate) enum Elsewhere {
    /// Another node answered.
    Answered(Response<Body>),
    /// The tunnel arrived here while the request waited.
    Here(Arc<Tunnel>, Request<Incoming>),
}

/// This node's tunnel for `target`, unless its client is moving away.
pub(crate) fn held_here(state: &State, target: &Target) -> Option<Arc<Tunnel>> {
    let t = match target {
        Target::Name(_, name) => state.registry.http(name),
        Target::Domain(host) => state.registry.domain(host),
    };
    t.filter(|t| !t.is_moving())
}

/// Serves a request for `target` (a subdomain or a custom domain) that no
/// tunnel of this node holds: forwarded to the node that does, or, while the
/// tunnel moves between nodes, held until it arrives somewhere (at most
/// `move_wait`).
pub(crate) async fn elsewhere(
    state: &State,
    visitor: From<'_>,
    target: Target,
    (host, raw_host): (&str, &str),
    mut req: Request<Incoming>,
) -> Result<Elsewhere, EdgeError> {
    let not_found = || EdgeError::NoTunnel {
        host: host.to_string(),
    };
    let unreachable = || EdgeError::NodeUnreachable {
        name: target.shown().to_string(),
    };
    let Some(cluster) = &state.cluster else {
        return Err(not_found());
    };
    let deadline = tokio::time::Instant::now() + cluster.cfg.move_wait;
    loop {
        if let Some(t) = held_here(state, &target) {
            return Ok(Elsewhere::Here(t, req));
        }
        let alive_since = crate::store::now_ms() - state.cfg.node_lease.as_millis() as i64;
        let place = cluster
            .placement
            .find(&state.store, &state.node_id, &target, alive_since)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "looking up a tunnel's node failed");
                unreachable()
            })?;
        match place {
            placement::Place::Nowhere => return Err(not_found()),
            placement::Place::Moving => {}
            placement::Place::Remote { node, addr } => {
                match forward::forward(state, visitor, (&node, &addr), (host, raw_host), req).await
                {
                    forward::Forwarded::Answered(Ok(resp)) => return Ok(Elsewhere::Answered(resp)),
                    forward::Forwarded::Answered(Err(e)) => {
                        tracing::debug!(node, error = %e, "forwarded request failed");
                        return Err(unreachable());
                    }
                    forward::Forwarded::NotSent(back) => {
                        req = back;
                        cluster.placement.forget(&target);
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(unreachable());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On every heartbeat: forgets connections to nodes that are gone, and
/// mirrors the TCP ports other live nodes hold.
pub(crate) async fn sync(state: &Arc<State>, alive: &[crate::store::NodeRow]) {
    let Some(cluster) = &state.cluster else {
        return;
    };
    let ids: std::collections::HashSet<&str> = alive.iter().map(|n| n.id.as_str()).collect();
    cluster.peers.retain(&ids);
    let alive_since = crate::store::now_ms() - state.cfg.node_lease.as_millis() as i64;
    match state.store.tcp_holders(&state.node_id, alive_since).await {
        Ok(rows) => {
            let remote: HashMap<u16, (String, String)> = rows
                .into_iter()
                .map(|(port, node, addr)| (port, (node, addr)))
                .collect();
            tcp::sync(state, &cluster.mirrors, remote).await;
        }
        Err(e) => tracing::warn!(error = %e, "listing other nodes' TCP ports failed"),
    }
}
