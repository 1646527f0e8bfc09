//! Per-tunnel visitor protection at the edge: who may reach a tunnel (CIDR
//! allow/deny, basic or bearer credentials), how fast (per visitor address, per
//! tunnel, per client token), how much (body size, concurrent streams) and which
//! browser origins may read its answers (opt-in CORS).
//!
//! Everything here runs before a request enters the tunnel, so refused visitors
//! cost the edge a header parse and never reach the developer's laptop.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use beam_proto::{BasicAuth, Protection, Secret};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;

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

/// One of a tunnel's stream slots, held until the response (or WebSocket) ends.
pub(crate) type StreamPermit = OwnedSemaphorePermit;

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

/// Which origins CORS answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cors {
    /// CORS is the app's business: headers pass through untouched.
    Off,
    /// Any origin (`--cors '*'`).
    Any,
    /// Exactly these origins (lower-case `scheme://host[:port]`).
    Origins(Vec<String>),
}

/// One tunnel's protection and limits, built at handshake from the client's
/// [`Protection`] and the server's configuration.
pub(crate) struct Policy {
    basic: Option<BasicAuth>,
    bearer: Option<String>,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    cors: Cors,
    /// Largest request body: the smaller of the tunnel's and the server's limit.
    pub(crate) max_body: Option<u64>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_tunnel: Option<DefaultDirectRateLimiter>,
    streams: Arc<Semaphore>,
    /// SHA-256 of `Authorization` values proven correct, so argon2 runs once
    /// per correct credential, not once per request.
    granted: Mutex<HashSet<[u8; 32]>>,
    /// This tunnel's share of credential checks.
    hash_budget: Arc<Semaphore>,
    /// Failed credentials per visitor address.
    failures: crate::accounts::auth::Throttle,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of logs.
        f.debug_struct("Policy")
            .field("basic_auth", &self.basic.is_some())
            .field("bearer", &self.bearer.is_some())
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .field("cors", &self.cors)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// Why the edge turned a visitor away.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The address is outside `allow_cidr` or inside `deny_cidr`.
    Address,
    /// Too many requests; retry after this many seconds.
    Rate {
        /// Which limit: `visitor`, `tunnel` or `token`.
        scope: &'static str,
        /// Seconds until a request would be allowed (at least 1).
        retry_after: u64,
    },
    /// The tunnel has its maximum of requests in flight.
    Streams,
}

