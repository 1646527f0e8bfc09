//! Parity with production: the agent, logs, webhooks, sync, flags, env check
//! and health, through the real server and real `beam agent` processes.

mod agent;
mod agent_cli;
mod embedded;
mod ingest;
mod inspect;
mod logs;
mod providers;
pub(crate) mod replicas;
mod sync;
mod sync_guards;
mod sync_memory;
mod webhook_cli;
mod webhook_helpers;
mod webhooks;
