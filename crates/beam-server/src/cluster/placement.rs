//! Which node holds a public name, from the store's reservations (the row a
//! claim writes atomically), cached briefly so a busy name costs one query
//! per second per node, not one per request. Lookups that miss the cache are
//! bounded, so a flood of made-up subdomains cannot queue more than a few
//! queries on the database, and busy names keep their last answer meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::store::{NameHolder, NameKind, Store, StoreError};

/// How long an answer is reused.
const TTL: Duration = Duration::from_secs(1);

/// Store lookups in flight at once per node.
const LOOKUPS: usize = 16;

/// How long a lookup for a name with no cached answer waits for a slot.
const QUEUE: Duration = Duration::from_millis(500);

/// Most names kept; past it the cache starts over (a flood of random names
/// must not grow memory).
const MAX_ENTRIES: usize = 100_000;

/// What a visitor asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A subdomain or TCP port.
    Name(NameKind, String),
    /// A custom domain (served by the tunnel that asked for it).
    Domain(String),
}

impl Target {
    /// The name a visitor sees in error pages.
    pub(crate) fn shown(&self) -> &str {
        match self {
            Self::Name(_, n) | Self::Domain(n) => n,
        }
    }
}

/// Where a name is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// By another live node, reachable at `addr`.
    Remote {
        /// Its node id.
        node: String,
        /// Its node-to-node address.
        addr: String,
    },
    /// Held by a connection that is not serving yet or any more: this node
    /// (the client is registering), a node whose lease ran out (its client is
    /// reconnecting elsewhere), or a node without a node address.
    Moving,
    /// Not held by any connection.
    Nowhere,
}

/// The cache of places.
pub(crate) struct Placement {
    cache: Mutex<HashMap<Target, (Place, Instant)>>,
    lookups: Semaphore,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            cache: Mutex::default(),
            lookups: Semaphore::new(LOOKUPS),
        }
    }
}

impl Placement {
    /// Where `name` is served, as seen from node `me` at `now` (unix ms),
    /// nodes silent since `alive_since` counting as dead.
    pub(crate) async fn find(
        &self,
        store: &Store,
        me: &str,
        target: &Target,
        alive_since: i64,
    ) -> Result<Place, StoreError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
            .cloned();
        if let Some((place, at)) = &cached
            && at.elapsed() < TTL
        {
            return Ok(place.clone());
        }
        // Lookups are bounded. A busy name whose answer just expired keeps
        // its last answer while a few requests ask again; a name nobody
        // asked about recently waits briefly for a lookup slot and is
        // otherwise not found.
        let _permit = match self.lookups.try_acquire() {
            Ok(p) => p,
            Err(_) => match cached {
                Some((place, _)) => return Ok(place),
                None => match tokio::time::timeout(QUEUE, self.lookups.acquire()).await {
                    Ok(Ok(p)) => p,
                    _ => return Ok(Place::Nowhere),
                },
            },
        };
        let holder = match target {
            Target::Name(kind, name) => store.name_holder(*kind, name).await?,
            Target::Domain(host) => store.domain_holder(host).await?,
        };
        let place = classify(holder, me, alive_since);
        // Only settled answers are kept: a moving name is asked again.
        if place != Place::Moving {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(target.clone(), (place.clone(), Instant::now()));
        }
        Ok(place)
    }

    /// Drops what is known about `target` (forwarding there failed).
    pub(crate) fn forget(&self, target: &Target) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(target);
    }
}

/// The place a stored holder stands for.
fn classify(holder: Option<NameHolder>, me: &str, alive_since: i64) -> Place {
    let Some(h) = holder else {
        return Place::Nowhere;
    };
    match h.node_id {
        Some(node)
            if node != me
                && !h.addr.is_empty()
                && h.heartbeat_at.is_some_and(|t| t >= alive_since) =>
        {
            Place::Remote { node, addr: h.addr }
        }
        _ => Place::Moving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With every lookup slot taken (a flood of made-up names), a busy name
    /// keeps its last answer and an unknown name is not found after a short
    /// wait; neither waits on the store.
    #[tokio::test]
    async fn with_every_lookup_slot_taken_busy_names_keep_their_last_answer() {
        let dir = std::env::temp_dir().join(format!("beam-placement-{}", rand::random::<u64>()));
        let store = Store::connect(&format!("sqlite://{}", dir.display()))
            .await
            .unwrap();
        // Time stands still from here: the wait below is measured exactly.
        tokio::time::pause();
        let p = Placement::default();
        let remote = Place::Remote {
            node: "b".into(),
            addr: "10.0.0.2:7000".into(),
        };
        let stale = Instant::now().checked_sub(TTL * 2).unwrap();
        let busy = Target::Name(NameKind::Subdomain, "busy".into());
        p.cache
            .lock()
            .unwrap()
            .insert(busy.clone(), (remote.clone(), stale));
        let _flood = p.lookups.try_acquire_many(LOOKUPS as u32).unwrap();
        assert_eq!(p.find(&store, "a", &busy, 0).await.unwrap(), remote);
        let started = Instant::now();
        let nobody = Target::Domain("nobody.example".into());
        let unknown = p.find(&store, "a", &nobody, 0).await;
        assert_eq!(unknown.unwrap(), Place::Nowhere);
        let waited = started.elapsed();
        assert!(waited >= QUEUE && waited < QUEUE * 2, "{waited:?}");
        let _ = std::fs::remove_file(&dir);
    }

    fn holder(node: &str, addr: &str, beat: Option<i64>) -> Option<NameHolder> {
        Some(NameHolder {
            node_id: Some(node.into()),
            addr: addr.into(),
            heartbeat_at: beat,
        })
    }

    #[test]
    fn a_name_is_remote_only_on_a_live_other_node_with_an_address() {
        let remote = Place::Remote {
            node: "b".into(),
            addr: "10.0.0.2:7000".into(),
        };
        assert_eq!(classify(None, "a", 100), Place::Nowhere);
        assert_eq!(
            classify(holder("b", "10.0.0.2:7000", Some(150)), "a", 100),
            remote
        );
        // Its lease ran out, or its row is gone: the client is moving.
        assert_eq!(
            classify(holder("b", "10.0.0.2:7000", Some(50)), "a", 100),
            Place::Moving
        );
        assert_eq!(classify(holder("b", "", None), "a", 100), Place::Moving);
        // Held here but not registered yet.
        assert_eq!(
            classify(holder("a", "10.0.0.1:7000", Some(150)), "a", 100),
            Place::Moving
        );
        // A node without a node address cannot be forwarded to.
        assert_eq!(
            classify(holder("b", "", Some(150)), "a", 100),
            Place::Moving
        );
    }
}
