//! The request inspector (`beam http`'s local page and API) as a browser or
//! a script reaches it: any bytes on an HTTP/1.1 connection, served by the
//! real `Inspector` through `serve_connection` in memory, with three recorded
//! exchanges to list, show, export and replay. The bytes reach hyper's parser,
//! the Host (DNS-rebinding) and Origin checks, the routes, their query
//! parameters and the replay's JSON changes. Checks: an HTTP answer (or a
//! close) in time, and never a 500.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use beam_client::inspect::record::Building;
use beam_client::inspect::replay::Replayer;
use beam_client::inspect::{Inspector, Limits, Recorder};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Records a replay as a new exchange, as the real one does after sending
/// it to the local app (which is not what is fuzzed here).
#[derive(Clone)]
struct Record(Arc<Recorder>);

impl Replayer for Record {
    async fn replay(
        &self,
        req: http::Request<http_body_util::Full<bytes::Bytes>>,
        _of: u64,
    ) -> Option<u64> {
        let b = Building::new(
            req.method().as_str(),
            &req.uri().to_string(),
            Vec::new(),
            1024,
        );
        Some(self.0.record(b.finish(None)))
    }
}

fn setup() -> &'static (tokio::runtime::Runtime, Inspector<Record>) {
    static S: OnceLock<(tokio::runtime::Runtime, Inspector<Record>)> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let rec = Recorder::new(Limits {
            max_requests: 50,
            max_bytes: 1 << 20,
            body_cap: 4096,
        });
        for (method, path) in [("GET", "/"), ("POST", "/api/orders?x=1"), ("PUT", "/a/b")] {
            let headers = vec![
                ("host".to_string(), b"quiet-fox.localhost".to_vec()),
                ("content-type".to_string(), b"application/json".to_vec()),
            ];
            let mut b = Building::new(method, path, headers, 4096);
            b.response_head(200, vec![("content-type".into(), b"text/plain".to_vec())]);
            rec.record(b.finish(None));
        }
        let addr: SocketAddr = "127.0.0.1:4040".parse().unwrap();
        let inspector = Inspector::new(rec.clone(), Record(rec), addr);
        (rt, inspector)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, inspector) = setup();
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(inspector.clone().serve_connection(server));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let read = async {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
                // The live event stream stays open by design: its head is the answer.
                if String::from_utf8_lossy(&out)
                    .to_ascii_lowercase()
                    .contains("content-type: text/event-stream")
                {
                    return;
                }
            }
        };
        let answered = tokio::time::timeout(Duration::from_secs(5), read).await;
        serving.abort();
        assert!(
            answered.is_ok(),
            "the inspector neither answered nor closed in 5 s: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        );
        beam_fuzz::assert_http_without_500(&out);
    });
});
