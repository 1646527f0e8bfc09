//! beam's server: the public edge, the tunnel listener, the store and metrics.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`], built once by the caller.
//! - `membership`: this node among the nodes sharing the store (heartbeat
//!   lease, orphans, cross-node changes, draining); [`cluster`]: forwarding
//!   visitors and parity calls between nodes.
//! - `tunnel`: accepts tunnel clients, runs the handshake, claims names
//!   (`tunnel::claim`), and keeps the reverse HTTP/2 connection registered in
//!   the `registry` (which also stops and kicks tunnels).
//! - [`edge`]: the public HTTP(S) listeners; route by `Host` to a tunnel or to `api`.
//!   Inside it: [`edge::tls`], the HTTPS edge's SNI certificate resolver
//!   (wildcard files, hot-reloaded, and custom-domain certificates from the
//!   store); [`edge::acme`], which issues and renews those with ACME HTTP-01;
//!   `edge::tcp`, public ports of TCP tunnels, one `CONNECT` stream per
//!   visitor; `edge::visitor`, per-tunnel protection (auth, CIDR, rate limits,
//!   CORS, limits); `edge::io`, connection watching; [`edge::error`], what a
//!   visitor sees when a request cannot be served.
//! - [`api`]: the REST API (axum, OpenAPI at `/api/openapi.json`), served on the API
//!   host and, for the CLI, on the tunnel port over TLS.
//! - [`store`]: SQLite or PostgreSQL through sqlx.
//! - [`accounts`]: tokens ([`accounts::auth`]), permissions ([`accounts::scope`]),
//!   argon2 ([`accounts::password`]), password-reset, verification and
//!   invitation mail through sendmail ([`accounts::mail`]), and every live
//!   connection's access, re-checked so revoking reaches it
//!   ([`accounts::revocation`]).
//! - [`audit`]: the audit log's queue and batched writer (who looked at what).
//! - [`names`]: subdomain validation and generation; [`domains`] (with
//!   [`domains::dns`]): custom domains and their TXT proof; [`tls`]: the tunnel
//!   listener's certificate.
//! - [`telemetry`]: request analytics ([`telemetry::recorder`]) and Prometheus
//!   metrics ([`telemetry::metrics`]).
//! - [`parity`]: webhook sources and the hub behind `/hooks/…` and developer
//!   streams ([`parity::webhooks`]), who has a live parity stream open, and
//!   the daily caps on env checks.
//!
//! The server never binds sockets itself: [`Server::run`] takes bound listeners and
//! a shutdown future, so tests run many servers in parallel on port 0.

mod accept;
pub mod accounts;
pub mod api;
pub mod audit;
pub mod body;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod domains;
pub mod edge;
mod membership;
pub mod parity;
mod registry;
mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tunnel;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{Quota, RateLimiter};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::ServerConfig;
pub use store::{Store, StoreError};
pub use telemetry::metrics::Metrics;

use accounts::auth::Authenticator;
use registry::Registry;
use state::State;

/// The sockets a server serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Public HTTP (visitors and the API host).
    pub public: TcpListener,
    /// Tunnel clients.
    pub tunnel: TcpListener,
    /// Public HTTPS (the edge's TLS, SNI-resolved certificates), if served.
    pub https: Option<TcpListener>,
    /// `GET /metrics` without a token, if the operator chose an address for it
    /// (on the API host `/metrics` needs an operator token).
    pub metrics: Option<TcpListener>,
    /// Other nodes of the cluster (`--node-addr`); used with
    /// [`ServerConfig::cluster`].
    pub node: Option<TcpListener>,
    /// Connections handed over in memory, each served like a visitor's plain
    /// HTTP/1.1 connection to the public port from the address given with
    /// it: the fuzzer drives the edge's request handling this way, without
    /// sockets.
    pub memory: Option<MemoryListener>,
}

/// The receiving end of in-memory visitor connections (see
/// [`Listeners::memory`]).
pub type MemoryListener =
    tokio::sync::mpsc::Receiver<(tokio::io::DuplexStream, std::net::SocketAddr)>;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be prepared.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DNS resolver for domain checks could not be set up.
    #[error("{0}")]
    Dns(String),
    /// The edge certificate could not be loaded.
    #[error("edge TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A configured server, ready to [`run`](Server::run).
