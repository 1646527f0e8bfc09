//! gRPC through a tunnel: a real grpcio client calls a real grpcio server
//! behind `--upstream-http2`, over h2c on the public port. Unary calls keep
//! their trailers, bidirectional streams flow both ways while open, and
//! errors arrive as gRPC statuses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use beam_proto::TunnelRequest;

use crate::support::*;

const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/grpc_peer.py"
);

/// The Python with grpcio: Debian's `python3-grpcio` (installed by
/// scripts/test) lives with the system interpreter.
fn python() -> String {
    std::env::var("BEAM_GRPC_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_keep_trailers_streams_and_statuses_end_to_end() {
    let mut child = Command::new(python())
        .args([PEER, "server"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with grpcio (Debian python3-grpcio; scripts/test installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server_process = Kill(child);
    let port: u16 = line.trim().parse().expect("the gRPC server's port");

    let server = TestServer::start().await;
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        local,
    );
    cfg.proxy.upstream_http2 = true;
    let mut client = TestClient::start(cfg);
    let w = client.connected().await;
    let host = server.host(&w.name);

    let mut call = Command::new(python());
    call.args([PEER, "client", &server.public.to_string(), &host]);
    let (code, out, err) = output(call);
    assert_eq!(code, 0, "grpc client failed: {err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["echo"], "echo:hello");
    assert_eq!(report["trailers"]["x-trailer"], "kept");
    assert_eq!(
        report["chat"],
        serde_json::json!(["re:m0", "re:m1", "re:m2"])
    );
    assert_eq!(
        report["fail"],
        serde_json::json!(["PERMISSION_DENIED", "nope: x"])
    );
}
