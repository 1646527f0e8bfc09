//! The live tunnels of this node: subdomain or port → the HTTP/2 sender that reaches
//! the client. Lookups happen on every visitor request, so this is a read-mostly map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use hyper::client::conn::http2::SendRequest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::Body;
use crate::store::PublicName;

/// One connected tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// Session id from the handshake (logs, and to tell a replaced tunnel apart).
    pub session: String,
    /// Subdomain or port.
    pub name: PublicName,
    /// Row id in the `tunnels` table.
    pub id: i64,
    /// Owning organization.
    pub org_id: i64,
    /// User whose token opened it.
    pub user_id: i64,
    /// Token the client authenticated with (revoking it disconnects the tunnel).
    pub token_id: i64,
    /// Visitors get 503 while set.
    pub paused: AtomicBool,
    /// Set once this (draining) node asked the client to move to another
    /// node: new visitor requests wait for the tunnel there instead of
    /// opening streams on a connection the client is closing.
    pub moving: AtomicBool,
    /// Custom domains routed to this tunnel.
    pub domains: Vec<String>,
    /// Opens streams to the client.
    pub sender: SendRequest<Body>,
    /// Cancelled to disconnect this tunnel (lease takeover, shutdown, stop).
    pub kick: CancellationToken,
    /// The public listener of a TCP tunnel, handed to the next session on takeover.
    pub listener: Option<Arc<TcpListener>>,
    /// Visitor protection and limits enforced at the edge.
    pub(crate) policy: Arc<crate::edge::visitor::Policy>,
    /// The client takes each visitor connection as one HTTP/1.1 byte stream.
    pub http1_streams: bool,
}

impl Tunnel {
    /// Whether visitors are refused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Whether the client was asked to move to another node.
    pub fn is_moving(&self) -> bool {
        self.moving.load(Ordering::Relaxed)
    }

    /// Pauses or resumes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
}

/// One connected production agent (`beam agent`): reached by parity
/// requests, never by visitors, so it holds no name, policy or listener.
#[derive(Debug)]
pub struct AgentSession {
    /// Session id from the handshake.
    pub session: String,
    /// The replica's instance name (unique per environment).
    pub instance: String,
    /// When it connected, unix ms.
    pub connected_at: i64,
    /// Opens streams to the agent.
    pub sender: SendRequest<Body>,
    /// Cancelled when the agent's access is revoked: parity streams through
    /// it end too.
    pub kick: CancellationToken,
}

/// Live tunnels by name.
#[derive(Debug, Default)]
pub struct Registry {
    http: RwLock<HashMap<String, Arc<Tunnel>>>,
    tcp: RwLock<HashMap<u16, Arc<Tunnel>>>,
    domains: RwLock<HashMap<String, Arc<Tunnel>>>,
    /// Connected production agents by environment id, oldest first.
    agents: RwLock<HashMap<i64, Vec<Arc<AgentSession>>>>,
}

impl Registry {
    /// The HTTP tunnel for subdomain `name`.
    pub fn http(&self, name: &str) -> Option<Arc<Tunnel>> {
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The TCP tunnel on `port`.
    pub fn tcp(&self, port: u16) -> Option<Arc<Tunnel>> {
        self.tcp
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .cloned()
    }

    /// The tunnel holding `name`.
    pub fn get(&self, name: &PublicName) -> Option<Arc<Tunnel>> {
        match name {
            PublicName::Subdomain(s) => self.http(s),
            PublicName::Port(p) => self.tcp(*p),
        }
    }

    /// Registers a tunnel under its name; a previous holder of the name is kicked.
    pub fn insert(&self, tunnel: Arc<Tunnel>) {
        let old = match &tunnel.name {
            PublicName::Subdomain(s) => self
                .http
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(s.clone(), tunnel.clone()),
            PublicName::Port(p) => self
                .tcp
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(*p, tunnel.clone()),
        };
        if let Some(old) = old {
            old.kick.cancel();
        }
    }

    /// Removes `name` if `session` still holds it.
    pub fn remove(&self, name: &PublicName, session: &str) {
        match name {
            PublicName::Subdomain(s) => {
                let mut map = self.http.write().unwrap_or_else(|e| e.into_inner());
                if map.get(s).is_some_and(|t| t.session == session) {
                    map.remove(s);
                }
            }
            PublicName::Port(p) => {
                let mut map = self.tcp.write().unwrap_or_else(|e| e.into_inner());
                if map.get(p).is_some_and(|t| t.session == session) {
                    map.remove(p);
                }
            }
        }
    }

    /// The tunnel a verified custom domain routes to.
    pub fn domain(&self, host: &str) -> Option<Arc<Tunnel>> {
        self.domains
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .cloned()
    }

    /// Every routed custom domain with its tunnel (a snapshot).
    pub fn domain_routes(&self) -> Vec<(String, Arc<Tunnel>)> {
        self.domains
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(h, t)| (h.clone(), t.clone()))
            .collect()
    }

