//! What a clustered node keeps: its settings, its connections to other
//! nodes, where names are served, and the TCP ports it mirrors.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::mirrors::Mirrors;
use super::peers::Peers;
use super::placement::Placement;
use crate::config::ClusterConfig;

/// A node's cluster state.
pub(crate) struct Cluster {
    pub(crate) cfg: ClusterConfig,
    pub(crate) peers: Peers,
    pub(crate) placement: Placement,
    pub(crate) mirrors: Mirrors,
}

impl Cluster {
    /// The state of a node joining with `cfg`.
    pub(crate) fn new(cfg: ClusterConfig) -> Self {
        Self {
            peers: Peers::new(cfg.secret.clone()),
            placement: Default::default(),
            mirrors: Default::default(),
            cfg,
        }
    }

    /// The listener of `port` when this node mirrors it, handed over to a
    /// TCP tunnel that now holds the port here.
    pub(crate) fn take_port(&self, port: u16) -> Option<Arc<TcpListener>> {
        self.mirrors.take(port)
    }
}
