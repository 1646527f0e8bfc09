//! Test harness: start a server, a client and a local origin in-process.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beam_client::{
    Backoff, ClientConfig, ClientError, Event, LocalProxy, LocalTarget, ProxyConfig, Stats,
    StreamHandler, TlsMode,
};
use beam_proto::{Secret, TunnelRequest, Welcome};
use beam_server::accounts::auth::generate_token;
use beam_server::tls::TunnelCert;
use beam_server::{Listeners, Metrics, Server, ServerConfig, Store};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::{Barrier, Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on, so a bug fails the test instead of
/// hanging CI. Not a performance threshold.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Awaits `f` for at most [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temp dir.
    Sqlite,
    /// A throwaway database on the machine's PostgreSQL.
    Postgres,
}

/// Runs an async test body once per back end: `both!(name, |backend| async move { … })`
/// makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                ($body)($crate::support::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                ($body)($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// A fresh PostgreSQL database, dropped when the guard goes out of scope.
pub struct PgDb {
    admin: String,
    name: String,
}

impl PgDb {
    /// Creates the database; returns the guard and its URL.
    pub async fn create() -> (Self, String) {
        use sqlx::Connection;
        let admin = std::env::var("BEAM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("beam_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must be running for store tests ({admin}): {e}")
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("BEAM_TEST_POSTGRES needs a database path"),
        };
        (Self { admin, name }, url)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop from a separate thread: Drop cannot await inside the test runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A store on `backend`, with the guard that drops a PostgreSQL database.
pub async fn test_store(backend: Backend, dir: &std::path::Path) -> (Store, Option<Arc<PgDb>>) {
    match backend {
        Backend::Sqlite => (
            Store::connect(&format!("sqlite://{}", dir.join("beam.db").display()))
                .await
                .unwrap(),
            None,
        ),
        Backend::Postgres => {
            let (db, url) = PgDb::create().await;
            (Store::connect(&url).await.unwrap(), Some(Arc::new(db)))
        }
    }
}

/// A server running in this process.
pub struct TestServer {
    pub public: SocketAddr,
    /// The HTTPS edge (self-signed wildcard unless the test configures files).
    pub https: SocketAddr,
    pub tunnel: SocketAddr,
    /// The `--metrics` listener (no token needed there).
    pub metrics_addr: SocketAddr,
    /// The server's clock (advance it to expire tokens).
    pub clock: Arc<beam_server::accounts::revocation::Clock>,
    pub token: Secret,
    pub fingerprint: String,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub cfg: ServerConfig,
    pub dir: Arc<TempDir>,
    /// `(user id, organization id)` of the operator account that owns `token`.
    pub operator: (i64, i64),
    pg: Option<Arc<PgDb>>,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

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
        let dir = Arc::new(tempfile::tempdir().unwrap());
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
        let (store, pg) = test_store(backend, dir.path()).await;
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
            clock,
            token: Secret::default(),
            fingerprint: cert.fingerprint,
            store,
            metrics,
            cfg,
            dir,
            operator,
            pg: None,
            shutdown,
            handle,
        }
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

    /// The connection half of a client config: this server, pinned, fast retries.
    pub fn conn_config(&self, tunnel: TunnelRequest) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.tunnel.to_string(), self.token.clone(), tunnel);
        cfg.tls = TlsMode::Pinned(self.fingerprint.clone());
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

/// A tunnel client running in this process.
pub struct TestClient {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), ClientError>>,
}

/// Both halves of a `beam http` / `beam tcp` client's configuration.
pub struct ClientSetup {
    pub conn: ClientConfig,
    pub proxy: ProxyConfig,
}

impl TestClient {
    /// A tunnel client proxying to its local target.
    pub fn start(cfg: ClientSetup) -> Self {
        let stats = Arc::new(Stats::default());
        let proxy = LocalProxy::new(&cfg.proxy, cfg.conn.tunnel.kind(), stats.clone());
        Self::serve(cfg.conn, proxy, stats)
    }

    /// A client whose streams `handler` answers (an agent's services).
    pub fn serve(cfg: ClientConfig, handler: impl StreamHandler, stats: Arc<Stats>) -> Self {
        init();
        let (tx, events) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(beam_client::run(
            cfg,
            handler,
            tx,
            shutdown.clone().cancelled_owned(),
        ));
        Self {
            events,
            stats,
            shutdown,
            handle,
        }
    }