pub struct Server {
    cfg: ServerConfig,
    store: Store,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<Metrics>,
    dns: domains::dns::Verifier,
    operator: store::Operator,
    clock: Arc<accounts::clock::Clock>,
    /// This process's node id in the store (random per start).
    node_id: String,
    edge_certs: Arc<edge::tls::EdgeCerts>,
    acme: Option<(
        tokio::sync::mpsc::Sender<String>,
        tokio::sync::mpsc::Receiver<String>,
    )>,
    /// The dashboard's one-click sign-in links (shared with the running state).
    sign_in: Arc<dashboard::links::SignInLinks>,
}

impl Server {
    /// Prepares a server: migrates the store, joins it as a new node, and
    /// starts the grace period of names held by nodes that are gone (an earlier
    /// process of this one, or a node of a shared database whose heartbeat
    /// lease ran out); their clients come back with their leases. Names and
    /// tunnels of live nodes are left alone. `tls` is the tunnel listener's
    /// TLS config; without it only plaintext loopback clients can connect.
    pub async fn new(
        cfg: ServerConfig,
        store: Store,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ServerError> {
        store.migrate().await?;
        let now = store::now_ms();
        let node_id = beam_proto::hex::encode(&rand::random::<[u8; 8]>());
        store
            .node_join(&node_id, membership::node_addr(&cfg), now)
            .await?;
        let released = membership::release_orphans(&store, &cfg, now).await?;
        if released.names > 0 {
            tracing::info!(
                held = released.names,
                "names from a previous run are held for their clients"
            );
        }
        let operator = store.ensure_operator(now).await?;
        let dns = domains::dns::Verifier::new(cfg.dns_resolver).map_err(ServerError::Dns)?;
        // Bounded: a flood of handshakes for unknown names drops misses instead
        // of queueing work.
        let acme = cfg.acme.as_ref().map(|_| tokio::sync::mpsc::channel(256));
        let edge_certs = Arc::new(edge::tls::EdgeCerts::new(
            &cfg.domain,
            cfg.edge_cert.as_ref(),
            acme.as_ref().map(|(tx, _)| tx.clone()),
        )?);
        Ok(Self {
            edge_certs,
            acme,
            cfg,
            store,
            tls,
            metrics: Arc::new(Metrics::new()),
            dns,
            operator,
            clock: Arc::default(),
            node_id,
            sign_in: Arc::default(),
        })
    }

    /// A one-click dashboard sign-in link's path (`/signin/…`) for the
    /// operator account: it works once, for 30 minutes, on this process
    /// (`beam server --dev` prints one). The secret is in the path, so the
    /// link is for the person at this terminal only.
    pub fn dashboard_sign_in_path(&self) -> String {
        let secret = self.sign_in.mint(self.operator, store::now_ms());
        format!("/signin/{}", secret.expose())
    }

    /// `(user id, organization id)` of the built-in operator account, which owns
    /// bootstrap tokens.
    pub fn operator(&self) -> store::Operator {
        self.operator
    }

    /// The server's clock: tests advance it to expire tokens without waiting.
    pub fn clock(&self) -> Arc<accounts::clock::Clock> {
        self.clock.clone()
    }

    /// The edge's certificates (custom-domain certificates can be added at runtime).
    pub fn edge_certs(&self) -> Arc<edge::tls::EdgeCerts> {
        self.edge_certs.clone()
    }

    /// The server's metrics (tests read them; `/metrics` renders them).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, asks open
    /// connections to finish (bounded by 5 s) and starts the grace period of every
    /// held name so clients get them back after a restart.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let per_minute = std::num::NonZeroU32::new(self.cfg.auth_rate_per_minute.max(1))
            .unwrap_or(std::num::NonZeroU32::MIN);
        // Clustering needs the tunnel certificate for the node listener's TLS.
        let clustered = match (&self.cfg.cluster, &self.tls) {
            (Some(c), Some(_)) => Some(cluster::node::Cluster::new(c.clone())),
            _ => None,
        };
        let tracer = self.cfg.otlp.clone().map(|cfg| {
            let counts = telemetry::otlp::Counts {
                exported: self.metrics.trace_spans("exported"),
                dropped: self.metrics.trace_spans("dropped"),
                failed: self.metrics.trace_spans("failed"),
            };
            telemetry::otlp::Tracer::start(
                cfg,
                self.node_id.clone(),
                counts,
                cancel.clone(),
                &tasks,
            )
        });
        // The audit writer outlives the connections (it is stopped after
        // they finish), so what they record while draining is written.
        let (audit, audit_rx) = audit::Audit::new();
        let audit_stop = CancellationToken::new();
        let audit_writer = tokio::spawn(audit::writer(
            self.store.clone(),
            audit_rx,
            audit_stop.clone(),
        ));
        let state = Arc::new(State {
            audit,
            tracer,
            dns: self.dns.clone(),
            auth_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            recorder: Arc::new(telemetry::recorder::Recorder::new(
                self.cfg.analytics,
                self.cfg.analytics_samples_per_sec,
            )),
            operator_org: self.operator.org_id,
            over_quota: RwLock::new(HashSet::new()),
            edge_certs: self.edge_certs.clone(),
            acme_tx: self.acme.as_ref().map(|(tx, _)| tx.clone()),
            webhooks: parity::webhooks::Hub::default(),
            developers: Arc::default(),
            env_checks: parity::envcap::EnvCheckCap::new(self.cfg.env_check_limit),
            revocation: Arc::default(),
            token_limiter: edge::visitor::token_limiter(&self.cfg),
            visitor_hashes: accounts::password::HashGate::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                self.cfg.hash_queue,
            ),
            org_hashes: edge::visitor::OrgBudgets::default(),
            account_hashes: accounts::password::HashGate::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                self.cfg.hash_queue,
            ),
            auth: Authenticator::new(
                self.store.clone(),
                self.cfg.auth_failures_per_minute,
                self.clock.clone(),
            ),
            registry: Registry::default(),
            metrics: self.metrics.clone(),
            tls: self.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            store: self.store.clone(),
            cfg: self.cfg,
            tasks: tasks.clone(),
            shutdown: cancel.clone(),
            node_id: self.node_id.clone(),
            heartbeat_ok: std::sync::atomic::AtomicI64::new(store::now_ms()),
            draining: std::sync::atomic::AtomicBool::new(false),
            cluster: clustered,
            sign_in: self.sign_in.clone(),
            live: Default::default(),
        });

        let purge = {
            let state = state.clone();
            let cancel = cancel.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => housekeeping(&state).await,
                        () = cancel.cancelled() => break,
                    }
                }
            }
        };
        tasks.spawn(state.recorder.clone().run(
            self.store.clone(),
            state.cfg.analytics_flush,
            cancel.clone(),
        ));
        tasks.spawn(domains::recheck_loop(state.clone(), cancel.clone()));
        tasks.spawn(quota_loop(state.clone(), cancel.clone()));
        tasks.spawn(state.revocation.clone().run(
            self.store.clone(),
            self.clock.clone(),
            state.cfg.revalidate_every,
            cancel.clone(),
        ));
        tasks.spawn(purge);
        tasks.spawn(membership::heartbeat_loop(state.clone(), cancel.clone()));
        tasks.spawn(membership::notify_loop(state.clone(), cancel.clone()));
        // Built once: every connection (edge and tunnel port) shares it.
        let api = api::router(state.clone());
        tasks.spawn(edge::serve(
            listeners.public,
            None,
            state.clone(),
            api.clone(),
            cancel.clone(),
        ));
        if let Some(mut memory) = listeners.memory {
            let (state, api, cancel, inner) =
                (state.clone(), api.clone(), cancel.clone(), tasks.clone());
            tasks.spawn(async move {
                loop {
                    let (io, peer) = tokio::select! {
                        next = memory.recv() => match next {
                            Some(conn) => conn,
                            None => return,
                        },
                        () = cancel.cancelled() => return,
                    };
                    inner.spawn(edge::serve_forwarded(
                        state.clone(),
                        api.clone(),
                        io,
                        peer,
                        false,
                        0,
                        cancel.clone(),
                    ));
                }
            });
        }
        if let Some(https) = listeners.https {
            let tls = edge::EdgeTls::new(self.edge_certs.server_config()?, self.tls.as_ref());
            tasks.spawn(edge::serve(
                https,
                Some(tls),
                state.clone(),
                api.clone(),
                cancel.clone(),
            ));
        }
        if let (Some(acme), Some((_, rx))) = (state.cfg.acme.clone(), self.acme) {
            tasks.spawn(edge::acme::run(
                acme,
                self.store.clone(),
                self.edge_certs.clone(),
                rx,
                cancel.clone(),
            ));
        }
        tasks.spawn(edge::tls::reload_loop(
            self.edge_certs.clone(),
            state.cfg.edge_cert.clone(),
            self.store.clone(),
            state.cfg.cert_reload,
            cancel.clone(),
        ));
        if let (Some(listener), Some(tls), Some(_)) = (listeners.node, &self.tls, &state.cluster) {
            let mut node_tls = (**tls).clone();
            node_tls.alpn_protocols = vec![cluster::auth::ALPN.to_vec()];
            tasks.spawn(cluster::listen::serve(
                listener,
                tokio_rustls::TlsAcceptor::from(Arc::new(node_tls)),
                state.clone(),
                api.clone(),
                cancel.clone(),
            ));
        }
        // Cancelled first at shutdown, so a draining node takes no new clients.
        let stop_tunnels = cancel.child_token();
        tasks.spawn(tunnel::serve(
            listeners.tunnel,
            state.clone(),
            api,
            stop_tunnels.clone(),
        ));
        if let Some(listener) = listeners.metrics {
            let router = api::metrics_router(state.clone());
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "metrics listener failed");
                }
            });
        }

        shutdown.await;
        tracing::info!("shutting down");
        state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        stop_tunnels.cancel();
        membership::drain(&state).await;
        cancel.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within 5 s");
        }
        audit_stop.cancel();
        let _ = audit_writer.await;
        // Leaving first makes everything this node still holds an orphan.
        self.store.node_leave(&self.node_id).await?;
        membership::release_orphans(&self.store, &state.cfg, store::now_ms()).await?;
        Ok(())
    }
}

