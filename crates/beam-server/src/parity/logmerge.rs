//! One log stream from several agent replicas: every line is stamped with its
//! replica's instance name; the past lines of all replicas are sorted by time
//! (and cut to the reader's `tail`) before the first live one; live lines pass
//! through a short reorder window, so lines from different replicas come out
//! in time order; a replica whose stream ends is announced (`left`), one that
//! connects while the reader follows is added (`joined`).
//!
//! Memory is bounded: the past lines held for sorting are capped
//! ([`HISTORY_CAP`]), and live lines wait at most [`REORDER`]. One replica's
//! lines pass straight through, stamped.

use std::collections::{BinaryHeap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a live line waits for an older one from another replica.
const REORDER: Duration = Duration::from_millis(100);
/// Longest wait for every replica to finish sending its past lines.
const HISTORY_WAIT: Duration = Duration::from_secs(3);
/// Most bytes of past lines held for sorting per stream; past it they go out
/// as they come (a reader's `--tail 100000` over many replicas must not take
/// the server's memory).
const HISTORY_CAP: usize = 8 << 20;
/// How often a follower looks for replicas that connected since.
const JOIN_EVERY: Duration = Duration::from_secs(2);
/// Bytes per output chunk.
const CHUNK: usize = 64 * 1024;

/// A replica's NDJSON log stream.
pub(crate) type Lines = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// One replica's stream, opened.
pub(crate) struct Source {
    /// Its instance name.
    pub instance: String,
    /// Its session (a replica that reconnects is a new source).
    pub session: String,
    /// Its buffer's epoch, for the reader's cursor.
    pub epoch: u64,
    /// The stream.
    pub lines: Lines,
}

/// Opens streams of the replicas that connected since (their sessions not in
/// the set), for a follower.
pub(crate) type Joiner = Box<
    dyn FnMut(HashSet<String>) -> Pin<Box<dyn std::future::Future<Output = Vec<Source>> + Send>>
        + Send,
>;

/// What to merge and how.
pub(crate) struct Merge {
    /// Keep only the last this many past lines (none: keep every one, as on a
    /// resume, where every line after the cursor is owed).
    pub tail: Option<usize>,
    /// Keep going after the past lines.
    pub follow: bool,
    /// Looks for replicas that connect later (followers only).
    pub joiner: Option<Joiner>,
}

/// What a replica's reader task reports.
enum Event {
    /// Lines in arrival order, stamped, in one buffer: each line's range
    /// in it and, for entries, its time.
    Lines(Batch),
    /// Its past lines are all sent.
    Live,
    /// Its stream ended.
    End(usize, String),
}

/// Stamped lines of one replica, as they arrived.
struct Batch {
    bytes: Bytes,
    lines: Vec<(Option<i64>, std::ops::Range<usize>)>,
}

impl Batch {
    fn lines(&self) -> impl Iterator<Item = (Option<i64>, Bytes)> + '_ {
        self.lines
            .iter()
            .map(|(ts, r)| (*ts, self.bytes.slice(r.clone())))
    }
}

/// The fields a line is sorted by, for lines not in the agent's own form.
#[derive(serde::Deserialize)]
struct Probe {
    ts: Option<i64>,
    seq: Option<u64>,
}

/// An entry's time. The agent writes entries as `{"seq":N,"ts":N,…`, read
/// here without parsing the rest; other forms are parsed.
fn entry_ts(line: &[u8]) -> Option<i64> {
    let fast = || {
        let rest = line.strip_prefix(b"{\"seq\":")?;
        let comma = rest.iter().position(|b| *b == b',')?;
        let rest = rest[comma..].strip_prefix(b",\"ts\":")?;
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_digit() && *b != b'-')?;
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    };
    fast().or_else(|| match serde_json::from_slice::<Probe>(line) {
        Ok(Probe {
            ts: Some(ts),
            seq: Some(_),
        }) => Some(ts),
        _ => None,
    })
}

/// The agent's end-of-past-lines marker.
const LIVE: &[u8] = b"{\"live\":true}";

