//! The store against both back ends: SQLite in a temp dir and a throwaway database
//! on the machine's PostgreSQL (`BEAM_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use beam_server::store::{Claim, NameKind, Store, now_ms};
use sqlx::Connection;

/// A fresh PostgreSQL database, dropped when the guard goes out of scope.
struct PgDb {
    admin: String,
    name: String,
}

impl PgDb {
    async fn create() -> (Self, String) {
        let admin = std::env::var("BEAM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("beam_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must be running for store tests ({admin}): {e}")
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("BEAM_TEST_POSTGRES needs a database path"),
        };
        (Self { admin, name }, url)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop from a separate thread: Drop cannot await inside the test runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

async fn exercise(store: Store) {
    // Migrations are idempotent.
    assert_eq!(store.migrate().await.unwrap(), 1);
    assert_eq!(store.migrate().await.unwrap(), 0);
    store.ping().await.unwrap();

    // Tokens: insert is idempotent per hash; lookups by hash.
    let now = now_ms();
    let a = store.insert_token(&[1; 32], "a", None, now).await.unwrap();
    assert_eq!(
        store
            .insert_token(&[1; 32], "again", None, now)
            .await
            .unwrap(),
        a
    );
    assert_eq!(store.count_tokens().await.unwrap(), 1);
    let row = store.find_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((row.id, row.hash.as_slice()), (a, &[1u8; 32][..]));
    assert!(store.find_token(&[2; 32]).await.unwrap().is_none());
    store.touch_token(a, now).await.unwrap();
    let b = store
        .insert_token(&[2; 32], "b", Some(now + 1000), now)
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
        new_lease_hash: lease,
        presented_lease_hash: presented,
        session,
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
    // release_all / purge_expired.
    assert_eq!(store.release_all(now + 5).await.unwrap(), 2);
    assert_eq!(store.purge_expired(now + 6).await.unwrap(), 2);
    store.forget(NameKind::Subdomain, "x", "s4").await.unwrap();
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    exercise(store).await;
}

#[tokio::test]
async fn store_on_postgres() {
    let (_db, url) = PgDb::create().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    exercise(store).await;
}

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
    assert_eq!(total, 1, "the one migration ran exactly once");
}

#[tokio::test]
async fn unsupported_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://x").await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}
