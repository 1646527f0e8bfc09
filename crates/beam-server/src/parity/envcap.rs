//! Daily caps on `beam env check` comparisons, per user, environment and
//! variable. A verdict says whether the caller's guess equals production's
//! value, so unlimited checks would find a short PIN or a guessable value by
//! trying candidates; the cap makes that take years instead of minutes.
//!
//! Counted in memory per server process for the current UTC day: a restart
//! forgets the counts (an attacker cannot restart the server), and the cap
//! also bounds how many distinct names one user may check per day, so the
//! table cannot be grown without limit.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most distinct variable names one user may check per environment per day.
const MAX_NAMES_PER_DAY: usize = 2000;

/// Checks per variable name, per (user, environment).
type Counts = HashMap<(i64, i64), HashMap<String, u32>>;

/// Counts of checks in the current day.
#[derive(Debug)]
pub(crate) struct EnvCheckCap {
    per_day: u32,
    state: Mutex<(i64, Counts)>,
}

impl EnvCheckCap {
    /// At most `per_day` checks of one variable per user and environment per UTC day.
    pub(crate) fn new(per_day: u32) -> Self {
        Self {
            per_day: per_day.max(1),
            state: Mutex::new((0, HashMap::new())),
        }
    }

    /// Counts one check of each of `names` by `user` in `env` at `now_ms`;
    /// refuses the whole request (counting nothing) when any name would pass
    /// the cap, with a message naming the first such name.
    pub(crate) fn take(
        &self,
        user: i64,
        env: i64,
        names: &[String],
        now_ms: i64,
    ) -> Result<(), String> {
        let day = now_ms.div_euclid(86_400_000);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 != day {
            *st = (day, HashMap::new());
        }
        let counts = st.1.entry((user, env)).or_default();
        let new_names = names.iter().filter(|n| !counts.contains_key(*n)).count();
        if counts.len() + new_names > MAX_NAMES_PER_DAY {
            return Err(format!(
                "you checked {MAX_NAMES_PER_DAY} different variables in this environment today, the most allowed; try again tomorrow (UTC)"
            ));
        }
        if let Some(full) = names
            .iter()
            .find(|n| counts.get(*n).is_some_and(|c| *c >= self.per_day))
        {
            return Err(format!(
                "{full} was already compared {} times today, the most allowed per variable and user (the server's --env-check-limit); try again tomorrow (UTC)",
                self.per_day
            ));
        }
        for n in names {
            *counts.entry(n.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Seconds until the counts start over (the next UTC midnight).
    pub(crate) fn retry_after(now_ms: i64) -> u64 {
        let next = (now_ms.div_euclid(86_400_000) + 1) * 86_400_000;
        u64::try_from((next - now_ms) / 1000).unwrap_or(1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_user_variable_and_day() {
        let cap = EnvCheckCap::new(3);
        let pin = vec!["PIN".to_string()];
        let now = 1_000 * 86_400_000 + 5;
        for _ in 0..3 {
            cap.take(1, 9, &pin, now).unwrap();
        }
        let e = cap.take(1, 9, &pin, now).unwrap_err();
        assert!(e.contains("PIN was already compared 3 times today"), "{e}");
        // A refused request counts nothing, and other names, users,
        // environments and days have their own counts.
        let both = vec!["PORT".to_string(), "PIN".to_string()];
        assert!(cap.take(1, 9, &both, now).is_err());
        cap.take(1, 9, &["PORT".to_string()], now).unwrap();
        cap.take(2, 9, &pin, now).unwrap();
        cap.take(1, 8, &pin, now).unwrap();
        cap.take(1, 9, &pin, now + 86_400_000).unwrap();
        assert!(EnvCheckCap::retry_after(now) > 86_000);
        let many: Vec<String> = (0..=MAX_NAMES_PER_DAY).map(|i| format!("V{i}")).collect();
        assert!(
            cap.take(3, 9, &many, now)
                .unwrap_err()
                .contains("different variables")
        );
    }
}
