//! What the inspector keeps: one [`Exchange`] per request and response, in a
//! ring bounded by count and bytes, with a broadcast of each one as it
//! completes (the page's live list and the terminal's request lines).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// How much the inspector may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Exchanges kept (the oldest go first).
    pub max_requests: usize,
    /// Bytes kept over all exchanges (headers and captured bodies).
    pub max_bytes: usize,
    /// Bytes kept of each body; larger bodies are marked truncated with
    /// their real size.
    pub body_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_requests: 500,
            max_bytes: 64 << 20,
            body_cap: 1 << 20,
        }
    }
}

/// The first `cap` bytes of a body, and its real size.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// The body's real size.
    pub size: u64,
    cap: usize,
}

impl Capture {
    /// An empty capture keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            size: 0,
            cap,
        }
    }

    /// Makes room for a body of `len` bytes (its `Content-Length`) at once,
    /// up to the cap: one allocation instead of a chain of doublings whose
    /// freed buffers the allocator would keep.
    pub fn expect(&mut self, len: u64) {
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(self.cap);
        self.bytes
            .reserve_exact(want.saturating_sub(self.bytes.len()));
    }

    /// Counts `data` and keeps what fits under the cap.
    pub fn push(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        let room = self.cap.saturating_sub(self.bytes.len());
        if room > 0 {
            self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    /// Whether bytes were left out.
    pub fn truncated(&self) -> bool {
        self.size > self.bytes.len() as u64
    }
}

/// One side of an exchange: headers in the order they were sent, and the body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `(name, value)` in order, as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (decoded from chunked framing, not from content encodings).
    pub body: Capture,
}

impl Message {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn bytes(&self) -> usize {
        self.headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 16)
            .sum::<usize>()
            + self.body.bytes.capacity()
    }
}

/// Bytes and frames of a WebSocket after its upgrade, updated while it lives.
#[derive(Debug, Default)]
pub struct WsLog {
    /// Bytes from the visitor to the local service.
    pub up_bytes: u64,
    /// Bytes from the local service to the visitor.
    pub down_bytes: u64,
    /// The first frames each way (see [`WS_FRAMES`]), oldest first.
    pub frames: Vec<WsFrame>,
    /// Frames not kept because [`WS_FRAMES`] were.
    pub frames_dropped: u64,
    /// Whether the connection has closed.
    pub closed: bool,
}

/// Frames kept per WebSocket.
pub const WS_FRAMES: usize = 200;
/// Payload bytes kept per frame.
pub const WS_FRAME_BYTES: usize = 4096;

/// One WebSocket frame, as seen on the wire (payload unmasked).
#[derive(Debug, Clone)]
pub struct WsFrame {
    /// Milliseconds since the upgrade.
    pub at_ms: u64,
    /// From the visitor (`true`) or from the local service.
    pub up: bool,
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation).
    pub opcode: u8,
    /// The payload's real length.
    pub len: u64,
    /// Its first [`WS_FRAME_BYTES`].
    pub payload: Vec<u8>,
}

/// A request and its response, as the local service saw them.
#[derive(Debug)]
pub struct Exchange {
    /// Assigned when recorded; increasing.
    pub id: u64,
    /// The exchange this one replayed.
    pub replay_of: Option<u64>,
    /// When the request's head arrived, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Request method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The visitor's address (`X-Real-IP`, which the edge sets).
    pub visitor: Option<String>,
    /// The id the edge gave the request (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The request.
    pub request: Message,
    /// Response status, when a response came.
    pub status: Option<u16>,
    /// The response (empty when none came).
    pub response: Message,
    /// Milliseconds from the request's head to the response's head.
    pub first_byte_ms: Option<f64>,
    /// Milliseconds from the request's head to the response's end.
    pub duration_ms: f64,
    /// Why the exchange did not complete (local service down, connection
    /// closed before the response ended…).
    pub error: Option<String>,
    /// The WebSocket, for an upgrade.
    pub websocket: Option<Arc<Mutex<WsLog>>>,
}

impl Exchange {
    fn bytes(&self) -> usize {
        256 + self.path.len() + self.request.bytes() + self.response.bytes()
    }
}

/// An exchange being captured: the parts known so far.
#[derive(Debug)]
pub struct Building {
    /// The exchange (its id is set when recorded).
    pub ex: Exchange,
    started: tokio::time::Instant,
}

impl Building {
    /// Starts an exchange for a request with this head.
    pub fn new(method: &str, path: &str, headers: Vec<(String, Vec<u8>)>, body_cap: usize) -> Self {
        let request = Message {
            headers,
            body: Capture::new(body_cap),
        };
        let visitor = request.header("x-real-ip").map(str::to_string);
        let request_id = request.header("x-request-id").map(str::to_string);
        Self {
            ex: Exchange {
                id: 0,
                replay_of: None,
                started_at_ms: now_ms(),
                method: method.to_string(),
                path: path.to_string(),
                visitor,
                request_id,
                request,
                status: None,
                response: Message {
                    headers: Vec::new(),
                    body: Capture::new(body_cap),
                },
                first_byte_ms: None,
                duration_ms: 0.0,
                error: None,
                websocket: None,
            },
            started: tokio::time::Instant::now(),
        }
    }

    /// Records the response's head.
    pub fn response_head(&mut self, status: u16, headers: Vec<(String, Vec<u8>)>) {
        self.ex.status = Some(status);
        self.ex.response.headers = headers;
        self.ex.first_byte_ms = Some(self.elapsed_ms());
    }

