//! A production agent's session (`beam agent`): its token must belong to the
//! environment it names; it is registered for parity requests until it drops.
//! Agents hold no public name, so nothing here claims or releases one.

use std::net::SocketAddr;
use std::sync::Arc;

use beam_proto::{ErrorCode, Refusal, Reply, TunnelKind, Welcome, write_frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::{h2_handshake, refuse, send_ready};
use crate::accounts::auth::{Principal, internal, random_secret};
use crate::registry::AgentSession;
use crate::state::State;
use crate::store::EnvironmentRow;

/// What an agent's hello names: its environment and its instance.
pub(super) struct AgentName<'a> {
    /// The project.
    pub project: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// The replica's instance name (checked).
    pub instance: &'a str,
}

/// Runs one agent connection until it drops, is revoked or the server stops.
pub(super) async fn run<IO>(
    state: Arc<State>,
    mut io: IO,
    peer: SocketAddr,
    principal: Principal,
    AgentName {
        project,
        environment,
        instance,
    }: AgentName<'_>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let env = match environment_of(&state, peer, &principal, project, environment).await {
        Ok(env) => env,
        Err(r) => return refuse(&mut io, r).await,
    };
    let session = format!("{:016x}", rand::random::<u64>());
    let name = format!("{project}/{environment}");
    let welcome = Welcome {
        session: session.clone(),
        public_url: format!("agent://{name}"),
        name: name.clone(),
        // Agents hold no public name; the lease is not used.
        lease: random_secret("lease_"),
        grace_secs: 0,
        enforced: true,
        other_urls: Vec::new(),
    };
    if write_frame(&mut io, &Reply::Welcome(welcome))
        .await
        .is_err()
    {
        return;
    }
    let (sender, conn) = match h2_handshake(&state, io).await {
        Ok(pair) => pair,
        Err(e) => return tracing::debug!(%peer, error = %e, "agent HTTP/2 handshake failed"),
    };
    let connected_at = crate::store::now_ms();
    let agent = Arc::new(AgentSession {
        session: session.clone(),
        instance: instance.to_string(),
        connected_at,
        sender,
        kick: CancellationToken::new(),
    });
    // Recorded before it is registered here, so this node's check of its
    // sessions against the store never finds it missing. Other nodes of a
    // cluster relay parity calls here; an older session of the same
    // instance on another node is stopped by that node.
    if let Err(e) = state
        .store
        .agent_connected(&session, env.id, instance, &state.node_id, connected_at)
        .await
    {
        tracing::warn!(error = %e, "could not record the agent's node");
    }
    for old in state.registry.insert_agent(env.id, agent.clone()) {
        tokio::spawn(stop_replaced(old, name.clone()));
    }
    // An agent token revoked (or its creator leaving the organization) ends
    // the agent's connection too.
    let kick = agent.kick.clone();
    let _held = state.revocation.hold(
        crate::accounts::revocation::Access::of(&principal, None),
        kick.clone(),
    );
    let gauge = state.metrics.tunnels(TunnelKind::Agent.as_str());
    gauge.inc();
    tracing::info!(%peer, session, environment = %name, instance, "agent connected");
    tokio::spawn(send_ready(agent.sender.clone()));
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(session, error = %e, "agent connection ended");
        },
        () = kick.cancelled() => {},
        () = shutdown.cancelled() => {},
    }
    gauge.dec();
    state.registry.remove_agent(env.id, &session);
    if let Err(e) = state.store.agent_disconnected(&session).await {
        tracing::warn!(error = %e, "could not forget the agent's node");
    }
    tracing::info!(session, environment = %name, "agent disconnected");
}

/// Stops an agent session that a newer connection of the same instance
/// replaced: it is told why (so it does not come back and take the name
/// again), then disconnected.
pub(crate) async fn stop_replaced(agent: Arc<AgentSession>, environment: String) {
    let reason = format!(
        "another agent connected as instance '{}' of {environment}",
        agent.instance
    );
    tracing::info!(
        session = agent.session,
        instance = agent.instance,
        "agent replaced"
    );
    let mut sender = agent.sender.clone();
    let stop = beam_proto::Control::Stop(reason).request(crate::body::empty());
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(2), sender.send_request(stop)).await;
    agent.kick.cancel();
}

/// The environment the agent names, when its token belongs to it.
async fn environment_of(
    state: &State,
    peer: SocketAddr,
    principal: &Principal,
    project: &str,
    environment: &str,
) -> Result<EnvironmentRow, Refusal> {
    match state
        .store
        .environment(principal.org_id, project, environment)
        .await
    {
        Ok(Some(env)) if principal.environment_id == Some(env.id) => Ok(env),
        Ok(_) => {
            state.auth.record_failure(peer.ip());
            Err(Refusal::new(
                ErrorCode::Unauthorized,
                format!(
                    "this agent token is not for {project}/{environment}; create one with `beam projects token {project}/{environment}`"
                ),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "environment lookup failed");
            Err(internal())
        }
    }
}
