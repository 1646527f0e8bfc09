//! HTTP/2 for visitors: the server's settings, and a frame budget that closes a
//! connection flooding the edge with frames that cost work but carry no
//! request (rapid reset, SETTINGS, PING, PRIORITY and empty-frame floods).
//!
//! The h2 crate already bounds what a peer can make the edge hold: streams
//! reset before they are accepted (`max_pending_accept_reset_streams`), streams
//! the edge had to reset (`max_local_error_reset_streams`), CONTINUATION frames
//! per header block and the header list size (`ENHANCE_YOUR_CALM`), one
//! pending PING and SETTINGS acknowledgement at a time. What it does not bound
//! is the *rate*: a client may reset every stream right after opening it
//! (CVE-2023-44487) and make the edge start a tunnel request per reset, or
//! send PINGs forever. [`FrameBudget`] counts those frames as they are read
//! and ends the connection when a client spends more than a browser or gRPC
//! client ever would.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::ServerConfig;

/// Concurrent streams one visitor connection may open. A browser loading a
/// page with many assets opens a few dozen at once.
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Costly frames a connection may send in a burst before the budget applies.
const BURST: f64 = 1000.0;

/// Costly frames per second a connection may send over time.
const RATE: f64 = 200.0;

/// The client connection preface (RFC 9113 §3.4), which precedes all frames.
const PREFACE_LEN: usize = 24;

/// Why a connection was ended for flooding.
pub(crate) const FLOOD: &str = "HTTP/2 frame flood";

/// hyper's HTTP/2 server configured for visitors.
pub(crate) fn builder(cfg: &ServerConfig) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .max_header_list_size(cfg.max_header_bytes as u32)
        // Detects visitors that vanished without closing.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// A token bucket over a connection's costly frames.
#[derive(Debug)]
struct FrameBudget {
    tokens: f64,
    last: Instant,
}

impl FrameBudget {
    fn new() -> Self {
        Self {
            tokens: BURST,
            last: Instant::now(),
        }
    }

    /// Spends one token; `false` once the bucket is empty.
    fn spend(&mut self) -> bool {
        self.spend_at(Instant::now())
    }

    fn spend_at(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() * RATE;
        self.tokens = (self.tokens + refill).min(BURST);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Follows frame boundaries in the bytes a client sends.
#[derive(Debug)]
struct FrameScanner {
    /// Bytes of the preface or the current frame's payload still to skip.
    skip: usize,
    head: [u8; 9],
    head_len: usize,
}

impl FrameScanner {
    fn new() -> Self {
        Self {
            skip: PREFACE_LEN,
            head: [0; 9],
            head_len: 0,
        }
    }

    /// Feeds bytes; calls `costly` for each frame header that costs the
    /// server work without carrying a request. Returns `false` as soon as
    /// `costly` does.
    fn feed(&mut self, mut bytes: &[u8], mut costly: impl FnMut() -> bool) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            if self.head_len < 9 {
                break;
            }
            self.head_len = 0;
            let h = self.head;
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            self.skip = len;
            if is_costly(h[3], h[4], len) && !costly() {
                return false;
            }
        }
        true
    }
}

/// Frames that make the server work but carry no request data: RST_STREAM,
/// PRIORITY, SETTINGS and PING (not their acknowledgements), and empty DATA
/// or CONTINUATION frames that do not end anything.
fn is_costly(kind: u8, flags: u8, len: usize) -> bool {
    const ACK: u8 = 0x1;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    match kind {
        0x0 => len == 0 && flags & END_STREAM == 0,
        0x2 | 0x3 => true,
        0x4 | 0x6 => flags & ACK == 0,
        0x9 => len == 0 && flags & END_HEADERS == 0,
        _ => false,
    }
}

/// A visitor connection whose incoming HTTP/2 frames are counted against a
/// [`FrameBudget`]; reading fails with [`FLOOD`] once it is spent, which
/// ends the connection and every stream on it.
pub(crate) struct Guarded<IO> {
    io: IO,
    scanner: FrameScanner,
    budget: FrameBudget,
    flooded: bool,
}

impl<IO> Guarded<IO> {
    /// Guards `io`, which has not yet delivered the client preface.
    pub(crate) fn new(io: IO) -> Self {
        Self {
            io,
            scanner: FrameScanner::new(),
            budget: FrameBudget::new(),
            flooded: false,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.flooded {
            return Poll::Ready(Err(io::Error::other(FLOOD)));
        }
        let before = buf.filled().len();
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let budget = &mut me.budget;
            if !me.scanner.feed(&buf.filled()[before..], || budget.spend()) {
                me.flooded = true;
                return Poll::Ready(Err(io::Error::other(FLOOD)));
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_costly_frames_across_arbitrary_read_boundaries() {
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend(frame(0x4, 0, &[0; 6])); // SETTINGS: costly
        wire.extend(frame(0x4, 1, &[])); // SETTINGS ACK: free
        wire.extend(frame(0x1, 0x5, &[0x82; 40])); // HEADERS: free
        wire.extend(frame(0x0, 0x1, &[7; 100])); // DATA with END_STREAM: free
        wire.extend(frame(0x0, 0x0, &[])); // empty DATA: costly
        wire.extend(frame(0x6, 0, &[0; 8])); // PING: costly
        wire.extend(frame(0x3, 0, &[0, 0, 0, 8])); // RST_STREAM: costly
        for chunk in [1, 2, 5, 9, 10, 64, wire.len()] {
            let mut s = FrameScanner::new();
            let mut n = 0;
            for part in wire.chunks(chunk) {
                assert!(s.feed(part, || {
                    n += 1;
                    true
                }));
            }
            assert_eq!(n, 4, "chunk size {chunk}");
        }
    }

    #[test]
    fn the_budget_refuses_past_the_burst_and_refills_at_its_rate() {
        let mut b = FrameBudget::new();
        let t0 = b.last;
        assert_eq!((0..5000).take_while(|_| b.spend_at(t0)).count(), 1000);
        // One second later: RATE more, no more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..5000).take_while(|_| b.spend_at(t1)).count(), 200);
    }
}
