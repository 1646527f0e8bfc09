//! beam's one integration-test binary: real servers, clients and local origins on
//! `127.0.0.1:0`, in-process, no sleeps as synchronisation, no fixed ports.

mod support;

mod acme;
mod api;
mod cli;
mod dns_server;
mod domains;
mod edge_tls;
mod handshake;
mod names;
mod parity;
mod parity_agent;
mod parity_inspect;
mod parity_logs;
mod parity_sync;
mod parity_sync_guards;
mod parity_webhooks;
mod protect;
mod reconnect;
mod revocation;
mod store;
mod tunnel_http;
mod tunnel_tcp;
mod websocket;