impl Policy {
    /// Validates the client's protection request against the server's bounds.
    pub(crate) fn new(p: &Protection, cfg: &ServerConfig) -> Result<Self, String> {
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
        let nets = |list: &[String], flag: &str| -> Result<Vec<IpNet>, String> {
            if list.len() > 256 {
                return Err(format!("{flag}: at most 256 networks"));
            }
            list.iter()
                .map(|s| parse_net(s).map_err(|e| format!("{flag}: {e}")))
                .collect()
        };
        let allow = nets(&p.allow_cidr, "--allow-cidr")?;
        let deny = nets(&p.deny_cidr, "--deny-cidr")?;
        let cors = parse_cors(&p.cors)?;
        // The burst is one period's worth (governor's default for these
        // quotas): `5/s` admits at most 5 at once, never a minute's worth.
        let per_ip = match (p.rate_per_second, p.rate_per_minute) {
            (Some(n), _) => {
                let n = NonZeroU32::new(n).ok_or("--rate-limit must be at least 1 per second")?;
                Some(RateLimiter::keyed(Quota::per_second(n)))
            }
            (None, Some(n)) => {
                let n = NonZeroU32::new(n).ok_or("--rate-limit must be at least 1 per minute")?;
                Some(RateLimiter::keyed(Quota::per_minute(n)))
            }
            (None, None) => None,
        };
        let max_body = match (p.max_body, cfg.max_body) {
            (Some(0), _) => return Err("--max-body must be at least 1 byte".into()),
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let per_tunnel = cfg
            .tunnel_rate_per_sec
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_second(n)));
        Ok(Self {
            basic: p.basic_auth.clone(),
            bearer: p.bearer.clone(),
            allow,
            deny,
            cors,
            max_body,
            per_ip,
            per_tunnel,
            streams: Arc::new(Semaphore::new(cfg.max_streams_per_tunnel.max(1))),
            granted: Mutex::new(HashSet::new()),
            hash_budget: Arc::new(Semaphore::new(TUNNEL_HASH_BUDGET)),
            failures: crate::accounts::auth::Throttle::new(
                FAILURES_PER_MINUTE,
                Duration::from_secs(60),
            ),
        })
    }

    /// Address, rate and concurrency checks, cheapest first. The permit is held
    /// until the response body ends.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<StreamPermit, Refused> {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip))
            || (!self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)))
        {
            return Err(Refused::Address);
        }
        if let Some(l) = &self.per_ip
            && let Err(nu) = l.check_key(&client_key(ip))
        {
            return Err(Refused::Rate {
                scope: "visitor",
                retry_after: retry_after(nu.wait_time_from(DefaultClock::default().now())),
            });
        }
        if let Some(l) = &self.per_tunnel
            && let Err(nu) = l.check()
        {
            return Err(Refused::Rate {
                scope: "tunnel",
                retry_after: retry_after(nu.wait_time_from(DefaultClock::default().now())),
            });
        }
        self.streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Streams)
    }

    /// Forgets rate-limit state of addresses that went quiet (called periodically).
    pub(crate) fn retain_recent(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
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

    /// Whether CORS is handled at the edge for this tunnel.
    pub(crate) fn cors_enabled(&self) -> bool {
        self.cors != Cors::Off
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        match &self.cors {
            Cors::Off => None,
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let o = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&o).then(|| origin.clone())
            }
        }
    }

    /// Whether a WebSocket upgrade from this `Origin` may proceed: with an
    /// allowlist set, a browser origin must be on it. Requests without `Origin`
    /// (non-browser clients) pass; CORS cannot protect against those.
    pub(crate) fn upgrade_allowed(&self, origin: Option<&HeaderValue>) -> bool {
        match (&self.cors, origin) {
            (Cors::Off | Cors::Any, _) | (_, None) => true,
            (Cors::Origins(_), Some(_)) => self.allow_origin(origin).is_some(),
        }
    }

    /// Answers a CORS preflight at the edge: 204 with the allow headers for an
    /// allowed origin, 403 otherwise. `None` when this is not a preflight or CORS
    /// is off (the request goes to the app).
    pub(crate) fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<(StatusCode, HeaderMap)> {
        if !self.cors_enabled()
            || method != Method::OPTIONS
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut out = HeaderMap::new();
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allow) = self.allow_origin(headers.get(header::ORIGIN)) else {
            return Some((StatusCode::FORBIDDEN, out));
        };
        let credentials = allow != "*";
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        if let Some(h) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        Some((StatusCode::NO_CONTENT, out))
    }

    /// Adds CORS headers to a response for an allowed origin (replacing the
    /// app's own, since the operator opted in to edge CORS).
    pub(crate) fn apply_cors(&self, origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
        if !self.cors_enabled() {
            return;
        }
        resp.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(allow) = self.allow_origin(origin) {
            if allow != "*" {
                resp.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        }
    }
}

/// A per-client-token request limiter shared by all of a token's tunnels.
pub(crate) fn token_limiter(cfg: &ServerConfig) -> Option<DefaultKeyedRateLimiter<i64>> {
    cfg.token_rate_per_sec
        .and_then(NonZeroU32::new)
        .map(|n| RateLimiter::keyed(Quota::per_second(n)))
}

