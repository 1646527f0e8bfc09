//! Which developers are connected to each environment right now (a live log
//! or webhook stream), for the agent's health report. A stream holds a
//! [`Presence`] guard for as long as it is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open streams per environment and user.
#[derive(Debug, Default)]
pub(crate) struct Developers {
    open: Mutex<HashMap<i64, HashMap<i64, usize>>>,
}

/// Counts one open stream until dropped.
#[derive(Debug)]
pub(crate) struct Presence {
    developers: Arc<Developers>,
    env: i64,
    user: i64,
}

impl Developers {
    /// Records an open stream of `user` on `env`.
    pub(crate) fn enter(self: &Arc<Self>, env: i64, user: i64) -> Presence {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(env).or_default().entry(user).or_default() += 1;
        Presence {
            developers: self.clone(),
            env,
            user,
        }
    }

    /// Distinct users with an open stream on `env`.
    pub(crate) fn count(&self, env: i64) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&env).map_or(0, HashMap::len)
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut open = self
            .developers
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(users) = open.get_mut(&self.env) {
            if let Some(n) = users.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    users.remove(&self.user);
                }
            }
            if users.is_empty() {
                open.remove(&self.env);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_users_are_counted_until_their_last_stream_closes() {
        let d = Arc::new(Developers::default());
        let a1 = d.enter(1, 10);
        let a2 = d.enter(1, 10);
        let b = d.enter(1, 11);
        let other = d.enter(2, 10);
        assert_eq!((d.count(1), d.count(2), d.count(3)), (2, 1, 0));
        drop(a1);
        assert_eq!(d.count(1), 2);
        drop((a2, b, other));
        assert_eq!((d.count(1), d.count(2)), (0, 0));
    }
}