    /// Milliseconds since the request's head.
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// The finished exchange.
    pub fn finish(mut self, error: Option<String>) -> Exchange {
        self.ex.duration_ms = self.elapsed_ms();
        // Kept for minutes: no spare capacity from growing while captured.
        self.ex.request.body.bytes.shrink_to_fit();
        self.ex.response.body.bytes.shrink_to_fit();
        if self.ex.error.is_none() {
            self.ex.error = error;
        }
        self.ex
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An exchange without its headers and bodies: what the live list and the
/// terminal's request lines need. The broadcast carries these, not the
/// exchanges, so a slow or idle listener never keeps bodies alive that the
/// ring already let go.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The exchange's id.
    pub id: u64,
    /// The exchange it replayed.
    pub replay_of: Option<u64>,
    /// When its request's head arrived, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Request method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status, when one came.
    pub status: Option<u16>,
    /// Milliseconds from request head to response end.
    pub duration_ms: f64,
    /// Why it did not complete.
    pub error: Option<String>,
    /// A WebSocket upgrade.
    pub websocket: bool,
    /// Request body size.
    pub request_size: u64,
    /// Response body size.
    pub response_size: u64,
}

impl Exchange {
    /// Its [`Summary`].
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id,
            replay_of: self.replay_of,
            started_at_ms: self.started_at_ms,
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status,
            duration_ms: self.duration_ms,
            error: self.error.clone(),
            websocket: self.websocket.is_some(),
            request_size: self.request.body.size,
            response_size: self.response.body.size,
        }
    }
}

/// What the live list hears.
#[derive(Debug, Clone)]
pub enum Update {
    /// An exchange completed (or a WebSocket was upgraded).
    Recorded(Arc<Summary>),
    /// The list was cleared.
    Cleared,
}

/// The bounded list of exchanges, newest last.
#[derive(Debug)]
pub struct Recorder {
    ring: Mutex<Ring>,
    next_id: AtomicU64,
    updates: broadcast::Sender<Update>,
    limits: Limits,
}

#[derive(Debug, Default)]
struct Ring {
    items: VecDeque<(Arc<Exchange>, usize)>,
    bytes: usize,
}

impl Recorder {
    /// An empty recorder with `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        let (updates, _) = broadcast::channel(1024);
        Arc::new(Self {
            ring: Mutex::default(),
            next_id: AtomicU64::new(1),
            updates,
            limits,
        })
    }

    /// The limits it keeps to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Keeps `ex` (dropping the oldest past either limit) and announces it;
    /// returns its id.
    pub fn record(&self, mut ex: Exchange) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        ex.id = id;
        let size = ex.bytes();
        let summary = Arc::new(ex.summary());
        let ex = Arc::new(ex);
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.items.push_back((ex.clone(), size));
            ring.bytes += size;
            while ring.items.len() > self.limits.max_requests
                || (ring.bytes > self.limits.max_bytes && ring.items.len() > 1)
            {
                if let Some((_, n)) = ring.items.pop_front() {
                    ring.bytes -= n;
                }
            }
        }
        // Nobody listening is fine.
        let _ = self.updates.send(Update::Recorded(summary));
        id
    }

    /// The newest `limit` exchanges, newest first.
    pub fn list(&self, limit: usize) -> Vec<Arc<Exchange>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.items
            .iter()
            .rev()
            .take(limit)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The exchange with `id`, if still kept.
    pub fn get(&self, id: u64) -> Option<Arc<Exchange>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.items
            .iter()
            .find(|(e, _)| e.id == id)
            .map(|(e, _)| e.clone())
    }

    /// Forgets every exchange.
    pub fn clear(&self) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.items.clear();
        ring.bytes = 0;
        drop(ring);
        let _ = self.updates.send(Update::Cleared);
    }

    /// `(count, bytes)` held now.
    pub fn held(&self) -> (usize, usize) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        (ring.items.len(), ring.bytes)
    }

    /// A receiver of every update from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(body: usize) -> Exchange {
        let mut b = Building::new("POST", "/x", vec![], 1 << 20);
        b.ex.request.body.push(&vec![b'a'; body]);
        b.finish(None)
    }

    #[test]
    fn a_capture_keeps_the_cap_and_counts_the_rest() {
        let mut c = Capture::new(4);
        c.push(b"abc");
        c.push(b"defgh");
        assert_eq!(c.bytes, b"abcd");
        assert_eq!(c.size, 8);
        assert!(c.truncated());
    }

    #[test]
    fn the_ring_drops_the_oldest_past_count_or_bytes() {
        let r = Recorder::new(Limits {
            max_requests: 3,
            max_bytes: 10_000,
            body_cap: 1 << 20,
        });
        for _ in 0..5 {
            r.record(exchange(10));
        }
        let ids: Vec<u64> = r.list(10).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![5, 4, 3]);
        // Two 4 KB bodies fit under 10 kB, a third pushes the first out.
        for _ in 0..3 {
            r.record(exchange(4000));
        }
        let (n, bytes) = r.held();
        assert_eq!(n, 2, "{bytes}");
        assert!(bytes <= 10_000, "{bytes}");
        assert!(r.get(8).is_some() && r.get(6).is_none());
        r.clear();
        assert_eq!(r.held(), (0, 0));
    }
}
