//! HTTP/2 for visitors: ALPN `h2` on the HTTPS edge and prior-knowledge h2c on
//! the plain port, many requests on one connection; and the known HTTP/2
//! attacks run against a live server (rapid reset, CONTINUATION, SETTINGS,
//! PING and empty-frame floods, the stream limit), each while another
//! tunnel's visitors keep getting answers.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::support::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types and flags (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal, not Huffman-coded (values under 127 bytes).
fn literal(s: &str) -> Vec<u8> {
    assert!(s.len() < 127);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// A GET's header block: static-table `:method GET`, `:scheme https`, and
/// literal `:path` and `:authority` (never indexed, so every block is
/// self-contained).
fn get_block(host: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x87];
    b.push(0x04); // :path, literal without indexing
    b.extend(literal(path));
    b.push(0x01); // :authority, literal without indexing
    b.extend(literal(host));
    b
}

/// The first frames every client sends: the preface, its SETTINGS, and the
/// acknowledgement of the server's (sent first thing by the server), which
/// puts the server's limits in force.
fn opening() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[]));
    v.extend(frame(SETTINGS, 1, 0, &[]));
    v
}

/// What the server did to a connection, as its frames showed.
#[derive(Debug, Default)]
struct Seen {
    goaway: Option<u32>,
    refused_streams: Vec<u32>,
    max_concurrent_streams: Option<u32>,
}

