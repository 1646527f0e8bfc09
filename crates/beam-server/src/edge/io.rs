//! A visitor connection the edge can still write to after hyper gave up on it,
//! so a visitor that started a request and stalled gets `408 Request Timeout`
//! instead of a silent close (RFC 9110 §15.5.9), while an idle keep-alive
//! connection is closed quietly as usual.
//!
//! hyper owns one handle and the edge keeps the other; both reach the stream
//! through a mutex that only one task ever takes at a time, so it costs an
//! uncontended lock per read and write.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

struct Shared<IO> {
    io: Mutex<IO>,
    /// Bytes arrived since the last response bytes went out: a request is
    /// being received (or waiting), as opposed to an idle keep-alive.
    read_since_write: AtomicBool,
}

/// The handle hyper serves.
pub(crate) struct Watched<IO>(Arc<Shared<IO>>);

/// The edge's handle to the same stream.
pub(crate) struct Watcher<IO>(Arc<Shared<IO>>);

/// Wraps `io` into the handle for hyper and the edge's handle.
pub(crate) fn watch<IO>(io: IO) -> (Watched<IO>, Watcher<IO>) {
    let shared = Arc::new(Shared {
        io: Mutex::new(io),
        read_since_write: AtomicBool::new(false),
    });
    (Watched(shared.clone()), Watcher(shared))
}

impl<IO> Shared<IO> {
    fn lock(&self) -> std::sync::MutexGuard<'_, IO> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.0.lock()).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.0.read_since_write.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.0.lock()).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.0.read_since_write.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.0.lock()).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.0.read_since_write.store(false, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.0.lock().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.lock()).poll_shutdown(cx)
    }
}

/// The response a stalled request gets.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 65\r\n\r\n408 Request Timeout\n\nThe request headers did not arrive in time.\n";

impl<IO: AsyncWrite + Unpin> Watcher<IO> {
    /// After hyper's header-read timeout: answers 408 if a request had started,
    /// then closes. Bounded by `limit` so a visitor that does not read cannot
    /// hold the task.
    pub(crate) async fn timed_out(self, limit: std::time::Duration) {
        let partial = self.0.read_since_write.load(Ordering::Relaxed);
        let mut w = Watched(self.0);
        let _ = tokio::time::timeout(limit, async {
            if partial {
                w.write_all(REQUEST_TIMEOUT).await?;
            }
            w.shutdown().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_408_page_length_matches_its_header() {
        let text = std::str::from_utf8(super::REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
