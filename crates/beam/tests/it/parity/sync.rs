//! `beam sync` end to end: sanitized rows from PostgreSQL, MariaDB and SQLite
//! production databases, failing closed.

use crate::support::parity::setup;
use crate::support::*;

const POLICY: &str = r#"
[tables.users]
columns = { id = "keep", email = "fake:email", phone = "fake:phone", password_hash = "drop", api_token = "drop", plan = "keep", author = "keep", "emailVerified" = "keep", "stripeCustomerId" = "hash", ssn = "mask", name = "fake:name" }
[tables.orders]
default = "drop"
columns = { id = "keep", user_id = "keep", customer_email = "fake:email", total = "keep" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pulls_sanitized_rows_and_fails_closed() {
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["data:read"]).await;
    let (_db, db_url) = PgDb::create().await;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::raw_sql(
            r#"CREATE TABLE users (id integer PRIMARY KEY, email text, phone text, password_hash text,
                 api_token text, plan text, author text, "emailVerified" boolean,
                 "stripeCustomerId" text, ssn text, name text);
               CREATE TABLE orders (id integer PRIMARY KEY, user_id integer REFERENCES users(id),
                 customer_email text, total numeric, card_last4 text);
               CREATE TABLE sessions (id integer, token text);
               INSERT INTO users VALUES
                 (1, 'ada@example.com', '+44 20 7946 0001', '$argon2id$secret-hash-1', 'tok_live_aaaa', 'pro', 'Ada', true, 'cus_ADA123', '123-45-6789', 'Ada Lovelace'),
                 (2, 'alan@example.com', '+44 20 7946 0002', '$argon2id$secret-hash-2', 'tok_live_bbbb', 'free', 'Alan', false, 'cus_ALAN456', '987-65-4321', 'Alan Turing'),
                 (3, 'grace@example.com', '+1 212 555 0100', '$argon2id$secret-hash-3', 'tok_live_cccc', 'pro', NULL, true, NULL, NULL, 'Grace Hopper');
               INSERT INTO orders VALUES (10, 1, 'ada@example.com', 99.90, '4242'), (11, 3, 'grace@example.com', 5, '1111');
               INSERT INTO sessions VALUES (1, 'sess_secret');"#,
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let policy = work.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let _agent =
        crate::support::parity::start_sync_agent(&server, home.path(), &agent, &policy, &db_url)
            .await;

    let run = |args: &[&str]| {
        let mut c = crate::support::beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", &dev);
        crate::support::output(c)
    };
    let sync = |extra: &[&str]| {
        let mut a = vec!["sync", "--project", "shop/production"];
        a.extend_from_slice(extra);
        run(&a)
    };

    let (code, out, err) = sync(&["--table", "users"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for original in [
        "ada@example.com",
        "alan@example.com",
        "+44 20 7946",
        "secret-hash",
        "tok_live",
        "cus_ADA123",
        "123-45-6789",
        "Ada Lovelace",
        "Grace Hopper",
    ] {
        assert!(!out.contains(original), "{original} left production: {out}");
    }
    let ada = &rows[0];
    assert_eq!(ada["id"], 1);
    assert_eq!(ada["plan"], "pro");
    assert_eq!(ada["author"], "Ada");
    assert_eq!(ada["emailVerified"], true);
    assert!(ada.get("password_hash").is_none() && ada.get("api_token").is_none());
    assert!(ada["email"].as_str().unwrap().ends_with("@sanitized.local"));
    assert_eq!(ada["ssn"], "*******6789");
    assert!(rows[2]["stripeCustomerId"].is_null(), "NULL stays NULL");
    assert!(err.contains("3 rows of users"), "{err}");
    // Audited: the table asked for and the rows that left production.
    let entry = eventually("the sync is audited", || async {
        let r = server
            .api("GET", "/api/audit?kind=sync", Some(&admin), None)
            .await;
        r.json["entries"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["kind"] == "sync").cloned())
    })
    .await;
    assert_eq!(entry["detail"]["request"]["table"], "users");
    assert_eq!(entry["detail"]["rows"], 3);
    assert_eq!(entry["outcome"], "ok");
    assert!(entry["detail"]["duration_ms"].is_u64());

    // Deterministic pseudonyms: the same email in another table maps the same,
    // and foreign keys still join.
    let (code, out, _) = sync(&["--table", "orders"]);
    assert_eq!(code, 0);
    let orders: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(orders[0]["customer_email"], ada["email"]);
    assert_eq!(orders[1]["customer_email"], rows[2]["email"]);
    assert_eq!(orders[0]["user_id"], ada["id"]);
    assert!(orders[0].get("card_last4").is_none(), "default = drop");
    assert_eq!(orders[0]["total"], "99.90");

    // Filters and select; values are bound.
    let (code, out, _) = sync(&[
        "--table", "users", "--where", "plan=pro", "--select", "id,plan",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"id\":1,\"plan\":\"pro\"}\n{\"id\":3,\"plan\":\"pro\"}\n"
    );
    let (code, out, _) = sync(&["--table", "users", "--where", "plan=pro' OR '1'='1"]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "the injection is a value that matches nothing"
    );
    let (code, _, err) = sync(&["--table", "users", "--where", "plan;DROP TABLE users--=1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such column"), "{err}");
    let (code, _, err) = sync(&["--table", "users", "--select", "password_hash"]);
    assert_eq!(code, 1);
    assert!(err.contains("dropped by the policy"), "{err}");

    // --skip in primary-key order, and --resume of an interrupted file.
    let (code, out, _) = sync(&["--table", "users", "--select", "id", "--skip", "1"]);
    assert_eq!((code, out.as_str()), (0, "{\"id\":2}\n{\"id\":3}\n"));
    let part = work.path().join("part.ndjson");
    let part_arg = part.display().to_string();
    let (code, _, _) = sync(&[
        "--table", "users", "--select", "id", "--limit", "2", "--output", &part_arg,
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = sync(&[
        "--table", "users", "--select", "id", "--output", &part_arg, "--resume",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("resumed after the 2 rows already in the file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&part).unwrap(),
        "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n"
    );
    // The row count for progress and ETA comes first, as a header.
    {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
        let (mut sender, c) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(c);
        let req =
            http::Request::get("/api/projects/shop/production/sync?table=users&where=plan%3Dpro")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {dev}"))
                .body(full(Vec::new()))
                .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.headers()["beam-sync-total"], "2");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 2);
    }

    // SQL statements.
    let (code, out, _) = sync(&[
        "--table", "users", "--select", "id,plan", "--format", "sql", "--limit", "1",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "INSERT INTO \"users\" (\"id\", \"plan\") VALUES (1, 'pro') ON CONFLICT DO NOTHING;\n"
        )
    );

    // CSV and JSON.
    let (code, out, _) = sync(&[
        "--table", "users", "--select", "id,plan", "--format", "csv", "--limit", "2",
    ]);
    assert_eq!((code, out.as_str()), (0, "id,plan\r\n1,pro\r\n2,free\r\n"));
    let file = work.path().join("users.json");
    let file_arg = file.display().to_string();
    let (code, _, _) = sync(&[
        "--table", "users", "--format", "json", "--output", &file_arg,
    ]);
    assert_eq!(code, 0);
    let arr: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(arr.len(), 3);

    // --into a local SQLite file and a local PostgreSQL database: the table is
    // created, and a second run adds nothing (ON CONFLICT DO NOTHING on id).
    let dev_db = work.path().join("dev.db");
    let into = format!("sqlite://{}", dev_db.display());
    for (round, want) in [(1, "3 new rows"), (2, "0 new rows")] {
        let (code, out, err) = sync(&["--table", "users", "--into", &into]);
        assert_eq!(code, 0, "{err}");
        assert!(out.is_empty());
        assert!(err.contains(want), "round {round}: {err}");
    }
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&into).await.unwrap();
        let (count, email): (i64, String) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM users), (SELECT email FROM users WHERE id = 1)",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!((count, email.as_str()), (3, ada["email"].as_str().unwrap()));
    }
    let (_local, local_url) = PgDb::create().await;
    let (code, _, err) = {
        let mut c = crate::support::beam(home.path());
        c.args(["sync", "--project", "shop/production", "--table", "orders"])
            .args(conn)
            .env("BEAM_TOKEN", &dev)
            .env("BEAM_SYNC_INTO", &local_url);
        crate::support::output(c)
    };
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 new rows"), "{err}");
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&local_url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    // --related: orders bring the users they reference, sanitized by the
    // users policy, into the same local database.
    let rel_db = format!("sqlite://{}", work.path().join("rel.db").display());
    let (code, _, err) = sync(&["--table", "orders", "--into", &rel_db, "--related"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("related users (via user_id): 2 of 2 referenced rows, 2 new"),
        "{err}"
    );
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&rel_db).await.unwrap();
        let joined: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT o.id, o.customer_email, u.email FROM orders o JOIN users u ON u.id = o.user_id ORDER BY o.id",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert_eq!(joined.len(), 2);
        for (_, order_email, user_email) in &joined {
            assert_eq!(order_email, user_email, "pseudonyms agree across tables");
            assert!(user_email.ends_with("@sanitized.local"));
        }
    }
    for extra in [&[][..], &["--output", "unused.ndjson"][..]] {
        let mut a = vec!["--table", "orders", "--related"];
        a.extend_from_slice(extra);
        let (code, out, err) = sync(&a);
        assert!(code != 0 && out.is_empty(), "{code} {out}");
        assert!(err.contains("--into"), "{err}");
    }

    // Fail closed: a table outside the policy, and schema drift.
    let (code, _, err) = sync(&["--table", "sessions"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("table 'sessions' is not in the agent's sync policy"),
        "{err}"
    );
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::raw_sql("ALTER TABLE users ADD COLUMN recovery_codes text DEFAULT 'rc-secret'")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let (code, out, err) = sync(&["--table", "users"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("column users.recovery_codes has no sanitization policy"),
        "{err}"
    );

    // The detectors propose a policy from names and types.
    let (code, out, err) = run(&[
        "sync",
        "policy",
        "suggest",
        "--table",
        "users",
        "--project",
        "shop/production",
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "\"email\" = \"fake:email\"",
        "\"author\" = \"keep\"",
        "\"emailVerified\" = \"keep\"",
        "\"stripeCustomerId\" = \"hash\"",
        "\"password_hash\" = \"drop\"",
        "\"api_token\" = \"drop\"",
        "\"recovery_codes\" = \"drop\"",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reads_a_sqlite_production_database_read_only() {
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["data:read"]).await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let prod = work.path().join("prod.db");
    let prod_url = format!("sqlite://{}", prod.display());
    {
        use sqlx::Connection;
        let opts: sqlx::sqlite::SqliteConnectOptions = prod_url.parse().unwrap();
        let mut c = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, active BOOLEAN, score REAL, password TEXT);
             INSERT INTO users VALUES (1, 'ada@example.com', 1, 9.5, 'hunter2'), (2, 'alan@example.com', 0, NULL, 'pw2');",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[tables.users]\ncolumns = { id = \"keep\", email = \"fake:email\", active = \"keep\", score = \"keep\", password = \"drop\" }\n",
    )
    .unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let _agent =
        crate::support::parity::start_sync_agent(&server, home.path(), &agent, &policy, &prod_url)
            .await;
    let mut c = crate::support::beam(home.path());
    c.args([
        "sync",
        "--project",
        "shop/production",
        "--table",
        "users",
        "--where",
        "active=1",
    ])
    .args(conn)
    .env("BEAM_TOKEN", &dev);
    let (code, out, err) = crate::support::output(c);
    assert_eq!(code, 0, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["id"], 1);
    assert_eq!(row["active"], true);
    assert_eq!(row["score"], 9.5);
    assert!(row["email"].as_str().unwrap().ends_with("@sanitized.local"));
    assert!(row.get("password").is_none());
    assert!(
        !out.contains("ada@example.com") && !out.contains("hunter2"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reads_a_mariadb_production_database_and_writes_into_one() {
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["data:read", "logs:read"]).await;
    let (_prod, prod_url) = MyDb::create().await;
    {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&prod_url).await.unwrap();
        for stmt in [
            "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(255), active BOOLEAN, \
             score DOUBLE, balance DECIMAL(10,2), password VARCHAR(255), joined DATETIME, \
             bio TEXT, visits BIGINT UNSIGNED) ENGINE=InnoDB",
            "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, customer_email VARCHAR(255), \
             FOREIGN KEY (user_id) REFERENCES users(id)) ENGINE=InnoDB",
            "CREATE TABLE staff (id INT PRIMARY KEY, salary INT)",
            "INSERT INTO users VALUES \
             (1, 'ada@example.com', 1, 9.5, 1234.50, 'hunter2', '2024-01-02 03:04:05', 'Zoë \"the\" first', 7), \
             (2, 'alan@example.com', 0, NULL, 0.10, 'pw2', NULL, NULL, 18446744073709551615), \
             (3, 'grace@example.com', 1, -1.25, 99.99, 'pw3', '2023-12-31 23:59:59', 'line1\\nline2', 0)",
            "INSERT INTO orders VALUES (10, 1, 'ada@example.com'), (11, 3, 'grace@example.com')",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[tables.users]
columns = { id = "keep", email = "fake:email", active = "keep", score = "keep", balance = "keep", password = "drop", joined = "keep", bio = "mask", visits = "keep" }
[tables.orders]
columns = { id = "keep", user_id = "keep", customer_email = "fake:email" }
[tables.staff]
columns = { id = "keep" }
"#,
    )
    .unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    let _agent =
        crate::support::parity::start_sync_agent(&server, home.path(), &agent, &policy, &prod_url)
            .await;
    let run = |args: &[&str], into: Option<&str>| {
        let mut c = crate::support::beam(home.path());
        c.args(args).args(conn).env("BEAM_TOKEN", &dev);
        if let Some(u) = into {
            c.env("BEAM_SYNC_INTO", u);
        }
        crate::support::output(c)
    };
    let sync = |extra: &[&str]| {
        let mut a = vec!["sync", "--project", "shop/production"];
        a.extend_from_slice(extra);
        run(&a, None)
    };

    let (code, out, err) = sync(&["--table", "users"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    for original in [
        "ada@example.com",
        "hunter2",
        "pw2",
        "the\\\" first",
        "line1",
    ] {
        assert!(!out.contains(original), "{original} left production: {out}");
    }
    // Types as MariaDB has them: BOOLEAN (tinyint(1)) is a boolean, integers
    // are numbers (all 64 bits of an unsigned BIGINT kept as text when they do
    // not fit), DECIMAL keeps its exact digits, DATETIME its text.
    let ada = &rows[0];
    assert_eq!(ada["id"], 1);
    assert_eq!(ada["active"], true);
    assert_eq!(ada["score"], 9.5);
    assert_eq!(ada["balance"], "1234.50");
    assert_eq!(ada["joined"], "2024-01-02 03:04:05");
    assert_eq!(ada["visits"], 7);
    assert!(ada.get("password").is_none());
    assert!(ada["email"].as_str().unwrap().ends_with("@sanitized.local"));
    assert_eq!(rows[1]["active"], false);
    assert!(rows[1]["score"].is_null() && rows[1]["bio"].is_null());
    assert_eq!(rows[1]["visits"], "18446744073709551615");
    assert_eq!(rows[2]["score"], -1.25);
    assert!(err.contains("3 rows of users"), "{err}");

    // Filters are bound (MySQL's positional placeholders), in primary-key order.
    let (code, out, err) = sync(&["--table", "users", "--where", "active=1", "--select", "id"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\"id\":1}\n{\"id\":3}\n");
    let (code, out, err) = sync(&[
        "--table",
        "users",
        "--where",
        "active=true",
        "--select",
        "id",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "{\"id\":1}\n{\"id\":3}\n"),
        "{err}"
    );
    // MySQL would compare `1' OR '1'='1` as 1 (its numeric prefix): a value
    // that is not of the column's type is refused instead.
    let (code, out, err) = sync(&["--table", "users", "--where", "active=1' OR '1'='1"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("is not a boolean"), "{err}");
    let (code, _, err) = sync(&["--table", "users", "--where", "id=1abc"]);
    assert_eq!(code, 1);
    assert!(err.contains("'1abc' is not an integer"), "{err}");
    let (code, out, err) = sync(&[
        "--table", "users", "--select", "id", "--skip", "1", "--limit", "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\"id\":2}\n");
    let (code, out, err) = sync(&["--table", "users", "--select", "id", "--skip", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\"id\":3}\n");
    let (code, _, err) = sync(&["--table", "users", "--where", "email=ada@example.com"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("filters may only use columns the policy keeps"),
        "{err}"
    );

    // Fail closed: a column the policy does not name.
    let (code, out, err) = sync(&["--table", "staff"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("column staff.salary has no sanitization policy"),
        "{err}"
    );

    // --into a local MariaDB database, following the foreign key: the tables
    // are created, pseudonyms agree across them, a second run adds nothing.
    let (_local, local_url) = MyDb::create().await;
    for (round, want) in [(1, "2 new rows"), (2, "0 new rows")] {
        let (code, out, err) = run(
            &[
                "sync",
                "--project",
                "shop/production",
                "--table",
                "orders",
                "--related",
            ],
            Some(&local_url),
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.is_empty());
        assert!(err.contains(want), "round {round}: {err}");
    }
    {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&local_url).await.unwrap();
        let joined: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT o.id, o.customer_email, u.email FROM orders o JOIN users u ON u.id = o.user_id ORDER BY o.id",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert_eq!(joined.len(), 2);
        for (_, order_email, user_email) in &joined {
            assert_eq!(order_email, user_email, "pseudonyms agree across tables");
            assert!(user_email.ends_with("@sanitized.local"));
        }
        let bio: Option<String> = sqlx::query_scalar("SELECT bio FROM users WHERE id = 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(bio.is_some_and(|b| !b.contains("first")), "masked");
    }

    // beam health probes the same database through the agent's pool.
    let (code, out, err) = run(&["health", "--project", "shop/production", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let dbc = checks.iter().find(|c| c["name"] == "database").unwrap();
    assert_eq!(dbc["status"], "pass", "{dbc}");
    let detail = dbc["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("mysql://127.0.0.1:3306/beam_t_")
            && detail.ends_with("answered SELECT 1"),
        "{detail}"
    );
    assert!(!out.contains("root@"), "the URL's user is not shown: {out}");
}
