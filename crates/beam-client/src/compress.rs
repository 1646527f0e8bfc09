//! Opt-in gzip of responses (`beam http --compress`), done on the client so the
//! tunnel carries compressed bytes too. Only when the visitor accepts gzip, the
//! app did not encode the body itself, and the type is text-like; each chunk is
//! flushed so streamed responses (SSE, long polls) keep flowing.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{self, HeaderMap, HeaderValue};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::handler::BoxError;

/// Bodies smaller than this are not worth the gzip header and CPU.
const MIN_SIZE: u64 = 1024;

/// Whether the visitor's `Accept-Encoding` allows gzip (and does not refuse it with q=0).
pub fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
            })
        })
    })
}

/// Whether a response with these headers should be compressed.
pub fn worth_compressing(response: &HeaderMap, size: SizeHint) -> bool {
    if response.contains_key(header::CONTENT_ENCODING) || size.upper().is_some_and(|n| n < MIN_SIZE)
    {
        return false;
    }
    let ct = response
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ["json", "javascript", "xml", "svg", "wasm", "graphql"]
            .iter()
            .any(|t| ct.contains(t))
}

/// Sets the headers of a gzipped response: encoding, `Vary`, no length.
pub fn mark(response: &mut HeaderMap) {
    response.remove(header::CONTENT_LENGTH);
    // The original validators describe the identity body.
    if let Some(etag) = response.get(header::ETAG).cloned()
        && let Ok(s) = etag.to_str()
        && !s.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{s}"))
    {
        response.insert(header::ETAG, weak);
    }
    response.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    response.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}

pin_project_lite::pin_project! {
    /// A gzip-encoding body over `inner`.
    pub struct Gzip<B> {
        #[pin]
        inner: B,
        encoder: Option<GzEncoder<Vec<u8>>>,
        trailers: Option<HeaderMap>,
    }
}

impl<B> Gzip<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            encoder: Some(GzEncoder::new(Vec::new(), Compression::fast())),
            trailers: None,
        }
    }
}

impl<B> HttpBody for Gzip<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        encoder.write_all(&data)?;
                        // Sync flush: what the app sent reaches the visitor now.
                        encoder.flush()?;
                        let out = std::mem::take(encoder.get_mut());
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            *this.trailers = Some(t);
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    let Some(encoder) = this.encoder.take() else {
                        continue;
                    };
                    let tail = encoder.finish()?;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_and_types() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));

        let mut r = HeaderMap::new();
        r.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(worth_compressing(&r, SizeHint::default()));
        assert!(!worth_compressing(&r, SizeHint::with_exact(100)));
        r.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(!worth_compressing(&r, SizeHint::default()));
        r.remove(header::CONTENT_ENCODING);
        r.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert!(!worth_compressing(&r, SizeHint::default()));
    }
}
