//! beam's tunnel client: dials the server, authenticates, then serves the reverse
//! HTTP/2 connection by proxying each stream to the local service.
//!
//! # Layout
//! - [`config`]: [`ClientConfig`], what to expose and where to connect.
//! - [`connect`]: TCP + TLS (pinned fingerprint or web PKI) + the beam handshake.
//! - [`proxy`]: the HTTP/2 service: HTTP requests, WebSocket upgrades and raw TCP
//!   streams to the local target (with PROXY v2 headers on request).
//! - [`local`]: dials the local target, with TLS for `--https` services.
//! - [`compress`]: opt-in gzip of responses.
//! - [`logs`]: the production agent's log capture, parsing, masking and buffer;
//!   [`agent`]: the services it answers on its tunnel connection (`/logs`);
//!   [`ingest`]: its local port for apps that ship logs or forward webhooks;
//!   [`flags`], [`envcheck`], [`health`], [`sync`]: flags, env verdicts, probes
//!   and sanitized rows it serves; [`proddb`]: its bounded, read-only pool on
//!   the production database.
//! - [`api`]: a REST API client for the CLI, over the tunnel port's TLS.
//! - [`webhook`]: delivers stored webhook events to a local app, re-signed.
//! - [`client`]: the reconnect loop with full-jitter backoff and lease reuse, and
//!   the events and counters a UI shows.
//!
//! This crate does not depend on the server's store, API or ACME code, so the
//! client builds and tests without them.

pub mod agent;
pub mod api;
pub mod client;
pub mod compress;
pub mod config;
pub mod connect;
pub mod envcheck;
pub mod flags;
pub mod health;
pub mod ingest;
pub mod local;
pub mod logs;
pub mod proddb;
pub mod proxy;
pub mod sync;
mod verify;
pub mod webhook;

pub use api::{ApiClient, ApiError};
pub use client::{ClientError, Event, Stats, run};
pub use config::{Backoff, ClientConfig, HostHeader, LocalTarget, TlsMode};
