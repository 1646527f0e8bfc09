//! `beam logs`: streams production logs; filters run on the agent.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use beam_client::ApiError;
use std::collections::BTreeMap;

use beam_proto::logs::{
    Cursor, EPOCH_HEADER, INSTANCES_HEADER, Level, LogEntry, LogLine, LogQuery,
};
use http_body_util::BodyExt;
use owo_colors::OwoColorize;
use serde_json::Value;

use crate::cli::{LogsArgs, parse_duration};
use crate::cmd::split_env;
use crate::term::color;

/// `--since`: a duration ago (`10m`) or an RFC 3339 time.
fn parse_since(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    parse_when("--since", s, now_ms)
}

/// A time given as `flag`: a duration ago (`10m`, `2h`, `7d`) or an RFC 3339
/// time; unix ms.
pub fn parse_when(flag: &str, s: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(t) = beam_proto::time::parse_rfc3339_ms(s) {
        return Ok(t);
    }
    match parse_duration(s) {
        Ok(d) => Ok(now_ms - d.as_millis() as i64),
        Err(_) => bail!(
            "{flag} '{s}' is neither a duration (10m, 2h, 7d) nor an RFC 3339 time (2026-01-31T12:00:00Z)"
        ),
    }
}

use beam_proto::time::now_ms;

/// The seed's line format: `[time] [LEVEL] [service] message {context}`,
/// with `[instance]` after the service when the stream merges replicas.
pub fn format_entry(e: &LogEntry, colored: bool, show_instance: bool) -> String {
    let level = format!("{:<5}", e.level.as_str().to_ascii_uppercase());
    let level = if colored {
        match e.level {
            Level::Fatal => level.red().bold().to_string(),
            Level::Error => level.red().to_string(),
            Level::Warn => level.yellow().to_string(),
            Level::Info => level.green().to_string(),
            Level::Debug => level.blue().to_string(),
            Level::Trace => level.dimmed().to_string(),
        }
    } else {
        level
    };
    let instance = match (&e.instance, show_instance) {
        (Some(i), true) if colored => format!(" [{}]", i.cyan()),
        (Some(i), true) => format!(" [{i}]"),
        _ => String::new(),
    };
    let mut line = format!(
        "[{}] [{level}] [{}]{instance} {}",
        beam_proto::time::format_rfc3339_ms(e.ts),
        e.service.as_deref().unwrap_or("-"),
        e.message
    );
    if !e.context.is_empty() {
        let ctx = Value::Object(e.context.clone()).to_string();
        line.push(' ');
        line.push_str(&if colored {
            ctx.dimmed().to_string()
        } else {
            ctx
        });
    }
    line
}

/// Where the reader is in each replica's stream, to resume without gaps or
/// duplicates after a broken connection.
#[derive(Debug, Default)]
struct Position {
    /// Each replica's buffer epoch, from the stream's header or `joined`.
    epochs: BTreeMap<String, u64>,
    /// The last sequence number read from each replica.
    seqs: BTreeMap<String, u64>,
    /// The newest entry time read: replicas that connect while the reader is
    /// away send what they logged since.
    last_ts: Option<i64>,
    /// The stream merges several replicas (show which line is whose).
    several: bool,
}

impl Position {
    /// Reads the stream's `beam-log-instances` header (`NAME:EPOCH,…`) and
    /// returns the replicas whose buffer is new to this reader, with the epoch
    /// it had before when that replica restarted meanwhile.
    fn start(&mut self, header: Option<&str>) -> Vec<(String, u64, Option<u64>)> {
        let list: Vec<(String, u64)> = header
            .unwrap_or("")
            .split(',')
            .filter_map(|p| {
                let (name, epoch) = p.rsplit_once(':')?;
                Some((name.to_string(), epoch.parse().ok()?))
            })
            .collect();
        self.several |= list.len() > 1;
        let mut new = Vec::new();
        for (name, epoch) in list {
            let before = self.epochs.insert(name.clone(), epoch);
            if before != Some(epoch) {
                new.push((name, epoch, before));
            }
        }
        new
    }

    /// Rebuilds the position from what an earlier run wrote to `--output`:
    /// its entries (the last sequence number of each replica) and `joined`
    /// markers (their epochs).
    fn replay(&mut self, line: &[u8]) {
        match serde_json::from_slice::<LogLine>(line) {
            Ok(LogLine::Entry(e)) => self.saw(&e),
            Ok(LogLine::Joined { joined, epoch }) => {
                self.epochs.insert(joined, epoch);
            }
            _ => {}
        }
    }

    fn saw(&mut self, e: &LogEntry) {
        if let Some(i) = &e.instance {
            self.seqs.insert(i.clone(), e.seq);
        }
        self.last_ts = Some(self.last_ts.map_or(e.ts, |t| t.max(e.ts)));
    }

