//! This node's membership of the nodes sharing the store: its heartbeat
//! lease, releasing what dead nodes held, applying other nodes' API changes
//! to its live tunnels, listening for their notifications, and draining on
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::state::State;
use crate::store::{self, Store};
use crate::{api, cluster};

/// When other nodes serve the same database, asks every client of this node
/// to move to another one now (they reconnect with their leases, so they keep
/// their names) and waits up to 5 s for them to go, so a rolling restart does
/// not leave tunnels offline until the node is back. Then it keeps serving
/// visitors for `drain_linger` (forwarding them to where their tunnels
/// went) while load balancers see `/ready` fail and stop sending new ones.
/// Alone, it moves nobody and does not linger: there is nowhere to go, and
/// clients come back after the restart.
pub(crate) async fn drain(state: &State) {
    let now = store::now_ms();
    let alive_since = now - state.cfg.node_lease.as_millis() as i64;
    let others = match state.store.nodes(alive_since).await {
        Ok(nodes) => nodes.iter().filter(|n| n.id != state.node_id).count(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list nodes; not moving clients");
            0
        }
    };
    if others == 0 {
        return;
    }
    move_clients(state, others).await;
    if !state.cfg.drain_linger.is_zero() {
        tracing::info!(
            secs = state.cfg.drain_linger.as_secs_f64(),
            "serving visitors while load balancers notice the drain"
        );
        tokio::time::sleep(state.cfg.drain_linger).await;
    }
}

/// Sends `Control::Move` to every client of this node and waits up to 5 s
/// for their sessions to end.
pub(crate) async fn move_clients(state: &State, others: usize) {
    let live = state.registry.all();
    if live.is_empty() {
        return;
    }
    tracing::info!(
        tunnels = live.len(),
        nodes = others,
        "moving clients to other nodes"
    );
    // With forwarding, visitors of these tunnels now wait for them on their
    // next node; without it, they keep using the old connection until it ends.
    if state.cluster.is_some() {
        for t in &live {
            t.moving.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let asks = live.iter().map(|t| {
        let mut sender = t.sender.clone();
        let req = beam_proto::Control::Move.request(crate::body::empty());
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), sender.send_request(req)).await;
        }
    });
    futures_util::future::join_all(asks).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline && !state.registry.all().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The address other nodes dial to reach this one; empty when not clustered.
pub(crate) fn node_addr(cfg: &ServerConfig) -> &str {
    cfg.cluster.as_ref().map_or("", |c| c.node_addr.as_str())
}

/// Releases what nodes without a heartbeat within the lease held.
pub(crate) async fn release_orphans(
    store: &Store,
    cfg: &ServerConfig,
    now: i64,
) -> Result<store::Released, store::StoreError> {
    let alive_since = now - cfg.node_lease.as_millis() as i64;
    let until = now + cfg.grace.as_millis() as i64;
    store.release_orphans(alive_since, now, until).await
}

