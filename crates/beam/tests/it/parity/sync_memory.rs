//! `beam sync` memory: a million rows through agent and CLI in flat memory.

use crate::support::parity::setup;
use crate::support::*;

/// Peak resident memory of a running process, in KiB (Linux `VmHWM`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_a_million_rows_keeps_agent_and_cli_memory_flat() {
    const ROWS: usize = 1_000_000;
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let dev = server.api_token(&admin, &["data:read"]).await;
    let (_db, db_url) = PgDb::create().await;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, email text, plan text);
             INSERT INTO users SELECT i, 'user' || i || '@example.com', 'pro' FROM generate_series(1, {ROWS}) AS i;"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[tables.users]\ncolumns = { id = \"keep\", email = \"fake:email\", plan = \"keep\" }\n",
    )
    .unwrap();
    let tunnel = server.tunnel.to_string();
    let conn = [
        "--server",
        tunnel.as_str(),
        "--fingerprint",
        server.fingerprint.as_str(),
    ];
    // A debug build on a loaded 2-core runner streams a million faked rows
    // slower than the default 60 s statement timeout; this test is about
    // memory, so it gives the statement room (the timeout has its own test).
    let _agent = crate::support::parity::start_sync_agent_with(
        &server,
        home.path(),
        &agent,
        &policy,
        &db_url,
        &["--db-statement-timeout", "10m"],
    )
    .await;
    let agent_before = peak_rss_kib(_agent.pid()).unwrap();

    let out = work.path().join("users.ndjson");
    let mut c = crate::support::beam(home.path());
    c.args([
        "sync",
        "--project",
        "shop/production",
        "--table",
        "users",
        "--output",
    ])
    .arg(&out)
    .args(conn)
    .env("BEAM_TOKEN", &dev)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let (status, cli_peak, stderr) = tokio::task::block_in_place(move || {
        let mut child = c.spawn().unwrap();
        // Drained on its own thread: an unread pipe fills up with progress
        // lines and stalls the CLI, and with it the agent's statement.
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let mut peak = 0;
        loop {
            if let Some(kib) = peak_rss_kib(child.id()) {
                peak = peak.max(kib);
            }
            if let Some(status) = child.try_wait().unwrap() {
                return (status, peak, reader.join().unwrap());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    assert!(status.success(), "beam sync failed: {stderr}");
    let agent_peak = peak_rss_kib(_agent.pid()).unwrap();
    let lines = std::fs::read(&out)
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(lines, ROWS);
    eprintln!("peak RSS: CLI {cli_peak} KiB, agent {agent_before} → {agent_peak} KiB");
    // The output is ~70 MB: holding the rows anywhere would show up here.
    // Release builds peak at ~11 MiB (CLI) and ~16 MiB (agent), BENCHMARKS.md.
    assert!(cli_peak < 64 * 1024, "CLI peak RSS {cli_peak} KiB");
    assert!(
        agent_peak < agent_before + 48 * 1024,
        "agent peak RSS {agent_peak} KiB (was {agent_before} KiB before the sync)"
    );
}
