//! A beam server running in this process, and calling its API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beam_client::{Backoff, ClientConfig, LocalTarget, ProxyConfig, TlsMode};
use beam_proto::{Secret, TunnelRequest, Welcome};
use beam_server::accounts::auth::generate_token;
use beam_server::tls::TunnelCert;
use beam_server::{Listeners, Metrics, Server, ServerConfig, Store};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

/// A server running in this process.
pub struct TestServer {
    pub public: SocketAddr,
    /// The HTTPS edge (self-signed wildcard unless the test configures files).
    pub https: SocketAddr,
    pub tunnel: SocketAddr,
    /// The `--metrics` listener (no token needed there).
    pub metrics_addr: SocketAddr,
    /// The node listener, when clustered.
    pub node: Option<SocketAddr>,
    /// The server's clock (advance it to expire tokens).
    pub clock: Arc<beam_server::accounts::clock::Clock>,
    pub token: Secret,
    pub fingerprint: String,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub cfg: ServerConfig,
    pub dir: Arc<TempDir>,
    /// `(user id, organization id)` of the operator account that owns `token`.
    pub operator: beam_server::store::Operator,
    /// A one-click dashboard sign-in path (`/signin/…`), as `--dev` prints.
    pub sign_in: String,
    pg: Option<Arc<PgDb>>,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

/// The cluster secret of test clusters.
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";

/// A random high port range for TCP tunnels (allocation retries on busy ports).
fn tcp_range() -> std::ops::RangeInclusive<u16> {
    let start = 40000 + (rand::random::<u16>() % 15000);
    start..=start + 999
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_on(Backend::Sqlite, tweak).await
    }

    pub async fn start_on(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        init();
        // The data directory also holds the SQLite file: it lives as long as the server.
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (store, pg) = test_store(backend, dir.path()).await;
        Self::start_in(dir, store, pg, tweak).await
    }

    /// A server on `store` (e.g. PostgreSQL reached through a relay the test
    /// can cut).
    pub async fn start_with_store(
        store: Store,
        pg: Option<Arc<PgDb>>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        init();
        Self::start_in(Arc::new(tempfile::tempdir().unwrap()), store, pg, tweak).await
    }

    async fn start_in(
        dir: Arc<TempDir>,
        store: Store,
        pg: Option<Arc<PgDb>>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tunnel = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = ServerConfig::dev();
        cfg.https_port = Some(https.local_addr().unwrap().port());
        cfg.public_port = Some(public.local_addr().unwrap().port());
        cfg.tcp_ports = tcp_range();
        // Analytics reach the store promptly, so tests wait on them, not on a timer.
        cfg.analytics_flush = Duration::from_millis(50);
        tweak(&mut cfg);
        let mut s = Self::launch(dir, cfg, store, public, tunnel, https).await;
        s.pg = pg;
        let token = generate_token();
        beam_server::accounts::auth::store_operator_token(
            &s.store,
            s.operator,
            token.expose(),
            "test",
        )
        .await
        .unwrap();
        s.token = token;
        s
    }

    async fn launch(
        dir: Arc<TempDir>,
        cfg: ServerConfig,
        store: Store,
        public: TcpListener,
        tunnel: TcpListener,
        https: TcpListener,
    ) -> Self {
        let cert = TunnelCert::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        // Clustered: a node listener, recorded as this node's address.
        let mut cfg = cfg;
        let node = match &mut cfg.cluster {
            Some(c) => {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                c.node_addr = l.local_addr().unwrap().to_string();
                Some(l)
            }
            None => None,
        };
        let node_addr = node.as_ref().map(|l| l.local_addr().unwrap());
        let server = Server::new(
            cfg.clone(),
            store.clone(),
            Some(cert.server_config().unwrap()),
        )
        .await
        .unwrap();
        let metrics = server.metrics();
        let operator = server.operator();
        let clock = server.clock();
        let sign_in = server.dashboard_sign_in_path();
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();

        let metrics_addr = metrics_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (public_addr, tunnel_addr, https_addr) = (
            public.local_addr().unwrap(),
            tunnel.local_addr().unwrap(),
            https.local_addr().unwrap(),
        );
        let stop = shutdown.clone();
        let handle = tokio::spawn(async move {
            server
                .run(
                    Listeners {
                        public,
                        tunnel,
                        https: Some(https),
                        metrics: Some(metrics_listener),
                        node,
                        memory: None,
                    },
                    stop.cancelled_owned(),
                )
                .await
                .unwrap();
        });
        Self {
            public: public_addr,
            https: https_addr,
            tunnel: tunnel_addr,
            metrics_addr,
            node: node_addr,
            clock,
            token: Secret::default(),
            fingerprint: cert.fingerprint,
            store,
            metrics,
            cfg,
            dir,
            operator,
            sign_in,
            pg: None,
            shutdown,
            handle,
        }
    }

