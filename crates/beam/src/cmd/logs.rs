//! `beam logs`: streams production logs; filters run on the agent.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use beam_client::ApiError;
use beam_proto::logs::{EPOCH_HEADER, Level, LogEntry, LogLine, LogQuery};
use http_body_util::BodyExt;
use owo_colors::OwoColorize;
use serde_json::Value;

use crate::cli::{LogsArgs, parse_duration};
use crate::cmd::split_env;
use crate::term::color;

/// `--since`: a duration ago (`10m`) or an RFC 3339 time.
fn parse_since(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(t) = beam_proto::time::parse_rfc3339_ms(s) {
        return Ok(t);
    }
    match parse_duration(s) {
        Ok(d) => Ok(now_ms - d.as_millis() as i64),
        Err(_) => bail!(
            "--since '{s}' is neither a duration (10m, 2h) nor an RFC 3339 time (2026-01-31T12:00:00Z)"
        ),
    }
}

use beam_proto::time::now_ms;

/// The seed's line format: `[time] [LEVEL] [service] message {context}`.
pub fn format_entry(e: &LogEntry, colored: bool) -> String {
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
    let mut line = format!(
        "[{}] [{level}] [{}] {}",
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

/// Runs `beam logs`.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let (project, environment) = split_env(&args.project)?;
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
        after: None,
        epoch: None,
    };
    let colored = color() && !args.json;
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
        query.epoch = resp
            .headers()
            .get(EPOCH_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let mut body = resp.into_body();
        let mut pending = crate::ndjson::Lines::default();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.push(&data);
            // One write per received chunk, not per line (stdout is line-buffered).
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            while let Some(line) = pending.next_line() {
                let Ok(parsed) = serde_json::from_slice::<LogLine>(line) else {
                    continue;
                };
                match &parsed {
                    LogLine::Entry(e) => query.after = Some(e.seq),
                    LogLine::Dropped { dropped } if !args.json => {
                        eprintln!("… {dropped} lines dropped (this reader fell behind)");
                        continue;
                    }
                    LogLine::Dropped { .. } => {}
                }
                let text = match &parsed {
                    LogLine::Entry(e) if !args.json => format_entry(e, colored),
                    _ => String::from_utf8_lossy(line).trim_end().to_string(),
                };
                if writeln!(out, "{text}").is_err() {
                    // stdout closed (`beam logs | head`): done.
                    return Ok(());
                }
            }
            // Each received chunk is flushed at once, so `--json` consumers see
            // lines as they arrive.
            let _ = out.flush();
        }
        if !query.follow {
            return Ok(());
        }
        // The stream broke (agent or server restart): resume after the last seq.
        query.tail = 0;
        eprintln!("beam logs: stream interrupted; resuming…");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        };
        assert_eq!(
            format_entry(&e, false),
            "[2026-11-22T08:53:30.123Z] [ERROR] [web] db down"
        );
        e.context.insert("retry".into(), json!(3));
        assert!(format_entry(&e, false).ends_with(r#"db down {"retry":3}"#));
    }
}
