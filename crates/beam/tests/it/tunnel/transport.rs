//! The ways a client reaches the server: the tunnel port, the HTTPS port with
//! ALPN `beam/1`, a WebSocket on the HTTPS port, and any of them through an
//! HTTP proxy (tinyproxy, a real proxy process, allowing only CONNECT to the
//! HTTPS port). `auto` falls back and says which way it took.

use std::process::{Command, Stdio};

use beam_client::carrier::Transport;
use beam_client::egress::HttpProxy;
use beam_client::{ClientConfig, Event};
use beam_proto::TunnelRequest;
use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn http_request() -> TunnelRequest {
    TunnelRequest::Http {
        subdomain: None,
        domain: None,
    }
}

/// Starts a client with `tweak` applied and returns it with its tunnel's
/// host and the way it connected.
async fn connect_with(
    server: &TestServer,
    origin: &Origin,
    tweak: impl FnOnce(&mut ClientConfig),
) -> (TestClient, String, String) {
    let mut cfg = server.client_config(http_request(), origin.addr);
    tweak(&mut cfg.conn);
    let mut client = TestClient::start(cfg);
    let (name, via) = within("connected", async {
        loop {
            match client.events.recv().await {
                Some(Event::Connected { welcome, via, .. }) => return (welcome.name, via),
                Some(_) => {}
                None => panic!("the client stopped before connecting"),
            }
        }
    })
    .await;
    let host = server.host(&name);
    (client, host, via)
}

async fn assert_serves(server: &TestServer, host: &str) {
    let (status, body) = get(server.public, host, "/hello").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from origin")
    );
}