    /// Stops the server gracefully (as SIGTERM does) and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        within("server shutdown", self.handle).await.unwrap();
    }

    /// Stops the server and starts a new one on the same ports and database.
    pub async fn restart(self) -> Self {
        let (public, tunnel, https) = (self.public, self.tunnel, self.https);
        self.shutdown.cancel();
        within("server shutdown", self.handle).await.unwrap();
        let public = TcpListener::bind(public).await.unwrap();
        let tunnel = TcpListener::bind(tunnel).await.unwrap();
        let https = TcpListener::bind(https).await.unwrap();
        let mut s = Self::launch(self.dir, self.cfg, self.store, public, tunnel, https).await;
        s.token = self.token;
        s.pg = self.pg;
        s
    }

    /// A second node on this server's database (a cluster of two on
    /// PostgreSQL): its own listeners and process state, the same store,
    /// tunnel certificate, token and operator.
    pub async fn join(&self) -> Self {
        self.join_with(|_| {}).await
    }

    /// The first node of a cluster on a fresh PostgreSQL database: a node
    /// listener, the test cluster secret, a fast heartbeat. More nodes come
    /// with [`join`](Self::join).
    pub async fn cluster(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_on(Backend::Postgres, |c| {
            c.cluster = Some(beam_server::config::ClusterConfig::new(
                "",
                Secret::new(CLUSTER_SECRET),
            ));
            c.node_heartbeat = Duration::from_millis(200);
            tweak(c)
        })
        .await
    }

    /// [`join`](Self::join) with changes to the new node's configuration.
    /// A clustered node gets its own loopback address for TCP tunnel ports
    /// (127.0.0.N), as nodes on separate machines would.
    pub async fn join_with(&self, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (public, tunnel, https) = (
            bind().await.unwrap(),
            bind().await.unwrap(),
            bind().await.unwrap(),
        );
        let mut cfg = self.cfg.clone();
        cfg.public_port = Some(public.local_addr().unwrap().port());
        cfg.https_port = Some(https.local_addr().unwrap().port());
        if cfg.cluster.is_some() {
            static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250 + 2;
            cfg.tcp_bind = std::net::Ipv4Addr::new(127, 0, 0, n).into();
            cfg.tcp_host = cfg.tcp_bind.to_string();
        }
        tweak(&mut cfg);
        // The same tunnel certificate, as nodes of one cluster share it (clients
        // pin one fingerprint for all of them).
        let dir = self.dir.clone();
        let mut s = Self::launch(dir, cfg, self.store.clone(), public, tunnel, https).await;
        s.token = self.token.clone();
        s.pg = self.pg.clone();
        s
    }

    /// The connection half of a client config: this server, pinned, fast retries.
    pub fn conn_config(&self, tunnel: TunnelRequest) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.tunnel.to_string(), self.token.clone(), tunnel);
        cfg.tls = TlsMode::Pinned(self.fingerprint.clone());
        // The tunnel port only, unless a test asks for another transport.
        cfg.transport = beam_client::Transport::Tls;
        cfg.edge_port = self.https.port();
        cfg.backoff = Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        };
        cfg
    }

    /// A tunnel client config proxying to `local`.
    pub fn client_config(&self, tunnel: TunnelRequest, local: SocketAddr) -> ClientSetup {
        ClientSetup {
            conn: self.conn_config(tunnel),
            proxy: ProxyConfig::new(LocalTarget {
                host: local.ip().to_string(),
                port: local.port(),
                https: false,
            }),
        }
    }

    /// Starts an HTTP tunnel client to `local` and waits until it is routable.
    /// Starts an HTTP tunnel with visitor protection and waits until it is routable.
    pub async fn protected_client(
        &self,
        local: SocketAddr,
        protection: beam_proto::Protection,
    ) -> (TestClient, String) {
        let mut cfg = self.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            local,
        );
        cfg.conn.protection = protection;
        let mut c = TestClient::start(cfg);
        let w = c.connected().await;
        (c, self.host(&w.name))
    }

    pub async fn http_client(&self, local: SocketAddr) -> (TestClient, Welcome) {
        let mut c = TestClient::start(self.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            local,
        ));
        let w = c.connected().await;
        (c, w)
    }

    pub fn host(&self, name: &str) -> String {
        format!("{name}.localhost:{}", self.public.port())
    }

    /// The `/api/tunnels` row of tunnel `name`, as `token` sees it on this node.
    pub async fn tunnel_row(&self, token: &str, name: &str) -> Option<serde_json::Value> {
        let rows = self.api("GET", "/api/tunnels", Some(token), None).await;
        rows.json
            .as_array()?
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// An API answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
}

