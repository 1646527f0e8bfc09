//! The inspector's side of `beam http` and `beam dev`: binding its address,
//! and the one line per request the terminal shows.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use beam_client::LocalProxy;
use beam_client::inspect::{Inspector, Limits, Recorder, Summary};
use owo_colors::OwoColorize;
use tokio::net::TcpListener;

use crate::cli::InspectArgs;

/// Where the inspector listens when not told: this port, or the next free
/// one of the few after it (another `beam http` may hold it).
const DEFAULT_PORT: u16 = 4040;
const PORTS_TRIED: u16 = 20;

/// The recorder the proxy captures into, when anything needs one.
pub fn recorder(args: &InspectArgs, lines: bool) -> Option<Arc<Recorder>> {
    (!args.no_inspect || lines).then(|| {
        Recorder::new(Limits {
            max_requests: args.inspect_max_requests.max(1),
            max_bytes: usize::try_from(args.inspect_max_bytes).unwrap_or(usize::MAX),
            body_cap: usize::try_from(args.inspect_body_cap).unwrap_or(usize::MAX),
        })
    })
}

/// Binds the inspector's address: the one asked for, or 127.0.0.1:4040 and
/// the next free port after it.
pub async fn bind(args: &InspectArgs) -> anyhow::Result<TcpListener> {
    if let Some(addr) = args.inspect {
        return TcpListener::bind(addr).await.with_context(|| {
            format!("the inspector cannot listen on {addr} (--inspect); pick another address or --no-inspect")
        });
    }
    for port in DEFAULT_PORT..DEFAULT_PORT + PORTS_TRIED {
        if let Ok(l) = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
            return Ok(l);
        }
    }
    anyhow::bail!(
        "ports {DEFAULT_PORT}-{} on 127.0.0.1 are all taken; give the inspector one with --inspect 127.0.0.1:PORT or turn it off with --no-inspect",
        DEFAULT_PORT + PORTS_TRIED - 1
    )
}

/// Serves the inspector on `listener` in the background; returns its URL.
pub fn spawn(
    listener: TcpListener,
    rec: Arc<Recorder>,
    proxy: LocalProxy,
) -> anyhow::Result<String> {
    let addr = listener.local_addr()?;
    let inspector = Inspector::new(rec, proxy, addr);
    tokio::spawn(inspector.serve(listener, std::future::pending()));
    Ok(format!("http://{addr}"))
}

/// The local time zone's offset from UTC in seconds, read once from
/// `date +%z` (the standard library has no time zones, and this runs once per
/// command). UTC when that fails.
pub fn local_offset_secs() -> i64 {
    let out = std::process::Command::new("date").arg("+%z").output();
    let Ok(out) = out else { return 0 };
    let s = String::from_utf8_lossy(&out.stdout);
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => return 0,
    };
    if digits.len() != 4 {
        return 0;
    }
    let (h, m) = (digits[..2].parse::<i64>(), digits[2..].parse::<i64>());
    match (h, m) {
        (Ok(h), Ok(m)) => sign * (h * 3600 + m * 60),
        _ => 0,
    }
}

/// `12:04:31  POST /api/webhooks/stripe  200  14 ms`, errors coloured when
/// `color`.
pub fn request_line(ex: &Summary, offset_secs: i64, color: bool) -> String {
    let secs = (ex.started_at_ms as i64 / 1000 + offset_secs).rem_euclid(86_400);
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let status = match ex.status {
        Some(s) => s.to_string(),
        None => "failed".to_string(),
    };
    let mut path = ex.path.clone();
    if path.len() > 120 {
        let mut cut = 117;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
        path.push('…');
    }
    let mut tail = String::new();
    if let Some(of) = ex.replay_of {
        tail.push_str(&format!("  (replay of #{of})"));
    }
    if ex.websocket {
        tail.push_str("  (WebSocket)");
    }
    if let Some(e) = &ex.error {
        tail.push_str(&format!("  {e}"));
    }
    let ms = format!("{:.0} ms", ex.duration_ms);
    let failed = ex.error.is_some() || ex.status.is_none_or(|s| s >= 500);
    if !color {
        return format!("{time}  {} {path}  {status}  {ms}{tail}", ex.method);
    }
    let status = if failed {
        status.red().bold().to_string()
    } else if ex.status.is_some_and(|s| s >= 400) {
        status.yellow().to_string()
    } else {
        status.green().to_string()
    };
    let tail = if failed { tail.red().to_string() } else { tail };
    format!(
        "{}  {} {path}  {status}  {ms}{tail}",
        time.dimmed(),
        ex.method.bold()
    )
}

/// The `--json --log-requests` line of an exchange.
pub fn request_json(ex: &Summary) -> serde_json::Value {
    serde_json::json!({
        "event": "request",
        "id": ex.id,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "duration_ms": (ex.duration_ms * 1000.0).round() / 1000.0,
        "started_at": beam_proto::time::format_rfc3339_ms(ex.started_at_ms as i64),
        "replay_of": ex.replay_of,
        "error": ex.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use beam_client::inspect::record::Building;

    #[test]
    fn a_request_line_says_time_method_path_status_and_duration() {
        let mut b = Building::new("POST", "/api/webhooks/stripe", vec![], 10);
        b.response_head(200, vec![]);
        let mut ex = b.finish(None).summary();
        ex.started_at_ms = (12 * 3600 + 4 * 60 + 31) * 1000;
        ex.duration_ms = 14.2;
        assert_eq!(
            request_line(&ex, 0, false),
            "12:04:31  POST /api/webhooks/stripe  200  14 ms"
        );
        assert_eq!(&request_line(&ex, 3600, false)[..8], "13:04:31");
        ex.status = None;
        ex.error = Some("could not connect to http://127.0.0.1:3000".into());
        let line = request_line(&ex, 0, false);
        assert!(
            line.contains("failed") && line.contains("could not connect"),
            "{line}"
        );
    }
}
