//! Request analytics on the hot path, kept cheap: every request adds to in-memory
//! per-minute totals; full records (method, path without query, status, latency,
//! bytes, redacted headers, visitor network) are sampled up to a per-second
//! budget. A background task writes both to the store every second, so a slow
//! database delays analytics, never visitors; records that do not fit the queue
//! are counted as dropped. A database out of reach delays analytics too: the
//! totals of a failed write go back into the counters and the sampled records
//! wait for the next write, so an outage loses no request count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::body::Tally;
use crate::store::{MinuteTotals, RequestRecord, Store, minute_of};

/// Records queued at most; beyond this they are dropped and counted.
const QUEUE: usize = 8192;

/// Headers whose values are never stored.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
];

/// Substrings that mark a header name as sensitive.
const SENSITIVE_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "session",
    "signature",
];

/// Whether a header's value must be redacted.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE.contains(&n.as_str()) || SENSITIVE_PARTS.iter().any(|p| n.contains(p))
}

/// Request headers as JSON `[[name, value], …]` (order and repeats kept), with
/// sensitive values replaced by `[redacted]`, at most 64 headers of 256 bytes.
pub fn redact_headers(headers: &HeaderMap) -> String {
    let list: Vec<[String; 2]> = headers
        .iter()
        .take(64)
        .map(|(k, v)| {
            let value = if is_sensitive(k.as_str()) {
                "[redacted]".to_string()
            } else {
                let s = String::from_utf8_lossy(v.as_bytes());
                s.chars().take(256).collect()
            };
            [k.as_str().to_string(), value]
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

/// The visitor's network, not their address: /24 for IPv4, /48 for IPv6.
pub fn client_net(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Collects analytics for the background writer.
#[derive(Debug)]
pub struct Recorder {
    enabled: bool,
    per_second: u32,
    tx: mpsc::Sender<RequestRecord>,
    rx: Mutex<Option<mpsc::Receiver<RequestRecord>>>,
    totals: Mutex<HashMap<(i64, i64), MinuteTotals>>,
    /// `(second, records sampled in it)`.
    budget: Mutex<(i64, u32)>,
    dropped: AtomicU64,
}

/// What the edge knows about a request when it starts.
#[derive(Debug)]
pub struct Start {
    /// Tunnel row.
    pub tunnel_id: i64,
    /// Its organization.
    pub org_id: i64,
    /// Unix ms.
    pub ts: i64,
    /// Present when this request was sampled for a full record.
    pub detail: Option<Detail>,
    /// Request body bytes, counted as they stream.
    pub bytes_in: Arc<AtomicU64>,
}

/// The sampled part of a record.
#[derive(Debug)]
pub struct Detail {
    /// Method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Visitor network.
    pub client_net: String,
    /// Redacted headers JSON.
    pub headers: String,
}

impl Recorder {
    /// A recorder sampling at most `per_second` full records per second; a disabled
    /// one records nothing.
    pub fn new(enabled: bool, per_second: u32) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            enabled,
            per_second,
            tx,
            rx: Mutex::new(Some(rx)),
            totals: Mutex::new(HashMap::new()),
            budget: Mutex::new((0, 0)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether analytics are on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the next request gets a full record.
    pub fn sample(&self, now_ms: i64) -> bool {
        let sec = now_ms / 1000;
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        if b.0 != sec {
            *b = (sec, 0);
        }
        if b.1 < self.per_second {
            b.1 += 1;
            true
        } else {
            false
        }
    }

    /// Accounts a finished request.
    pub fn finish(&self, start: Start, status: u16, duration_us: i64, bytes_out: u64) {
        let bytes_in = start.bytes_in.load(Ordering::Relaxed) as i64;
        let bytes_out = bytes_out as i64;
        {
            let minute = minute_of(start.ts);
            let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
            let t = totals
                .entry((start.tunnel_id, minute))
                .or_insert_with(|| MinuteTotals {
                    tunnel_id: start.tunnel_id,
                    org_id: start.org_id,
                    minute,
                    ..MinuteTotals::default()
                });
            t.requests += 1;
            t.errors += i64::from(status >= 500);
            t.bytes_in += bytes_in;
            t.bytes_out += bytes_out;
            t.duration_us += duration_us;
        }
        if let Some(d) = start.detail {
            let rec = RequestRecord {
                tunnel_id: start.tunnel_id,
                org_id: start.org_id,
                ts: start.ts,
                method: d.method,
                path: d.path,
                status,
                duration_us,
                bytes_in,
                bytes_out,
                client_net: d.client_net,
                headers: d.headers,
            };
            if self.tx.try_send(rec).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds bytes of a WebSocket or TCP connection (they count towards the
    /// tunnel's totals and its organization's bandwidth, not as requests).
    pub fn add_bytes(&self, tunnel_id: i64, org_id: i64, bytes_in: u64, bytes_out: u64) {
        if !self.enabled {
            return;
        }
        let minute = minute_of(crate::store::now_ms());
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let t = totals
            .entry((tunnel_id, minute))
            .or_insert_with(|| MinuteTotals {
                tunnel_id,
                org_id,
                minute,
                ..MinuteTotals::default()
            });
        t.bytes_in += bytes_in as i64;
        t.bytes_out += bytes_out as i64;
    }

    fn take_totals(&self) -> Vec<MinuteTotals> {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.drain().map(|(_, v)| v).collect()
    }

    /// Writes queued analytics every `every` until `shutdown`, then once more.
    pub async fn run(self: Arc<Self>, store: Store, every: Duration, shutdown: CancellationToken) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        // A batch whose write failed, retried as it is (same id) until it is
        // written: if the failure was only the lost acknowledgement of a
        // commit, the store skips it, so nothing is counted twice. New
        // totals wait in the counters and new records in the bounded queue
        // (which drops and counts past its size, as usual) meanwhile.
        let mut pending: Option<(String, Vec<RequestRecord>, Vec<MinuteTotals>)> = None;
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                () = shutdown.cancelled() => true,
            };
            let (batch, records, totals) = match pending.take() {
                Some(p) => p,
                None => {
                    let mut records = Vec::new();
                    while records.len() < QUEUE {
                        match rx.try_recv() {
                            Ok(r) => records.push(r),
                            Err(_) => break,
                        }
                    }
                    let batch = format!("{:032x}", rand::random::<u128>());
                    (batch, records, self.take_totals())
                }
            };
            if let Err(e) = store.flush_analytics(&batch, &records, &totals).await {
                // The database is out of reach (a restart, a failover).
                tracing::warn!(error = %e, records = records.len(), "writing analytics failed; retrying the same batch");
                pending = Some((batch, records, totals));
            }
            if last {
                return;
            }
        }
    }
}

/// Counts a response body's bytes and emits the request's analytics when the
/// body ends or is dropped (a visitor hanging up still counts). Used as the
/// tally of a [`Counted`](crate::body::Counted) response body.
pub struct Finisher {
    recorder: Arc<Recorder>,
    start: Option<Start>,
    status: u16,
    duration_us: i64,
    bytes: u64,
}

impl Finisher {
    /// The finisher of a request that started as `start` and got `status` after
    /// `duration_us`.
    pub fn new(recorder: Arc<Recorder>, start: Start, status: u16, duration_us: i64) -> Self {
        Self {
            recorder,
            start: Some(start),
            status,
            duration_us,
            bytes: 0,
        }
    }
}

impl Tally for Finisher {
    fn add(&mut self, n: u64) {
        self.bytes += n;
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if let Some(start) = self.start.take() {
            self.recorder
                .finish(start, self.status, self.duration_us, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers_are_redacted_and_addresses_truncated() {
        let mut h = HeaderMap::new();
        h.append("authorization", "Bearer abc".parse().unwrap());
        h.append("cookie", "sid=1".parse().unwrap());
        h.append("x-github-token", "t".parse().unwrap());
        h.append("accept", "text/html".parse().unwrap());
        h.append("accept", "*/*".parse().unwrap());
        let json = redact_headers(&h);
        assert!(
            !json.contains("abc") && !json.contains("sid=1") && !json.contains("\"t\""),
            "{json}"
        );
        assert!(
            json.contains(r#"["accept","text/html"],["accept","*/*"]"#),
            "{json}"
        );
        assert_eq!(
            client_net("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            client_net("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn sampling_has_a_per_second_budget() {
        let r = Recorder::new(true, 3);
        let sampled = (0..10).filter(|_| r.sample(5_000)).count();
        assert_eq!(sampled, 3);
        assert!(r.sample(6_000), "a new second has a new budget");
    }
}