/// Checks the token limiter for `token_id`.
pub(crate) fn check_token(
    limiter: &Option<DefaultKeyedRateLimiter<i64>>,
    token_id: i64,
) -> Result<(), Refused> {
    match limiter {
        Some(l) => l.check_key(&token_id).map_err(|nu| Refused::Rate {
            scope: "token",
            retry_after: retry_after(nu.wait_time_from(DefaultClock::default().now())),
        }),
        None => Ok(()),
    }
}

/// Whole seconds to wait, rounded up, at least 1 (`Retry-After: 0` invites a
/// tight retry loop).
fn retry_after(wait: Duration) -> u64 {
    let ms = wait.as_millis() as u64;
    ms.div_ceil(1000).max(1)
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
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{s}' is not a network: use CIDR like 10.0.0.0/8 or an address"))
}

fn parse_cors(list: &[String]) -> Result<Cors, String> {
    if list.is_empty() {
        return Ok(Cors::Off);
    }
    if list.iter().any(|o| o.trim() == "*") {
        return Ok(Cors::Any);
    }
    let mut out = Vec::new();
    for o in list {
        let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && o.parse::<http::Uri>().is_ok_and(|u| {
                u.host().is_some() && u.path_and_query().is_none_or(|p| p.as_str() == "/")
            });
        if !ok {
            return Err(format!(
                "--cors: '{o}' is not an origin: use scheme://host[:port], e.g. https://app.example.com, or '*'"
            ));
        }
        out.push(o);
    }
    Ok(Cors::Origins(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(p: Protection) -> Policy {
        Policy::new(&p, &ServerConfig::dev()).unwrap()
    }

    #[test]
    fn cidr_allow_and_deny_with_mapped_addresses() {
        let p = policy(Protection {
            allow_cidr: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            deny_cidr: vec!["10.9.0.0/16".into()],
            ..Default::default()
        });
        let ok = |s: &str| p.admit(s.parse().unwrap()).is_ok();
        assert!(ok("10.1.2.3"));
        assert!(ok("::ffff:10.1.2.3"));
        assert!(ok("2001:db8::5"));
        assert!(!ok("10.9.1.1"), "deny wins over allow");
        assert!(!ok("192.168.1.1"));
        let e = Policy::new(
            &Protection {
                deny_cidr: vec!["10.0.0.0/33".into()],
                ..Default::default()
            },
            &ServerConfig::dev(),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("--deny-cidr: '10.0.0.0/33' is not a network"),
            "{e}"
        );
    }

    #[test]
    fn per_visitor_rate_limit_gives_whole_seconds() {
        let p = policy(Protection {
            rate_per_minute: Some(2),
            ..Default::default()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(p.admit(ip).is_ok());
        assert!(p.admit(ip).is_ok());
        match p.admit(ip) {
            Err(Refused::Rate { scope, retry_after }) => {
                assert_eq!(scope, "visitor");
                // 2 per minute: the next cell frees up in about 30 s.
                assert!((29..=30).contains(&retry_after), "{retry_after}");
            }
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        assert!(p.admit("192.0.2.2".parse().unwrap()).is_ok(), "per address");
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn cors_origins_are_validated_and_matched_exactly() {
        assert!(parse_cors(&["app.example.com".into()]).is_err());
        assert!(parse_cors(&["https://a.example/path".into()]).is_err());
        let p = policy(Protection {
            cors: vec!["https://App.Example.com/".into()],
            ..Default::default()
        });
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("PUT"),
        );
        let (status, out) = p.preflight(&Method::OPTIONS, &h).unwrap();
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert_eq!(
            p.preflight(&Method::OPTIONS, &h).unwrap().0,
            StatusCode::FORBIDDEN
        );
        assert!(!p.upgrade_allowed(h.get(header::ORIGIN)));
        assert!(
            p.upgrade_allowed(None),
            "non-browser clients send no Origin"
        );
        assert!(
            policy(Protection::default())
                .preflight(&Method::OPTIONS, &h)
                .is_none()
        );
    }
}