/// A port nothing listens on.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_https_port_carriers_serve_tunnels_like_the_tunnel_port() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let https = server.https.port();

    // A WebSocket on the HTTPS port, verified with the pinned fingerprint.
    let (_ws, host, via) =
        connect_with(&server, &origin, |c| c.transport = Transport::WebSocket).await;
    assert_eq!(
        via,
        format!("websocket wss://127.0.0.1:{https}/_beam/tunnel")
    );
    assert_serves(&server, &host).await;
    let payload = "w".repeat(300_000);
    let resp = visit(
        server.public,
        &host,
        Request::post("/echo").body(full(payload.clone())).unwrap(),
    )
    .await;
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes().len(), payload.len());

    // auto with the tunnel port closed: the HTTPS port with ALPN beam/1.
    let dead = closed_port().await;
    let (_auto, host, via) = connect_with(&server, &origin, |c| {
        c.transport = Transport::Auto;
        c.server = dead.clone();
    })
    .await;
    assert_eq!(via, format!("tls to the HTTPS port 127.0.0.1:{https}"));
    assert_serves(&server, &host).await;

    // Plain WebSocket to the plain port, from loopback.
    let (_plain, host, via) = connect_with(&server, &origin, |c| {
        c.transport = Transport::WebSocket;
        c.tls = beam_client::TlsMode::Plaintext;
        c.server = server.tunnel.to_string();
        c.edge_port = server.public.port();
    })
    .await;
    assert!(via.starts_with("websocket ws://"), "{via}");
    assert_serves(&server, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fingerprint_fails_on_every_carrier() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let wrong = format!("sha256:{}", "00".repeat(32));
    let mut cfg = server.client_config(http_request(), origin.addr);
    cfg.conn.transport = Transport::WebSocket;
    cfg.conn.tls = beam_client::TlsMode::Pinned(wrong);
    let err = TestClient::start(cfg).result().await.unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_carrier_path_belongs_to_tenants_on_their_own_hosts() {
    let (server, _origin, _client, host) = http_tunnel().await;
    let upgrade = |h: &str| {
        Request::get("/_beam/tunnel")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("host", h)
            .body(full(""))
            .unwrap()
    };
    // On a tunnel's host the path is the app's (this origin has no such route).
    let resp = visit(server.public, &host, upgrade(&host)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), "no such origin route");
    // On the server's own host, an upgrade without a key is a clear 400.
    let own = format!("localhost:{}", server.public.port());
    let resp = visit(server.public, &own, upgrade(&own)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    assert!(body.contains("Sec-WebSocket-Key"), "{body}");
}

/// tinyproxy on a free loopback port, with basic auth, allowing only
/// CONNECT to `allowed` (a port) and refusing plain requests.
struct TinyProxy {
    _process: Kill,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TinyProxy {
    async fn start(allowed: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let filter = dir.path().join("filter");
        std::fs::write(&filter, format!("^127\\.0\\.0\\.1:{allowed}$\n")).unwrap();
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n\
                 BasicAuth beam s3cret\nConnectPort {allowed}\nFilter \"{}\"\nFilterURLs On\n\
                 FilterExtended On\nFilterDefaultDeny Yes\nLogLevel Warning\n",
                filter.display()
            ),
        )
        .unwrap();
        let process = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian package; scripts/test installs it)");
        let process = Kill(process);
        eventually("tinyproxy listening", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self {
            _process: process,
            port,
            _dir: dir,
        }
    }

    fn url(&self, password: &str) -> String {
        format!("http://beam:{password}@127.0.0.1:{}", self.port)
    }

    /// The first line of the proxy's answer to `request`.
    async fn answer(&self, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0; 256];
        let n = within("proxy answer", s.read(&mut buf)).await.unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_that_only_allows_the_https_port_auto_finds_the_way() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let https = server.https.port();
    let proxy = TinyProxy::start(https).await;
    // The proxy really is locked down: no CONNECT to the tunnel port, no
    // plain requests.
    let auth = "Proxy-Authorization: Basic YmVhbTpzM2NyZXQ=\r\n";
    let to_tunnel = format!(
        "CONNECT {} HTTP/1.1\r\nHost: x\r\n{auth}\r\n",
        server.tunnel
    );
    assert!(proxy.answer(&to_tunnel).await.contains(" 403 "));
    let plain = format!("GET http://127.0.0.1:{https}/ HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    assert!(proxy.answer(&plain).await.contains(" 403 "));

    let url = proxy.url("s3cret");
    let (_auto, host, via) = connect_with(&server, &origin, |c| {
        c.transport = Transport::Auto;
        c.egress = Some(HttpProxy::parse("HTTPS_PROXY", &url).unwrap());
    })
    .await;
    let shown = format!("http://***@127.0.0.1:{} (HTTPS_PROXY)", proxy.port);
    assert_eq!(
        via,
        format!("tls to the HTTPS port 127.0.0.1:{https} through proxy {shown}")
    );
    assert_serves(&server, &host).await;

    let (_ws, host, via) = connect_with(&server, &origin, |c| {
        c.transport = Transport::WebSocket;
        c.egress = Some(HttpProxy::parse("HTTPS_PROXY", &url).unwrap());
    })
    .await;
    assert!(
        via.starts_with("websocket wss://") && via.ends_with(&shown),
        "{via}"
    );
    assert_serves(&server, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_honours_https_proxy_and_a_wrong_proxy_password_is_fatal() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let https = server.https.port().to_string();
    let proxy = TinyProxy::start(server.https.port()).await;
    let home = tempfile::tempdir().unwrap();
    let run = |password: &str| {
        let mut c = beam(home.path());
        c.args(["http", &origin.addr.to_string(), "--json"])
            .args(["--server", &server.tunnel.to_string()])
            .args(["--fingerprint", &server.fingerprint, "--edge-port", &https])
            .env("BEAM_TOKEN", server.token.expose())
            .env("HTTPS_PROXY", proxy.url(password));
        c
    };

    let mut client = Kill(run("s3cret").stdout(Stdio::piped()).spawn().unwrap());
    let line = first_line(&mut client.0).await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let via = v["via"].as_str().unwrap();
    assert!(via.starts_with("tls to the HTTPS port"), "{via}");
    assert!(via.contains("through proxy http://***@127.0.0.1"), "{via}");
    assert!(!line.contains("s3cret"));
    let host = server.host(v["name"].as_str().unwrap());
    assert_serves(&server, &host).await;
    drop(client);

    // Wrong credentials: the proxy says 407 and retrying cannot help.
    let (code, _, err) = output(run("wrong"));
    assert_ne!(code, 0);
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(!err.contains("wrong"), "the password leaked: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_server_addresses_are_tried_in_turn_by_tunnels_and_the_api() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let dead = closed_port().await;
    let list = format!("{dead}, {}", server.tunnel);
    let (_client, host, via) = connect_with(&server, &origin, |c| {
        c.transport = Transport::Tls;
        c.server = list.clone();
    })
    .await;
    assert_eq!(via, format!("tls to {}", server.tunnel));
    assert_serves(&server, &host).await;

    let api = beam_client::ApiClient {
        server: list,
        tls: beam_client::TlsMode::Pinned(server.fingerprint.clone()),
        token: Some(server.token.clone()),
        egress: None,
    };
    let tunnels: serde_json::Value = api
        .call(http::Method::GET, "/api/tunnels", None::<&()>)
        .await
        .unwrap();
    let name = host.split('.').next().unwrap();
    let row = tunnels
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{tunnels}"));
    // The row names the node serving it (16 hex digits, random per start).
    let node = row["node"].as_str().unwrap();
    assert_eq!(node.len(), 16, "{row}");
}