    /// Stops routing `host` if it still routes to `session`'s tunnel.
    pub fn remove_domain_of(&self, host: &str, session: &str) {
        let mut map = self.domains.write().unwrap_or_else(|e| e.into_inner());
        if map.get(host).is_some_and(|t| t.session == session) {
            map.remove(host);
        }
    }

    /// Routes the tunnel's custom domains to it.
    pub fn insert_domains(&self, tunnel: &Arc<Tunnel>) {
        for d in &tunnel.domains {
            self.insert_domain(d, tunnel.clone());
        }
    }

    /// Routes one custom domain to `tunnel`.
    pub fn insert_domain(&self, host: &str, tunnel: Arc<Tunnel>) {
        self.domains
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), tunnel);
    }

    /// Stops routing `host` (domain removed or suspended).
    pub fn remove_domain(&self, host: &str) {
        self.domains
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
    }

    /// Drops the domains of a session that ended, unless a newer session took them.
    pub fn remove_domains_of(&self, tunnel: &Tunnel) {
        let mut map = self.domains.write().unwrap_or_else(|e| e.into_inner());
        for d in &tunnel.domains {
            if map.get(d).is_some_and(|t| t.session == tunnel.session) {
                map.remove(d);
            }
        }
    }

    /// Registers a production agent of environment `env_id`; returns the
    /// sessions it replaces (the same instance name, connected before), which
    /// the caller stops.
    pub fn insert_agent(&self, env_id: i64, agent: Arc<AgentSession>) -> Vec<Arc<AgentSession>> {
        let mut map = self.agents.write().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(env_id).or_default();
        let (replaced, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|a| a.instance == agent.instance);
        *list = kept;
        list.push(agent);
        replaced
    }

    /// Removes the agent session `session` of `env_id`.
    pub fn remove_agent(&self, env_id: i64, session: &str) {
        let mut map = self.agents.write().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(&env_id) {
            list.retain(|a| a.session != session);
            if list.is_empty() {
                map.remove(&env_id);
            }
        }
    }

    /// Every connected agent session (to check against the store's record).
    pub fn all_agents(&self) -> Vec<(i64, Arc<AgentSession>)> {
        self.agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(env, list)| list.iter().map(|a| (*env, a.clone())))
            .collect()
    }

    /// The connected agents of `env_id`, oldest first.
    pub fn agents(&self, env_id: i64) -> Vec<Arc<AgentSession>> {
        self.agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&env_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every live tunnel (HTTP and TCP).
    pub fn all(&self) -> Vec<Arc<Tunnel>> {
        let mut out: Vec<_> = self
            .http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        out.extend(
            self.tcp
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned(),
        );
        out
    }

    /// The live session of tunnel row `id`.
    pub fn by_id(&self, id: i64) -> Option<Arc<Tunnel>> {
        self.all().into_iter().find(|t| t.id == id)
    }

    /// Stops routing to `tunnel` at once (its connection task cleans up the rest).
    pub fn remove_session(&self, tunnel: &Tunnel) {
        self.remove(&tunnel.name, &tunnel.session);
        self.remove_domains_of(tunnel);
    }

    /// Tells the client its tunnel was stopped (so it exits instead of
    /// reconnecting) and disconnects it.
    pub async fn stop(&self, tunnel: &Tunnel, reason: &str) {
        // Visitors stop reaching it now, not when the connection task notices.
        self.remove_session(tunnel);
        let mut sender = tunnel.sender.clone();
        let req = beam_proto::Control::Stop(reason.to_string()).request(crate::body::empty());
        // Bounded: a client that does not answer is disconnected anyway.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), sender.send_request(req)).await;
        tunnel.kick.cancel();
    }

    /// Disconnects every tunnel `user_id` opened in `org_id` (they left it).
    pub fn kick_member(&self, org_id: i64, user_id: i64) {
        for t in self
            .all()
            .into_iter()
            .filter(|t| t.org_id == org_id && t.user_id == user_id)
        {
            self.remove_session(&t);
            t.kick.cancel();
        }
    }

    /// Disconnects every tunnel opened with `token_id` (the token was revoked).
    pub fn kick_token(&self, token_id: i64) {
        for t in self.all().into_iter().filter(|t| t.token_id == token_id) {
            self.remove_session(&t);
            t.kick.cancel();
        }
    }
}
