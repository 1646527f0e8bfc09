//! Counting failures per client address: how visitors and clients are keyed
//! (IPv6 by /64) and the O(1) throttle on failed attempts, shared by token
//! checks and visitor credentials.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Counts failed attempts per address in fixed windows and refuses an address
/// that failed too often, so tokens cannot be guessed at line rate.
///
/// O(1) per attempt whatever the number of addresses: counts live in two
/// generations (this window and the last); when a window ends the current
/// map becomes the previous one and the old previous is dropped whole, so no
/// attempt ever scans the map. Addresses are keyed as
/// [`client_key`] does (IPv6 by /64). The table is bounded:
/// past `MAX_TRACKED` addresses in one window, new ones are not tracked.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    state: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    start: Instant,
    current: HashMap<IpAddr, u32>,
    previous: HashMap<IpAddr, u32>,
}

/// Most addresses counted in one window (a few MiB).
const MAX_TRACKED: usize = 100_000;

impl Throttle {
    /// Allows `max_failures` failures per `window` per address.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(Windows {
                start: Instant::now(),
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = w.start.elapsed();
        if elapsed >= self.window {
            // More than two windows ago counts for nothing.
            w.previous = if elapsed >= self.window * 2 {
                HashMap::new()
            } else {
                std::mem::take(&mut w.current)
            };
            w.current.clear();
            w.start = Instant::now();
        }
        w
    }

    /// `Some(seconds to wait)` when `ip` is throttled: it failed too often in
    /// this window, or in the last one (so a window boundary is no reset).
    pub fn check(&self, ip: IpAddr) -> Option<u64> {
        let key = client_key(ip);
        let w = self.windows();
        let now = w.current.get(&key).copied().unwrap_or(0);
        let before = w.previous.get(&key).copied().unwrap_or(0);
        if now >= self.max_failures || before >= self.max_failures {
            let left = self.window.saturating_sub(w.start.elapsed());
            Some(left.as_secs().max(1))
        } else {
            None
        }
    }

    /// Takes back one failure of `ip` (counted before a check whose result
    /// was not known yet, which then succeeded).
    pub fn forgive(&self, ip: IpAddr) {
        let key = client_key(ip);
        let mut w = self.windows();
        if let Some(n) = w.current.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
    }

    /// Records one failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let key = client_key(ip);
        let mut w = self.windows();
        if let Some(n) = w.current.get_mut(&key) {
            *n = n.saturating_add(1);
        } else if w.current.len() < MAX_TRACKED {
            w.current.insert(key, 1);
        }
    }
}

/// The key rate limits and failure counts use for a visitor: IPv4 as is,
/// IPv6 by its /64 (one subscriber's network; anyone holding a /64 can use
/// 2^64 addresses, so counting addresses would count nothing).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses are checked as IPv4, so `10.0.0.0/8` matches
/// visitors on a dual-stack listener too.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttle_blocks_after_max_failures_per_ip() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "10.1.2.4".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(t.check(ip), None);
            t.fail(ip);
        }
        let wait = t.check(ip).expect("throttled");
        assert!((1..=60).contains(&wait));
        assert_eq!(t.check(other), None);
        // IPv6 counts by /64: rotating addresses inside it does not help.
        for i in 0..3u16 {
            t.fail(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i).into());
        }
        let same64: IpAddr = "2001:db8:0:1:ffff::9".parse().unwrap();
        let next64: IpAddr = "2001:db8:0:2::9".parse().unwrap();
        assert!(t.check(same64).is_some());
        assert_eq!(t.check(next64), None);
    }

    #[test]
    fn throttle_windows_roll_over_without_scanning() {
        // A spray of addresses costs one insert each, and is bounded.
        let spray = Throttle::new(2, Duration::from_secs(60));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            spray.fail(IpAddr::V4(std::net::Ipv4Addr::from(i)));
        }
        assert_eq!(spray.windows().current.len(), MAX_TRACKED);
        let t = Throttle::new(2, Duration::from_millis(50));
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        t.fail(ip);
        t.fail(ip);
        assert!(t.check(ip).is_some());
        std::thread::sleep(Duration::from_millis(60));
        // Still refused in the next window (the last window's count holds)…
        assert!(t.check(ip).is_some());
        std::thread::sleep(Duration::from_millis(110));
        // …and forgotten two windows later.
        assert_eq!(t.check(ip), None);
        assert!(t.windows().previous.is_empty());
    }
}
