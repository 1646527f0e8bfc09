//! Log lines as they travel from the production agent to `beam logs`: one JSON
//! object per line (NDJSON), either an entry or a marker saying how many entries
//! a slow reader missed. The query says what the agent should send; filters run
//! on the agent, so filtered-out lines never cross the network.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the app handled.
    Warn,
    /// A failed operation.
    Error,
    /// The app cannot continue.
    Fatal,
}

impl Level {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    /// Accepts the names above and the usual spellings (`WARNING`, `err`, `critical`, `panic`).
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "trace" | "verbose" => Level::Trace,
            "debug" | "dbug" => Level::Debug,
            "info" | "information" | "notice" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => Level::Fatal,
            other => {
                return Err(format!(
                    "'{other}' is not a log level: use trace, debug, info, warn, error or fatal"
                ));
            }
        })
    }
}

/// Where a line came from on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
    /// `POST /ingest/logs` on the agent's local port.
    Ingest,
    /// A followed file (`--tail-file`).
    File,
    /// A `tracing` event of an app embedding the agent (`beam_agent::Agent`).
    Tracing,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the agent's buffer; strictly increasing, the resume cursor.
    pub seq: u64,
    /// When the agent received the line, unix milliseconds.
    pub ts: i64,
    /// Parsed or guessed severity.
    pub level: Level,
    /// The message (secrets the agent recognizes are already masked).
    pub message: String,
    /// Service name from the line or the agent's `--service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Structured fields of a JSON or logfmt line, besides level, message and service.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Where the line came from.
    pub source: Source,
    /// The agent replica that sent it; set by the server, which merges the
    /// lines of every replica of an environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// One NDJSON line of a log stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogLine {
    /// An entry.
    Entry(LogEntry),
    /// The reader fell behind and this many entries were skipped (production is
    /// never slowed down for a reader).
    Dropped {
        /// How many.
        dropped: u64,
    },
    /// A replica's stream started after the first lines: its entries follow.
    /// `epoch` is its buffer, for resuming with [`LogQuery::cursor`].
    Joined {
        /// The replica's instance name.
        joined: String,
        /// Its buffer's epoch.
        epoch: u64,
    },
    /// A replica's stream ended (its agent disconnected, or the node it is
    /// connected to failed): its lines stop here.
    Left {
        /// The replica's instance name.
        left: String,
        /// Why, for the reader.
        reason: String,
    },
    /// Sent by an agent asked for [`LogQuery::mark_live`]: the past entries
    /// are all sent, live ones follow. The server merging replicas uses it
    /// to sort the past lines of every replica before the first live one;
    /// readers never see it.
    Live {
        /// Always true.
        live: bool,
    },
}

/// Where a reader stopped in one replica's stream: resume after `seq` of the
/// buffer `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The replica's instance name.
    pub instance: String,
    /// Its buffer's epoch.
    pub epoch: u64,
    /// The last sequence number read.
    pub seq: u64,
}

impl Cursor {
    /// `NAME:EPOCH:SEQ,…`, the form of the `cursor` query parameter.
    pub fn list_to_string(cursors: &[Cursor]) -> String {
        cursors
            .iter()
            .map(|c| format!("{}:{}:{}", c.instance, c.epoch, c.seq))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses `NAME:EPOCH:SEQ,…`.
    pub fn parse_list(s: &str) -> Result<Vec<Cursor>, String> {
        s.split(',')
            .filter(|p| !p.is_empty())
            .map(|part| {
                let bad = || format!("cursor '{part}' is not INSTANCE:EPOCH:SEQ");
                let mut it = part.rsplitn(3, ':');
                let seq = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let epoch = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                let instance = it.next().ok_or_else(bad)?;
                if !crate::hello::valid_instance(instance) {
                    return Err(bad());
                }
                Ok(Cursor {
                    instance: instance.to_string(),
                    epoch,
                    seq,
                })
            })
            .collect()
    }
}

/// What a reader asks the agent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// That level and above (or exactly, with `only_level`).
    pub level: Option<Level>,
    /// Match `level` exactly instead of "and above".
    pub only_level: bool,
    /// Only this service.
    pub service: Option<String>,
    /// Only messages matching this regular expression.
    pub grep: Option<String>,
    /// Only entries received at or after this time (unix ms).
    pub since: Option<i64>,
    /// How many past entries to send first.
    pub tail: usize,
    /// Keep streaming new entries.
    pub follow: bool,
    /// Resume: only entries with a larger `seq` (the last one a reader saw).
    pub after: Option<u64>,
    /// The buffer `after` refers to (header [`EPOCH_HEADER`] of the earlier
    /// stream). When the agent restarted since, its sequence numbers started
    /// over: everything the new buffer holds is sent instead.
    pub epoch: Option<u64>,
    /// Only this replica (`beam logs --instance`).
    pub instance: Option<String>,
    /// Resume a merged stream of several replicas: where the reader stopped in
    /// each. Replicas not named here send what they logged since `since`.
    pub cursor: Vec<Cursor>,
    /// Ask the agent for a [`LogLine::Live`] marker after the past entries
    /// (the server does; readers need not).
    pub mark_live: bool,
}

/// Response header listing the replicas of a merged log stream with their
/// buffer epochs: `NAME:EPOCH,…`.
pub const INSTANCES_HEADER: &str = "beam-log-instances";

/// Response header naming the agent buffer a log stream comes from.
pub const EPOCH_HEADER: &str = "beam-log-epoch";

impl Default for LogQuery {
    fn default() -> Self {
        Self {
            level: None,
            only_level: false,
            service: None,
            grep: None,
            since: None,
            tail: 100,
            follow: true,
            after: None,
            epoch: None,
            instance: None,
            cursor: Vec::new(),
            mark_live: false,
        }
    }
}

