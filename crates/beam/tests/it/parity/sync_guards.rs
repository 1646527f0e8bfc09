//! What `beam sync` promises production: filters cannot be used as an oracle
//! on columns the policy hides, the database is reached through a small
//! read-only pool with a statement timeout and a cap on concurrent syncs,
//! filters are typed (so indexes apply) and rows come in primary-key order;
//! and what it promises the laptop: SQL and CSV output that reads back exactly.

use crate::support::parity::setup;
use crate::support::*;

/// One action per column, to try filters on each.
const POLICY: &str = r#"
[tables.people]
columns = { id = "keep", plan = "keep", ssn = "mask", email = "fake:email", nick = "hash", secret = "drop", pin = "null", country = "fixed:XX", note = "keep", code = "keep" }
[tables.contacts]
columns = { email = "hash", plan = "keep" }
[tables.notes]
columns = { id = "keep", person_id = "hash", body = "keep" }
[tables.slow]
columns = { id = "keep", z = "keep" }
[tables.writes]
columns = { id = "keep", n = "keep" }
[tables.big]
columns = { id = "keep", z = "keep" }
"#;

/// A server, a PostgreSQL "production" database with `people` (1,200 rows,
/// an index on `plan`), and an agent with [`POLICY`].
struct Fixture {
    server: TestServer,
    _db: PgDb,
    db_url: String,
    dev: String,
    home: tempfile::TempDir,
    _agent: crate::support::parity::Watched,
}