/// Once a minute: expired names, sessions, old analytics and past tunnels go;
/// the auth rate limiter forgets idle addresses.
async fn housekeeping(state: &State) {
    let now = store::now_ms();
    let keep = now - state.cfg.retention.as_millis() as i64;
    let results = [
        ("names", state.store.purge_expired(now).await),
        ("tokens", state.store.purge_tokens(now).await),
        (
            "requests",
            state
                .store
                .purge_requests(keep, keep, keep.max(now - store::MINUTES_KEPT_MS))
                .await,
        ),
        ("tunnels", state.store.purge_tunnels(keep).await),
        (
            "audit log",
            state
                .store
                .purge_audit(now - state.cfg.audit_retention.as_millis() as i64)
                .await,
        ),
        (
            "analytics batches",
            state.store.purge_batches(now - 3_600_000).await,
        ),
    ];
    for (what, r) in results {
        if let Err(e) = r {
            tracing::warn!(error = %e, what, "housekeeping failed");
        }
    }
    state.auth_limiter.retain_recent();
    if let Some(l) = &state.token_limiter {
        l.retain_recent();
    }
    for t in state.registry.all() {
        t.policy.retain_recent();
    }
}

/// Refreshes the set of organizations over their monthly bandwidth every 10 s
/// (and right after analytics are flushed at that pace), so the edge checks a
/// set instead of the database per request.
async fn quota_loop(state: Arc<State>, shutdown: CancellationToken) {
    let every = state.cfg.analytics_flush.max(Duration::from_millis(100)) * 2;
    let mut tick = tokio::time::interval(every.min(Duration::from_secs(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let since = store::month_start(store::now_ms());
        match state.store.bandwidth_usage(since).await {
            Ok(rows) => {
                let over: HashSet<i64> = rows
                    .into_iter()
                    .filter(|(_, used, limit)| used >= limit)
                    .map(|(org, _, _)| org)
                    .collect();
                *state.over_quota.write().unwrap_or_else(|e| e.into_inner()) = over;
            }
            Err(e) => tracing::warn!(error = %e, "bandwidth usage check failed"),
        }
    }
}
