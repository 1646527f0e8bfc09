//! One multiplexed HTTP/2 connection to the local service, for
//! `--upstream-http2` (gRPC and other services that speak only HTTP/2, over
//! h2c or TLS with ALPN `h2`). Every request shares it; it is reopened on the
//! next request once it has closed. Trailers and streaming bodies pass
//! through in both directions.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::handler::Body;
use crate::local::LocalDialer;
use crate::origin::OriginError;

/// The HTTP/2 connection to one local target.
#[derive(Debug)]
pub struct OriginH2 {
    dialer: LocalDialer,
    conn: tokio::sync::Mutex<Option<SendRequest<Body>>>,
}

impl OriginH2 {
    /// Not connected yet: the first request connects.
    pub fn new(dialer: LocalDialer) -> Arc<Self> {
        Arc::new(Self {
            dialer,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// Sends `req` (absolute URI, HTTP/2) on the shared connection.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, OriginError> {
        let mut sender = self.sender().await?;
        sender.ready().await?;
        Ok(sender.send_request(req).await?)
    }

    /// The open connection, or a new one. The lock is held while connecting
    /// so concurrent first requests open one connection, not one each.
    async fn sender(&self) -> Result<SendRequest<Body>, OriginError> {
        let mut slot = self.conn.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let io = TokioIo::new(self.dialer.dial_alpn(&[b"h2"]).await?);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        // Errors reach the streams that were open; the driver adds nothing.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }
}
