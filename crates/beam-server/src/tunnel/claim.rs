//! Claiming a public name in the handshake: a requested or random subdomain, or a
//! requested or random TCP port (bound here), each taken through the store's
//! atomic claim so two clients can never both win. A [`Claimed`] name is
//! released exactly once, by value, which starts its grace period.

use std::sync::Arc;

use beam_proto::{ErrorCode, Refusal};
use tokio::net::TcpListener;

use super::names;
use crate::accounts::auth::internal;
use crate::state::State;
use crate::store::{Claim, NameKind, PublicName, now_ms};

/// A name this session holds in the store.
pub(crate) struct Claimed {
    pub(crate) name: PublicName,
    pub(crate) public_url: String,
    /// The bound public port of a TCP tunnel.
    pub(crate) listener: Option<Arc<TcpListener>>,
    /// The session holding it.
    session: String,
}

impl Claimed {
    /// The session holding the name.
    pub(crate) fn session(&self) -> &str {
        &self.session
    }

    /// Lets go of the name: it stays reserved for the lease holder for the
    /// grace period, so a reconnecting client gets it back.
    pub(crate) async fn release(self, state: &State) {
        let until = now_ms() + state.cfg.grace.as_millis() as i64;
        if let Err(e) = state
            .store
            .release(self.name.kind(), &self.name.key(), &self.session, until)
            .await
        {
            tracing::warn!(error = %e, "could not start the grace period");
        }
    }
}

/// Who is claiming a name in this handshake.
pub(crate) struct Claimant<'a> {
    pub(crate) token_id: i64,
    pub(crate) org_id: i64,
    pub(crate) lease_hash: &'a [u8],
    pub(crate) presented: Option<&'a [u8; 32]>,
    pub(crate) session: &'a str,
}

impl Claimant<'_> {
    /// Claims `name` in the store: `Ok(true)` when it is now this session's.
    async fn take(&self, state: &State, kind: NameKind, name: &str) -> Result<bool, Refusal> {
        let c = Claim {
            kind,
            name,
            token_id: self.token_id,
            org_id: self.org_id,
            new_lease_hash: self.lease_hash,
            presented_lease_hash: self.presented.map(|h| h.as_slice()),
            session: self.session,
            node: &state.node_id,
            now: now_ms(),
        };
        state.store.claim(&c).await.map_err(|e| {
            tracing::error!(error = %e, "claim failed");
            internal()
        })
    }
}

pub(crate) async fn claim_subdomain(
    state: &State,
    requested: Option<&str>,
    who: &Claimant<'_>,
) -> Result<Claimed, Refusal> {
    let name = match requested {
        Some(req) => {
            let name = names::validate(req, &state.cfg.reserved).map_err(|e| {
                let code = match e {
                    names::NameError::Invalid(_) => ErrorCode::NameInvalid,
                    names::NameError::Reserved(_) => ErrorCode::NameReserved,
                };
                Refusal::new(code, e.to_string())
            })?;
            if !who.take(state, NameKind::Subdomain, &name).await? {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!(
                        "subdomain '{name}' is in use, or held for its last user for up to {} s after a disconnect; pick another",
                        state.cfg.grace.as_secs()
                    ),
                ));
            }
            name
        }
        None => {
            let mut got = None;
            let candidates = (0..names::MAX_ATTEMPTS)
                .map(|_| names::random_name())
                .chain((0..5).map(|_| names::fallback_name()));
            for candidate in candidates {
                if state.cfg.reserved.contains(&candidate) {
                    continue;
                }
                if who.take(state, NameKind::Subdomain, &candidate).await? {
                    got = Some(candidate);
                    break;
                }
            }
            got.ok_or_else(|| {
                Refusal::new(
                    ErrorCode::Internal,
                    "could not allocate a subdomain; try again",
                )
            })?
        }
    };
    Ok(Claimed {
        public_url: state.cfg.http_url(&name),
        name: PublicName::Subdomain(name),
        listener: None,
        session: who.session.to_string(),
    })
}

pub(crate) async fn claim_port(
    state: &State,
    requested: Option<u16>,
    who: &Claimant<'_>,
) -> Result<Claimed, Refusal> {
    let range = state.cfg.tcp_ports.clone();
    let session = who.session;
    let claim_one =
        |port: u16| async move { who.take(state, NameKind::TcpPort, &port.to_string()).await };
    // On a lease takeover the old session still owns the listener: reuse it.
    let bind = |port: u16| async move {
        if let Some(old) = state.registry.tcp(port)
            && let Some(l) = old.listener.clone()
        {
            return Ok(l);
        }
        // Another node held it and this one mirrored its port.
        if let Some(l) = state.cluster.as_ref().and_then(|c| c.take_port(port)) {
            return Ok(l);
        }
        TcpListener::bind((state.cfg.tcp_bind, port))
            .await
            .map(Arc::new)
    };
    let (port, listener) = match requested {
        Some(port) => {
            if !range.contains(&port) {
                return Err(Refusal::new(
                    ErrorCode::PortUnavailable,
                    format!(
                        "port {port} is outside this server's TCP range {}-{}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            if !claim_one(port).await? {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!(
                        "port {port} is in use, or held for its last user for up to {} s after a disconnect",
                        state.cfg.grace.as_secs()
                    ),
                ));
            }
            match bind(port).await {
                Ok(l) => (port, l),
                // A reconnect can arrive while the previous session's listener is
                // still closing: keep the name for this lease and let the client retry.
                Err(e) if who.presented.is_some() => {
                    let until = now_ms() + state.cfg.grace.as_millis() as i64;
                    let _ = state
                        .store
                        .release(NameKind::TcpPort, &port.to_string(), session, until)
                        .await;
                    return Err(Refusal {
                        code: ErrorCode::Unavailable,
                        message: format!(
                            "port {port} is still being released on the server ({e}); retrying"
                        ),
                        retry_after_secs: Some(1),
                    });
                }
                Err(e) => {
                    let _ = state
                        .store
                        .forget(NameKind::TcpPort, &port.to_string(), session)
                        .await;
                    return Err(Refusal::new(
                        ErrorCode::PortUnavailable,
                        format!("port {port} cannot be opened on the server: {e}"),
                    ));
                }
            }
        }
        None => {
            let span = (*range.end() as u32 - *range.start() as u32 + 1) as usize;
            let mut found = None;
            for _ in 0..span.min(100) {
                let port = *range.start() + (rand::random::<u32>() as usize % span) as u16;
                if state.registry.tcp(port).is_some() || !claim_one(port).await? {
                    continue;
                }
                match bind(port).await {
                    Ok(l) => {
                        found = Some((port, l));
                        break;
                    }
                    Err(_) => {
                        let _ = state
                            .store
                            .forget(NameKind::TcpPort, &port.to_string(), session)
                            .await;
                    }
                }
            }
            found.ok_or_else(|| Refusal {
                code: ErrorCode::Unavailable,
                message: "no free TCP port in the server's range right now; retrying".into(),
                retry_after_secs: Some(5),
            })?
        }
    };
    Ok(Claimed {
        name: PublicName::Port(port),
        public_url: state.cfg.tcp_url(port),
        listener: Some(listener),
        session: session.to_string(),
    })
}
