//! A visitor connection's kept link to another node: keep-alive requests of
//! one visitor connection for one tunnel reuse the same node-to-node stream.

use std::sync::Mutex;

use hyper::client::conn::http1;

use crate::body::Body;

/// A visitor connection's link to another node, when it has one.
#[derive(Default)]
pub(crate) struct NodeLink(Mutex<Option<Held>>);

struct Held {
    node: String,
    host: String,
    sender: http1::SendRequest<Body>,
}

impl NodeLink {
    /// The kept link when it goes to `node` for `host` and is still open.
    pub(crate) fn take(&self, node: &str, host: &str) -> Option<http1::SendRequest<Body>> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some(h) if h.node == node && h.host == host && !h.sender.is_closed() => Some(h.sender),
            _ => None,
        }
    }

    /// Keeps `sender` for the next request of the same visitor connection.
    pub(crate) fn put(&self, node: &str, host: &str, sender: http1::SendRequest<Body>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held {
            node: node.to_string(),
            host: host.to_string(),
            sender,
        });
    }
}