    /// Waits for the next `Connected` event.
    pub async fn connected(&mut self) -> Welcome {
        within("tunnel connected", async {
            loop {
                match self.events.recv().await {
                    Some(Event::Connected { welcome, .. }) => return welcome,
                    Some(_) => continue,
                    None => panic!("client stopped: {:?}", (&mut self.handle).await),
                }
            }
        })
        .await
    }

    /// Waits until the client is routable (`Ok`) or stops with an error.
    pub async fn outcome(&mut self) -> Result<Welcome, ClientError> {
        within("client outcome", async {
            loop {
                match self.events.recv().await {
                    Some(Event::Connected { welcome, .. }) => return Ok(welcome),
                    Some(_) => continue,
                    // The client dropped its event sender: it has stopped.
                    None => {
                        return Err((&mut self.handle)
                            .await
                            .unwrap()
                            .expect_err("client stopped without error before connecting"));
                    }
                }
            }
        })
        .await
    }

    /// Waits for the client to stop with a server refusal and returns it.
    pub async fn refused(self) -> beam_proto::Refusal {
        refusal_of(self.result().await.unwrap_err())
    }

    /// Waits for a `Disconnected` event.
    pub async fn disconnected(&mut self) -> String {
        within("tunnel disconnected", async {
            loop {
                match self.events.recv().await {
                    Some(Event::Disconnected { reason, .. }) => return reason,
                    Some(_) => continue,
                    None => panic!("client stopped"),
                }
            }
        })
        .await
    }

    /// Waits for the client to stop and returns its result.
    pub async fn result(self) -> Result<(), ClientError> {
        within("client exit", self.handle).await.unwrap()
    }
}

pub type TestBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|n| match n {}).boxed_unsync()
}

/// A local HTTP service with routes that exercise the tunnel.
pub struct Origin {
    pub addr: SocketAddr,
    /// `/events` sends its second event only after this is notified.
    pub release: Arc<Notify>,
    /// `/barrier` answers only when this many requests are waiting at once.
    pub barrier: Arc<Barrier>,
}

impl Origin {
    pub async fn start() -> Self {
        Self::with_barrier(1).await
    }

