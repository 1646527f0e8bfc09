//! The live tunnels of this node: subdomain or port → the HTTP/2 sender that reaches
//! the client. Lookups happen on every visitor request, so this is a read-mostly map.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hyper::client::conn::http2::SendRequest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::Body;

/// One connected tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// Session id from the handshake (logs, and to tell a replaced tunnel apart).
    pub session: String,
    /// Subdomain or port.
    pub name: String,
    /// Opens streams to the client.
    pub sender: SendRequest<Body>,
    /// Cancelled to disconnect this tunnel (lease takeover, shutdown, stop).
    pub kick: CancellationToken,
    /// The public listener of a TCP tunnel, handed to the next session on takeover.
    pub listener: Option<Arc<TcpListener>>,
}

/// Live tunnels by name.
#[derive(Debug, Default)]
pub struct Registry {
    http: RwLock<HashMap<String, Arc<Tunnel>>>,
    tcp: RwLock<HashMap<u16, Arc<Tunnel>>>,
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

    /// Registers an HTTP tunnel; a previous holder of the name is kicked.
    pub fn insert_http(&self, tunnel: Arc<Tunnel>) {
        let old = self
            .http
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tunnel.name.clone(), tunnel);
        if let Some(old) = old {
            old.kick.cancel();
        }
    }

    /// Registers a TCP tunnel; a previous holder of the port is kicked.
    pub fn insert_tcp(&self, port: u16, tunnel: Arc<Tunnel>) {
        let old = self
            .tcp
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, tunnel);
        if let Some(old) = old {
            old.kick.cancel();
        }
    }

    /// Removes subdomain `name` if `session` still holds it.
    pub fn remove_http(&self, name: &str, session: &str) {
        let mut map = self.http.write().unwrap_or_else(|e| e.into_inner());
        if map.get(name).is_some_and(|t| t.session == session) {
            map.remove(name);
        }
    }

    /// Removes `port` if `session` still holds it.
    pub fn remove_tcp(&self, port: u16, session: &str) {
        let mut map = self.tcp.write().unwrap_or_else(|e| e.into_inner());
        if map.get(&port).is_some_and(|t| t.session == session) {
            map.remove(&port);
        }
    }
}
