//! The promise of sync as a property: for random tables, rows and policies,
//! the output never contains a value of a column the policy does not keep.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Chunk, SyncQuery, SyncSource};
use crate::proddb::{DbLimits, ProdDb};

const ACTIONS: [&str; 9] = [
    "keep",
    "drop",
    "null",
    "hash",
    "mask",
    "fixed:redacted",
    "fake:email",
    "fake:name",
    "fake:text",
];

/// Pulls every row of `table` through the policy; the NDJSON text.
async fn pull(dir: &std::path::Path, policy: &str, create: &str, inserts: &[String]) -> String {
    use sqlx::Connection;
    let path = dir.join("prod.db");
    let url = format!("sqlite://{}", path.display());
    {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut c = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(create.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        for stmt in inserts {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.clone()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let source = SyncSource {
        db: ProdDb::new(&url, DbLimits::default()).unwrap(),
        policy: policy_path,
        key: beam_proto::Secret::new("property-test-pseudonym-key".to_string()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let q = SyncQuery {
        table: "t".into(),
        ..SyncQuery::default()
    };
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            if let Ok(Chunk::Data(b)) = c {
                out.extend_from_slice(&b);
            }
        }
        String::from_utf8(out).unwrap()
    });
    source.stream(&q, &tx, 4096).await.unwrap();
    drop(tx);
    reader.await.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn sync_never_outputs_a_value_the_policy_does_not_keep(
        actions in prop::collection::vec(0..ACTIONS.len(), 1..6),
        rows in prop::collection::vec(prop::collection::vec("[A-Za-z0-9@. +-]{12,24}", 6), 1..8),
    ) {
        let cols: Vec<String> = (0..actions.len()).map(|i| format!("c{i}")).collect();
        let create = format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, {})",
            cols.iter().map(|c| format!("{c} TEXT")).collect::<Vec<_>>().join(", ")
        );
        let mut policy: BTreeMap<&str, &str> = BTreeMap::new();
        policy.insert("id", "keep");
        for (c, a) in cols.iter().zip(&actions) {
            policy.insert(c, ACTIONS[*a]);
        }
        let policy = format!(
            "[tables.t]\ncolumns = {{ {} }}\n",
            policy.iter().map(|(c, a)| format!("{c} = \"{a}\"")).collect::<Vec<_>>().join(", ")
        );
        // Every cell unique, so a value found in the output can only have
        // come from its own column.
        let cell = |r: usize, c: usize, v: &str| format!("r{r}c{c}-{v}");
        let inserts: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(r, vals)| {
                let vs: Vec<String> = (0..cols.len())
                    .map(|c| format!("'{}'", cell(r, c, &vals[c])))
                    .collect();
                format!("INSERT INTO t VALUES ({r}, {})", vs.join(", "))
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(pull(dir.path(), &policy, &create, &inserts));
        prop_assert_eq!(out.lines().count(), rows.len());
        for (r, vals) in rows.iter().enumerate() {
            for (c, a) in actions.iter().enumerate() {
                let raw = cell(r, c, &vals[c]);
                if ACTIONS[*a] == "keep" {
                    prop_assert!(out.contains(&raw), "kept {raw} is missing: {out}");
                } else {
                    prop_assert!(
                        !out.contains(&raw),
                        "column c{c} is `{}` but its value {raw} left: {out}",
                        ACTIONS[*a]
                    );
                }
            }
        }
    }
}