    pub async fn with_barrier(n: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let barrier = Arc::new(Barrier::new(n));
        let (r, b) = (release.clone(), barrier.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (r, b) = (r.clone(), b.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| origin(req, r.clone(), b.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            release,
            barrier,
        }
    }
}

/// Bytes of the deterministic pattern `/bytes/N` serves: byte i is `i % 251`.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

async fn origin(
    req: Request<Incoming>,
    release: Arc<Notify>,
    barrier: Arc<Barrier>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/hello" => Response::new(full("hello from origin")),
        "/headers" => {
            let mut map = serde_json::Map::new();
            for (k, v) in req.headers() {
                map.insert(
                    k.as_str().to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
                );
            }
            map.insert("_path".into(), req.uri().to_string().into());
            Response::new(full(serde_json::Value::Object(map).to_string()))
        }
        "/echo" => Response::new(req.into_body().map_err(Into::into).boxed_unsync()),
        "/count" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.map(|f| f.into_data()) {
                    n += d.map(|d| d.len() as u64).unwrap_or(0);
                } else {
                    break;
                }
            }
            Response::new(full(n.to_string()))
        }
        p if p.starts_with("/bytes/") => {
            let n: u64 = p[7..].parse().unwrap_or(0);
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                let mut sent = 0u64;
                while sent < n {
                    let len = (n - sent).min(64 << 10);
                    let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
                    if tx.send_data(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                    sent += len;
                }
            });
            Response::new(body.map_err(|n| match n {}).boxed_unsync())
        }
        "/events" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"data: one\n\n")).await;
                release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"data: two\n\n")).await;
            });
            let mut r = Response::new(body.map_err(|n| match n {}).boxed_unsync());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full("too late"))
        }
        "/barrier" => {
            barrier.wait().await;
            Response::new(full("all here"))
        }
        "/ws" => return Ok(crate::websocket::origin_upgrade(req)),
        "/fail" => {
            let mut r = Response::new(full("origin failed"));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
        "/json" => {
            let items: Vec<String> = (0..200)
                .map(|i| format!("{{\"item\": {i}, \"name\": \"widget\"}}"))
                .collect();
            let mut r = Response::new(full(format!("[{}]", items.join(","))));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
        "/own-cors" => {
            let mut r = Response::new(full("app decides"));
            r.headers_mut().insert(
                "access-control-allow-origin",
                "https://app-own.example".parse().unwrap(),
            );
            r
        }
        "/multi-cookie" => {
            let mut r = Response::new(full("cookies"));
            r.headers_mut().append("set-cookie", "a=1".parse().unwrap());
            r.headers_mut().append("set-cookie", "b=2".parse().unwrap());
            r
        }
        // A cookie for each `domain=` in the query, as a hostile app would.
        "/domain-cookies" => {
            let mut r = Response::new(full("cookies"));
            let q = req.uri().query().unwrap_or("");
            for (i, d) in q
                .split('&')
                .filter_map(|p| p.strip_prefix("domain="))
                .enumerate()
            {
                let c = format!("c{i}=v; Domain={d}; Path=/");
                r.headers_mut().append("set-cookie", c.parse().unwrap());
            }
            r
        }
        _ => {
            let mut r = Response::new(full("no such origin route"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

/// The common start of an HTTP test: a server, an origin, a connected
/// `beam http` client for it, and the tunnel's `Host` value.
pub async fn http_tunnel() -> (TestServer, Origin, TestClient, String) {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let (client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    (server, origin, client, host)
}

/// A TCP echo server.
pub async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A visitor: one HTTP/1.1 request to the public port with a `Host` header.
pub async fn visit(public: SocketAddr, host: &str, req: Request<TestBody>) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(public).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let (mut parts, body) = req.into_parts();
    parts.headers.insert("host", host.parse().unwrap());
    within(
        "response",
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await
    .unwrap()
}

/// GET `path` and return status and body text.
pub async fn get(public: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let resp = visit(public, host, Request::get(path).body(full("")).unwrap()).await;
    let status = resp.status();
    let body = within("body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends nothing but reads frames: used to assert streaming.
pub async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        match within("body frame", body.frame()).await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) if !d.is_empty() => return Some(d),
                _ => continue,
            },
            _ => return None,
        }
    }
}

pub fn frame(b: impl Into<Bytes>) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(b.into()))
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The server's refusal inside a client error; panics on any other error.
pub fn refusal_of(err: ClientError) -> beam_proto::Refusal {
    match err {
        ClientError::Fatal(beam_client::connect::ConnectError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Polls `f` until it returns `Some`, for state that changes in the background
/// (analytics flushes, quota refreshes). Bounded by [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
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
    /// Calls the API on the public port (Host `localhost`) with a raw body.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
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

/// A sendmail stand-in: a script that stores each message it gets on stdin as a
/// file, so tests read what the server mailed.
pub struct MailCatcher {
    pub program: std::path::PathBuf,
    dir: TempDir,
}

impl MailCatcher {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("sendmail");
        // Written under a temporary name and renamed, so readers never see half a message.
        std::fs::write(
            &program,
            "#!/bin/sh\nd=$(dirname \"$0\")\ncat > \"$d/part.$$\" && mv \"$d/part.$$\" \"$d/mail.$$\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { program, dir }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("mail."))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    /// The one message received, once it is there.
    pub fn read(&self) -> Option<String> {
        let mut all = self.messages();
        assert!(all.len() <= 1, "more than one message: {all:?}");
        all.pop()
    }

    /// The one message with `subject`, once it is there.
    pub fn read_subject(&self, subject: &str) -> Option<String> {
        self.read_to("", subject)
    }

    /// The one message to `to` (any recipient when empty) with `subject`.
    pub fn read_to(&self, to: &str, subject: &str) -> Option<String> {
        let mut all: Vec<String> = self
            .messages()
            .into_iter()
            .filter(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .filter(|m| to.is_empty() || m.contains(&format!("To: {to}\r\n")))
            .collect();
        assert!(all.len() <= 1, "more than one '{subject}' message: {all:?}");
        all.pop()
    }
}
