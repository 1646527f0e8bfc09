//! A node killed with `kill -9`: two real `beam server` processes on one
//! PostgreSQL database, configured the way an operator would (flags and the
//! cluster secret in the environment). The client moves to the surviving
//! node with its lease and keeps its URL; visitors of the survivor see the
//! tunnel again within 10 seconds.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use beam_client::{ClientConfig, LocalTarget, ProxyConfig, TlsMode, Transport};
use beam_proto::{Secret, TunnelRequest};
use http::StatusCode;
use tokio::time::Instant;

use crate::support::*;

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One `beam server` node process.
struct Node {
    public: SocketAddr,
    tunnel: SocketAddr,
    process: Kill,
}

/// Starts a node of the cluster on `db` and waits until `/ready` answers.
async fn node(
    home: &std::path::Path,
    data: &std::path::Path,
    db: &str,
    token: Option<&str>,
) -> Node {
    let (public, tunnel, node) = (free_port(), free_port(), free_port());
    let mut c = beam(home);
    // Behind a load balancer every node prints the same URLs.
    c.args(["server", "--domain", "localhost", "--public-port", "0"])
        .arg("--http")
        .arg(public.to_string())
        .arg("--tunnel")
        .arg(tunnel.to_string())
        .arg("--node-addr")
        .arg(node.to_string())
        .arg("--data-dir")
        .arg(data)
        .env("BEAM_DATABASE_URL", db)
        .env("BEAM_CLUSTER_SECRET", CLUSTER_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(t) = token {
        c.env("BEAM_BOOTSTRAP_TOKEN", t);
    }
    let process = Kill(c.spawn().unwrap());
    eventually("the node is ready", || async {
        matches!(
            try_get(public, "localhost", "/ready").await,
            Ok((StatusCode::OK, _))
        )
        .then_some(())
    })
    .await;
    Node {
        public,
        tunnel,
        process,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_tunnel_comes_back_on_another_node_with_its_url() {
    let (_db, url) = PgDb::create().await;
    let home = tempfile::tempdir().unwrap();
    // One data directory: the nodes share the tunnel certificate, so clients
    // pin one fingerprint for the whole cluster.
    let data = tempfile::tempdir().unwrap();
    let token = beam_server::accounts::auth::generate_token();
    let mut a = node(home.path(), data.path(), &url, Some(token.expose())).await;
    let b = node(home.path(), data.path(), &url, None).await;
    let fingerprint = beam_server::tls::TunnelCert::load_or_create(data.path(), &[])
        .unwrap()
        .fingerprint;

    let origin = Origin::start().await;
    let mut conn = ClientConfig::new(
        format!("{},{}", a.tunnel, b.tunnel),
        Secret::new(token.expose()),
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
    );
    conn.tls = TlsMode::Pinned(fingerprint);
    conn.transport = Transport::Tls;
    // The default backoff, as `beam http` uses it: the failover time below
    // is what a user gets.
    let mut client = TestClient::start(ClientSetup {
        conn,
        proxy: ProxyConfig::new(LocalTarget {
            host: origin.addr.ip().to_string(),
            port: origin.addr.port(),
            https: false,
        }),
    });
    let first = client.connected().await;
    let host = format!("{}.localhost", first.name);
    // Served by a, reached through b.
    let (status, body) = try_get(b.public, &host, "/hello").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from origin")
    );

    a.process.0.kill().unwrap(); // SIGKILL: no drain, no goodbye
    let killed = Instant::now();
    let back = within("the tunnel is back on b", async {
        loop {
            if let Ok((StatusCode::OK, _)) = try_get(b.public, &host, "/hello").await {
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eprintln!("failover: kill -9 → first 200 on the surviving node in {back:?}");
    assert!(back < Duration::from_secs(10), "took {back:?}");
    // The same URL: the client reconnected to b with its lease.
    let again = loop {
        match within("reconnected", client.events.recv()).await {
            Some(beam_client::Event::Connected { welcome, .. }) => break welcome,
            Some(_) => {}
            None => panic!("the client stopped"),
        }
    };
    assert_eq!(again.public_url, first.public_url);
    assert_eq!(again.public_url, format!("http://{host}"));
}
