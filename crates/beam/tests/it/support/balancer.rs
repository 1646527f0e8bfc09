//! A TCP load balancer in front of cluster nodes, as an operator would run
//! one: round robin over the nodes whose `GET /ready` answered 200 at the
//! last health check (every 50 ms), the next node when a connect fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// One node behind the balancer.
struct Backend {
    /// Where connections go (the node's public or tunnel port).
    addr: SocketAddr,
    /// The node's public port, asked `GET /ready`.
    health: SocketAddr,
    healthy: AtomicBool,
}

/// A running balancer; stops when dropped.
pub struct Balancer {
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Balancer {
    /// Balances over `(addr, public)` pairs: connections to `addr`, health
    /// from the node's public port.
    pub async fn start(nodes: &[(SocketAddr, SocketAddr)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backends: Arc<Vec<Backend>> = Arc::new(
            nodes
                .iter()
                .map(|&(addr, health)| Backend {
                    addr,
                    health,
                    healthy: AtomicBool::new(true),
                })
                .collect(),
        );
        let checks = {
            let backends = backends.clone();
            tokio::spawn(async move {
                loop {
                    for b in backends.iter() {
                        let ok = matches!(
                            tokio::time::timeout(Duration::from_secs(1), try_get(b.health, "localhost", "/ready")).await,
                            Ok(Ok((status, _))) if status == http::StatusCode::OK
                        );
                        b.healthy.store(ok, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    let start = next.fetch_add(1, Ordering::Relaxed);
                    for i in 0..backends.len() {
                        let b = &backends[(start + i) % backends.len()];
                        if !b.healthy.load(Ordering::SeqCst) {
                            continue;
                        }
                        if let Ok(mut outbound) = TcpStream::connect(b.addr).await {
                            let _ = outbound.set_nodelay(true);
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            tasks: vec![checks, accept],
        }
    }
}

/// One HTTP/1.1 GET on a new connection, errors returned instead of panicking
/// (load generators count them).
pub async fn try_get(
    public: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(http::StatusCode, String), String> {
    use http_body_util::BodyExt;
    let stream = TcpStream::connect(public)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
