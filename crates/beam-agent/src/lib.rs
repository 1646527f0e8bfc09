//! beam's production agent: the services `beam agent` answers on its tunnel
//! connection, built on `beam-client`'s connection as one more
//! [`beam_client::StreamHandler`].
//!
//! # Layout
//! - [`agent`]: [`AgentServices`], the routes the server relays (`/logs`,
//!   `/flags`, `/env/check`, `/health`, `/sync`, …; the contract is
//!   `beam_proto::service`).
//! - [`logs`]: log capture, parsing, masking and the bounded buffer.
//! - [`ingest`]: the local port where apps ship logs or forward webhooks.
//! - [`flags`], [`envcheck`], [`health`], [`sync`]: flags, env verdicts,
//!   probes and sanitized rows.
//! - [`proddb`]: the bounded, read-only pool on the production database.
//! - [`embed`]: [`Agent`], the agent inside an app (`Agent::builder()…run()`),
//!   which `beam agent` itself is built on; [`layer`]: a `tracing` layer that
//!   publishes the app's events with their fields.
//!
//! This crate does not depend on the server, and the tunnel client does not
//! depend on it: `beam http` builds without any production code path.

pub mod agent;
pub mod embed;
pub mod envcheck;
pub mod flags;
pub mod health;
pub mod ingest;
pub mod layer;
pub mod logs;
pub mod proddb;
pub mod sync;

pub use agent::AgentServices;
pub use embed::Agent;
