//! The local side of a connection the client only copies, with a [`Watch`]
//! told of every byte after it crossed: nothing is held back or buffered
//! for the inspector.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Told of the bytes crossing a [`Tap`], in order, after they crossed.
pub trait Watch {
    /// Bytes from the visitor, as written to the local service.
    fn up(&mut self, data: &[u8]);
    /// Bytes from the local service, as read for the visitor.
    fn down(&mut self, data: &[u8]);
    /// The connection is gone (the tap was dropped).
    fn close(&mut self);
}

/// An IO whose traffic a [`Watch`] sees.
pub struct Tap<S, W: Watch> {
    io: S,
    watch: W,
}

impl<S, W: Watch> Tap<S, W> {
    /// `io`, watched by `watch`.
    pub fn new(io: S, watch: W) -> Self {
        Self { io, watch }
    }
}

impl<S, W: Watch> Drop for Tap<S, W> {
    fn drop(&mut self) {
        self.watch.close();
    }
}

impl<S: AsyncRead + Unpin, W: Watch + Unpin> AsyncRead for Tap<S, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        self.watch.down(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin, W: Watch + Unpin> AsyncWrite for Tap<S, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.watch.up(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
