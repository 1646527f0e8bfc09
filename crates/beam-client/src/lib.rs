//! beam's laptop side: dials the server, authenticates, then serves the reverse
//! HTTP/2 connection by handing each stream to a [`StreamHandler`].
//!
//! # Layout
//! - [`config`]: [`ClientConfig`] (where and how to connect) and
//!   [`ProxyConfig`] (what the local proxy exposes), built once by the caller.
//! - [`connect`]: the beam handshake along the routes [`carrier`] allows
//!   (tunnel port, HTTPS port, WebSocket); [`dial`]: TCP + TLS (pinned
//!   fingerprint or web PKI) to one address; [`egress`]: `HTTPS_PROXY` /
//!   `NO_PROXY`; [`error`]: why connecting failed.
//! - [`client`]: the reconnect loop with full-jitter backoff and lease reuse,
//!   the server's control messages (ready, stop), and the events a UI shows.
//! - [`handler`]: the [`StreamHandler`] trait a connection serves with.
//! - [`proxy`]: the handler for `beam http` / `beam tcp`: HTTP requests,
//!   WebSocket upgrades and raw TCP streams to the local target (with PROXY v2
//!   headers on request), and the live [`Stats`] for a status line.
//! - [`local`]: dials the local target, with TLS for `--https` services;
//!   [`origin`]: keep-alive HTTP/1.1 connections to it, one request at a time;
//!   [`origin_h2`]: one multiplexed HTTP/2 connection (`--upstream-http2`).
//! - [`compress`]: opt-in gzip of responses.
//! - [`inspect`]: the request inspector (capture, replay, page and API).
//! - [`api`]: a REST API client for the CLI, over the tunnel port's TLS.
//! - [`webhook`]: delivers stored webhook events to a local app, re-signed.
//!
//! The production agent (`beam-agent`) is one more [`StreamHandler`] built on
//! this crate; nothing here knows it exists. Nor does this crate depend on the
//! server's store, API or ACME code, so the client builds and tests without them.

pub mod api;
pub mod carrier;
pub mod client;
pub mod compress;
pub mod config;
pub mod connect;
pub mod dial;
pub mod egress;
pub mod error;
pub mod handler;
pub mod inspect;
pub mod local;
pub mod origin;
pub mod origin_h2;
pub mod proxy;
pub mod webhook;

pub use api::{ApiClient, ApiError};
pub use client::{ClientError, Event, run};
pub use config::{Backoff, ClientConfig, HostHeader, LocalTarget, ProxyConfig, TlsMode, Transport};
pub use handler::{Body, BoxError, StreamHandler};
pub use proxy::{LocalProxy, Stats};
