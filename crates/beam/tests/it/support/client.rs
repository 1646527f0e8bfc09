//! Tunnel clients running in this process.

use std::sync::Arc;

use beam_client::{
    ClientConfig, ClientError, Event, LocalProxy, ProxyConfig, Stats, StreamHandler,
};
use beam_proto::Welcome;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

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
    pub fn start(mut cfg: ClientSetup) -> Self {
        cfg.conn.http1_streams = cfg.proxy.streams_http1();
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

    /// Waits for the client to stop with a server refusal and returns it;
    /// when none comes, fails with what the client went through instead.
    pub async fn refused(mut self) -> beam_proto::Refusal {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut events_open = true;
        loop {
            tokio::select! {
                r = &mut self.handle => {
                    return refusal_of(r.unwrap().expect_err("the client stopped without a refusal"));
                }
                ev = self.events.recv(), if events_open => match ev {
                    Some(e) => seen.push(format!("{e:?}")),
                    None => events_open = false,
                },
                () = tokio::time::sleep_until(deadline) => {
                    panic!("no refusal within {PATIENCE:?}; the client went through: {seen:#?}")
                }
            }
        }
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

    /// Stops the client (as Ctrl-C would) and waits until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = within("client stop", self.handle).await;
    }

    /// Waits for the client to stop and returns its result.
    pub async fn result(self) -> Result<(), ClientError> {
        within("client exit", self.handle).await.unwrap()
    }
}

/// The server's refusal inside a client error; panics on any other error.
pub fn refusal_of(err: ClientError) -> beam_proto::Refusal {
    match err {
        ClientError::Fatal(beam_client::connect::ConnectError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
