//! The shared state of one running server, built once by `Server::run` and
//! passed (as `Arc<State>`) to every listener, session and API handler.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use governor::DefaultKeyedRateLimiter;
use tokio_util::task::TaskTracker;

use crate::accounts::auth::Authenticator;
use crate::config::ServerConfig;
use crate::registry::Registry;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::{accounts, domains, edge, parity, telemetry};

/// Shared state of one running server.
pub(crate) struct State {
    pub(crate) cfg: ServerConfig,
    pub(crate) store: Store,
    pub(crate) auth: Authenticator,
    pub(crate) registry: Registry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) tasks: TaskTracker,
    /// Cancelled when the server shuts down (sessions started outside a
    /// listener's own loop, e.g. carried in a WebSocket, end with it).
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    /// This node's id in the store: on the names and tunnels it holds.
    pub(crate) node_id: String,
    /// Set when shutdown began: `/ready` fails so load balancers stop
    /// sending visitors while the node drains.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// When the store last took this node's heartbeat, unix ms (`/ready`).
    pub(crate) heartbeat_ok: std::sync::atomic::AtomicI64,
    pub(crate) dns: domains::dns::Verifier,
    pub(crate) auth_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub(crate) recorder: Arc<telemetry::recorder::Recorder>,
    /// The operator's organization (owner of bootstrap tokens; sets plan limits).
    pub(crate) operator_org: i64,
    /// Organizations over their monthly bandwidth, refreshed in the background.
    pub(crate) over_quota: RwLock<HashSet<i64>>,
    /// Requests per second per client token, across its tunnels.
    pub(crate) token_limiter: Option<DefaultKeyedRateLimiter<i64>>,
    /// argon2 checks of visitor credentials, server-wide: a flood of wrong
    /// passwords cannot take every core, and waiters give up after a short
    /// queue (each tunnel also has its own smaller budget).
    pub(crate) visitor_hashes: accounts::password::HashGate,
    /// Each organization's share of visitor credential checks.
    pub(crate) org_hashes: edge::visitor::OrgBudgets,
    /// argon2 for logins, registrations and resets, bounded the same way.
    pub(crate) account_hashes: accounts::password::HashGate,
    /// The HTTPS edge's certificates.
    pub(crate) edge_certs: Arc<edge::tls::EdgeCerts>,
    /// Queues a custom domain for ACME issuance (when ACME is configured).
    pub(crate) acme_tx: Option<tokio::sync::mpsc::Sender<String>>,
    /// Wakes webhook streams when an event is stored.
    pub(crate) webhooks: parity::webhooks::Hub,
    /// Developers with an open log or webhook stream, per environment.
    pub(crate) developers: Arc<parity::developers::Developers>,
    /// Daily caps on env check comparisons per user and variable.
    pub(crate) env_checks: parity::envcap::EnvCheckCap,
    /// Every live connection's access, re-checked so revocation reaches it.
    pub(crate) revocation: Arc<accounts::revocation::Revocation>,
    /// Forwarding to and from the other nodes, when clustered.
    pub(crate) cluster: Option<crate::cluster::node::Cluster>,
    /// Records visitor requests' spans, when traces are configured.
    pub(crate) tracer: Option<Arc<telemetry::otlp::Tracer>>,
    /// The dashboard's one-click sign-in links (`beam server --dev`).
    pub(crate) sign_in: Arc<crate::dashboard::links::SignInLinks>,
    /// The dashboard's open live streams per user.
    pub(crate) live: Arc<crate::dashboard::streams::Streams>,
    /// The audit log's queue.
    pub(crate) audit: crate::audit::Audit,
}

impl State {
    /// Whether organization `org_id` used its monthly bandwidth.
    pub(crate) fn over_quota(&self, org_id: i64) -> bool {
        let set = self.over_quota.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && set.contains(&org_id)
    }
}
