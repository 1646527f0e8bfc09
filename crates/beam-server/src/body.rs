//! Body types shared by the edge and the tunnel: one boxed streaming body, and a
//! wrapper that counts bytes as they pass without buffering anything.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

/// An empty response with `status`.
pub fn bare(status: http::StatusCode) -> http::Response<Body> {
    let mut r = http::Response::new(empty());
    *r.status_mut() = status;
    r
}

/// Boxed error for bodies from different sources (hyper, axum, our own).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type on every hop inside the server.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Boxes any body whose error converts to [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Where a [`Counted`] body reports the bytes it passes.
pub trait Tally {
    /// Adds `n` bytes.
    fn add(&mut self, n: u64);
}

impl Tally for Counter {
    fn add(&mut self, n: u64) {
        self.inc_by(n);
    }
}

/// A request's own byte count, read when its analytics are recorded.
impl Tally for Arc<AtomicU64> {
    fn add(&mut self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
}

impl<T: Tally> Tally for Option<T> {
    fn add(&mut self, n: u64) {
        if let Some(t) = self {
            t.add(n);
        }
    }
}

/// A concurrency permit held for as long as the body streams; counts nothing.
impl Tally for tokio::sync::OwnedSemaphorePermit {
    fn add(&mut self, _n: u64) {}
}

impl<A: Tally, B: Tally> Tally for (A, B) {
    fn add(&mut self, n: u64) {
        self.0.add(n);
        self.1.add(n);
    }
}

pin_project_lite::pin_project! {
    /// Passes frames through and adds the length of each data frame to a tally
    /// (a Prometheus counter, a request's own count, or both).
    pub struct Counted<B, T> {
        #[pin]
        inner: B,
        tally: T,
    }
}

impl<B, T> Counted<B, T> {
    /// Wraps `inner`, counting into `tally`.
    pub fn new(inner: B, tally: T) -> Self {
        Self { inner, tally }
    }
}

impl<B: HttpBody<Data = Bytes>, T: Tally> HttpBody for Counted<B, T> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.tally.add(data.len() as u64);
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

/// The error a [`Capped`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body over {0} bytes")]
pub struct TooLarge(pub u64);

pin_project_lite::pin_project! {
    /// Ends with [`TooLarge`] once more than `limit` data bytes passed, and sets
    /// `tripped` so the edge can answer 413 instead of a generic failure.
    pub struct Capped<B> {
        #[pin]
        inner: B,
        limit: u64,
        seen: u64,
        tripped: Arc<std::sync::atomic::AtomicBool>,
    }
}

impl<B> Capped<B> {
    /// Wraps `inner` with a byte limit.
    pub fn new(inner: B, limit: u64, tripped: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            tripped,
        }
    }
}

impl<B> HttpBody for Capped<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if *this.seen > *this.limit {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(*this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
