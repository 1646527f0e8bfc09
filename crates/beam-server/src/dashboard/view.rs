//! What every page shows around its content (the navigation, who is signed
//! in), and the formatting of numbers, sizes and times the pages and the
//! live stream share, so a row drawn by the server and one updated by the
//! script read the same.

use crate::store::TunnelRow;

/// The header and navigation of a signed-in page.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    /// Which page is open (`overview`, `tunnels`, …) for `aria-current`.
    pub page: &'static str,
    /// The user's e-mail address.
    pub email: String,
    /// The organization's name.
    pub org: String,
    /// The user's role there.
    pub role: &'static str,
    /// This session's CSRF token, for the sign-out form.
    pub csrf: String,
    /// The organization the session acts in.
    pub org_id: i64,
    /// The user's organizations `(id, name)` when there are several.
    pub orgs: Vec<(i64, String)>,
}

impl Nav {
    /// `aria-current="page"` for the open page's link.
    pub fn current(&self, page: &str) -> &'static str {
        if self.page == page { "page" } else { "false" }
    }
}

/// What the viewer may change (buttons they cannot use are not shown; the
/// server refuses them anyway).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Can {
    /// Stop, pause and resume tunnels.
    pub tunnels: bool,
    /// Add, check and remove domains.
    pub domains: bool,
    /// Members, roles and invitations.
    pub admin: bool,
}

/// `1234567` → `1,234,567`.
pub(crate) fn count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Bytes in decimal units: `0 B`, `999 B`, `1.2 kB`, `3.4 MB`.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// Unix ms as `2026-12-03 08:50:12 UTC` (the script shows it in local time).
pub(crate) fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant), as in the store's month arithmetic.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// An optional time, or a dash.
pub(crate) fn time_or(ms: Option<i64>, none: &str) -> String {
    ms.map_or_else(|| none.to_string(), time)
}

/// A duration in seconds as `3d 4h`, `5h 12m`, `7m 3s` or `42s`.
pub(crate) fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// One tunnel as the live list shows it: the same cells whether the server
/// draws the row or the script updates it from the stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct TunnelLine {
    /// Tunnel id.
    pub id: i64,
    /// Public name (subdomain or port).
    pub name: String,
    /// Public URL.
    pub url: String,
    /// `http` or `tcp`.
    pub kind: String,
    /// `online`, `paused`, `connecting`, `offline`, …
    pub status: String,
    /// Who started it and from which machine.
    pub who: String,
    /// Requests served (formatted).
    pub requests: String,
    /// Bytes in + out (formatted).
    pub bytes: String,
    /// Last activity (formatted).
    pub last: String,
    /// Whether it is connected now (paused counts).
    pub live: bool,
    /// Whether it is paused.
    pub paused: bool,
}

impl TunnelLine {
    /// The line of `t`; `email` of its user when known.
    pub fn of(t: &TunnelRow, email: Option<&str>) -> Self {
        let status = match t.status.as_str() {
            "connected" => "online",
            "disconnected" => "offline",
            s => s,
        }
        .to_string();
        let machine = t.config["client"]
            .as_str()
            .and_then(|c| c.split_once(" on "))
            .map(|(_, host)| host.to_string());
        let who = match (email, machine) {
            (Some(e), Some(m)) => format!("{e} on {m}"),
            (Some(e), None) => e.to_string(),
            (None, Some(m)) => format!("on {m}"),
            (None, None) => "—".into(),
        };
        let last = t
            .connected_at
            .max(t.disconnected_at)
            .max(Some(t.created_at));
        Self {
            id: t.id,
            name: t.name.clone(),
            url: t.public_url.clone(),
            kind: t.kind.clone(),
            live: matches!(t.status.as_str(), "connected" | "paused" | "connecting"),
            paused: t.paused,
            status,
            who,
            requests: count(t.requests),
            bytes: bytes(t.bytes_in + t.bytes_out),
            last: time_or(last, "—"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_times_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1200), "1.2 kB");
        assert_eq!(bytes(3_400_000), "3.4 MB");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_795_323_600_000), "2026-11-22 05:00:00 UTC");
        assert_eq!(time(1_709_251_199_999), "2024-02-29 23:59:59 UTC");
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600), "3d 4h");
    }
}
