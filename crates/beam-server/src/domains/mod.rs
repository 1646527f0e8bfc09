//! The life of a domain: host-name rules, verification by TXT record, the
//! periodic re-check that suspends a domain whose record disappeared (and
//! reactivates it when the record is back), and expiry of claims never verified,
//! so nobody can hold someone else's host name by adding it first.

pub mod dns;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domains::dns::VerifyError;
use crate::state::State;
use crate::store::{Check, DomainRow, DomainStatus, now_ms};

/// What kind of host name a user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// `<label>.<server domain>`: reserved at once, no DNS proof needed.
    Subdomain(String),
    /// Any other name: needs the TXT proof.
    Custom,
}

/// Normalizes and checks a host name; returns it lower-cased without a trailing dot.
pub fn parse_hostname(input: &str, server_domain: &str) -> Result<(String, HostKind), String> {
    let host = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| format!("'{input}' is not a usable host name: {why}");
    if host.is_empty() || host.len() > 253 {
        return Err(bad("it must be 1 to 253 characters"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad("IP addresses cannot be verified by DNS; use a name"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("it needs at least two labels, e.g. app.example.com"));
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(bad("each label is 1-63 letters, digits or inner hyphens"));
        }
    }
    if host == server_domain || host == format!("api.{server_domain}") {
        return Err(bad("it is this server's own name"));
    }
    match host
        .strip_suffix(server_domain)
        .and_then(|h| h.strip_suffix('.'))
    {
        Some(label) if !label.contains('.') => {
            Ok((host.clone(), HostKind::Subdomain(label.to_string())))
        }
        Some(_) => Err(bad("only one label under the server's domain is routable")),
        None => Ok((host, HostKind::Custom)),
    }
}

/// Looks the domain's TXT record up and stores the outcome. Returns the new status.
pub(crate) async fn check(
    state: &State,
    d: &DomainRow,
) -> Result<DomainStatus, crate::store::StoreError> {
    use DomainStatus::{Active, Expired, Pending, Suspended};
    let result = state.dns.verify(&d.hostname, &d.verification_token).await;
    let now = now_ms();
    let (status, error) = match &result {
        Ok(()) => (Active, None),
        Err(e) if e.is_definitive() => match d.status {
            Active | Suspended => (Suspended, Some(e.to_string())),
            Expired => (Expired, Some(e.to_string())),
            Pending => (Pending, Some(e.to_string())),
        },
        // The resolver failing says nothing about ownership: keep the status.
        Err(e) => (d.status, Some(e.to_string())),
    };
    state
        .store
        .record_check(
            d.id,
            Check {
                status,
                verified: result.is_ok(),
                error: error.as_deref(),
                now,
            },
        )
        .await?;
    // Back from suspension with its tunnel still connected: route it again.
    if status == Active
        && d.status != Active
        && let Some(t) = d.tunnel_id.and_then(|id| state.registry.by_id(id))
        && t.domains.contains(&d.hostname)
    {
        state.registry.insert_domain(&d.hostname, t.clone());
    }
    if status == Suspended && d.status != Suspended {
        state.registry.remove_domain(&d.hostname);
        tracing::warn!(domain = %d.hostname, "domain suspended: its TXT record is gone");
    }
    if let Err(VerifyError::Lookup { message, .. }) = &result {
        tracing::warn!(domain = %d.hostname, error = %message, "domain check could not resolve");
    }
    Ok(status)
}

/// Re-checks custom domains every `state.cfg.domain_recheck` until `shutdown`.
pub(crate) async fn recheck_loop(state: Arc<State>, shutdown: CancellationToken) {
    let every = state.cfg.domain_recheck;
    // Wake often enough to spread checks out, but never spin.
    let mut tick =
        tokio::time::interval(every.clamp(Duration::from_millis(50), Duration::from_secs(60)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let expire_before = now_ms() - state.cfg.domain_pending_ttl.as_millis() as i64;
        match state.store.expire_pending(expire_before).await {
            Ok(n) if n > 0 => tracing::info!(n, "unverified domains expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring unverified domains failed"),
        }
        let due_before = now_ms() - every.as_millis() as i64;
        let due = match state.store.domains_due(due_before, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "listing domains to re-check failed");
                continue;
            }
        };
        for d in due {
            if let Err(e) = check(&state, &d).await {
                tracing::warn!(error = %e, "storing a domain check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked_and_classified() {
        let p = |s| parse_hostname(s, "beam.test");
        assert_eq!(
            p("App.Example.com.").unwrap(),
            ("app.example.com".into(), HostKind::Custom)
        );
        assert_eq!(
            p("demo.beam.test").unwrap(),
            ("demo.beam.test".into(), HostKind::Subdomain("demo".into()))
        );
        for bad in [
            "",
            "localhost",
            "-a.example.com",
            "a_b.example.com",
            "10.0.0.1",
            "beam.test",
            "api.beam.test",
            "a.b.beam.test",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(
            p(&format!("{}.com", "a".repeat(64)))
                .unwrap_err()
                .contains("1-63")
        );
    }
}