/// Reads the server's frames until it closes the connection; then reports.
async fn read_frames<R: AsyncRead + Unpin>(mut r: R) -> Seen {
    let mut seen = Seen::default();
    let mut head = [0u8; 9];
    loop {
        if r.read_exact(&mut head).await.is_err() {
            return seen;
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        if r.read_exact(&mut payload).await.is_err() {
            return seen;
        }
        match head[3] {
            GOAWAY if len >= 8 => {
                seen.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
            }
            RST_STREAM if payload == [0, 0, 0, 7] => seen.refused_streams.push(stream),
            SETTINGS if head[4] & 1 == 0 => {
                for s in payload.chunks(6) {
                    if s[..2] == [0, 3] {
                        seen.max_concurrent_streams =
                            Some(u32::from_be_bytes(s[2..6].try_into().unwrap()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// An attacker's HTTP/2 connection over TLS (ALPN `h2`) to the edge.
struct Attacker {
    writer: tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    closed: oneshot::Receiver<Seen>,
}

impl Attacker {
    async fn connect(server: &TestServer, host: &str) -> Self {
        let sni = host.split(':').next().unwrap();
        let tls = tls_connect(server.https, sni, &[b"h2"]).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (reader, mut writer) = tokio::io::split(tls);
        let (tx, closed) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(read_frames(reader).await);
        });
        writer.write_all(&opening()).await.unwrap();
        Self { writer, closed }
    }

    /// Sends `frames` in batches until the server stops taking them, then
    /// waits for it to close the connection. `None` if it never does.
    async fn flood(mut self, frames: impl Iterator<Item = Vec<u8>>) -> Option<Seen> {
        let mut batch = Vec::new();
        for f in frames {
            batch.extend(f);
            if batch.len() >= 16 << 10 {
                if self.writer.write_all(&batch).await.is_err() {
                    break;
                }
                batch.clear();
            }
        }
        let _ = self.writer.write_all(&batch).await;
        let _ = self.writer.flush().await;
        // Not a timing assertion: a server that never closes fails the test
        // after the patience bound instead of hanging it.
        tokio::time::timeout(PATIENCE, self.closed).await.ok()?.ok()
    }
}

/// Two tunnels on one server: one to attack, one whose visitors must not notice.
async fn two_tunnels() -> (TestServer, Origin, TestClient, String, TestClient, String) {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (victim, w1) = server.http_client(origin.addr).await;
    let (bystander, w2) = server.http_client(origin.addr).await;
    let (h1, h2) = (server.host(&w1.name), server.host(&w2.name));
    (server, origin, victim, h1, bystander, h2)
}

/// Visits the bystander tunnel over HTTPS while `attack` runs, and after.
async fn bystander_served_during<F>(server: &TestServer, host: &str, attack: F) -> Seen
where
    F: std::future::Future<Output = Option<Seen>> + Send + 'static,
{
    let attack = tokio::spawn(async move {
        let seen = attack.await;
        seen.expect("the server never closed the flooding connection")
    });
    for _ in 0..10 {
        let (status, body) = h2_get(server, host, "/hello").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello from origin")
        );
    }
    let seen = within("attack", attack).await.unwrap();
    let (status, _) = h2_get(server, host, "/hello").await;
    assert_eq!(status, StatusCode::OK);
    seen
}

/// An HTTP/2 sender over TLS to the edge.
async fn h2_sender(
    server: &TestServer,
    host: &str,
) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let sni = host.split(':').next().unwrap();
    let tls = tls_connect(server.https, sni, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2_handshake(tls).await
}

async fn h2_handshake<IO>(io: IO) -> hyper::client::conn::http2::SendRequest<TestBody>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(
    sender: &mut hyper::client::conn::http2::SendRequest<TestBody>,
    req: Request<TestBody>,
) -> (StatusCode, String) {
    let resp = within("h2 response", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let status = resp.status();
    let body = within("h2 body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn h2_get(server: &TestServer, host: &str, path: &str) -> (StatusCode, String) {
    let mut sender = h2_sender(server, host).await;
    let uri = format!("https://{host}{path}");
    send(&mut sender, Request::get(uri).body(full("")).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_fifty_assets_loads_over_one_http2_connection() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let sender = h2_sender(&server, &host).await;
    let mut loads = tokio::task::JoinSet::new();
    for i in 0..50 {
        let mut sender = sender.clone();
        let uri = format!("https://{host}/headers?asset={i}");
        let host = host.clone();
        loads.spawn(async move {
            let (status, body) = send(&mut sender, Request::get(uri).body(full("")).unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
            // Each answer is the one asked for, with the forwarding headers
            // an app behind HTTP/1.1 expects.
            assert_eq!(seen["_path"], format!("/headers?asset={i}"));
            assert_eq!(seen["host"], host.as_str());
            assert_eq!(seen["x-forwarded-proto"], "https");
        });
    }
    while let Some(r) = loads.join_next().await {
        r.unwrap();
    }
    // Bodies stream both ways on the same connection.
    let mut sender = sender.clone();
    let payload = "x".repeat(200_000);
    let req = Request::post(format!("https://{host}/echo"))
        .body(full(payload.clone()))
        .unwrap();
    let (status, body) = send(&mut sender, req).await;
    assert_eq!((status, body.len()), (StatusCode::OK, payload.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_port_speaks_h2c_with_prior_knowledge_and_still_http1() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let tcp = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let mut sender = h2_handshake(tcp).await;
    let uri = format!("http://{host}/hello");
    let (status, body) = send(&mut sender, Request::get(uri).body(full("")).unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from origin")
    );
    // HTTP/1.1 requests whose method starts like the preface (`P…`) are not
    // mistaken for it.
    let req = Request::post("/echo").body(full("plain")).unwrap();
    let resp = visit(server.public, &host, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from_static(b"plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_the_attackers_connection_not_other_tunnels() {
    let (server, _origin, _victim, host, _b, bystander) = two_tunnels().await;
    let attacker = Attacker::connect(&server, &host).await;
    let block = get_block(&host, "/hello");
    // Open a stream and cancel it at once, 20,000 times (CVE-2023-44487).
    let frames = (0..20_000u32).map(move |i| {
        let id = 2 * i + 1;
        let mut f = frame(HEADERS, END_HEADERS | END_STREAM, id, &block);
        f.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        f
    });
    bystander_served_during(&server, &bystander, attacker.flood(frames)).await;
    assert!(server.metric("beam_errors_total{type=\"h2_flood\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off() {
    let (server, _origin, _victim, host, _b, bystander) = two_tunnels().await;
    let attacker = Attacker::connect(&server, &host).await;
    let block = get_block(&host, "/hello");
    // A header block that never ends: HEADERS without END_HEADERS, then
    // CONTINUATION frames each adding another header (CVE-2024-27316 class).
    let mut one = vec![0x00];
    one.extend(literal("x-flood"));
    one.extend(literal(&"a".repeat(100)));
    let frames = std::iter::once(frame(HEADERS, END_STREAM, 1, &block))
        .chain((0..100_000).map(move |_| frame(CONTINUATION, 0, 1, &one)));
    let seen = bystander_served_during(&server, &bystander, attacker.flood(frames)).await;
    // h2 refuses the oversized header list with ENHANCE_YOUR_CALM (11).
    assert_eq!(seen.goaway, Some(11));
    assert!(server.metric("beam_errors_total{type=\"h2_flood\"}") >= 1.0);
}

/// Makes the `i`th frame of a flood.
type FrameMaker = Box<dyn Fn(u32) -> Vec<u8> + Send>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_ping_and_empty_frame_floods_are_cut_off() {
    let (server, _origin, _victim, host, _b, bystander) = two_tunnels().await;
    let floods: [(&str, FrameMaker); 3] = [
        (
            "SETTINGS",
            Box::new(|_| frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0])),
        ),
        (
            "PING",
            Box::new(|i| frame(PING, 0, 0, &u64::from(i).to_be_bytes())),
        ),
        // Empty DATA frames on an open stream (CVE-2019-9518).
        ("empty DATA", Box::new(|_| frame(DATA, 0, 1, &[]))),
    ];
    for (name, make) in floods {
        let before = server.metric("beam_errors_total{type=\"h2_flood\"}");
        let mut attacker = Attacker::connect(&server, &host).await;
        if name == "empty DATA" {
            let open = frame(HEADERS, END_HEADERS, 1, &get_block(&host, "/count"));
            attacker.writer.write_all(&open).await.unwrap();
        }
        let frames = (0..200_000u32).map(make);
        bystander_served_during(&server, &bystander, attacker.flood(frames)).await;
        let after = server.metric("beam_errors_total{type=\"h2_flood\"}");
        assert!(after > before, "{name} flood was not counted as one");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_concurrency_limit_are_refused() {
    let (server, _origin, _victim, host, _b, bystander) = two_tunnels().await;
    let mut attacker = Attacker::connect(&server, &host).await;
    // Streams that stay open: the origin answers `/slow` after an hour.
    let block = get_block(&host, "/slow");
    let limit = 128u32;
    let mut frames = Vec::new();
    for i in 0..=limit {
        frames.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    attacker.writer.write_all(&frames).await.unwrap();
    // The stream past the limit is refused; the others stay open.
    let (status, _) = h2_get(&server, &bystander, "/hello").await;
    assert_eq!(status, StatusCode::OK);
    attacker.writer.shutdown().await.unwrap();
    drop(attacker.writer);
    let seen = within("server frames", attacker.closed).await.unwrap();
    assert_eq!(seen.max_concurrent_streams, Some(limit));
    assert_eq!(seen.refused_streams, vec![2 * limit + 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_within_its_budget_is_never_cut_off() {
    let (server, _origin, _client, host) = http_tunnel().await;
    // A busy page: 300 requests, 100 of them cancelled, a few pings and
    // settings, over one connection, spread over ~1.5 s.
    let sni = host.split(':').next().unwrap();
    let tls = tls_connect(server.https, sni, &[b"h2"]).await.unwrap();
    let (reader, mut writer) = tokio::io::split(tls);
    let reading = tokio::spawn(read_frames(reader));
    writer.write_all(&opening()).await.unwrap();
    let block = get_block(&host, "/hello");
    for i in 0..300u32 {
        let id = 2 * i + 1;
        let mut f = frame(HEADERS, END_HEADERS | END_STREAM, id, &block);
        if i % 3 == 0 {
            f.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        }
        if i % 50 == 0 {
            f.extend(frame(PING, 0, 0, &[0; 8]));
            f.extend(frame(SETTINGS, 0, 0, &[]));
        }
        writer.write_all(&f).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Still usable: a normal client on the same server works and this
    // connection was not counted as a flood.
    let (status, _) = h2_get(&server, &host, "/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.metric("beam_errors_total{type=\"h2_flood\"}"), 0.0);
    writer.shutdown().await.unwrap();
    let seen = within("server frames", reading).await.unwrap();
    assert!(seen.refused_streams.is_empty());
}
