//! Revocation reaches every live connection. Tunnels, production agents, log
//! streams and webhook streams each register the access they hold (token,
//! user, organization, and the scope they need); a watcher re-checks every
//! holder against the store — token revoked or expired, user no longer a
//! member, role or token no longer allowing the scope — every
//! `revalidate_every` (2 s by default), and at once when an API call changed
//! any of those, then cancels the holders that lost their access. So
//! revoking a token, removing a member, lowering a role, a password reset or
//! a token expiring ends everything that token held within seconds, on
//! every kind of connection, without each path polling on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accounts::clock::Clock;
use crate::accounts::scope::Scope;
use crate::store::Store;

/// What a live connection was granted, to be re-checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    /// The token that opened it.
    pub(crate) token_id: i64,
    /// Its user.
    pub(crate) user_id: i64,
    /// The organization it acts in.
    pub(crate) org_id: i64,
    /// The scope it needs (agents need only a live token of a member).
    pub(crate) scope: Option<Scope>,
}

impl Access {
    /// The access a principal holds for `scope`.
    pub(crate) fn of(p: &crate::accounts::auth::Principal, scope: Option<Scope>) -> Self {
        Self {
            token_id: p.token_id,
            user_id: p.user_id,
            org_id: p.org_id,
            scope,
        }
    }
}

/// Every live holder of access on this node.
#[derive(Debug, Default)]
pub(crate) struct Revocation {
    next: AtomicU64,
    live: Mutex<HashMap<u64, (Access, CancellationToken)>>,
    wake: Notify,
}

/// A registration; dropping it (the connection ended) unregisters.
#[derive(Debug)]
pub(crate) struct Held {
    id: u64,
    revocation: Arc<Revocation>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.revocation.lock().remove(&self.id);
    }
}

impl Revocation {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Access, CancellationToken)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection holding `access`; `kick` is cancelled when the
    /// access is lost.
    pub(crate) fn hold(self: &Arc<Self>, access: Access, kick: CancellationToken) -> Held {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (access, kick));
        Held {
            id,
            revocation: self.clone(),
        }
    }

    /// Something that grants access changed (a token revoked, a member
    /// removed, a role lowered, a password reset): check now.
    pub(crate) fn changed(&self) {
        self.wake.notify_one();
    }

    /// Re-checks every holder every `every` and on [`changed`](Self::changed),
    /// until `shutdown`.
    pub(crate) async fn run(
        self: Arc<Self>,
        store: Store,
        clock: Arc<Clock>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
            match self.sweep(&store, clock.now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(disconnected = n, "access revoked: connections closed"),
                Err(e) => tracing::warn!(error = %e, "revocation check failed; retrying"),
            }
        }
    }

    /// One pass: cancels the holders whose access is gone at `now`; returns
    /// how many. One token lookup per distinct token, one role lookup per
    /// distinct member.
    pub(crate) async fn sweep(
        &self,
        store: &Store,
        now: i64,
    ) -> Result<usize, crate::store::StoreError> {
        let holders: Vec<(Access, CancellationToken)> = self
            .lock()
            .values()
            .filter(|(_, k)| !k.is_cancelled())
            .cloned()
            .collect();
        let mut tokens = HashMap::new();
        let mut roles = HashMap::new();
        let mut kicked = 0;
        let mut failed = false;
        for (a, kick) in holders {
            // A lookup that fails is retried next pass, for this holder only:
            // one bad row must not stop revocation for everyone else.
            if let std::collections::hash_map::Entry::Vacant(e) = tokens.entry(a.token_id) {
                match store.token_by_id(a.token_id).await {
                    Ok(t) => {
                        e.insert(t);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, token = a.token_id, "revocation check failed for a token");
                        failed = true;
                        continue;
                    }
                }
            }
            let member = (a.org_id, a.user_id);
            if let std::collections::hash_map::Entry::Vacant(e) = roles.entry(member) {
                match store.role(a.org_id, a.user_id).await {
                    Ok(r) => {
                        e.insert(r);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, user = a.user_id, "revocation check failed for a member");
                        failed = true;
                        continue;
                    }
                }
            }
            let token = tokens.get(&a.token_id).and_then(Option::as_ref);
            let role = roles.get(&(a.org_id, a.user_id)).copied().flatten();
            let allowed = match (token, role) {
                (Some(t), Some(role)) if t.is_live(now) && t.org_id == a.org_id => a
                    .scope
                    .is_none_or(|s| t.scopes.intersect(role.scopes()).allows(s)),
                _ => false,
            };
            if !allowed {
                kick.cancel();
                kicked += 1;
            }
        }
        if failed {
            return Err(crate::store::StoreError::Corrupt(format!(
                "some holders could not be checked ({kicked} disconnected)"
            )));
        }
        Ok(kicked)
    }
}