impl Fixture {
    async fn start(agent_args: &[&str]) -> Self {
        let server = TestServer::start().await;
        let (admin, agent) = setup(&server).await;
        let dev = server.api_token(&admin, &["data:read"]).await;
        let (db, db_url) = PgDb::create().await;
        {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db_url).await.unwrap();
            sqlx::raw_sql(
                r#"CREATE TABLE people (id bigint PRIMARY KEY, plan text, ssn text, email text,
                     nick text, secret text, pin text, country text, note text, code varchar(5));
                   INSERT INTO people SELECT i, CASE WHEN i = 777 THEN 'rare' ELSE 'common' END,
                     '123-45-' || lpad(i::text, 4, '0'), 'user' || i || '@example.com', 'nick' || i,
                     's3cret' || i, lpad((i % 10000)::text, 4, '0'), 'DE', NULL
                     FROM generate_series(1, 1200) i;
                   UPDATE people SET code = 'abcde' WHERE id = 1;
                   UPDATE people SET country = NULL WHERE id = 2;
                   CREATE INDEX people_plan ON people (plan);
                   CREATE TABLE contacts (email text PRIMARY KEY, plan text);
                   INSERT INTO contacts VALUES ('zed@example.com', 'pro'), ('amy@example.com', 'free');
                   ANALYZE people;
                   CREATE TABLE notes (id integer PRIMARY KEY, person_id bigint REFERENCES people(id), body text);
                   INSERT INTO notes VALUES (1, 5, 'hello');
                   CREATE VIEW slow AS SELECT 1 AS id, 'z' AS z FROM pg_sleep(3);
                   CREATE VIEW big AS SELECT i AS id, repeat('x', 1000) AS z FROM generate_series(1, 100000) i;
                   CREATE TABLE audit (n integer);
                   CREATE FUNCTION bump() RETURNS integer LANGUAGE sql AS 'INSERT INTO audit VALUES (1) RETURNING 1';
                   CREATE VIEW writes AS SELECT 1 AS id, bump() AS n;"#,
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        let home = tempfile::tempdir().unwrap();
        let policy = home.path().join("policy.toml");
        std::fs::write(&policy, POLICY).unwrap();
        let policy_arg = policy.display().to_string();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--database-env",
            "PROD_DB",
            "--sync-policy",
            &policy_arg,
        ];
        args.extend_from_slice(agent_args);
        let agent = crate::support::parity::start_agent(
            &server,
            home.path(),
            &agent,
            &args,
            &[
                ("PROD_DB", &db_url),
                ("BEAM_SYNC_KEY", "0123456789abcdef-pseudonym-key"),
            ],
        )
        .await;
        Self {
            server,
            _db: db,
            db_url,
            dev,
            home,
            _agent: agent,
        }
    }

    /// `beam sync --project shop/production ARGS`: exit code, stdout, stderr.
    fn sync(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = crate::support::beam(self.home.path());
        c.args(["sync", "--project", "shop/production"])
            .args(args)
            .args(["--server", &self.server.tunnel.to_string()])
            .args(["--fingerprint", &self.server.fingerprint])
            .env("BEAM_TOKEN", &self.dev);
        crate::support::output(c)
    }

    /// `GET /api/projects/shop/production/sync?QUERY` as the developer.
    async fn api_sync(&self, query: &str) -> Reply {
        self.server
            .api_raw(
                "GET",
                &format!("/api/projects/shop/production/sync?{query}"),
                Some(&self.dev),
                None,
                Vec::new(),
            )
            .await
    }

    async fn pg(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.db_url).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_may_only_use_columns_the_policy_keeps() {
    let f = Fixture::start(&[]).await;
    // Every hiding action is refused for --where, naming column and action.
    for (col, action) in [
        ("ssn", "mask"),
        ("email", "fake:email"),
        ("nick", "hash"),
        ("secret", "drop"),
        ("pin", "null"),
        ("country", "fixed:XX"),
    ] {
        let (code, out, err) = f.sync(&["--table", "people", "--where", &format!("{col}=x")]);
        assert_eq!((code, out.as_str()), (1, ""), "--where {col}: {err}");
        assert!(
            err.contains(&format!("people.{col} is `{action}`"))
                && err.contains("filters may only use columns the policy keeps"),
            "--where {col}: {err}"
        );
        // The same through `in=` (what --related sends).
        let r = f
            .api_sync(&format!("table=people&in={col}%3Dx&in={col}%3Dy"))
            .await;
        assert_eq!(r.status, http::StatusCode::BAD_REQUEST, "in {col}: {r:?}");
        let msg = r.json.to_string();
        assert!(
            msg.contains(&format!("people.{col} is `{action}`")),
            "{msg}"
        );
    }
    // A guess that is right gets the same refusal as one that is wrong.
    let (_, _, right) = f.sync(&["--table", "people", "--where", "ssn=123-45-0007"]);
    let (_, _, wrong) = f.sync(&["--table", "people", "--where", "ssn=999-99-9999"]);
    assert_eq!(right, wrong);
    // Kept columns filter as before.
    let (code, out, err) = f.sync(&[
        "--table",
        "people",
        "--where",
        "plan=rare",
        "--select",
        "id",
    ]);
    assert_eq!((code, out.as_str()), (0, "{\"id\":777}\n"), "{err}");
    let (code, out, _) = f.sync(&["--table", "people", "--where", "id=3", "--select", "id"]);
    assert_eq!((code, out.as_str()), (0, "{\"id\":3}\n"));
    // Compared in the column's type without its modifier: a longer value
    // is not cut to `varchar(5)` and so does not match.
    let (code, out, _) = f.sync(&[
        "--table",
        "people",
        "--where",
        "code=abcdef",
        "--select",
        "id",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (_, out, _) = f.sync(&[
        "--table",
        "people",
        "--where",
        "code=abcde",
        "--select",
        "id",
    ]);
    assert_eq!(out, "{\"id\":1}\n");
    // `fixed` hides even whether a value exists (row 2's country is NULL).
    let (_, out, _) = f.sync(&[
        "--table",
        "people",
        "--where",
        "id=2",
        "--select",
        "id,country",
    ]);
    assert_eq!(out, "{\"country\":\"XX\",\"id\":2}\n");
    // A hidden primary key does not order rows: --skip would rank them by
    // the hidden value, so it is refused.
    let (code, _, err) = f.sync(&["--table", "contacts", "--skip", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("contacts's key is not kept"), "{err}");
    let (code, out, err) = f.sync(&["--table", "contacts", "--select", "plan"]);
    assert_eq!((code, out.lines().count()), (0, 2), "{err}");
    // A value the column's type cannot hold is the caller's error.
    let (code, _, err) = f.sync(&["--table", "people", "--where", "id=abc"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not fit its column's type"), "{err}");
    // A foreign key whose column is hashed is not followed, and says so.
    let into = format!("sqlite://{}", f.home.path().join("dev.db").display());
    let (code, _, err) = f.sync(&["--table", "notes", "--into", &into, "--related"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("not following person_id → people.id: person_id is not kept"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_come_in_key_order_through_a_typed_indexed_read_only_pool() {
    let f = Fixture::start(&[]).await;
    // Integer keys in numeric order (text order would be 1, 10, 100, 1000, …).
    let (code, out, err) = f.sync(&["--table", "people", "--select", "id", "--limit", "12"]);
    assert_eq!(code, 0, "{err}");
    let ids: Vec<i64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    let (_, out, _) = f.sync(&["--table", "people", "--select", "id", "--skip", "1195"]);
    assert_eq!(out.lines().count(), 5);
    assert!(out.starts_with("{\"id\":1196}"), "{out}");

    // The filter on the indexed column uses the index: PostgreSQL counts
    // the scans of people_plan.
    let mut pg = f.pg().await;
    let before = index_scans(&mut pg).await;
    let (code, out, _) = f.sync(&[
        "--table",
        "people",
        "--where",
        "plan=rare",
        "--select",
        "id",
    ]);
    assert_eq!((code, out.as_str()), (0, "{\"id\":777}\n"));
    let mut after = before;
    for _ in 0..150 {
        // An idle backend reports its statistics within about 10 s.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut pg)
            .await
            .unwrap();
        after = index_scans(&mut pg).await;
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        after > before,
        "people_plan was not used ({before} → {after})"
    );

    // Several syncs and a health check share the agent's pool: its
    // connections stay open between requests, and never exceed the bound.
    for _ in 0..4 {
        let (code, _, err) = f.sync(&["--table", "people", "--limit", "1"]);
        assert_eq!(code, 0, "{err}");
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'beam-agent' AND datname = current_database()",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert!((1..=4).contains(&n), "{n} agent connections");

    // Every statement is read-only: a view that writes fails, and wrote nothing.
    let (code, _, err) = f.sync(&["--table", "writes"]);
    assert_eq!(code, 1);
    assert!(err.contains("read-only transaction"), "{err}");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_cut() {
    let f = Fixture::start(&["--db-statement-timeout", "1s"]).await;
    let (code, _, err) = f.sync(&["--table", "slow"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("longer than the agent's statement timeout"),
        "{err}"
    );
    // The pool is still usable after a cancelled statement.
    let (code, _, err) = f.sync(&["--table", "people", "--limit", "1"]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_past_the_agents_cap_get_429() {
    let f = Fixture::start(&["--db-max-syncs", "1"]).await;
    // One sync holds the only slot while its reader does not read; the
    // next caller is told to come back.
    let stream = tokio::net::TcpStream::connect(f.server.public)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // 100 MB of rows: far more than the buffers on the way can hold.
    let req = http::Request::get("/api/projects/shop/production/sync?table=big")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", f.dev))
        .body(full(Vec::new()))
        .unwrap();
    let held = sender.send_request(req).await.unwrap();
    assert_eq!(held.status(), http::StatusCode::OK);
    let r = f.api_sync("table=people&limit=1").await;
    assert_eq!(r.status, http::StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        r.json.to_string().contains("already serving 1 syncs"),
        "{r:?}"
    );
    drop(held);
    drop(sender);
    // The slot comes back when that stream ends.
    let mut ok = false;
    for _ in 0..100 {
        if f.sync(&["--table", "people", "--limit", "1"]).0 == 0 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the sync slot was not released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_csv_output_read_back_exactly() {
    let f = Fixture::start(&[]).await;
    let tricky = [
        "O'Brien",
        "back\\slash",
        "ends with \\",
        "\\'quoted\\'",
        "two\nlines\r\nand crlf",
        "tab\there, comma",
        "\"double\" quotes",
        "ünïcødé ✓ 日本",
    ];
    {
        let mut pg = f.pg().await;
        for (i, v) in tricky.iter().enumerate() {
            sqlx::query("UPDATE people SET note = $1 WHERE id = $2")
                .bind(v)
                .bind(i as i64 + 1)
                .execute(&mut pg)
                .await
                .unwrap();
        }
    }
    let n = tricky.len().to_string();
    let (code, sql, err) = f.sync(&[
        "--table", "people", "--select", "id,note", "--limit", &n, "--format", "sql",
    ]);
    assert_eq!(code, 0, "{err}");
    // Loaded into PostgreSQL with standard_conforming_strings on and off,
    // and into SQLite, every value comes back exactly.
    for scs in ["on", "off"] {
        let (_db, url) = PgDb::create().await;
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        // Its own statement: the server lexes a whole multi-statement string
        // with the setting in force when it arrives.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET standard_conforming_strings = {scs}; CREATE TABLE people (id bigint PRIMARY KEY, note text)"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("scs={scs}: {e}\n{sql}"));
        let got: Vec<String> = sqlx::query_scalar("SELECT note FROM people ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap();
        assert_eq!(got, tricky, "standard_conforming_strings={scs}");
    }
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, note TEXT); {sql}"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        let got: Vec<String> = sqlx::query_scalar("SELECT note FROM people ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap();
        assert_eq!(got, tricky, "SQLite");
    }
    // CSV per RFC 4180: CRLF records, fields with commas, quotes or line
    // breaks quoted, quotes doubled.
    let (code, csv, _) = f.sync(&[
        "--table", "people", "--select", "id,note", "--limit", &n, "--format", "csv",
    ]);
    assert_eq!(code, 0);
    let mut want = String::from("id,note\r\n");
    for (i, v) in tricky.iter().enumerate() {
        let field = if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        };
        want.push_str(&format!("{},{field}\r\n", i + 1));
    }
    assert_eq!(csv, want);
    // --resume counts records, not line breaks inside quoted fields.
    let file = f.home.path().join("part.csv");
    let file_arg = file.display().to_string();
    let (code, _, _) = f.sync(&[
        "--table", "people", "--select", "id,note", "--limit", "5", "--format", "csv", "--output",
        &file_arg,
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = f.sync(&[
        "--table", "people", "--select", "id,note", "--limit", "3", "--format", "csv", "--output",
        &file_arg, "--resume",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumed after the 5 rows"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);

    // --into sqlite is quiet: no statement text from the database library.
    let into = format!("sqlite://{}", f.home.path().join("local.db").display());
    let (code, _, err) = f.sync(&["--table", "people", "--into", &into]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1200 new rows"), "{err}");
    assert!(
        !err.contains("INSERT INTO") && err.len() < 2048,
        "{} bytes on stderr: {}",
        err.len(),
        &err[..err.len().min(500)]
    );
}

/// How often PostgreSQL has scanned the index on `people.plan`.
async fn index_scans(pg: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'people_plan'",
    )
    .fetch_one(pg)
    .await
    .unwrap()
}

/// Measurement for BENCHMARKS.md (not a timing test): `beam sync --into`
/// 2,500 rows into SQLite and into PostgreSQL, with what reaches stderr. Run
/// with `cargo nextest run --run-ignored only -E 'test(measure_sync_into)' --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_sync_into() {
    let f = Fixture::start(&[]).await;
    {
        let mut pg = f.pg().await;
        sqlx::query("INSERT INTO people (id, plan, note) SELECT i, 'bulk', 'row ' || i FROM generate_series(1201, 2500) i")
            .execute(&mut pg)
            .await
            .unwrap();
    }
    let (_target, pg_into) = PgDb::create().await;
    for into in [
        format!("sqlite://{}", f.home.path().join("into.db").display()),
        pg_into,
    ] {
        let t = tokio::time::Instant::now();
        let (code, _, err) = f.sync(&["--table", "people", "--into", &into]);
        assert_eq!(code, 0, "{err}");
        println!(
            "{}: 2500 rows in {:?}, {} bytes on stderr: {}",
            into.split(':').next().unwrap(),
            t.elapsed(),
            err.len(),
            err.trim().replace('\n', " | ")
        );
    }
}