    /// The resume query's cursor.
    fn cursor(&self) -> Vec<Cursor> {
        self.seqs
            .iter()
            .map(|(i, seq)| Cursor {
                instance: i.clone(),
                epoch: self.epochs.get(i).copied().unwrap_or(0),
                seq: *seq,
            })
            .collect()
    }
}

/// Where the stream goes: the terminal, or the `--output` file.
enum Out {
    Stdout,
    File(std::fs::File),
}

impl Out {
    /// Opens `--output` for appending, after restoring `pos` from the lines it
    /// holds; an unfinished last line (a run killed mid-write) is cut off, so
    /// it is read again. Returns whether the file had a position to resume.
    fn open(path: Option<&std::path::Path>, pos: &mut Position) -> anyhow::Result<(Self, bool)> {
        use anyhow::Context;
        use std::io::{BufRead, Seek};
        let Some(path) = path else {
            return Ok((Self::Stdout, false));
        };
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // Production logs on a laptop: a new file is the user's only
        // (an existing one keeps the mode its owner gave it).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("opening --output {}", path.display()))?;
        let mut reader = std::io::BufReader::new(&file);
        let mut line = Vec::new();
        let mut complete = 0u64;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading --output {}", path.display()))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            complete += n as u64;
            pos.replay(&line[..n - 1]);
        }
        drop(reader);
        file.set_len(complete)
            .with_context(|| format!("cutting the unfinished last line of {}", path.display()))?;
        file.seek(std::io::SeekFrom::End(0))?;
        let resumed = !pos.seqs.is_empty();
        Ok((Self::File(file), resumed))
    }

    /// A buffered writer for one received chunk.
    fn writer(&mut self) -> std::io::BufWriter<Box<dyn Write + '_>> {
        let inner: Box<dyn Write + '_> = match self {
            Self::Stdout => Box::new(std::io::stdout().lock()),
            Self::File(f) => Box::new(f),
        };
        std::io::BufWriter::with_capacity(64 * 1024, inner)
    }
}

/// Runs `beam logs`.
///
/// Ctrl-C (or SIGTERM) ends a followed stream with success: the reader asked
/// to stop, nothing failed.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    tokio::select! {
        done = stream(args) => done,
        () = crate::signal::shutdown_signal() => Ok(()),
    }
}

