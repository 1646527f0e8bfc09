//! Open live streams per user, so one person's forgotten tabs cannot load
//! the store for everyone (each stream queries it every round).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open streams per user.
#[derive(Debug, Default)]
pub(crate) struct Streams(Mutex<HashMap<i64, u32>>);

/// Holds one of a user's stream slots until dropped.
pub(crate) struct Slot {
    streams: Arc<Streams>,
    user: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl Streams {
    /// A slot for one more stream of `user`, unless they hold `max` already.
    pub(crate) fn acquire(self: &Arc<Self>, user: i64, max: u32) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            streams: self.clone(),
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_max_streams_and_closing_frees_one() {
        let s = Arc::new(Streams::default());
        let a = s.acquire(1, 2).unwrap();
        let _b = s.acquire(1, 2).unwrap();
        assert!(s.acquire(1, 2).is_none());
        assert!(s.acquire(2, 2).is_some(), "another user is not affected");
        drop(a);
        assert!(s.acquire(1, 2).is_some());
    }
}
