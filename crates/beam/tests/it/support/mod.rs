//! Test harness: servers, clients, local origins, stores, a mail catcher and a
//! DNS server, all in-process on `127.0.0.1:0`. One module per concern.

mod balancer;
mod cli;
mod client;
mod dashboard;
mod dns;
mod inspect;
mod mail;
mod origin;
pub mod parity;
mod relay;
mod server;
mod store;
mod tls;
mod webdriver;

pub use balancer::*;
pub use cli::*;
pub use client::*;
pub use dashboard::*;
pub use dns::*;
pub use inspect::*;
pub use mail::*;
pub use origin::*;
pub use relay::*;
pub use server::*;
pub use store::*;
pub use tls::*;
pub use webdriver::*;

use std::time::Duration;

/// Upper bound for anything a test waits on, so a bug fails the test instead of
/// hanging CI. Not a performance threshold.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Awaits `f` for at most [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Polls `f` until it returns `Some`, for state that changes in the background
/// (analytics flushes, quota refreshes). Bounded by [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}
