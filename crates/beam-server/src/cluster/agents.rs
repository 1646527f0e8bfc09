//! Parity calls across nodes: a production agent is connected to one node,
//! and a developer's call (logs, flags, env check, health, sync) may be
//! answered by any node. That node checks the caller's scope and
//! organization as always, then relays the agent request to the node the
//! agent is connected to (the store's `agent_sessions`), which passes it to
//! its agent. Only authenticated nodes can send such a relay.

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::wire::{NODE_AGENT, NODE_INSTANCE};
use crate::body::{Body, bare};
use crate::state::State;

/// Why a relay to another node's agent failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    /// No live node has an agent of the environment.
    #[error("no node has an agent of this environment")]
    Offline,
    /// The node holding the agent could not be reached or dropped the call.
    #[error("the node with the agent failed: {0}")]
    Node(String),
}

/// Sends agent request `req` for environment `env_id` to replica
/// `instance`, connected to node `node` at `addr`.
pub(crate) async fn relay(
    state: &State,
    env_id: i64,
    (node, addr): (&str, &str),
    instance: &str,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, RelayError> {
    let Some(cluster) = &state.cluster else {
        return Err(RelayError::Offline);
    };
    let mut h2 = match cluster.peers.sender(node, addr).await {
        Ok(s) => s,
        Err(e) => {
            cluster.peers.forget(node);
            return Err(RelayError::Node(e.to_string()));
        }
    };
    req.headers_mut().insert(NODE_AGENT, env_id.into());
    let instance =
        HeaderValue::from_str(instance).map_err(|_| RelayError::Node("bad instance".into()))?;
    req.headers_mut().insert(NODE_INSTANCE, instance);
    let resp = h2
        .send_request(req)
        .await
        .map_err(|e| RelayError::Node(e.to_string()))?;
    if resp.headers().get(NODE_AGENT).is_some_and(|v| v == "none") {
        return Err(RelayError::Offline);
    }
    Ok(resp)
}

/// The holder's side: passes a relayed agent request to this node's agent of
/// the environment (the replica the request names); the answer streams back
/// until the agent disconnects.
pub(crate) async fn serve(
    state: &State,
    mut req: Request<Incoming>,
    env: &HeaderValue,
) -> Response<Body> {
    use futures_util::StreamExt;
    let env_id = env.to_str().ok().and_then(|v| v.parse::<i64>().ok());
    let instance = req.headers_mut().remove(NODE_INSTANCE);
    let agent = env_id.and_then(|id| {
        let mut agents = state.registry.agents(id);
        match &instance {
            Some(name) => agents
                .into_iter()
                .find(|a| a.instance.as_bytes() == name.as_bytes()),
            None => agents.pop(),
        }
    });
    let Some(agent) = agent else {
        // Gone since the store said it was here: the caller says offline.
        let mut r = bare(StatusCode::SERVICE_UNAVAILABLE);
        r.headers_mut()
            .insert(NODE_AGENT, HeaderValue::from_static("none"));
        return r;
    };
    req.headers_mut().remove(NODE_AGENT);
    let mut sender = agent.sender.clone();
    match sender.send_request(req.map(crate::body::boxed)).await {
        Ok(resp) => resp.map(|b| {
            let frames = http_body_util::BodyStream::new(b)
                .map(|f| f.map_err(crate::body::BoxError::from))
                .take_until(agent.kick.clone().cancelled_owned());
            crate::body::boxed(http_body_util::StreamBody::new(frames))
        }),
        Err(e) => {
            tracing::debug!(error = %e, "relayed agent request failed");
            bare(StatusCode::BAD_GATEWAY)
        }
    }
}
