//! The store against both back ends: SQLite in a temp dir and a throwaway database
//! on the machine's PostgreSQL (`BEAM_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use beam_server::accounts::scope::Scopes;
use beam_server::store::{Claim, NameKind, NewToken, Store, TokenKind, now_ms};

mod full;
mod nodes;
mod records;

use crate::support::{Backend, PgDb, test_store};
use records::{accounts_and_records, certificates};

/// Migrations shipped with this version.
const MIGRATIONS: usize = 13;

pub(super) fn token<'a>(
    hash: &'a [u8],
    user: i64,
    org: i64,
    expires_at: Option<i64>,
) -> NewToken<'a> {
    NewToken {
        hash,
        description: "t",
        user_id: user,
        org_id: org,
        scopes: Scopes::all(),
        kind: TokenKind::Api,
        expires_at,
        environment_id: None,
    }
}

async fn exercise(store: Store) {
    // Migrations are idempotent.
    assert_eq!(store.migrate().await.unwrap(), MIGRATIONS);
    assert_eq!(store.migrate().await.unwrap(), 0);
    store.ping().await.unwrap();
    let now = now_ms();
    certificates(&store, now).await;
    let operator = store.ensure_operator(now).await.unwrap();
    assert_eq!(
        store.ensure_operator(now).await.unwrap(),
        operator,
        "created once"
    );
    let (user, org) = (operator.user_id, operator.org_id);

    // Tokens: insert is idempotent per hash; lookups by hash.
    let a = store
        .insert_token(&token(&[1; 32], user, org, None), now)
        .await
        .unwrap();
    assert_eq!(
        store
            .insert_token(&token(&[1; 32], user, org, None), now)
            .await
            .unwrap(),
        a
    );
    assert_eq!(store.count_tokens().await.unwrap(), 1);
    let row = store.find_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((row.id, row.hash.as_slice()), (a, &[1u8; 32][..]));
    assert_eq!(
        (row.user_id, row.org_id, row.scopes),
        (user, org, Scopes::all())
    );
    assert!(store.find_token(&[2; 32]).await.unwrap().is_none());
    store.touch_token(a, now).await.unwrap();
    let b = store
        .insert_token(&token(&[2; 32], user, org, Some(now + 1000)), now)
        .await
        .unwrap();

    let claim = |name: &'static str,
                 token_id,
                 lease: &'static [u8],
                 presented: Option<&'static [u8]>,
                 session: &'static str,
                 now| Claim {
        kind: NameKind::Subdomain,
        name,
        token_id,
        org_id: org,
        new_lease_hash: lease,
        presented_lease_hash: presented,
        session,
        node: "n1",
        now,
    };
    // Free name: claimed. Held name: refused, even for the same token without lease.
    assert!(
        store
            .claim(&claim("x", a, b"L1", None, "s1", now))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim(&claim("x", a, b"L2", None, "s2", now))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim(&claim("x", b, b"L2", Some(b"L1"), "s2", now))
            .await
            .unwrap(),
        "a lease is bound to its token"
    );
    // The lease holder takes it over (even while it still looks connected).
    assert!(
        store
            .claim(&claim("x", a, b"L3", Some(b"L1"), "s3", now))
            .await
            .unwrap()
    );
    // The old session's release does nothing; the current one's starts the grace period.
    store
        .release(NameKind::Subdomain, "x", "s1", now + 10)
        .await
        .unwrap();
    assert!(
        !store
            .claim(&claim("x", b, b"L4", None, "s4", now + 20))
            .await
            .unwrap(),
        "still connected"
    );
    store
        .release(NameKind::Subdomain, "x", "s3", now + 100)
        .await
        .unwrap();
    assert!(
        !store
            .claim(&claim("x", b, b"L4", None, "s4", now + 50))
            .await
            .unwrap(),
        "in grace"
    );
    assert!(
        store
            .claim(&claim("x", b, b"L4", None, "s4", now + 101))
            .await
            .unwrap(),
        "grace over"
    );
    // Same name in another namespace is independent.
    let port = Claim {
        kind: NameKind::TcpPort,
        ..claim("x", a, b"L5", None, "s5", now)
    };
    assert!(store.claim(&port).await.unwrap());
    // A node that never joined holds nothing live: its names are released
    // (as a new process releases an earlier one's) / purge_expired.
    let released = store.release_orphans(now, now, now + 5).await.unwrap();
    assert_eq!(released.names, 2);
    assert_eq!(store.purge_expired(now + 6).await.unwrap(), 2);
    store.forget(NameKind::Subdomain, "x", "s4").await.unwrap();
}

