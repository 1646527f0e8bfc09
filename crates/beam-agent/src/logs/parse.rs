//! Turning an app's output line into level, message, service and context, with
//! no change to the app: JSON lines (pino, bunyan, tracing-subscriber's JSON,
//! generic `level`/`message`), logfmt, and plain text with a level guessed from
//! the usual markers (`ERROR`, `[WARN]`, `Traceback`, `panicked at`).

use beam_proto::logs::Level;
use serde_json::{Map, Value};

/// A parsed line, before the buffer gives it a sequence number and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Severity.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Service, if the line names one.
    pub service: Option<String>,
    /// Other structured fields.
    pub context: Map<String, Value>,
}

/// Fields that are the line's timestamp or format version, not context: the
/// buffer stamps its own receipt time.
const DROPPED_KEYS: &[&str] = &["time", "timestamp", "@timestamp", "ts", "v"];

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Parsed {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with('{')
        && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line)
    {
        return from_json(obj, line);
    }
    if let Some(p) = from_logfmt(line) {
        return p;
    }
    Parsed {
        level: guess_level(line),
        message: line.to_string(),
        service: None,
        context: Map::new(),
    }
}

fn level_of(v: &Value) -> Option<Level> {
    match v {
        // pino and bunyan: 10 trace … 60 fatal.
        Value::Number(n) => Some(match n.as_u64()? {
            0..=10 => Level::Trace,
            11..=20 => Level::Debug,
            21..=30 => Level::Info,
            31..=40 => Level::Warn,
            41..=50 => Level::Error,
            _ => Level::Fatal,
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn take_str(obj: &mut Map<String, Value>, keys: &[&str]) -> Option<String> {
    for k in keys {
        if let Some(Value::String(s)) = obj.get(*k) {
            let s = s.clone();
            obj.remove(*k);
            return Some(s);
        }
    }
    None
}

fn from_json(mut obj: Map<String, Value>, raw: &str) -> Parsed {
    let level = ["level", "severity", "lvl", "levelname", "log.level"]
        .iter()
        .find_map(|k| {
            let l = level_of(obj.get(*k)?)?;
            obj.remove(*k);
            Some(l)
        });
    // tracing-subscriber's JSON format nests the message in `fields`.
    let nested = match obj.get_mut("fields") {
        Some(Value::Object(fields)) => take_str(fields, &["message"]),
        _ => None,
    };
    if matches!(obj.get("fields"), Some(Value::Object(f)) if f.is_empty()) {
        obj.remove("fields");
    }
    let message = take_str(&mut obj, &["msg", "message", "@message"]).or(nested);
    let service = take_str(&mut obj, &["service", "service.name", "app", "name"]);
    for k in DROPPED_KEYS {
        obj.remove(*k);
    }
    // Without a message the fields are the line: they stay in the context,
    // where masking sees each field's name (a copy of the raw line as the
    // message would carry every secret field past the name-based masking).
    let _ = raw;
    let message = message.unwrap_or_default();
    Parsed {
        level: level.unwrap_or_else(|| guess_level(&message)),
        message,
        service,
        context: obj,
    }
}

/// `key=value key="quoted value"` pairs; `None` unless the line is clearly
/// logfmt (it has a `level=` or `msg=` pair and only pairs).
fn from_logfmt(line: &str) -> Option<Parsed> {
    let mut pairs = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains(char::is_whitespace) || key.contains('"') {
            return None;
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end?;
            value = out;
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = rest[end..].trim_start();
        }
        pairs.push((key.to_string(), value));
    }
    if !pairs
        .iter()
        .any(|(k, _)| k == "level" || k == "msg" || k == "message")
    {
        return None;
    }
    let mut level = None;
    let mut message = None;
    let mut service = None;
    let mut context = Map::new();
    for (k, v) in pairs {
        match k.as_str() {
            "level" | "lvl" | "severity" => level = v.parse().ok(),
            "msg" | "message" => message = Some(v),
            "service" | "app" => service = Some(v),
            k if DROPPED_KEYS.contains(&k) => {}
            _ => {
                context.insert(k, Value::String(v));
            }
        }
    }
    let message = message.unwrap_or_default();
    Some(Parsed {
        level: level.unwrap_or_else(|| guess_level(&message)),
        message,
        service,
        context,
    })
}

/// A level from the markers plain-text logs use near the start of a line:
/// upper-case level words (`ERROR`, `[WARN]`, `W:` is too ambiguous and is not
/// used), Python tracebacks and Rust panics. Words further into the line are
/// ignored, so `GET /errors 200` stays `info`.
pub fn guess_level(line: &str) -> Level {
    if line.starts_with("Traceback (most recent call last)") {
        return Level::Error;
    }
    if line.starts_with("thread '") && line.contains("panicked at") {
        return Level::Fatal;
    }
    let head: String = line.chars().take(48).collect();
    for token in head.split(|c: char| !c.is_ascii_alphanumeric()) {
        let level = match token {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" | "ERR" | "SEVERE" => Level::Error,
            "FATAL" | "CRITICAL" | "PANIC" | "CRIT" => Level::Fatal,
            _ => continue,
        };
        return level;
    }
    Level::Info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pino_and_bunyan_numeric_levels() {
        let p = parse_line(
            r#"{"level":50,"time":1700000000000,"pid":7,"hostname":"web-1","msg":"payment failed","orderId":"o_1"}"#,
        );
        assert_eq!(p.level, Level::Error);
        assert_eq!(p.message, "payment failed");
        assert_eq!(p.context["orderId"], "o_1");
        assert!(!p.context.contains_key("time"));
        let b = parse_line(
            r#"{"name":"billing","hostname":"h","pid":1,"level":30,"msg":"ok","time":"2024-01-01T00:00:00Z","v":0}"#,
        );
        assert_eq!(
            (b.level, b.service.as_deref()),
            (Level::Info, Some("billing"))
        );
        assert!(!b.context.contains_key("v"));
    }

    #[test]
    fn tracing_json_and_generic_json() {
        let t = parse_line(
            r#"{"timestamp":"2024-01-01T00:00:00Z","level":"WARN","fields":{"message":"slow query","ms":812},"target":"db"}"#,
        );
        assert_eq!(t.level, Level::Warn);
        assert_eq!(t.message, "slow query");
        assert_eq!(t.context["fields"]["ms"], 812);
        assert_eq!(t.context["target"], "db");
        let g = parse_line(r#"{"severity":"CRITICAL","message":"disk full","service":"worker"}"#);
        assert_eq!(
            (g.level, g.service.as_deref()),
            (Level::Fatal, Some("worker"))
        );
        // JSON without a message keeps its fields as context, not as a copy
        // of the raw line (which would bypass masking by field name).
        let n = parse_line(r#"{"event":"signup","cvv":"123"}"#);
        assert_eq!(n.message, "");
        assert_eq!(n.context["event"], "signup");
    }

    #[test]
    fn logfmt_with_quotes() {
        let p = parse_line(
            r#"time=2024-01-01T00:00:00Z level=error msg="charge \"declined\"" service=api code=card_declined"#,
        );
        assert_eq!(p.level, Level::Error);
        assert_eq!(p.message, r#"charge "declined""#);
        assert_eq!(p.service.as_deref(), Some("api"));
        assert_eq!(p.context["code"], "card_declined");
        // `a=b` text that is not logfmt stays plain.
        assert_eq!(parse_line("x=1 is the answer").message, "x=1 is the answer");
    }

    #[test]
    fn plain_lines_get_a_guessed_level() {
        assert_eq!(
            parse_line("2024-01-01 12:00:00 ERROR db: timeout").level,
            Level::Error
        );
        assert_eq!(parse_line("[WARN] retrying").level, Level::Warn);
        assert_eq!(
            parse_line("Traceback (most recent call last):").level,
            Level::Error
        );
        assert_eq!(
            parse_line("thread 'main' panicked at src/main.rs:3:5").level,
            Level::Fatal
        );
        assert_eq!(parse_line("GET /errors 200 3ms").level, Level::Info);
        assert_eq!(
            parse_line("listening on :3000\r\n").message,
            "listening on :3000"
        );
    }
}
