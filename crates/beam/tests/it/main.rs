//! beam's one integration-test binary: real servers, clients and local origins on
//! `127.0.0.1:0`, in-process, no sleeps as synchronisation, no fixed ports.
//! The folders follow the source: `tunnel/` (client ↔ server), `edge/`
//! (visitors, TLS, domains), `parity/` (agent, logs, webhooks, sync, flags),
//! `api/`, the store, and the real `beam` binary (`cli`).

mod support;

mod api;
mod cli;
mod cluster;
mod dashboard;
mod edge;
mod inspect;
mod parity;
mod store;
mod tunnel;
