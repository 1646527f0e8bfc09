//! Token authentication for tunnel clients, with per-IP throttling of failures.
//!
//! Tokens are random (`beam_` + 43 base62 characters ≈ 256 bits), so a fast hash is
//! enough: the store keeps SHA-256 digests only, and the digest found by the lookup
//! is compared again in constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use beam_proto::{ErrorCode, Refusal, Secret};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::store::{Store, now_ms};

/// Prefix of every API token, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "beam_";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh random token. Shown to the user once; only its hash is stored.
pub fn generate_token() -> Secret {
    random_secret(TOKEN_PREFIX)
}

/// `prefix` followed by 43 random base62 characters from the OS-seeded CSPRNG.
pub fn random_secret(prefix: &str) -> Secret {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    for _ in 0..43 {
        s.push(BASE62[rng.random_range(0..BASE62.len())] as char);
    }
    Secret::new(s)
}

/// SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Counts failed attempts per IP in a fixed window and refuses an IP that failed
/// too often, so tokens cannot be guessed at line rate.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// Allows `max_failures` failures per `window` per IP.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `ip` is throttled.
    pub fn check(&self, ip: IpAddr) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, start) = map.get(&ip)?;
        let elapsed = start.elapsed();
        if *count >= self.max_failures && elapsed < self.window {
            Some((self.window - elapsed).as_secs().max(1))
        } else {
            None
        }
    }

    /// Records one failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Keep memory bounded under a spray of addresses: drop finished windows.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, (_, start)| now.duration_since(*start) < window);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// Checks tokens against the store.
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    throttle: Throttle,
}

impl Authenticator {
    /// 10 failures per minute per IP, then refusals until the minute is over.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            throttle: Throttle::new(10, Duration::from_secs(60)),
        }
    }

    /// Counts a failed attempt that never got as far as a token (garbage hellos).
    pub fn record_failure(&self, ip: IpAddr) {
        self.throttle.fail(ip);
    }

    /// Returns the token's id, or a refusal to send to the client.
    pub async fn verify(&self, token: &Secret, ip: IpAddr) -> Result<i64, Refusal> {
        if let Some(wait) = self.throttle.check(ip) {
            return Err(Refusal {
                code: ErrorCode::Throttled,
                message: format!("too many failed attempts from {ip}; try again in {wait} s"),
                retry_after_secs: Some(wait),
            });
        }
        let hash = hash_secret(token.expose());
        let row = self.store.find_token(&hash).await.map_err(|e| {
            tracing::error!(error = %e, "token lookup failed");
            internal()
        })?;
        let Some(row) = row.filter(|r| bool::from(r.hash.as_slice().ct_eq(&hash))) else {
            self.throttle.fail(ip);
            return Err(Refusal {
                code: ErrorCode::Unauthorized,
                message: "invalid token: it is unknown to this server. Run `beam login` or check BEAM_TOKEN".into(),
                retry_after_secs: None,
            });
        };
        if row.revoked_at.is_some() {
            self.throttle.fail(ip);
            return Err(Refusal {
                code: ErrorCode::Unauthorized,
                message: "this token was revoked; create a new one with `beam tokens create`"
                    .into(),
                retry_after_secs: None,
            });
        }
        let now = now_ms();
        if row.expires_at.is_some_and(|e| e <= now) {
            self.throttle.fail(ip);
            return Err(Refusal {
                code: ErrorCode::TokenExpired,
                message: "this token has expired; create a new one with `beam tokens create`"
                    .into(),
                retry_after_secs: None,
            });
        }
        if let Err(e) = self.store.touch_token(row.id, now).await {
            tracing::warn!(error = %e, "could not record token use");
        }
        Ok(row.id)
    }
}

/// The refusal for errors that are ours, not the client's.
pub(crate) fn internal() -> Refusal {
    Refusal {
        code: ErrorCode::Internal,
        message: "the server hit an internal error; retrying".into(),
        retry_after_secs: Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_long() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.expose().starts_with("beam_"));
        assert_eq!(a.expose().len(), 48);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose()[5..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

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
    }
}
