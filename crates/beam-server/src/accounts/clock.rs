//! The server's clock: one "now" for token expiry and revocation, with an
//! offset tests can advance.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The server's "now" with an offset tests can advance, so a token's expiry
/// is tested without waiting for it.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Unix milliseconds, plus the offset.
    pub fn now_ms(&self) -> i64 {
        crate::store::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
