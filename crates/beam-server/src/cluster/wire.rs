//! The names node-to-node streams use: their extended `CONNECT` protocols
//! and the headers that carry what the first node knew about the visitor.

/// Extended `CONNECT` protocol of a forwarded visitor connection (HTTP/1.1 inside).
pub(crate) const VISITOR: &str = "beam-visitor";
/// Extended `CONNECT` protocol of a forwarded TCP tunnel visitor.
pub(crate) const TCP: &str = "beam-tcp";
/// The visitor's address, as the first node saw it.
pub(crate) const NODE_PEER: &str = "beam-node-peer";
/// `1` when the visitor reached the first node over TLS.
pub(crate) const NODE_SECURE: &str = "beam-node-secure";
/// How many node-to-node hops the visitor connection has taken.
pub(crate) const NODE_HOPS: &str = "beam-node-hops";
/// On a relayed agent request: the environment whose agent answers it.
pub(crate) const NODE_AGENT: &str = "beam-node-agent";
/// On a relayed agent request: the replica (instance name) that answers it.
pub(crate) const NODE_INSTANCE: &str = "beam-node-instance";
/// The TCP tunnel port a forwarded TCP visitor connected to.
pub(crate) const NODE_PORT: &str = "beam-node-port";