impl Reply {
    /// The error code of a JSON error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of a JSON error body.
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// One request to the API on the public port (Host `localhost`).
    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
        let stream = tokio::net::TcpStream::connect(self.public).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", self.public.port()));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = within(
            "API response",
            sender.send_request(req.body(full(body)).unwrap()),
        )
        .await
        .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes)
    }

    /// Calls the API with a bearer token; the answer's status and text
    /// (NDJSON exports and streams that are not one JSON document).
    pub async fn api_text(&self, path: &str, token: &str) -> (StatusCode, String) {
        let (status, _, bytes) = self
            .send_raw("GET", path, Some(token), None, Vec::new())
            .await;
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Calls the API on the public port (Host `localhost`) with a raw body.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let (status, headers, bytes) = self.send_raw(method, path, token, content_type, body).await;
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{method} {path}: not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    /// Calls the API with an optional JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), serde_json::to_vec(&b).unwrap()),
            None => (None, Vec::new()),
        };
        self.api_raw(method, path, token, ct, bytes).await
    }

    /// A registered user whose address is verified, logged in: the session
    /// token. (The verification mail itself is tested in `api::accounts`;
    /// here the fixture marks the address proven in the store.)
    pub async fn user(&self, email: &str) -> String {
        let session = self.unverified_user(email).await;
        let user = self.store.user_by_email(email).await.unwrap().unwrap();
        self.store
            .mark_verified(user.id, beam_server::store::now_ms())
            .await
            .unwrap();
        session
    }

    /// Registers `email` and logs in, without verifying the address.
    pub async fn unverified_user(&self, email: &str) -> String {
        let r = self
            .api(
                "POST",
                "/api/auth/register",
                None,
                Some(serde_json::json!({ "email": email, "password": "correct horse battery" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let r = self
            .api(
                "POST",
                "/api/auth/login",
                None,
                Some(serde_json::json!({ "email": email, "password": "correct horse battery" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.json["token"].as_str().unwrap().to_string()
    }

    /// Creates an API token with `scopes` using `session`.
    pub async fn api_token(&self, session: &str, scopes: &[&str]) -> String {
        let r = self
            .api(
                "POST",
                "/api/tokens",
                Some(session),
                Some(serde_json::json!({ "description": "test", "scopes": scopes })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.json["token"].as_str().unwrap().to_string()
    }

    /// A tunnel client config using `token`.
    pub fn client_with(
        &self,
        token: &str,
        tunnel: TunnelRequest,
        local: SocketAddr,
    ) -> ClientSetup {
        let mut cfg = self.client_config(tunnel, local);
        cfg.conn.token = Secret::new(token);
        cfg
    }
}
