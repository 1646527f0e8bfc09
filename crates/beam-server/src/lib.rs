//! beam's server: the public edge, the tunnel listener, the store and metrics.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`], built once by the caller.
//! - `tunnel`: accepts tunnel clients, runs the handshake, claims names, and keeps the
//!   reverse HTTP/2 connection registered in the `registry`.
//! - `edge`: the public HTTP listener; routes by `Host` to a tunnel or to `api`.
//! - `tcp`: public ports of TCP tunnels, one `CONNECT` stream per visitor.
//! - [`store`]: SQLite or PostgreSQL through sqlx; [`auth`]: token checks; [`names`]:
//!   subdomain validation and generation; [`metrics`]: Prometheus; [`tls`]: certificates.
//!
//! The server never binds sockets itself: [`Server::run`] takes bound listeners and
//! a shutdown future, so tests run many servers in parallel on port 0.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accept;
mod api;
pub mod auth;
pub mod body;
pub mod config;
mod edge;
pub mod error;
pub mod metrics;
pub mod names;
mod registry;
pub mod store;
mod tcp;
pub mod tls;
mod tunnel;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::ServerConfig;
pub use metrics::Metrics;
pub use store::{Store, StoreError};

use auth::Authenticator;
use registry::Registry;

/// The sockets a server serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Public HTTP (visitors and the API host).
    pub public: TcpListener,
    /// Tunnel clients.
    pub tunnel: TcpListener,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be prepared.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shared state of one running server.
pub(crate) struct State {
    pub(crate) cfg: ServerConfig,
    pub(crate) store: Store,
    pub(crate) auth: Authenticator,
    pub(crate) registry: Registry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) tasks: TaskTracker,
}

/// A configured server, ready to [`run`](Server::run).
pub struct Server {
    cfg: ServerConfig,
    store: Store,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Prepares a server: migrates the store and starts the grace period of names
    /// held by connections of an earlier process (they are gone now, and their
    /// clients will come back with their leases). `tls` is the tunnel listener's
    /// TLS config; without it only plaintext loopback clients can connect.
    pub async fn new(
        cfg: ServerConfig,
        store: Store,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ServerError> {
        store.migrate().await?;
        let until = store::now_ms() + cfg.grace.as_millis() as i64;
        let held = store.release_all(until).await?;
        if held > 0 {
            tracing::info!(held, "names from a previous run are held for their clients");
        }
        Ok(Self {
            cfg,
            store,
            tls,
            metrics: Arc::new(Metrics::new()),
        })
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
        let state = Arc::new(State {
            auth: Authenticator::new(self.store.clone()),
            registry: Registry::default(),
            metrics: self.metrics.clone(),
            tls: self.tls.map(tokio_rustls::TlsAcceptor::from),
            store: self.store.clone(),
            cfg: self.cfg,
            tasks: tasks.clone(),
        });

        let purge = {
            let store = self.store.clone();
            let cancel = cancel.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if let Err(e) = store.purge_expired(store::now_ms()).await {
                                tracing::warn!(error = %e, "purging expired names failed");
                            }
                        }
                        () = cancel.cancelled() => break,
                    }
                }
            }
        };
        tasks.spawn(purge);
        tasks.spawn(edge::serve(listeners.public, state.clone(), cancel.clone()));
        tasks.spawn(tunnel::serve(
            listeners.tunnel,
            state.clone(),
            cancel.clone(),
        ));

        shutdown.await;
        tracing::info!("shutting down");
        cancel.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within 5 s");
        }
        let until = store::now_ms() + state.cfg.grace.as_millis() as i64;
        self.store.release_all(until).await?;
        Ok(())
    }
}
