//! What each command does, one module per command (or family), each taking
//! its parsed options from [`crate::cli`].

pub mod account;
pub mod agent;
pub mod audit;
pub mod connect;
pub mod dev;
pub mod env;
pub mod flags;
pub mod health;
pub mod inspect;
pub mod logs;
pub mod manage;
pub mod node;
pub mod org;
pub mod projects;
pub mod server;
pub mod sync;
pub mod sync_into;
pub mod tunnel;
pub mod webhook;

use anyhow::bail;

/// `shop/production` → `("shop", "production")`.
pub fn split_env(name: &str) -> anyhow::Result<(String, String)> {
    match name.split_once('/') {
        Some((p, e)) if !p.is_empty() && !e.is_empty() && !e.contains('/') => {
            Ok((p.to_string(), e.to_string()))
        }
        _ => bail!("'{name}' is not PROJECT/ENVIRONMENT, e.g. shop/production"),
    }
}
