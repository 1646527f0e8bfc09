//! The public edge as a visitor reaches it: any bytes on a plain HTTP/1.1
//! connection, served by a real `beam_server::Server` (SQLite store, the
//! embedded default configuration) through its in-memory listener. The
//! bytes reach hyper's request-head parser, host routing, the API router,
//! the dashboard's pages, forms and cookies, the webhook receiver and the
//! error pages. Checks: the server answers HTTP (or closes) within its own
//! timeouts, and never with a 500: bad input gets a 4xx it can act on.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Sender;

type Conns = Sender<(tokio::io::DuplexStream, SocketAddr)>;

/// One server for the whole run, on its own runtime thread.
fn server() -> &'static (tokio::runtime::Runtime, Conns) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, Conns)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        rt.block_on(async move {
            let dir = std::env::temp_dir().join(format!("beam-fuzz-edge-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a data directory");
            let store = beam_server::store::Store::connect(&format!(
                "sqlite://{}?mode=rwc",
                dir.join("beam.db").display()
            ))
            .await
            .expect("the store");
            let mut cfg = beam_server::ServerConfig::dev();
            // A head that never ends is cut after this, so a run never waits long.
            cfg.header_read_timeout = Duration::from_millis(200);
            cfg.upstream_timeout = Duration::from_secs(1);
            let server = beam_server::Server::new(cfg, store, None)
                .await
                .expect("the server");
            let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tunnel = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tokio::spawn(async move {
                let listeners = beam_server::Listeners {
                    public,
                    tunnel,
                    https: None,
                    metrics: None,
                    node: None,
                    memory: Some(rx),
                };
                server
                    .run(listeners, std::future::pending())
                    .await
                    .expect("the server runs");
            });
        });
        (rt, tx)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, conns) = server();
    rt.block_on(async {
        let (mut visitor, edge) = tokio::io::duplex(64 * 1024);
        let peer: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        conns
            .send((edge, peer))
            .await
            .expect("the server takes connections");
        let exchange = async {
            // The server may answer (and close) before reading everything.
            let _ = visitor.write_all(data).await;
            let _ = visitor.shutdown().await;
            let mut out = Vec::new();
            let _ = visitor.read_to_end(&mut out).await;
            out
        };
        let out = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("the edge answered or closed within its timeouts");
        beam_fuzz::assert_http_without_500(&out);
    });
});