crate::both!(store_basics, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let (store, _pg) = test_store(backend, dir.path()).await;
    let expected = if backend == Backend::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(store.backend(), expected);
    exercise(store.clone()).await;
    accounts_and_records(store).await;
});

/// Nodes starting together against one PostgreSQL migrate one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_postgres_apply_once() {
    let (_db, url) = PgDb::create().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            Store::connect(&url).await.unwrap().migrate().await.unwrap()
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, MIGRATIONS, "each migration ran exactly once");
}

#[tokio::test]
async fn unsupported_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://x").await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}

crate::both!(audit_entries_filter_page_and_expire, |backend| async move {
    use beam_server::store::{AuditFilter, NewAuditEntry};
    let dir = tempfile::tempdir().unwrap();
    let (store, _pg) = test_store(backend, dir.path()).await;
    store.migrate().await.unwrap();
    let now = now_ms();
    let ada = store
        .create_user("ada@example.com", "Ada", None, now)
        .await
        .unwrap()
        .unwrap();
    let entry = |org_id: i64, at: i64, kind: &str, user_id: Option<i64>| NewAuditEntry {
        at,
        org_id,
        user_id,
        token_id: None,
        kind: kind.into(),
        project: Some("shop".into()),
        environment: Some("production".into()),
        source: "10.0.0.7".into(),
        outcome: "ok".into(),
        detail: serde_json::json!({"rows": 3}),
    };
    let day = 86_400_000;
    store
        .append_audit(&[
            entry(1, now - 100 * day, "sync", Some(ada)),
            entry(1, now - 99 * day, "sync.suggest", Some(ada)),
            entry(1, now, "logs", Some(ada)),
            entry(1, now, "syncing", None),
            entry(2, now - 100 * day, "sync", None),
        ])
        .await
        .unwrap();
    let org1 = AuditFilter {
        org_id: 1,
        ..AuditFilter::default()
    };
    let all = store.audit_entries(&org1, None, None, 100).await.unwrap();
    assert_eq!(all.len(), 4, "nothing from another organization");
    assert_eq!(all[0].kind, "syncing", "newest first");
    assert_eq!(all[1].user_email.as_deref(), Some("ada@example.com"));
    assert_eq!(all[1].detail, serde_json::json!({"rows": 3}));
    // `sync` is sync and sync.*, not every kind that starts with "sync".
    let sync = AuditFilter {
        kind: Some("sync".into()),
        ..org1.clone()
    };
    let kinds: Vec<String> = store
        .audit_entries(&sync, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["sync.suggest", "sync"]);
    // Export order and cursor; time window.
    let asc = store.audit_entries(&org1, None, Some(0), 2).await.unwrap();
    assert_eq!(asc[0].kind, "sync");
    assert!(asc[0].id < asc[1].id);
    let older = store
        .audit_entries(&org1, Some(all[1].id), None, 100)
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    let recent = AuditFilter {
        since: Some(now - day),
        user_email: Some("ada@example.com".into()),
        ..org1.clone()
    };
    assert_eq!(
        store
            .audit_entries(&recent, None, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    // Retention: 30 days deletes the two old entries of org 1 and org 2's.
    assert_eq!(store.purge_audit(now - 30 * day).await.unwrap(), 3);
    assert_eq!(
        store
            .audit_entries(&org1, None, None, 100)
            .await
            .unwrap()
            .len(),
        2
    );
});
