//! The agent's log buffer: a ring bounded by entries *and* bytes, with a TTL from
//! receipt time, plus a live feed for followers. Writers never wait for readers:
//! a reader that falls behind the live feed gets a `dropped` marker with the
//! count, and the app writing logs is never slowed down.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beam_proto::logs::{LogEntry, LogLine, LogQuery, Source};
use regex::Regex;
use tokio::sync::broadcast;

use super::mask::Masker;
use super::parse::Parsed;

/// Buffer bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries kept.
    pub max_entries: usize,
    /// Most bytes kept (message, service and context, approximately).
    pub max_bytes: usize,
    /// Entries older than this (by receipt time) are gone.
    pub ttl: Duration,
    /// Entries a follower may fall behind before it gets a drop marker.
    pub live_backlog: usize,
}

impl Default for Limits {
    /// 100,000 entries, 64 MiB, one hour (the seed's retention), 8,192 in flight
    /// per follower.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            ttl: Duration::from_secs(3600),
            live_backlog: 8192,
        }
    }
}

struct State {
    entries: VecDeque<Arc<LogEntry>>,
    bytes: usize,
    next_seq: u64,
    last_error: Option<Arc<LogEntry>>,
}

/// How full the buffer is, and the newest error seen (for `beam health`).
#[derive(Debug, Clone)]
pub struct BufferStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held (approximately).
    pub bytes: usize,
    /// The configured bounds.
    pub limits: Limits,
    /// The newest entry at error level or above, even if evicted since.
    pub last_error: Option<Arc<LogEntry>>,
}

/// Shared by the capture side (writers) and the service (readers).
pub struct LogBuffer {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<LogEntry>>,
    limits: Limits,
    masker: Masker,
    service: Option<String>,
    /// Random per buffer: a reader's cursor from another buffer (before an agent
    /// restart) is not compared with this one's sequence numbers.
    epoch: u64,
}

