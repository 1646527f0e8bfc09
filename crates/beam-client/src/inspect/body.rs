//! Capture on the per-request path (gzip, a rewritten `Host`, HTTP/2 to the
//! local service, a local service that is down): the request and response
//! bodies are wrapped in [`Tee`]s that copy each frame's first bytes as it
//! passes, and the exchange is recorded when the response body ends or is
//! dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::record::{Building, Recorder, WsLog};

/// An exchange being captured on the per-request path; cheap to clone.
#[derive(Clone)]
pub struct Pending {
    rec: Arc<Recorder>,
    building: Arc<Mutex<Option<Building>>>,
    /// The id it was recorded under (0 until then).
    id: Arc<AtomicU64>,
}

/// Headers of a map, in its order, as the inspector keeps them.
pub fn headers_of(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

impl Pending {
    /// Starts capturing a request with this head.
    pub fn start(rec: &Arc<Recorder>, method: &str, path: &str, headers: &HeaderMap) -> Self {
        let cap = rec.limits().body_cap;
        Self {
            rec: rec.clone(),
            building: Arc::new(Mutex::new(Some(Building::new(
                method,
                path,
                headers_of(headers),
                cap,
            )))),
            id: Arc::new(AtomicU64::new(0)),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Building)) {
        if let Some(b) = self
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            f(b);
        }
    }

    /// Marks the exchange as a replay of `id`.
    pub fn replay_of(&self, id: u64) {
        self.with(|b| b.ex.replay_of = Some(id));
    }

    /// The request body, copied as it is read.
    pub fn request_body<B: HttpBody>(&self, body: B) -> Tee<B> {
        if let Some(n) = body.size_hint().exact() {
            self.with(|b| b.ex.request.body.expect(n));
        }
        Tee {
            inner: body,
            pending: self.clone(),
            response: false,
        }
    }

    /// Records the response head; its body is copied as it is read, and
    /// the exchange recorded when it ends.
    pub fn response_body<B: HttpBody>(&self, status: u16, headers: &HeaderMap, body: B) -> Tee<B> {
        self.with(|b| {
            b.response_head(status, headers_of(headers));
            if let Some(n) = body.size_hint().exact() {
                b.ex.response.body.expect(n);
            }
        });
        // An empty body may never be polled.
        if body.is_end_stream() {
            self.finish(None);
        }
        Tee {
            inner: body,
            pending: self.clone(),
            response: true,
        }
    }

    /// Records a protocol switch now (the exchange shows at once) and
    /// returns the log its frames go into.
    pub fn upgraded(&self, status: u16, headers: &HeaderMap) -> Arc<Mutex<WsLog>> {
        let log = Arc::new(Mutex::new(WsLog::default()));
        self.with(|b| {
            b.response_head(status, headers_of(headers));
            b.ex.websocket = Some(log.clone());
        });
        self.finish(None);
        log
    }

    /// Records an answer beam made itself (the local service is down), with
    /// why; returns the exchange's id.
    pub fn answered(&self, status: u16, headers: &HeaderMap, body: &[u8], why: String) -> u64 {
        self.with(|b| {
            b.response_head(status, headers_of(headers));
            b.ex.response.body.push(body);
        });
        self.finish(Some(why)).unwrap_or_default()
    }

    /// Records the exchange (once; later calls do nothing) and returns its id.
    pub fn finish(&self, error: Option<String>) -> Option<u64> {
        let b = self
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let id = self.rec.record(b.finish(error));
        self.id.store(id, Ordering::Relaxed);
        Some(id)
    }

    /// The id it was recorded under, once recorded.
    pub fn id(&self) -> Option<u64> {
        Some(self.id.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }
}

/// A body that copies what passes through it into a [`Pending`] exchange.
pub struct Tee<B> {
    inner: B,
    pending: Pending,
    response: bool,
}

impl<B> Drop for Tee<B> {
    fn drop(&mut self) {
        if self.response {
            self.pending
                .finish(Some("the response was cut off before its end".into()));
        }
    }
}

impl<B> HttpBody for Tee<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let response = self.response;
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.pending.with(|b| {
                        let side = if response {
                            &mut b.ex.response
                        } else {
                            &mut b.ex.request
                        };
                        side.body.push(data);
                    });
                }
                if response && self.inner.is_end_stream() {
                    self.pending.finish(None);
                }
            }
            Poll::Ready(None) if response => {
                self.pending.finish(None);
            }
            Poll::Ready(Some(Err(e))) if response => {
                self.pending
                    .finish(Some(format!("the response body failed: {e}")));
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
