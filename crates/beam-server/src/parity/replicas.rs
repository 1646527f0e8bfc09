//! The replicas of an environment's production agent, wherever they are
//! connected: this node's sessions and, in a cluster, those other live nodes
//! record in the store. A parity call goes to one replica that answers
//! (`flags`, `sync`) or to every replica (`logs`, `health`, `env check`).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::body::Body;
use crate::registry::AgentSession;
use crate::state::State;

/// Where a replica is connected.
#[derive(Debug, Clone)]
enum Place {
    /// To this node.
    Local(Arc<AgentSession>),
    /// To another node: `(node id, node address)`.
    Remote(String, String),
}

/// One replica of an environment's agent.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    /// Its instance name.
    pub instance: String,
    /// Its session id (a reconnected replica has a new one).
    pub session: String,
    /// When it connected, unix ms.
    pub connected_at: i64,
    place: Place,
}

/// Why a call to one replica got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The replica is gone since it was listed.
    #[error("the agent disconnected")]
    Gone,
    /// The connection to it (or to its node) failed.
    #[error("{0}")]
    Failed(String),
}

/// A request to an agent, kept so it can be sent to more than one replica.
#[derive(Debug, Clone)]
pub(crate) struct AgentRequest {
    /// Method.
    pub method: Method,
    /// Path and query, e.g. `/flags` or `/logs?tail=10`.
    pub path: String,
    /// Body (JSON or empty).
    pub body: Bytes,
}

impl AgentRequest {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Bytes::new(),
        }
    }

    fn build(&self) -> Request<Body> {
        let mut req = Request::new(crate::body::full(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = format!("http://beam-agent{}", self.path)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://beam-agent/"));
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        req
    }
}

/// The replicas of environment `env_id`, newest first; one per instance name
/// (this node's session wins over a stale record of another).
pub(crate) async fn replicas(state: &State, env_id: i64) -> Vec<Replica> {
    let mut out: Vec<Replica> = state
        .registry
        .agents(env_id)
        .into_iter()
        .map(|a| Replica {
            instance: a.instance.clone(),
            session: a.session.clone(),
            connected_at: a.connected_at,
            place: Place::Local(a),
        })
        .collect();
    if state.cluster.is_some() {
        let alive_since = crate::store::now_ms() - state.cfg.node_lease.as_millis() as i64;
        match state
            .store
            .agent_replicas(env_id, &state.node_id, alive_since)
            .await
        {
            Ok(rows) => {
                for r in rows {
                    if out.iter().all(|o| o.instance != r.instance) {
                        out.push(Replica {
                            instance: r.instance,
                            session: r.session,
                            connected_at: r.connected_at,
                            place: Place::Remote(r.node_id, r.addr),
                        });
                    }
                }
            }
            // This node's replicas still answer.
            Err(e) => tracing::warn!(error = %e, "listing agent replicas on other nodes failed"),
        }
    }
    out.sort_by(|a, b| {
        b.connected_at
            .cmp(&a.connected_at)
            .then_with(|| a.instance.cmp(&b.instance))
    });
    out
}

impl Replica {
    /// The node it is connected to (`None`: this one).
    pub fn node(&self) -> Option<&str> {
        match &self.place {
            Place::Local(_) => None,
            Place::Remote(node, _) => Some(node),
        }
    }

    /// Sends `req` to this replica. The token is cancelled when the replica
    /// disconnects (a streamed answer must end then).
    pub async fn call(
        &self,
        state: &State,
        env_id: i64,
        req: &AgentRequest,
    ) -> Result<(Response<Incoming>, CancellationToken), CallError> {
        match &self.place {
            Place::Local(agent) => {
                if agent.kick.is_cancelled() {
                    return Err(CallError::Gone);
                }
                let mut sender = agent.sender.clone();
                let resp = sender
                    .send_request(req.build())
                    .await
                    .map_err(|e| CallError::Failed(e.to_string()))?;
                Ok((resp, agent.kick.clone()))
            }
            Place::Remote(node, addr) => {
                use crate::cluster::agents::{RelayError, relay};
                let place = (node.as_str(), addr.as_str());
                match relay(state, env_id, place, &self.instance, req.build()).await {
                    // The relayed answer ends when that node's agent goes.
                    Ok(resp) => Ok((resp, CancellationToken::new())),
                    Err(RelayError::Offline) => Err(CallError::Gone),
                    Err(e) => Err(CallError::Failed(e.to_string())),
                }
            }
        }
    }
}