impl std::fmt::Debug for LogBuffer {
    // The entries are production log lines: never printed, only counted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("entries", &self.len())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Rough memory cost of an entry, for the byte bound.
fn cost(e: &LogEntry) -> usize {
    let context: usize = e
        .context
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum();
    64 + e.message.len() + e.service.as_ref().map_or(0, String::len) + context
}

use beam_proto::time::now_ms;

impl LogBuffer {
    /// An empty buffer. `service` names entries whose line names none.
    pub fn new(limits: Limits, masker: Masker, service: Option<String>) -> Self {
        let (live, _) = broadcast::channel(limits.live_backlog.max(1));
        Self {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                last_error: None,
            }),
            live,
            limits,
            masker,
            service,
            epoch: rand::random::<u64>() >> 12,
        }
    }

    /// This buffer's epoch (see [`beam_proto::logs::LogQuery::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Masks, stamps and stores a parsed line; followers see it at once.
    pub fn push(&self, mut p: Parsed, source: Source) -> Arc<LogEntry> {
        let message = match self.masker.mask(&p.message) {
            std::borrow::Cow::Owned(m) => m,
            std::borrow::Cow::Borrowed(_) => p.message,
        };
        self.masker.mask_fields(&mut p.context);
        let ts = now_ms();
        let mut st = self.lock();
        let entry = Arc::new(LogEntry {
            seq: st.next_seq,
            ts,
            level: p.level,
            message,
            service: p.service.or_else(|| self.service.clone()),
            context: p.context,
            source,
            // The server names the replica when it merges streams.
            instance: None,
        });
        st.next_seq += 1;
        st.bytes += cost(&entry);
        st.entries.push_back(entry.clone());
        if entry.level >= beam_proto::logs::Level::Error {
            st.last_error = Some(entry.clone());
        }
        self.evict(&mut st, ts);
        // Sent under the lock, so followers see entries in sequence order.
        let _ = self.live.send(entry.clone());
        entry
    }

    fn evict(&self, st: &mut State, now: i64) {
        let oldest_kept = now - self.limits.ttl.as_millis() as i64;
        while let Some(front) = st.entries.front() {
            let over = st.entries.len() > self.limits.max_entries
                || st.bytes > self.limits.max_bytes
                || front.ts < oldest_kept;
            if !over {
                break;
            }
            st.bytes -= cost(front);
            st.entries.pop_front();
        }
    }

    /// Fill and the newest error.
    pub fn stats(&self) -> BufferStats {
        let mut st = self.lock();
        self.evict(&mut st, now_ms());
        BufferStats {
            entries: st.entries.len(),
            bytes: st.bytes,
            limits: self.limits,
            last_error: st.last_error.clone(),
        }
    }

    /// Entries currently held (after expiring old ones).
    pub fn len(&self) -> usize {
        let mut st = self.lock();
        self.evict(&mut st, now_ms());
        st.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader for `query`: the matching backlog (last `tail`, or everything
    /// after the resume cursor), then, when following, live entries.
    pub fn reader(self: &Arc<Self>, query: &LogQuery) -> Result<LogReader, String> {
        let filter = Filter::new(query)?;
        let mut query = query.clone();
        if query.epoch.is_some_and(|e| e != self.epoch) && query.after.is_some() {
            // A cursor from before an agent restart: all of this buffer is new.
            query.after = Some(0);
        }
        let query = &query;
        // Subscribe before reading the backlog, so nothing falls in between;
        // entries in both are skipped by sequence number.
        let live = query.follow.then(|| self.live.subscribe());
        let (backlog, head) = {
            let mut st = self.lock();
            self.evict(&mut st, now_ms());
            let matching = st
                .entries
                .iter()
                .filter(|e| query.after.is_none_or(|a| e.seq > a) && filter.matches(e));
            let all: Vec<_> = matching.cloned().collect();
            // On resume every entry after the cursor is sent (no gap); otherwise
            // only the last `tail`.
            let skip = if query.after.is_some() {
                0
            } else {
                all.len().saturating_sub(query.tail)
            };
            let backlog: VecDeque<_> = all.into_iter().skip(skip).collect();
            (backlog, st.next_seq - 1)
        };
        Ok(LogReader {
            backlog,
            live,
            filter,
            live_after: head,
            mark_live: query.mark_live && query.follow,
        })
    }
}

/// A compiled query filter.
pub struct Filter {
    query: LogQuery,
    grep: Option<Regex>,
}

impl Filter {
    /// Compiles the query (its `grep` is a regular expression).
    pub fn new(query: &LogQuery) -> Result<Self, String> {
        let grep = match &query.grep {
            Some(g) => Some(
                regex::RegexBuilder::new(g)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("--grep is not a valid regular expression: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            query: query.clone(),
            grep,
        })
    }

    /// Whether `e` passes level, service, since and grep.
    pub fn matches(&self, e: &LogEntry) -> bool {
        let q = &self.query;
        if let Some(l) = q.level {
            let ok = if q.only_level {
                e.level == l
            } else {
                e.level >= l
            };
            if !ok {
                return false;
            }
        }
        if let Some(s) = &q.service
            && e.service.as_deref() != Some(s.as_str())
        {
            return false;
        }
        if q.since.is_some_and(|s| e.ts < s) {
            return false;
        }
        self.grep.as_ref().is_none_or(|re| re.is_match(&e.message))
    }
}

/// One reader's position: backlog first, then the live feed.
pub struct LogReader {
    backlog: VecDeque<Arc<LogEntry>>,
    live: Option<broadcast::Receiver<Arc<LogEntry>>>,
    filter: Filter,
    /// Everything up to here was considered for the backlog; live entries
    /// start after it (the feed may repeat a few from before the snapshot).
    live_after: u64,
    /// A [`LogLine::Live`] marker is still to be sent after the backlog.
    mark_live: bool,
}

impl LogReader {
    /// The next line to send, or `None` when the stream is over (no follow, or
    /// the buffer is gone).
    pub async fn next(&mut self) -> Option<LogLine> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(LogLine::Entry((*e).clone()));
        }
        if std::mem::take(&mut self.mark_live) {
            return Some(LogLine::Live { live: true });
        }
        let live = self.live.as_mut()?;
        loop {
            match live.recv().await {
                Ok(e) if e.seq <= self.live_after => continue,
                Ok(e) => {
                    self.live_after = e.seq;
                    if self.filter.matches(&e) {
                        return Some(LogLine::Entry((*e).clone()));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(LogLine::Dropped { dropped: n });
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::parse::parse_line;
    use beam_proto::logs::Level;

    fn buffer(limits: Limits) -> Arc<LogBuffer> {
        Arc::new(LogBuffer::new(
            limits,
            Masker::new(false),
            Some("web".into()),
        ))
    }

    fn entries(lines: Vec<LogLine>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l {
                LogLine::Entry(e) => e.message,
                LogLine::Dropped { dropped } => format!("dropped {dropped}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    async fn drain(r: &mut LogReader, n: usize) -> Vec<LogLine> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(r.next().await.unwrap());
        }
        v
    }

    #[tokio::test]
    async fn bounded_by_entries_and_bytes_and_masked_on_the_way_in() {
        let b = buffer(Limits {
            max_entries: 3,
            ..Limits::default()
        });
        for i in 0..5 {
            b.push(parse_line(&format!("line {i}")), Source::Stdout);
        }
        assert_eq!(b.len(), 3);
        let small = buffer(Limits {
            max_bytes: 300,
            ..Limits::default()
        });
        for _ in 0..10 {
            small.push(parse_line(&"x".repeat(100)), Source::Stdout);
        }
        assert!(small.len() <= 2, "{}", small.len());
        let e = b.push(parse_line("auth Bearer abcdefghijklmnop"), Source::Stderr);
        assert_eq!(e.message, "auth Bearer ****");
        assert_eq!(
            e.service.as_deref(),
            Some("web"),
            "the agent's service fills in"
        );
    }

    #[tokio::test]
    async fn tail_filters_and_resume_without_gaps_or_duplicates() {
        let b = buffer(Limits::default());
        for (i, l) in ["INFO a", "ERROR b", "WARN c", "ERROR d timeout", "INFO e"]
            .iter()
            .enumerate()
        {
            let e = b.push(parse_line(l), Source::Stdout);
            assert_eq!(e.seq, i as u64 + 1);
        }
        let q = |f: fn(&mut LogQuery)| {
            let mut q = LogQuery {
                follow: false,
                ..LogQuery::default()
            };
            f(&mut q);
            q
        };
        let mut r = b.reader(&q(|q| q.tail = 2)).unwrap();
        assert_eq!(
            entries(drain(&mut r, 2).await),
            ["ERROR d timeout", "INFO e"]
        );
        assert!(r.next().await.is_none(), "no follow: the stream ends");
        let mut r = b.reader(&q(|q| q.level = Some(Level::Warn))).unwrap();
        assert_eq!(
            entries(drain(&mut r, 3).await),
            ["ERROR b", "WARN c", "ERROR d timeout"]
        );
        let mut r = b
            .reader(&q(|q| {
                q.level = Some(Level::Warn);
                q.only_level = true;
            }))
            .unwrap();
        assert_eq!(entries(drain(&mut r, 1).await), ["WARN c"]);
        let mut r = b
            .reader(&q(|q| q.grep = Some("time(out)?$".into())))
            .unwrap();
        assert_eq!(entries(drain(&mut r, 1).await), ["ERROR d timeout"]);
        assert!(b.reader(&q(|q| q.grep = Some("(".into()))).is_err());

        // Follow, then resume after seq 3 with tail=1: everything after 3 comes, once.
        let mut follow = b
            .reader(&LogQuery {
                tail: 0,
                ..LogQuery::default()
            })
            .unwrap();
        b.push(parse_line("INFO f"), Source::Stdout);
        assert_eq!(entries(vec![follow.next().await.unwrap()]), ["INFO f"]);
        let mut resumed = b
            .reader(&LogQuery {
                tail: 1,
                after: Some(3),
                ..LogQuery::default()
            })
            .unwrap();
        b.push(parse_line("INFO g"), Source::Stdout);
        assert_eq!(
            entries(drain(&mut resumed, 4).await),
            ["ERROR d timeout", "INFO e", "INFO f", "INFO g"]
        );
        // A cursor from another buffer (the agent restarted) gets everything.
        let mut other = b
            .reader(&LogQuery {
                after: Some(6),
                epoch: Some(b.epoch() + 1),
                follow: false,
                ..LogQuery::default()
            })
            .unwrap();
        assert_eq!(drain(&mut other, 7).await.len(), 7);
    }

    #[tokio::test]
    async fn a_slow_follower_gets_a_drop_marker_and_writers_never_wait() {
        let b = buffer(Limits {
            live_backlog: 4,
            ..Limits::default()
        });
        let mut r = b
            .reader(&LogQuery {
                tail: 0,
                ..LogQuery::default()
            })
            .unwrap();
        // Ten lines while the reader reads none: push returns every time.
        for i in 0..10 {
            b.push(parse_line(&format!("l{i}")), Source::Stdout);
        }
        let got = entries(drain(&mut r, 5).await);
        assert_eq!(got, ["dropped 6", "l6", "l7", "l8", "l9"]);
    }

    #[tokio::test]
    async fn entries_expire_by_receipt_time() {
        let b = buffer(Limits {
            ttl: Duration::from_millis(50),
            ..Limits::default()
        });
        b.push(parse_line("old"), Source::Stdout);
        tokio::time::sleep(Duration::from_millis(80)).await;
        b.push(parse_line("new"), Source::Stdout);
        assert_eq!(b.len(), 1);
    }
}