/// `{"instance":"NAME",…rest of the object…}\n` appended to `out`. Names
/// are checked at connect time (`valid_instance`), so they need no escaping.
fn stamp_into(out: &mut BytesMut, instance: &str, line: &[u8]) {
    out.extend_from_slice(b"{\"instance\":\"");
    out.extend_from_slice(instance.as_bytes());
    out.extend_from_slice(b"\"");
    let rest = &line[1..];
    if rest.first() != Some(&b'}') {
        out.extend_from_slice(b",");
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(b"\n");
}

#[cfg(test)]
fn stamp(instance: &str, line: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    stamp_into(&mut b, instance, line);
    b.freeze()
}

/// Reads one replica's stream into batches, one per chunk received, until
/// it ends or nobody listens.
async fn read(idx: usize, source: Source, tx: mpsc::Sender<(usize, Event)>) {
    let Source {
        instance,
        mut lines,
        ..
    } = source;
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut batch: Vec<(Option<i64>, std::ops::Range<usize>)> = Vec::new();
    let send = |out: &mut BytesMut, batch: &mut Vec<_>| {
        let ev = Event::Lines(Batch {
            bytes: out.split().freeze(),
            lines: std::mem::take(batch),
        });
        tx.send((idx, ev))
    };
    let reason = loop {
        match lines.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => break format!("its stream broke ({e})"),
            None => break "its agent disconnected".to_string(),
        }
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(nl + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            if line.first() != Some(&b'{') {
                continue;
            }
            if line == LIVE {
                if !batch.is_empty() && send(&mut out, &mut batch).await.is_err() {
                    return;
                }
                if tx.send((idx, Event::Live)).await.is_err() {
                    return;
                }
                continue;
            }
            let start = out.len();
            stamp_into(&mut out, &instance, line);
            batch.push((entry_ts(line), start..out.len()));
        }
        if !batch.is_empty() && send(&mut out, &mut batch).await.is_err() {
            return;
        }
    };
    let _ = tx.send((idx, Event::End(idx, reason))).await;
}

/// A live line waiting in the reorder window, oldest time first.
struct Waiting {
    ts: i64,
    order: u64,
    arrived: Instant,
    line: Bytes,
}

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.order) == (o.ts, o.order)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    /// Reversed: `BinaryHeap` pops the greatest, and the oldest goes first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.ts, o.order).cmp(&(self.ts, self.order))
    }
}

/// The merger's state: the replicas it reads and where output goes.
struct Merger {
    names: Vec<String>,
    sessions: HashSet<String>,
    ended: Vec<bool>,
    events: mpsc::Sender<(usize, Event)>,
    out: mpsc::Sender<Bytes>,
}

impl Merger {
    fn add(&mut self, source: Source) -> usize {
        let idx = self.names.len();
        self.names.push(source.instance.clone());
        self.sessions.insert(source.session.clone());
        self.ended.push(false);
        tokio::spawn(read(idx, source, self.events.clone()));
        idx
    }

    /// Sends `lines` in chunks; `false` when the reader is gone.
    async fn emit(&self, lines: impl IntoIterator<Item = Bytes>) -> bool {
        let mut lines = lines.into_iter().peekable();
        let Some(first) = lines.next() else {
            return true;
        };
        if lines.peek().is_none() {
            // One batch as it came: no copy.
            return self.out.send(first).await.is_ok();
        }
        let mut chunk = BytesMut::from(&first[..]);
        for l in lines {
            chunk.extend_from_slice(&l);
            if chunk.len() >= CHUNK && self.out.send(chunk.split().freeze()).await.is_err() {
                return false;
            }
        }
        chunk.is_empty() || self.out.send(chunk.freeze()).await.is_ok()
    }

    fn left(&self, idx: usize, reason: &str) -> Bytes {
        let v = serde_json::json!({ "left": self.names[idx], "reason": reason });
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    }

    fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }
}

