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

pin_project_lite::pin_project! {
    /// Passes frames through and adds the length of each data frame to a counter.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Counter,
        tally: Option<Arc<AtomicU64>>,
    }
}

impl<B> Counted<B> {
    /// Wraps `inner`, counting into `counter`.
    pub fn new(inner: B, counter: Counter) -> Self {
        Self {
            inner,
            counter,
            tally: None,
        }
    }

    /// Also adds to `tally` (this request's own byte count, for analytics).
    pub fn with_tally(mut self, tally: Option<Arc<AtomicU64>>) -> Self {
        self.tally = tally;
        self
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Counted<B> {
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
            this.counter.inc_by(data.len() as u64);
            if let Some(t) = this.tally {
                t.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
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