/// Applies to this node's live tunnels what other nodes' API calls changed
/// in the store: a pause or resume, a stop (the row deleted), a custom
/// domain removed or suspended. On one node the API applies these at once
/// and this finds nothing to do.
pub(crate) async fn reconcile(state: &State) -> Result<(), store::StoreError> {
    // Every snapshot of what lives here is taken before the store is read: a
    // session's row is written before it is registered, so whatever is in a
    // snapshot has its row in the answer. The other order would judge a
    // session registered between the query and the snapshot by a read that
    // could not see it, and stop a healthy tunnel as "stopped through the API".
    let routes = state.registry.domain_routes();
    let live_tunnels = state.registry.all();
    let live_agents = state.registry.all_agents();
    if !routes.is_empty() {
        let active = state.store.active_domains_for_node(&state.node_id).await?;
        for (host, tunnel) in routes {
            if !active.contains(&(host.clone(), tunnel.org_id)) {
                tracing::info!(%host, "custom domain removed or suspended elsewhere; no longer routed");
                state.registry.remove_domain_of(&host, &tunnel.session);
            }
        }
    }
    let rows: std::collections::HashMap<i64, bool> = state
        .store
        .node_tunnels(&state.node_id)
        .await?
        .into_iter()
        .collect();
    // An agent session whose row is gone was replaced by a newer connection
    // of its instance on another node (or released with a node thought dead).
    let sessions: std::collections::HashSet<String> = state
        .store
        .node_agent_sessions(&state.node_id)
        .await?
        .into_iter()
        .collect();
    for (env_id, agent) in live_agents {
        if sessions.contains(&agent.session) {
            continue;
        }
        // Recorded again unless another session of the instance holds the
        // row: a row lost with this node's lease (a database outage) must
        // not stop a healthy agent.
        let (session, instance) = (&agent.session, &agent.instance);
        let node = &state.node_id;
        let at = agent.connected_at;
        if !state
            .store
            .agent_reclaim(session, env_id, instance, node, at)
            .await?
        {
            tokio::spawn(crate::tunnel::agent::stop_replaced(
                agent,
                "this environment".into(),
            ));
        }
    }
    for live in live_tunnels {
        match rows.get(&live.id) {
            Some(&paused) if paused != live.is_paused() => live.set_paused(paused),
            Some(_) => {}
            None => {
                let reason = "this tunnel was stopped through the API (beam stop)";
                state.registry.stop(&live, reason).await;
                let kind = live.name.kind();
                api::tunnels::release_stopped_name(
                    state,
                    live.org_id,
                    kind,
                    &live.name.key(),
                    Some(&live.session),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Renews this node's lease every `node_heartbeat`, and releases what nodes
/// whose lease ran out held, so their clients can take their names back on
/// any node.
pub(crate) async fn heartbeat_loop(state: Arc<State>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(state.cfg.node_heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        let now = store::now_ms();
        let beat = match state.store.node_heartbeat(&state.node_id, now).await {
            // Declared dead while the database was out of reach: join again.
            Ok(false) => {
                let addr = node_addr(&state.cfg);
                state.store.node_join(&state.node_id, addr, now).await
            }
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = beat {
            tracing::warn!(error = %e, "node heartbeat failed");
            state.metrics.node_heartbeat_ok.set(0);
            continue;
        }
        state.metrics.node_heartbeat_ok.set(1);
        let alive_since = now - state.cfg.node_lease.as_millis() as i64;
        if let Ok(nodes) = state.store.nodes(alive_since).await {
            state.metrics.cluster_nodes.set(nodes.len() as i64);
            cluster::sync(&state, &nodes).await;
        }
        state
            .heartbeat_ok
            .store(now, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = reconcile(&state).await {
            tracing::warn!(error = %e, "syncing live tunnels with the store failed");
        }
        match release_orphans(&state.store, &state.cfg, now).await {
            Ok(r) if r.names + r.tunnels > 0 => {
                tracing::info!(
                    names = r.names,
                    tunnels = r.tunnels,
                    "released what a dead node held"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "releasing a dead node's names failed"),
        }
    }
}

/// Wakes this node's waiters on what other nodes announce (PostgreSQL
/// `LISTEN`): a webhook event stored by another node reaches developers
/// streaming from this one at once. After a lost connection everyone looks
/// once, since notifications sent meanwhile are gone. Nothing on SQLite.
pub(crate) async fn notify_loop(state: Arc<State>, cancel: CancellationToken) {
    use store::notify::{Heard, WEBHOOKS};
    let mut listener = loop {
        match state.store.listen(&[WEBHOOKS]).await {
            Ok(Some(l)) => break l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes' changes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    };
    loop {
        let heard = tokio::select! {
            h = listener.next() => h,
            () = cancel.cancelled() => return,
        };
        match heard {
            Ok(Heard::Channel(_) | Heard::Reconnected) => state.webhooks.stored(),
            Err(e) => {
                tracing::warn!(error = %e, "listening for other nodes' changes failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }
}
