//! Keep-alive HTTP/1.1 connections to the local service, one request at a time
//! each. A connection goes back to the pool when its response body has ended,
//! and is dropped (closed) when the body is abandoned half-way. Simpler and
//! cheaper per request than a general-purpose pooled client: there is one
//! destination, so no pool keys, no connect races and no background tasks.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::error::ConnectError;
use crate::handler::Body;
use crate::local::LocalDialer;

/// Most idle connections kept; more are closed when their response ends.
const MAX_IDLE: usize = 1024;

/// Why a request did not get an answer from the local service.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// No connection could be opened (not listening, refused, TLS failed).
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The connection broke before a response arrived.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// The pool of connections to one local target.
#[derive(Debug)]
pub struct OriginPool {
    dialer: LocalDialer,
    idle: Mutex<Vec<SendRequest<Body>>>,
}

impl OriginPool {
    /// An empty pool dialling with `dialer`.
    pub fn new(dialer: LocalDialer) -> Arc<Self> {
        Arc::new(Self {
            dialer,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` on an idle connection, or on a new one when none is idle
    /// or the idle one turns out to be closed before the request was written
    /// (the local service closed it while it was idle).
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<Pooled>, OriginError> {
        while let Some(mut sender) = self.checkout() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.pooled(resp, sender)),
                Err(mut e) => match e.take_message() {
                    // Not written: the request is intact, try the next connection.
                    Some(back) => req = back,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        Ok(self.pooled(resp, sender))
    }

    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, OriginError> {
        let io = TokioIo::new(self.dialer.dial().await?);
        let (sender, conn) = http1::handshake(io).await?;
        // A connection error after the response began reaches the body, which
        // reports it; the driver's own result adds nothing.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn pooled(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<Pooled> {
        resp.map(|body| {
            let mut p = Pooled {
                body,
                back: Some((sender, self.clone())),
            };
            // A response without a body (HEAD, 204, 304) frees the connection now.
            if p.body.is_end_stream() {
                p.release();
            }
            p
        })
    }
}

/// A response body that hands its connection back to the pool when it ends.
#[derive(Debug)]
pub struct Pooled {
    body: Incoming,
    back: Option<(SendRequest<Body>, Arc<OriginPool>)>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            pool.checkin(sender);
        }
    }
}

impl HttpBody for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.release(),
            // An error leaves the connection unusable: it is dropped, not pooled.
            Poll::Ready(Some(Err(_))) => drop(self.back.take()),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
