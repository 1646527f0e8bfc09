//! Splicing with an idle timeout: the edge closes WebSocket and TCP streams on
//! which nothing moved for a while, and still knows how many bytes went each way
//! (the count lives in the wrappers, not in the copy future that gets dropped).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Buffer size for each direction of a spliced stream (WebSocket or TCP tunnel).
/// 64 KiB instead of tokio's 8 KiB default: four times fewer syscalls on bulk data.
pub const SPLICE_BUF: usize = 64 * 1024;

/// Copies bytes both ways between two streams until both directions are closed.
/// Returns the bytes copied `a → b` and `b → a`. Used on both ends of every
/// WebSocket and TCP stream so they behave alike.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, SPLICE_BUF, SPLICE_BUF).await
}

/// How a spliced stream ended.
#[derive(Debug)]
pub struct Spliced {
    /// Bytes read from `a` (and written to `b`).
    pub up: u64,
    /// Bytes read from `b` (and written to `a`).
    pub down: u64,
    /// `Err(TimedOut)` when the idle timeout closed it; other errors from either side.
    pub result: io::Result<()>,
}

/// Last activity (ms since `base`) and byte counts, shared by both wrappers.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// An IO that records activity and counts the bytes read from it.
struct Touch<'a, T: ?Sized> {
    io: &'a mut T,
    activity: &'a Activity,
    read: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin + ?Sized> AsyncRead for Touch<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin + ?Sized> AsyncWrite for Touch<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

/// Like [`crate::splice`], but gives up once no byte moved either way for `idle`.
pub async fn splice_idle<A, B>(a: &mut A, b: &mut B, idle: Duration) -> Spliced
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let activity = Activity {
        base: Instant::now(),
        last_ms: AtomicU64::new(0),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
    };
    let result = {
        let mut ta = Touch {
            io: a,
            activity: &activity,
            read: &activity.up,
        };
        let mut tb = Touch {
            io: b,
            activity: &activity,
            read: &activity.down,
        };
        let copy =
            tokio::io::copy_bidirectional_with_sizes(&mut ta, &mut tb, SPLICE_BUF, SPLICE_BUF);
        tokio::pin!(copy);
        loop {
            let deadline = activity.last() + idle;
            tokio::select! {
                r = &mut copy => break r.map(|_| ()),
                () = tokio::time::sleep_until(deadline) => {
                    // Activity may have moved the deadline while we slept.
                    if activity.last() + idle <= Instant::now() {
                        break Err(io::Error::new(io::ErrorKind::TimedOut, format!("idle for {} s", idle.as_secs())));
                    }
                }
            }
        }
    };
    Spliced {
        up: activity.up.load(Ordering::Relaxed),
        down: activity.down.load(Ordering::Relaxed),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_splice_ends_and_keeps_its_byte_counts() {
        let (mut a_outer, mut a) = tokio::io::duplex(1024);
        let (mut b, mut b_outer) = tokio::io::duplex(1024);
        let task =
            tokio::spawn(async move { splice_idle(&mut a, &mut b, Duration::from_secs(30)).await });
        a_outer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        b_outer.read_exact(&mut buf).await.unwrap();
        b_outer.write_all(b"hi").await.unwrap();
        let mut buf2 = [0u8; 2];
        a_outer.read_exact(&mut buf2).await.unwrap();
        // Activity at 20 s pushes the deadline to 50 s.
        tokio::time::sleep(Duration::from_secs(20)).await;
        a_outer.write_all(b"!").await.unwrap();
        b_outer.read_exact(&mut buf[..1]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!task.is_finished(), "ended before its idle time");
        let done = task.await.unwrap();
        assert_eq!((done.up, done.down), (6, 2));
        assert_eq!(done.result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