async fn stream(args: LogsArgs) -> anyhow::Result<()> {
    let (project, environment) = split_env(&crate::settings::project(args.project.clone())?)?;
    let client = args.conn.api()?;
    let mut query = LogQuery {
        level: args.level,
        only_level: args.only_level,
        service: args.service.clone(),
        grep: args.grep.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| parse_since(s, now_ms()))
            .transpose()?,
        tail: args.tail,
        follow: !args.no_follow,
        instance: args.instance.clone(),
        ..LogQuery::default()
    };
    let json = args.json || args.output.is_some();
    let colored = color() && !json;
    let mut pos = Position::default();
    let (mut sink, resumed) = Out::open(args.output.as_deref(), &mut pos)?;
    if resumed {
        // Continue after the file's last line, as after a broken connection.
        query.tail = 0;
        query.cursor = pos.cursor();
        if let Some(ts) = pos.last_ts {
            query.since = Some(query.since.map_or(ts, |s| s.max(ts)));
        }
        eprintln!("beam logs: continuing after the last line of the output file");
    }
    let mut attempt = 0u32;
    loop {
        let path = format!(
            "/api/projects/{project}/{environment}/logs?{}",
            serde_urlencoded::to_string(query.to_pairs())?
        );
        let resp = match client.stream(&path).await {
            Ok(r) => r,
            Err(ApiError::Status {
                status,
                code,
                message,
            }) if query.follow && (code == "agent_offline" || status.is_server_error()) => {
                eprintln!("beam logs: {message}; waiting…");
                tokio::time::sleep(Duration::from_secs(3)).await;
                continue;
            }
            Err(ApiError::Connect(e)) if query.follow && attempt > 0 => {
                eprintln!("beam logs: {e}; reconnecting…");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt.min(10)))).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        attempt = 1;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let fresh = pos.start(header(INSTANCES_HEADER));
        // A replica that restarted since the last stream lost what it had
        // not sent: the reader is told where (JSON: a `joined` line with the
        // new buffer's epoch). `--output` records every buffer's epoch, the
        // first included, since resuming from the file needs them.
        for (name, epoch, before) in fresh {
            if before.is_some() {
                eprintln!(
                    "beam logs: the agent {name} restarted; lines it had not sent before that are lost"
                );
            }
            if args.output.is_some() || (json && before.is_some()) {
                let line = serde_json::to_string(&LogLine::Joined {
                    joined: name,
                    epoch,
                })?;
                let mut out = sink.writer();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        // A server that does not name replicas: one agent, one cursor.
        query.epoch = header(EPOCH_HEADER).and_then(|v| v.parse().ok());
        let mut body = resp.into_body();
        let mut pending = crate::ndjson::Lines::default();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.push(&data);
            // One write per received chunk, not per line (stdout is line-buffered).
            let mut out = sink.writer();
            while let Some(line) = pending.next_line() {
                let Ok(parsed) = serde_json::from_slice::<LogLine>(line) else {
                    continue;
                };
                match &parsed {
                    LogLine::Entry(e) => {
                        pos.saw(e);
                        query.after = Some(e.seq);
                    }
                    LogLine::Joined { joined, epoch } => {
                        pos.epochs.insert(joined.clone(), *epoch);
                        pos.several = true;
                        if !json {
                            eprintln!("beam logs: instance {joined} joined");
                            continue;
                        }
                    }
                    LogLine::Left { left, reason } if !json => {
                        eprintln!("beam logs: instance {left} dropped out ({reason})");
                        continue;
                    }
                    LogLine::Dropped { dropped } if !json => {
                        eprintln!("… {dropped} lines dropped (this reader fell behind)");
                        continue;
                    }
                    LogLine::Live { .. } => continue,
                    LogLine::Dropped { .. } | LogLine::Left { .. } => {}
                }
                let text = match &parsed {
                    LogLine::Entry(e) if !json => format_entry(e, colored, pos.several),
                    _ => String::from_utf8_lossy(line).trim_end().to_string(),
                };
                if let Err(e) = writeln!(out, "{text}") {
                    // stdout closed (`beam logs | head`): done. A file that
                    // cannot be written (disk full) is an error.
                    return match &args.output {
                        Some(path) => Err(anyhow::anyhow!("writing {}: {e}", path.display())),
                        None => Ok(()),
                    };
                }
            }
            // Each received chunk is flushed at once, so `--json` consumers see
            // lines as they arrive.
            if let (Err(e), Some(path)) = (out.flush(), &args.output) {
                bail!("writing {}: {e}", path.display());
            }
        }
        if !query.follow {
            return Ok(());
        }
        // The stream broke (agent or server restart): resume where each
        // replica's lines stopped; replicas new since send what they logged
        // after the last line read.
        query.tail = 0;
        let cursor = pos.cursor();
        if !cursor.is_empty() {
            query.cursor = cursor;
            query.after = None;
            query.epoch = None;
            if let Some(ts) = pos.last_ts {
                query.since = Some(query.since.map_or(ts, |s| s.max(ts)));
            }
        }
        eprintln!("beam logs: stream interrupted; resuming…");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_resume_cursor_names_each_replica_with_its_epoch() {
        let mut pos = Position::default();
        pos.start(Some("web-1:7,web-2:9"));
        assert!(pos.several);
        let entry = |i: &str, seq, ts| LogEntry {
            seq,
            ts,
            level: Level::Info,
            message: String::new(),
            service: None,
            context: Default::default(),
            source: beam_proto::logs::Source::Stdout,
            instance: Some(i.into()),
        };
        pos.saw(&entry("web-1", 4, 100));
        pos.saw(&entry("web-2", 2, 90));
        pos.saw(&entry("web-1", 5, 120));
        assert_eq!(Cursor::list_to_string(&pos.cursor()), "web-1:7:5,web-2:9:2");
        assert_eq!(pos.last_ts, Some(120));
        let mut one = Position::default();
        one.start(Some("solo:3"));
        assert!(!one.several);
    }

    #[test]
    fn names_since_and_line_format() {
        assert_eq!(
            split_env("shop/production").unwrap(),
            ("shop".into(), "production".into())
        );
        for bad in ["shop", "/x", "a/b/c", "shop/"] {
            assert!(split_env(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_since("10m", 1_000_000).unwrap(), 400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert!(
            parse_since("last week", 0)
                .unwrap_err()
                .to_string()
                .contains("neither")
        );
        let mut e = LogEntry {
            seq: 1,
            ts: 1_795_337_610_123,
            level: Level::Error,
            message: "db down".into(),
            service: Some("web".into()),
            context: Default::default(),
            source: beam_proto::logs::Source::Stdout,
            instance: Some("web-2".into()),
        };
        assert_eq!(
            format_entry(&e, false, false),
            "[2026-11-22T08:53:30.123Z] [ERROR] [web] db down"
        );
        assert_eq!(
            format_entry(&e, false, true),
            "[2026-11-22T08:53:30.123Z] [ERROR] [web] [web-2] db down"
        );
        e.context.insert("retry".into(), json!(3));
        assert!(format_entry(&e, false, false).ends_with(r#"db down {"retry":3}"#));
    }
}