/// Merges `sources` into NDJSON chunks sent to `out`, until every replica's
/// stream ended (without `follow`, or when no replica is left) or `out` is
/// dropped.
pub(crate) async fn merge(sources: Vec<Source>, mut how: Merge, out: mpsc::Sender<Bytes>) {
    let (events, mut rx) = mpsc::channel::<(usize, Event)>(1024);
    let mut m = Merger {
        names: Vec::new(),
        sessions: HashSet::new(),
        ended: Vec::new(),
        events,
        out,
    };
    let n = sources.len();
    for s in sources {
        m.add(s);
    }

    // Past lines: gathered from every replica, sorted, cut to `tail`.
    let mut history: Vec<(i64, usize, u64, Bytes)> = Vec::new();
    let mut held = 0usize;
    let mut past_done = vec![false; n];
    let mut order = 0u64;
    let mut early: Vec<(usize, Event)> = Vec::new();
    let deadline = Instant::now() + HISTORY_WAIT;
    // One replica's lines are in order already: nothing to hold back.
    let sorting = n > 1;
    while sorting && past_done.iter().any(|d| !d) && held < HISTORY_CAP {
        let (idx, ev) = tokio::select! {
            ev = rx.recv() => match ev { Some(ev) => ev, None => break },
            () = tokio::time::sleep_until(deadline) => break,
        };
        if past_done[idx] {
            // Live already: it waits for the reorder window.
            early.push((idx, ev));
            continue;
        }
        match ev {
            Event::Lines(batch) => {
                held += batch.bytes.len();
                for (ts, line) in batch.lines() {
                    order += 1;
                    // A drop marker goes first: it says lines are missing.
                    history.push((ts.unwrap_or(i64::MIN), idx, order, line));
                }
            }
            Event::Live => past_done[idx] = true,
            end @ Event::End(..) => {
                past_done[idx] = true;
                early.push((idx, end));
            }
        }
    }
    history.sort_by_key(|(ts, idx, order, _)| (*ts, *idx, *order));
    let skip = match how.tail {
        Some(t) => history.len().saturating_sub(t),
        None => 0,
    };
    if !m
        .emit(history.into_iter().skip(skip).map(|(_, _, _, l)| l))
        .await
    {
        return;
    }

    // Live lines, through the reorder window.
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut next_join = Instant::now() + JOIN_EVERY;
    let mut queue: std::collections::VecDeque<(usize, Event)> = early.into();
    loop {
        let ev = if let Some(ev) = queue.pop_front() {
            Some(ev)
        } else {
            let flush_at = waiting
                .peek()
                .map(|w| w.arrived + REORDER)
                .unwrap_or_else(|| Instant::now() + JOIN_EVERY);
            let join_at = if how.follow && how.joiner.is_some() {
                next_join
            } else {
                flush_at + JOIN_EVERY
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => Some(ev),
                    None => return,
                },
                () = tokio::time::sleep_until(flush_at) => None,
                () = tokio::time::sleep_until(join_at), if how.follow => {
                    next_join = Instant::now() + JOIN_EVERY;
                    if let Some(join) = how.joiner.as_mut() {
                        for s in join(m.sessions.clone()).await {
                            let joined = serde_json::json!({"joined": s.instance, "epoch": s.epoch});
                            let mut b = serde_json::to_vec(&joined).unwrap_or_default();
                            b.push(b'\n');
                            if !m.emit([Bytes::from(b)]).await {
                                return;
                            }
                            m.add(s);
                        }
                    }
                    None
                }
            }
        };
        let now = Instant::now();
        // With one replica left there is nothing to reorder against.
        let window = if m.ended.iter().filter(|e| !**e).count() > 1 {
            REORDER
        } else {
            Duration::ZERO
        };
        let mut ready: Vec<Bytes> = Vec::new();
        match ev {
            // Nothing to reorder against: the batch goes out as it came.
            Some((_, Event::Lines(batch))) if window.is_zero() && waiting.is_empty() => {
                ready.push(batch.bytes)
            }
            Some((_, Event::Lines(batch))) => {
                for (ts, line) in batch.lines() {
                    match ts {
                        Some(ts) => {
                            order += 1;
                            waiting.push(Waiting {
                                ts,
                                order,
                                arrived: now,
                                line,
                            });
                        }
                        None => ready.push(line),
                    }
                }
            }
            Some((_, Event::Live)) => {}
            Some((_, Event::End(idx, reason))) => {
                // What it sent before ending goes first.
                while let Some(w) = waiting.pop() {
                    ready.push(w.line);
                }
                m.ended[idx] = true;
                if how.follow {
                    ready.push(m.left(idx, &reason));
                }
            }
            None => {}
        }
        while waiting.peek().is_some_and(|w| w.arrived + window <= now) {
            if let Some(w) = waiting.pop() {
                ready.push(w.line);
            }
        }
        if !m.emit(ready).await {
            return;
        }
        if m.all_ended() && queue.is_empty() {
            let rest: Vec<Bytes> = std::iter::from_fn(|| waiting.pop().map(|w| w.line)).collect();
            let _ = m.emit(rest).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, ts: i64, msg: &str) -> Bytes {
        Bytes::from(format!(
            "{{\"seq\":{seq},\"ts\":{ts},\"level\":\"info\",\"message\":\"{msg}\",\"source\":\"stdout\"}}\n"
        ))
    }

    /// A source fed through a channel, so a test decides when lines come.
    fn source(name: &str) -> (mpsc::UnboundedSender<Bytes>, Source) {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let lines = tokio_stream_of(rx);
        (
            tx,
            Source {
                instance: name.into(),
                session: format!("s-{name}"),
                epoch: 1,
                lines,
            },
        )
    }

    fn tokio_stream_of(mut rx: mpsc::UnboundedReceiver<Bytes>) -> Lines {
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|o| o.map(Ok))
        }))
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        while let Some(b) = rx.recv().await {
            all.extend_from_slice(&b);
        }
        all.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn past_lines_of_every_replica_are_sorted_stamped_and_cut_to_tail() {
        let (a_tx, a) = source("web-1");
        let (b_tx, b) = source("web-2");
        for (s, ts) in [(1, 10), (2, 30), (3, 50)] {
            a_tx.send(entry(s, ts, &format!("a{ts}"))).unwrap();
        }
        for (s, ts) in [(1, 20), (2, 40)] {
            b_tx.send(entry(s, ts, &format!("b{ts}"))).unwrap();
        }
        drop((a_tx, b_tx));
        let (out, rx) = mpsc::channel(8);
        let how = Merge {
            tail: Some(4),
            follow: false,
            joiner: None,
        };
        tokio::spawn(merge(vec![a, b], how, out));
        let lines = collect(rx).await;
        let got: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                (
                    l["instance"].as_str().unwrap().to_string(),
                    l["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = [
            ("web-2", "b20"),
            ("web-1", "a30"),
            ("web-2", "b40"),
            ("web-1", "a50"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(lines[0]["seq"], 1, "the rest of the line is kept");
    }

    #[tokio::test]
    async fn live_lines_come_out_in_time_order_and_a_replica_leaving_is_announced() {
        let (a_tx, a) = source("web-1");
        let (b_tx, b) = source("web-2");
        a_tx.send(Bytes::from_static(b"{\"live\":true}\n")).unwrap();
        b_tx.send(Bytes::from_static(b"{\"live\":true}\n")).unwrap();
        let (out, mut rx) = mpsc::channel(8);
        let how = Merge {
            tail: Some(10),
            follow: true,
            joiner: None,
        };
        tokio::spawn(merge(vec![a, b], how, out));
        // web-2's older line arrives after web-1's newer one, within the window.
        a_tx.send(entry(1, 200, "newer")).unwrap();
        b_tx.send(entry(1, 100, "older")).unwrap();
        b_tx.send(Bytes::from_static(b"{\"dropped\":3}\n")).unwrap();
        drop(b_tx);
        let mut got = Vec::new();
        while got.len() < 4 {
            let b = rx.recv().await.unwrap();
            for l in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                got.push(serde_json::from_slice::<serde_json::Value>(l).unwrap());
            }
        }
        let msgs: Vec<String> = got
            .iter()
            .map(|l| {
                l.get("message")
                    .or(l.get("left"))
                    .or(l.get("dropped"))
                    .map(|v| v.to_string())
                    .unwrap()
            })
            .collect();
        assert!(msgs.contains(&"3".to_string()), "{msgs:?}");
        let older = msgs.iter().position(|m| m == "\"older\"").unwrap();
        let newer = msgs.iter().position(|m| m == "\"newer\"").unwrap();
        assert!(older < newer, "{msgs:?}");
        let left = got.iter().find(|l| l.get("left").is_some()).unwrap();
        assert_eq!(left["left"], "web-2");
        assert_eq!(left["reason"], "its agent disconnected");
        assert_eq!(
            got.iter().find(|l| l.get("dropped").is_some()).unwrap()["instance"],
            "web-2"
        );
        // The last replica leaving ends the stream.
        drop(a_tx);
        let rest = collect(rx).await;
        assert_eq!(rest.last().unwrap()["left"], "web-1");
    }

    #[tokio::test]
    async fn a_replica_connecting_while_following_is_joined() {
        let (a_tx, a) = source("web-1");
        a_tx.send(Bytes::from_static(b"{\"live\":true}\n")).unwrap();
        let (b_tx, b) = source("web-2");
        let mut later = Some(b);
        let joiner: Joiner = Box::new(move |known: HashSet<String>| {
            assert!(known.contains("s-web-1"));
            let s: Vec<Source> = later.take().into_iter().collect();
            Box::pin(async move { s })
        });
        let (out, mut rx) = mpsc::channel(8);
        let how = Merge {
            tail: Some(10),
            follow: true,
            joiner: Some(joiner),
        };
        tokio::spawn(merge(vec![a], how, out));
        b_tx.send(entry(4, 5, "from the new one")).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let b = rx.recv().await.unwrap();
            for l in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                got.push(serde_json::from_slice::<serde_json::Value>(l).unwrap());
            }
        }
        assert_eq!(got[0], serde_json::json!({"joined": "web-2", "epoch": 1}));
        assert_eq!(got[1]["message"], "from the new one");
        assert_eq!(got[1]["instance"], "web-2");
        drop(a_tx);
    }

    #[test]
    fn entry_times_are_read_from_the_agents_form_and_others() {
        assert_eq!(
            entry_ts(b"{\"seq\":12,\"ts\":1700,\"level\":\"info\"}"),
            Some(1700)
        );
        assert_eq!(entry_ts(b"{\"ts\":5,\"seq\":1}"), Some(5));
        assert_eq!(entry_ts(b"{\"dropped\":3}"), None);
        assert_eq!(entry_ts(b"{\"seq\":1,\"ts\":x}"), None);
    }

    #[test]
    fn stamping_keeps_the_object_whole() {
        assert_eq!(
            &stamp("a", b"{\"x\":1}")[..],
            b"{\"instance\":\"a\",\"x\":1}\n"
        );
        assert_eq!(&stamp("a", b"{}")[..], b"{\"instance\":\"a\"}\n");
    }
}
