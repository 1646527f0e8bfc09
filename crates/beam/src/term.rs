//! Terminal helpers shared by the commands.

use std::io::IsTerminal;

/// Whether to use colour on stdout: a terminal and no `NO_COLOR`.
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// An error and its causes on one line, `outer: cause: cause`, leaving out a
/// cause whose words are already there (many errors repeat their source in
/// their own message, which `{:#}` would print twice).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Bytes for people: 1536 → `1.5 KiB`. (The API itself returns integers.)
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `3m ago`, or `-` for never.
pub fn ms_to_age(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(t) => {
            let secs = (beam_server::store::now_ms() - t).max(0) / 1000;
            match secs {
                0..60 => format!("{secs}s ago"),
                60..3600 => format!("{}m ago", secs / 60),
                3600..86400 => format!("{}h ago", secs / 3600),
                _ => format!("{}d ago", secs / 86400),
            }
        }
    }
}

/// Opens `url` in the user's browser (`$BROWSER`, else the desktop's
/// opener), without waiting for it; a machine without one is fine.
pub fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER").ok().unwrap_or_else(|| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    });
    let spawned = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped on a thread: the opener exits on its own soon.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(_) => eprintln!(
            "  (could not open a browser with {opener}; open the URL yourself, or pass --no-open)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let inner = beam_client::connect::ConnectError::Unreachable {
            server: "127.0.0.1:9".into(),
            source: io,
        };
        let e = anyhow::Error::new(inner).context("the tunnel cannot start");
        let text = error_chain(&e);
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(
            text.starts_with("the tunnel cannot start: cannot reach 127.0.0.1:9"),
            "{text}"
        );
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
