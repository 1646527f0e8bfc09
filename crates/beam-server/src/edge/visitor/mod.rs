//! Per-tunnel visitor protection at the edge: who may reach a tunnel (CIDR
//! allow/deny, basic or bearer credentials), how fast (per visitor address, per
//! tunnel, per client token), how much (body size, concurrent streams) and which
//! browser origins may read its answers (opt-in CORS).
//!
//! Everything here runs before a request enters the tunnel, so refused visitors
//! cost the edge a header parse and never reach the developer's laptop.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use beam_proto::Protection;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::accounts::throttle::canonical;
use crate::accounts::throttle::client_key;
use crate::config::ServerConfig;

mod auth;
mod cors;

pub(crate) use auth::{AuthCheck, Credentials, OrgBudgets};
pub(crate) use cors::Cors;
use cors::parse_cors;

/// One of a tunnel's stream slots, held until the response (or WebSocket) ends.
pub(crate) type StreamPermit = OwnedSemaphorePermit;

/// One tunnel's protection and limits, built at handshake from the client's
/// [`Protection`] and the server's configuration.
pub(crate) struct Policy {
    /// `--auth` / `--bearer`.
    pub(crate) credentials: Credentials,
    /// `--cors`.
    pub(crate) cors: Cors,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// Largest request body: the smaller of the tunnel's and the server's limit.
    pub(crate) max_body: Option<u64>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_tunnel: Option<DefaultDirectRateLimiter>,
    streams: Arc<Semaphore>,
    /// Visitor connections carried as byte streams at once: each holds a
    /// connection to the developer's machine, so they are capped like streams.
    links: Arc<Semaphore>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("credentials", &self.credentials)
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
        let credentials = Credentials::new(p)?;
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
            credentials,
            allow,
            deny,
            cors,
            max_body,
            per_ip,
            per_tunnel,
            streams: Arc::new(Semaphore::new(cfg.max_streams_per_tunnel.max(1))),
            links: Arc::new(Semaphore::new(cfg.max_streams_per_tunnel.max(1))),
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

    /// A place for one more visitor connection carried as a byte stream, if
    /// the tunnel has not reached its maximum.
    pub(crate) fn link_permit(&self) -> Option<StreamPermit> {
        self.links.clone().try_acquire_owned().ok()
    }

    /// Forgets rate-limit state of addresses that went quiet (called periodically).
    pub(crate) fn retain_recent(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
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

#[cfg(test)]
mod tests;
