//! Tunnels end to end: the handshake, HTTP, WebSocket and TCP forwarding,
//! reconnects with leases, and public names.

mod errors;
mod handshake;
mod http;
mod names;
mod reconnect;
mod streams;
mod tcp;
mod websocket;
