//! The TCP tunnel ports this node mirrors for other nodes (see `tcp`): each
//! with its listener, the node it forwards to, and the switch that ends it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A port this node mirrors, and the node it forwards to.
pub(crate) struct Mirror {
    pub(crate) listener: Arc<TcpListener>,
    /// `(node id, node address)` of the holder.
    pub(crate) target: Arc<Mutex<(String, String)>>,
    /// Ends the mirror's accept loop.
    pub(crate) stop: CancellationToken,
}

/// The ports this node mirrors.
#[derive(Default)]
pub(crate) struct Mirrors(Mutex<HashMap<u16, Mirror>>);

impl Mirrors {
    /// Hands `port`'s listener to a tunnel that now holds the port here.
    pub(crate) fn take(&self, port: u16) -> Option<Arc<TcpListener>> {
        let m = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port)?;
        m.stop.cancel();
        Some(m.listener)
    }

    /// Stops mirroring every port not in `keep`.
    pub(crate) fn retain(&self, keep: impl Fn(u16) -> bool) {
        let stale: Vec<Mirror> = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<u16> = map.keys().filter(|p| !keep(**p)).copied().collect();
            gone.iter().filter_map(|p| map.remove(p)).collect()
        };
        for m in stale {
            m.stop.cancel();
        }
    }

    /// Points an existing mirror of `port` at `target`; `false` when `port`
    /// is not mirrored.
    pub(crate) fn retarget(&self, port: u16, target: &(String, String)) -> bool {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&port) {
            Some(m) => {
                *m.target.lock().unwrap_or_else(|e| e.into_inner()) = target.clone();
                true
            }
            None => false,
        }
    }

    /// Records a new mirror of `port`.
    pub(crate) fn insert(&self, port: u16, mirror: Mirror) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, mirror);
    }
}
