//! Nodes sharing one database: a joining node leaves alone what live nodes
//! hold, and what a node held is released once its heartbeat lease runs out
//! (as after `kill -9`), on both back ends. Times are explicit, so the test
//! does not sleep through leases.

use beam_server::store::{Claim, NameKind, Released, TunnelKey};

use crate::support::test_store;

const LEASE: i64 = 6_000;

crate::both!(
    a_node_releases_only_what_dead_nodes_held,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let (store, _pg) = test_store(backend, dir.path()).await;
        store.migrate().await.unwrap();
        let t0 = 1_000_000;
        let op = store.ensure_operator(t0).await.unwrap();
        let token = store
            .insert_token(
                &crate::store::token(&[7; 32], op.user_id, op.org_id, None),
                t0,
            )
            .await
            .unwrap();
        // Node a serves `alpha`, node b serves `beta`.
        store.node_join("a", "", t0).await.unwrap();
        store.node_join("b", "", t0).await.unwrap();
        for (node, name) in [("a", "alpha"), ("b", "beta")] {
            let claim = Claim {
                kind: NameKind::Subdomain,
                name,
                token_id: token,
                org_id: op.org_id,
                new_lease_hash: name.as_bytes(),
                presented_lease_hash: None,
                session: name,
                node,
                now: t0,
            };
            assert!(store.claim(&claim).await.unwrap());
            let key = TunnelKey {
                org_id: op.org_id,
                user_id: op.user_id,
                kind: NameKind::Subdomain,
                name,
            };
            let row = store
                .tunnel_connected(key, name, &serde_json::json!({}), node, t0)
                .await
                .unwrap();
            assert_eq!(row.node.as_deref(), Some(node));
        }
        let status = |name: &'static str| {
            let store = store.clone();
            async move {
                let rows = store.tunnels(op.org_id).await.unwrap();
                rows.into_iter().find(|t| t.name == name).unwrap().status
            }
        };
        let free_for = |name: &'static str, now| Claim {
            kind: NameKind::Subdomain,
            name,
            token_id: token,
            org_id: op.org_id,
            new_lease_hash: b"someone else",
            presented_lease_hash: None,
            session: "intruder",
            node: "c",
            now,
        };

        // A third node joins: both nodes are alive, nothing is released.
        let t1 = t0 + 1_000;
        store.node_join("c", "", t1).await.unwrap();
        let none = store
            .release_orphans(t1 - LEASE, t1, t1 + 60_000)
            .await
            .unwrap();
        assert_eq!(none, Released::default());
        assert_eq!(status("alpha").await, "connected");
        assert!(
            !store.claim(&free_for("alpha", t1)).await.unwrap(),
            "alpha is live"
        );

        // b and c keep beating; a stops (killed). Within the lease nothing moves.
        let t2 = t0 + 5_000;
        for n in ["b", "c"] {
            assert!(store.node_heartbeat(n, t2).await.unwrap());
        }
        let none = store
            .release_orphans(t2 - LEASE, t2, t2 + 60_000)
            .await
            .unwrap();
        assert_eq!(none, Released::default());

        // Past a's lease: its name goes into its grace period and its tunnel is
        // disconnected; b's are untouched; a's row is gone.
        let t3 = t0 + 9_000;
        for n in ["b", "c"] {
            assert!(store.node_heartbeat(n, t3).await.unwrap());
        }
        let released = store
            .release_orphans(t3 - LEASE, t3, t3 + 60_000)
            .await
            .unwrap();
        assert_eq!(
            released,
            Released {
                names: 1,
                tunnels: 1
            }
        );
        assert_eq!(status("alpha").await, "disconnected");
        assert_eq!(status("beta").await, "connected");
        let alive: Vec<String> = store
            .nodes(t3 - LEASE)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(alive, ["b", "c"]);
        assert!(
            !store.node_heartbeat("a", t3).await.unwrap(),
            "a must join again"
        );
        // alpha is held for its client's lease during the grace period, then free.
        assert!(!store.claim(&free_for("alpha", t3)).await.unwrap());
        assert!(store.claim(&free_for("alpha", t3 + 60_001)).await.unwrap());
        assert!(
            !store.claim(&free_for("beta", t3 + 60_001)).await.unwrap(),
            "beta is live"
        );
    }
);
