//! Tunnels end to end: the handshake, HTTP, WebSocket and TCP forwarding,
//! reconnects with leases, and public names; gRPC; the ways a client reaches
//! the server (transports, proxies).

mod errors;
mod grpc;
mod handshake;
mod http;
mod names;
mod reconnect;
mod streams;
mod tcp;
mod transport;
mod websocket;