impl LogQuery {
    /// The query as URL query pairs (`level=warn&tail=100&follow=true…`).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("tail", self.tail.to_string()),
            ("follow", self.follow.to_string()),
        ];
        if let Some(l) = self.level {
            v.push(("level", l.to_string()));
        }
        if self.only_level {
            v.push(("only_level", "true".into()));
        }
        if let Some(s) = &self.service {
            v.push(("service", s.clone()));
        }
        if let Some(g) = &self.grep {
            v.push(("grep", g.clone()));
        }
        if let Some(s) = self.since {
            v.push(("since", s.to_string()));
        }
        if let Some(a) = self.after {
            v.push(("after", a.to_string()));
        }
        if let Some(e) = self.epoch {
            v.push(("epoch", e.to_string()));
        }
        if let Some(i) = &self.instance {
            v.push(("instance", i.clone()));
        }
        if !self.cursor.is_empty() {
            v.push(("cursor", Cursor::list_to_string(&self.cursor)));
        }
        if self.mark_live {
            v.push(("mark_live", "true".into()));
        }
        v
    }

    /// Parses decoded query pairs; unknown keys are errors, so a typo is not a
    /// silently ignored filter.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut q = LogQuery::default();
        let bool_of = |k: &str, v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{k} must be true or false, not '{v}'")),
        };
        let num = |k: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("{k} must be a number, not '{v}'"))
        };
        for (k, v) in pairs {
            match k {
                "level" => q.level = Some(v.parse()?),
                "only_level" => q.only_level = bool_of(k, v)?,
                "service" => q.service = Some(v.to_string()),
                "grep" => q.grep = Some(v.to_string()),
                "since" => q.since = Some(num(k, v)?),
                "tail" => {
                    q.tail = usize::try_from(num(k, v)?)
                        .map_err(|_| "tail must be 0 or more".to_string())?
                }
                "follow" => q.follow = bool_of(k, v)?,
                "after" => {
                    q.after = Some(
                        u64::try_from(num(k, v)?)
                            .map_err(|_| "after must be 0 or more".to_string())?,
                    )
                }
                "epoch" => {
                    q.epoch = Some(
                        v.parse()
                            .map_err(|_| format!("epoch must be a number, not '{v}'"))?,
                    )
                }
                "instance" if crate::hello::valid_instance(v) => q.instance = Some(v.to_string()),
                "instance" => {
                    return Err(format!(
                        "instance '{v}' is not an instance name (1 to 64 of A-Z a-z 0-9 . _ -)"
                    ));
                }
                "cursor" => q.cursor = Cursor::parse_list(v)?,
                "mark_live" => q.mark_live = bool_of(k, v)?,
                other => return Err(format!("unknown log query parameter '{other}'")),
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse_common_spellings() {
        assert!(Level::Warn > Level::Info);
        assert_eq!("WARNING".parse::<Level>().unwrap(), Level::Warn);
        assert_eq!("critical".parse::<Level>().unwrap(), Level::Fatal);
        assert!(
            "loud"
                .parse::<Level>()
                .unwrap_err()
                .contains("not a log level")
        );
    }

    #[test]
    fn queries_round_trip_and_reject_unknown_keys() {
        let q = LogQuery {
            level: Some(Level::Warn),
            only_level: true,
            service: Some("api".into()),
            grep: Some("timeout|refused".into()),
            since: Some(1_700_000_000_000),
            tail: 5,
            follow: false,
            after: Some(42),
            epoch: Some(u64::MAX),
            instance: Some("web-1".into()),
            cursor: vec![
                Cursor {
                    instance: "web-1".into(),
                    epoch: 7,
                    seq: 9,
                },
                Cursor {
                    instance: "ip-10-0-0-5.ec2".into(),
                    epoch: u64::MAX,
                    seq: 0,
                },
            ],
            mark_live: true,
        };
        let pairs = q.to_pairs();
        let back = LogQuery::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, q);
        assert!(
            LogQuery::from_pairs([("levle", "warn")])
                .unwrap_err()
                .contains("unknown")
        );
        assert!(LogQuery::from_pairs([("tail", "-1")]).is_err());
        for bad in ["web:1", "web:x:1", "we b:1:2", ":1:2", "web:1:-2"] {
            assert!(LogQuery::from_pairs([("cursor", bad)]).is_err(), "{bad}");
        }
        assert!(LogQuery::from_pairs([("instance", "a/b")]).is_err());
    }

    #[test]
    fn lines_are_entries_or_drop_markers() {
        let marker: LogLine = serde_json::from_str(r#"{"dropped":7}"#).unwrap();
        assert_eq!(marker, LogLine::Dropped { dropped: 7 });
        let entry = LogLine::Entry(LogEntry {
            seq: 1,
            ts: 2,
            level: Level::Info,
            message: "hi".into(),
            service: None,
            context: Default::default(),
            source: Source::Stdout,
            instance: None,
        });
        let text = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            text,
            r#"{"seq":1,"ts":2,"level":"info","message":"hi","source":"stdout"}"#
        );
        assert_eq!(serde_json::from_str::<LogLine>(&text).unwrap(), entry);
        for (text, line) in [
            (
                r#"{"joined":"web-2","epoch":5}"#,
                LogLine::Joined {
                    joined: "web-2".into(),
                    epoch: 5,
                },
            ),
            (
                r#"{"left":"web-2","reason":"gone"}"#,
                LogLine::Left {
                    left: "web-2".into(),
                    reason: "gone".into(),
                },
            ),
            (r#"{"live":true}"#, LogLine::Live { live: true }),
        ] {
            assert_eq!(serde_json::from_str::<LogLine>(text).unwrap(), line);
            assert_eq!(serde_json::to_string(&line).unwrap(), text);
        }
    }
}
