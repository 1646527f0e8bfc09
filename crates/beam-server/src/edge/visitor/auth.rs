//! Credentials at the edge (`--auth`, `--bearer`): argon2 checks under a
//! budget per tunnel, per organization and per core, a cache of correct
//! credentials so honest visitors keep a fast path, and a throttle on
//! failures per visitor address.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use beam_proto::{BasicAuth, Protection, Secret};
use http::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::accounts::throttle::Throttle;

/// Credentials remembered as correct per tunnel. Only successes are cached:
/// a visitor cannot fill or flush the cache with wrong guesses (there are
/// only as many correct credentials as the owner made), so honest visitors
/// keep their fast path during a flood.
const GOOD_CACHE: usize = 64;

/// argon2 checks one tunnel may run at once: a flood at one tunnel uses its
/// own budget, not the server's.
const TUNNEL_HASH_BUDGET: usize = 2;

/// argon2 checks one organization's tunnels may run at once together: an
/// attacker with several tunnels of their own cannot fill the server's gate
/// and hold every other tenant's first-time visitors.
pub(crate) const ORG_HASH_BUDGET: usize = 2;

/// Each organization's share of visitor credential checks.
#[derive(Debug, Default)]
pub(crate) struct OrgBudgets {
    map: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl OrgBudgets {
    /// The budget of organization `org_id` (created on first use).
    pub(crate) fn of(&self, org_id: i64) -> Arc<Semaphore> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(org_id)
            .or_insert_with(|| Arc::new(Semaphore::new(ORG_HASH_BUDGET)))
            .clone()
    }
}

/// Failed credentials per visitor address (IPv6: per /64) and tunnel per
/// minute before the address is refused for the rest of the minute, without
/// any hashing.
const FAILURES_PER_MINUTE: u32 = 10;

/// The result of checking a visitor's credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthCheck {
    /// The credential is right.
    Granted,
    /// Missing or wrong.
    Denied,
    /// This address failed too often; retry after this many seconds.
    Throttled(u64),
    /// No hashing slot came free in time; retry after this many seconds.
    Busy(u64),
}

/// A tunnel's visitor credentials (`--auth`, `--bearer`, as argon2 hashes)
/// and what checking them remembers.
pub(crate) struct Credentials {
    basic: Option<BasicAuth>,
    bearer: Option<String>,
    /// SHA-256 of `Authorization` values proven correct, so argon2 runs once
    /// per correct credential, not once per request.
    granted: Mutex<HashSet<[u8; 32]>>,
    /// This tunnel's share of credential checks.
    hash_budget: Arc<Semaphore>,
    /// Failed credentials per visitor address.
    failures: Throttle,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of logs.
        f.debug_struct("Credentials")
            .field("basic_auth", &self.basic.is_some())
            .field("bearer", &self.bearer.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Checks the client's hashes; the tunnel is refused on a malformed one.
    pub(crate) fn new(p: &Protection) -> Result<Self, String> {
        if let Some(b) = &p.basic_auth {
            if b.user.is_empty() || b.user.contains(':') || b.user.len() > 256 {
                return Err("basic-auth user must be 1-256 bytes without ':'".into());
            }
            crate::accounts::password::check_client_hash(&b.hash)
                .map_err(|e| format!("--auth: {e}"))?;
        }
        if let Some(h) = &p.bearer {
            crate::accounts::password::check_client_hash(h)
                .map_err(|e| format!("--bearer: {e}"))?;
        }
        Ok(Self {
            basic: p.basic_auth.clone(),
            bearer: p.bearer.clone(),
            granted: Mutex::new(HashSet::new()),
            hash_budget: Arc::new(Semaphore::new(TUNNEL_HASH_BUDGET)),
            failures: Throttle::new(FAILURES_PER_MINUTE, Duration::from_secs(60)),
        })
    }

    /// Whether visitors must present credentials.
    pub(crate) fn needs_auth(&self) -> bool {
        self.basic.is_some() || self.bearer.is_some()
    }

    /// Checks the visitor's `Authorization` header from `ip`. A credential
    /// proven right before is granted from memory. Otherwise argon2 runs off
    /// the runtime inside this tunnel's budget and then the server's gate,
    /// each waited for at most the gate's queue time: a flood at one tunnel
    /// gets 503s quickly and never holds another tunnel's visitors. An
    /// address that failed too often is refused before any hashing.
    pub(crate) async fn authorize(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        gate: &crate::accounts::password::HashGate,
        org_budget: Arc<Semaphore>,
    ) -> AuthCheck {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return AuthCheck::Denied;
        };
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if self.lock().contains(&key) {
            return AuthCheck::Granted;
        }
        if let Some(wait) = self.failures.check(ip) {
            return AuthCheck::Throttled(wait);
        }
        // Counted as a failure before hashing and taken back on success: a
        // visitor that hangs up mid-check still pays for the attempt.
        self.failures.fail(ip);
        let Some((password, hash)) = self.candidate(value.as_bytes()) else {
            return AuthCheck::Denied;
        };
        let retry = gate.retry_after();
        let wait = gate.queue();
        let Ok(Ok(tunnel)) =
            tokio::time::timeout(wait, self.hash_budget.clone().acquire_owned()).await
        else {
            return AuthCheck::Busy(retry);
        };
        let Ok(Ok(org)) = tokio::time::timeout(wait, org_budget.acquire_owned()).await else {
            return AuthCheck::Busy(retry);
        };
        // The budgets travel with the blocking job: dropping this future
        // (a reset stream) does not free them while argon2 runs.
        let Ok(ok) = gate
            .run(vec![tunnel, org], move || {
                crate::accounts::password::verify_now(&password, Some(&hash))
            })
            .await
        else {
            return AuthCheck::Busy(retry);
        };
        if ok {
            self.failures.forgive(ip);
            let mut good = self.lock();
            if good.len() < GOOD_CACHE {
                good.insert(key);
            }
            AuthCheck::Granted
        } else {
            AuthCheck::Denied
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.granted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secret to verify and the hash to verify it against, when the header
    /// has a scheme this tunnel accepts (and, for basic, the right user).
    fn candidate(&self, value: &[u8]) -> Option<(Secret, String)> {
        let value = std::str::from_utf8(value).ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let basic = self.basic.as_ref()?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            // RFC 7617: the user-id cannot contain ':', the password can.
            let (user, password) = decoded.split_once(':')?;
            let same_user: bool = user.as_bytes().ct_eq(basic.user.as_bytes()).into();
            // A wrong user still costs a hash check, so timing says nothing about users.
            let password = if same_user {
                password
            } else {
                "\u{0}wrong user"
            };
            return Some((Secret::new(password), basic.hash.clone()));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some((Secret::new(rest), self.bearer.clone()?));
        }
        None
    }

    /// `WWW-Authenticate` challenges for a 401.
    pub(crate) fn challenges(&self, realm: &str) -> Vec<String> {
        let realm = realm.replace(['"', '\\'], "");
        let mut v = Vec::new();
        if self.basic.is_some() {
            v.push(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""));
        }
        if self.bearer.is_some() {
            v.push(format!("Bearer realm=\"{realm}\""));
        }
        v
    }
}
