//! Accounts, API reservations, tunnel records, domains, analytics and
//! certificates in the store.

use beam_server::accounts::scope::Role;
use beam_server::store::{
    AnalyticsScope, Check, Claim, DomainKind, DomainStatus, Limits, MinuteTotals, NameKind,
    NewDomain, RequestRecord, SeriesWindow, Store, TunnelKey, hour_of, minute_of, month_start,
    now_ms,
};

use super::token;

/// Accounts, API reservations, tunnel records, domains and analytics.
pub(super) async fn accounts_and_records(store: Store) {
    let now = now_ms();
    // Users: emails are unique case-insensitively.
    let alice = store
        .create_user("Alice@Example.com", "Alice", Some("$argon2id$x"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .create_user("alice@example.com", "Other", None, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .user_by_email("ALICE@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        alice
    );
    let bob = store
        .create_user("bob@example.com", "Bob", None, now)
        .await
        .unwrap()
        .unwrap();
    let limits = Limits {
        max_tunnels: Some(2),
        max_custom_domains: Some(1),
        max_members: None,
        max_bandwidth_bytes: Some(100),
        max_tcp_ports: Some(3),
        max_reserved_names: Some(4),
    };
    let org_a = store.create_org("a", limits, now).await.unwrap();
    let org_b = store.create_org("b", Limits::default(), now).await.unwrap();
    assert!(
        store
            .add_member(org_a, alice, Role::Owner, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_member(org_a, alice, Role::Viewer, now)
            .await
            .unwrap(),
        "already a member"
    );
    assert!(
        store
            .add_member(org_b, bob, Role::Owner, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .add_member(org_a, bob, Role::Viewer, now + 5)
            .await
            .unwrap()
    );
    assert_eq!(store.role(org_a, bob).await.unwrap(), Some(Role::Viewer));
    assert_eq!(
        store.home_org(bob).await.unwrap().unwrap().0,
        org_b,
        "oldest membership"
    );
    assert_eq!(store.members(org_a).await.unwrap().len(), 2);
    assert_eq!(store.org(org_a).await.unwrap().unwrap().limits, limits);

    // Tokens: listing, revoking only one's own.
    let ta = store
        .insert_token(&token(&[7; 32], alice, org_a, None), now)
        .await
        .unwrap();
    let tb = store
        .insert_token(&token(&[8; 32], bob, org_b, None), now)
        .await
        .unwrap();
    assert_eq!(store.list_tokens(alice).await.unwrap().len(), 1);
    assert!(
        !store.revoke_token(ta, bob, now).await.unwrap(),
        "not bob's token"
    );
    assert!(store.revoke_token(ta, alice, now).await.unwrap());
    assert!(
        !store
            .find_token(&[7; 32])
            .await
            .unwrap()
            .unwrap()
            .is_live(now)
    );

    // API reservations belong to an organization: others cannot claim them.
    assert!(
        store
            .reserve(NameKind::Subdomain, "mine", org_b, tb, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .reserve(NameKind::Subdomain, "mine", org_a, ta, now)
            .await
            .unwrap()
    );
    let claim = |org, token_id, session: &'static str| Claim {
        kind: NameKind::Subdomain,
        name: "mine",
        token_id,
        org_id: org,
        new_lease_hash: b"L",
        presented_lease_hash: None,
        session,
        node: "n1",
        now: now + 1,
    };
    assert!(
        !store.claim(&claim(org_a, ta, "x")).await.unwrap(),
        "other org"
    );
    assert!(
        store.claim(&claim(org_b, tb, "y")).await.unwrap(),
        "owner org"
    );
    store
        .release(NameKind::Subdomain, "mine", "y", now + 2)
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired(now + 10_000).await.unwrap(),
        0,
        "reserved names survive"
    );
    store
        .unreserve(NameKind::Subdomain, "mine", org_b, None)
        .await
        .unwrap();
    assert!(
        store
            .reserve(NameKind::Subdomain, "mine", org_a, ta, now)
            .await
            .unwrap(),
        "free again"
    );
    // Ending a reservation never frees a name a connection still holds.
    let live = Claim {
        name: "held",
        ..claim(org_b, tb, "live")
    };
    assert!(
        store
            .reserve(NameKind::Subdomain, "held", org_b, tb, now)
            .await
            .unwrap()
    );
    assert!(store.claim(&live).await.unwrap());
    store
        .unreserve(NameKind::Subdomain, "held", org_b, None)
        .await
        .unwrap();
    assert!(
        !store
            .reserve(NameKind::Subdomain, "held", org_a, ta, now)
            .await
            .unwrap(),
        "still live"
    );
    store
        .unreserve(NameKind::Subdomain, "held", org_b, Some("live"))
        .await
        .unwrap();
    assert!(
        store
            .reserve(NameKind::Subdomain, "held", org_a, ta, now)
            .await
            .unwrap(),
        "stopped session"
    );

    // Tunnel records: one row per (org, kind, name); connect/disconnect/pause.
    let key = TunnelKey {
        org_id: org_a,
        user_id: alice,
        kind: NameKind::Subdomain,
        name: "web",
    };
    let t = store
        .tunnel_connected(
            key,
            "http://web.localhost",
            &serde_json::json!({"client": "x"}),
            "n1",
            now,
        )
        .await
        .unwrap();
    assert_eq!((t.status.as_str(), t.paused), ("connected", false));
    let again = store
        .tunnel_connected(
            key,
            "http://web.localhost",
            &serde_json::json!({}),
            "n1",
            now + 1,
        )
        .await
        .unwrap();
    assert_eq!(again.id, t.id, "same row on reconnect");
    assert_eq!(store.count_connected(org_a).await.unwrap(), 1);
    assert!(store.set_paused(org_a, t.id, true).await.unwrap());
    assert!(
        !store.set_paused(org_b, t.id, true).await.unwrap(),
        "other org"
    );
    assert_eq!(
        store.tunnel(org_a, t.id).await.unwrap().unwrap().status,
        "paused"
    );
    assert!(store.tunnel(org_b, t.id).await.unwrap().is_none());

    // Analytics: totals are additive, percentiles come from records.
    let rec = |status: u16, duration_us: i64, path: &str| RequestRecord {
        tunnel_id: t.id,
        org_id: org_a,
        ts: now,
        method: "GET".into(),
        path: path.into(),
        status,
        duration_us,
        bytes_in: 10,
        bytes_out: 100,
        client_net: "127.0.0.0/24".into(),
        headers: "[]".into(),
    };
    let records: Vec<_> = (1..=20)
        .map(|i| {
            rec(
                if i == 20 { 502 } else { 200 },
                i * 1000,
                if i % 2 == 0 { "/a" } else { "/b" },
            )
        })
        .collect();
    let totals = MinuteTotals {
        tunnel_id: t.id,
        org_id: org_a,
        minute: minute_of(now),
        requests: 20,
        errors: 1,
        bytes_in: 200,
        bytes_out: 2000,
        duration_us: 210_000,
    };
    store
        .flush_analytics("batch-1", &records, std::slice::from_ref(&totals))
        .await
        .unwrap();
    store
        .flush_analytics("batch-2", &[], std::slice::from_ref(&totals))
        .await
        .unwrap();
    // A retried batch (its first commit went through, the answer did not) counts once.
    store
        .flush_analytics("batch-2", &[], &[totals])
        .await
        .unwrap();
    let a = store
        .analytics(AnalyticsScope::Tunnel(t.id), "1h", now - 3_600_000)
        .await
        .unwrap();
    assert_eq!(
        (a.requests, a.errors, a.bytes_in, a.bytes_out),
        (40, 2, 400, 4000)
    );
    assert_eq!((a.latency_p50_ms, a.latency_p95_ms), (10, 19));
    assert_eq!(a.top_paths[0].requests, 10);
    assert_eq!(a.status_codes.get(&200), Some(&19));
    assert_eq!(a.status_codes.get(&502), Some(&1));
    let org_wide = store
        .analytics(AnalyticsScope::Org(org_a), "1h", now - 3_600_000)
        .await
        .unwrap();
    assert_eq!(org_wide.requests, 40);
    let row = store.tunnel(org_a, t.id).await.unwrap().unwrap();
    assert_eq!((row.requests, row.bytes_out), (40, 4000));
    let usage = store.bandwidth_usage(month_start(now)).await.unwrap();
    assert_eq!(usage, vec![(org_a, 4400, 100)]);
    // Series: the minute's totals land in the step holding `now`, in 1-minute
    // steps (per-minute table) and 1-hour steps (hourly table) alike; the
    // percentiles come from the 20 sampled records.
    for step in [60_000, 300_000, 3_600_000] {
        let points = store
            .series(
                AnalyticsScope::Tunnel(t.id),
                SeriesWindow::ending_at(now, step, 12),
            )
            .await
            .unwrap();
        assert_eq!(points.len(), 12);
        let last = points.last().unwrap();
        assert_eq!(
            (last.requests, last.errors, last.bytes_out, last.samples),
            (40, 2, 4000, 20),
            "step {step}"
        );
        assert_eq!((last.p50_ms, last.p95_ms), (Some(10.0), Some(19.0)));
        assert!(
            points[..11]
                .iter()
                .all(|p| p.requests == 0 && p.p50_ms.is_none())
        );
    }
    let org_points = store
        .series(
            AnalyticsScope::Org(org_b),
            SeriesWindow::ending_at(now, 60_000, 5),
        )
        .await
        .unwrap();
    assert!(
        org_points.iter().all(|p| p.requests == 0),
        "other org sees nothing"
    );

    // Domains: host names are unique across organizations.
    let d = store
        .create_domain(
            NewDomain {
                org_id: org_a,
                hostname: "app.example.com",
                kind: DomainKind::Custom,
                status: DomainStatus::Pending,
                verification_token: "tok",
            },
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .create_domain(
                NewDomain {
                    org_id: org_b,
                    hostname: "app.example.com",
                    kind: DomainKind::Custom,
                    status: DomainStatus::Pending,
                    verification_token: "tok2"
                },
                now
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_custom_domains(org_a).await.unwrap(), 1);
    assert_eq!(store.domains_due(now + 1, 10).await.unwrap().len(), 1);
    store
        .record_check(
            d.id,
            Check {
                status: DomainStatus::Active,
                verified: true,
                error: None,
                now,
            },
        )
        .await
        .unwrap();
    let d2 = store
        .domain_by_host("app.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d2.status.as_str(), d2.verified_at), ("active", Some(now)));
    store.attach_domain(d.id, t.id).await.unwrap();
    assert!(store.domain(org_b, d.id).await.unwrap().is_none());
    assert!(store.delete_domain(org_a, d.id).await.unwrap().is_some());

    // Deleting a tunnel takes its analytics; retention purges old rows.
    store.tunnel_disconnected(t.id, "n1", now).await.unwrap();
    assert_eq!(
        store
            .purge_requests(now + 1, hour_of(now) + 1, minute_of(now) + 1)
            .await
            .unwrap(),
        20
    );
    assert_eq!(store.purge_tunnels(now + 1).await.unwrap(), 1);
    // The month's bandwidth stays with the organization.
    let usage = store.bandwidth_usage(month_start(now)).await.unwrap();
    assert_eq!(usage, vec![(org_a, 4400, 100)]);
    assert!(store.tunnel(org_a, t.id).await.unwrap().is_none());
}

/// Edge certificates, ACME accounts and challenge answers on both back ends.
pub(super) async fn certificates(store: &Store, now: i64) {
    let row = |host: &str, not_after: i64, updated_at: i64| beam_server::store::CertRow {
        hostname: host.into(),
        cert_pem: format!("cert of {host}"),
        key_pem: "key".into(),
        not_after,
        updated_at,
    };
    store
        .put_certificate(&row("a.example", now + 10, now))
        .await
        .unwrap();
    store
        .put_certificate(&row("b.example", now + 99_000, now + 1))
        .await
        .unwrap();
    // Replacing keeps one row per host.
    store
        .put_certificate(&row("a.example", now + 20, now + 2))
        .await
        .unwrap();
    let all = store.certificates_since(0).await.unwrap();
    let hosts: Vec<_> = all
        .iter()
        .map(|r| (r.hostname.as_str(), r.not_after))
        .collect();
    assert_eq!(
        hosts,
        [("b.example", now + 99_000), ("a.example", now + 20)]
    );
    assert_eq!(store.certificates_since(now + 1).await.unwrap().len(), 1);
    assert_eq!(
        store.certificates_expiring(now + 1000).await.unwrap(),
        ["a.example"]
    );

    assert_eq!(
        store.acme_account("https://acme.test/dir").await.unwrap(),
        None
    );
    store
        .put_acme_account("https://acme.test/dir", "{\"first\":1}", now)
        .await
        .unwrap();
    store
        .put_acme_account("https://acme.test/dir", "{\"second\":2}", now)
        .await
        .unwrap();
    assert_eq!(
        store
            .acme_account("https://acme.test/dir")
            .await
            .unwrap()
            .as_deref(),
        Some("{\"first\":1}"),
        "the first account wins"
    );

    store
        .put_challenge("t1", "t1.key", now + 1000)
        .await
        .unwrap();
    assert_eq!(
        store.challenge("t1", now).await.unwrap().as_deref(),
        Some("t1.key")
    );
    assert_eq!(
        store.challenge("t1", now + 1000).await.unwrap(),
        None,
        "expired"
    );
    store.delete_challenge("t1", now).await.unwrap();
    assert_eq!(store.challenge("t1", now).await.unwrap(), None);
}
