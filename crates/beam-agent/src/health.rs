//! `beam health` on the agent: real probes of production, each `pass`,
//! `warn` or `fail`: the database answers `SELECT 1`, the app's own health URL
//! answers 2xx, the log buffer is not full, and no recent error was logged.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::logs::LogBuffer;

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// An error logged this recently makes `last_error` a warning.
pub const RECENT_ERROR: Duration = Duration::from_secs(300);

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Working, but look at it.
    Warn,
    /// Broken.
    Fail,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `database`, `app`, `log_buffer`, `last_error`.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was seen (never a secret: URLs are shown without credentials).
    pub detail: String,
    /// How long the probe took.
    pub ms: u64,
}

/// The agent's health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The worst check.
    pub status: Status,
    /// Each check.
    pub checks: Vec<Check>,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Agent version.
    pub version: String,
    /// `project/environment`.
    pub environment: String,
}

/// What to probe.
#[derive(Debug, Clone)]
pub struct HealthProbes {
    /// The production database (the agent's shared pool) and its URL
    /// without credentials, for display.
    pub database: Option<(crate::proddb::ProdDb, String)>,
    /// The app's own health endpoint, e.g. `http://127.0.0.1:3000/healthz`.
    pub app_url: Option<String>,
    /// `project/environment`.
    pub environment: String,
    /// When the agent started.
    pub started: tokio::time::Instant,
}

/// The URL without user info or query, for display.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    if scheme.is_empty() {
        rest.to_string()
    } else {
        format!("{scheme}://{rest}")
    }
}

async fn timed<F: std::future::Future<Output = (Status, String)>>(name: &str, f: F) -> Check {
    let start = tokio::time::Instant::now();
    let (status, detail) = match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => (
            Status::Fail,
            format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        ),
    };
    Check {
        name: name.into(),
        status,
        detail,
        ms: start.elapsed().as_millis() as u64,
    }
}

/// `SELECT 1` through the agent's pool: the same connections sync uses, so
/// a health check never opens a connection of its own.
async fn probe_database(db: &crate::proddb::ProdDb, shown: &str) -> (Status, String) {
    match db.ping().await {
        Ok(()) => (Status::Pass, format!("{shown} answered SELECT 1")),
        // sqlx errors name the host and the failure, not the password.
        Err(e) => (Status::Fail, format!("{shown}: {e}")),
    }
}

/// The database URL without credentials or query, for display.
pub fn redacted_url(url: &str) -> String {
    redact(url)
}

async fn probe_app(url: &str) -> (Status, String) {
    let shown = redact(url);
    let Ok(uri) = url.parse::<http::Uri>() else {
        return (Status::Fail, format!("{shown} is not a URL"));
    };
    let Some(host) = uri.host() else {
        return (Status::Fail, format!("{shown} has no host"));
    };
    let https = uri.scheme_str() == Some("https");
    let target = beam_client::LocalTarget {
        host: host.trim_matches(['[', ']']).to_string(),
        port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        https,
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(
        beam_client::local::LocalDialer::new(target, false),
    );
    match client.get(uri).await {
        Ok(r) if r.status().is_success() => (Status::Pass, format!("{shown} → {}", r.status())),
        Ok(r) => (Status::Fail, format!("{shown} → {}", r.status())),
        Err(e) => (Status::Fail, format!("{shown}: {e}")),
    }
}

impl HealthProbes {
    /// Runs every configured probe (concurrently) and the buffer checks.
    pub async fn run(&self, logs: &Arc<LogBuffer>) -> Report {
        let db = async {
            match &self.database {
                Some((db, shown)) => Some(timed("database", probe_database(db, shown)).await),
                None => None,
            }
        };
        let app = async {
            match &self.app_url {
                Some(u) => Some(timed("app", probe_app(u)).await),
                None => None,
            }
        };
        let (db, app) = tokio::join!(db, app);
        let stats = logs.stats();
        let fill = (stats.entries as f64 / stats.limits.max_entries.max(1) as f64)
            .max(stats.bytes as f64 / stats.limits.max_bytes.max(1) as f64);
        let buffer = Check {
            name: "log_buffer".into(),
            // A full buffer is normal under steady logging (old lines expire);
            // warn so a reader knows history is short.
            status: if fill >= 0.9 {
                Status::Warn
            } else {
                Status::Pass
            },
            detail: format!(
                "{} entries, {} KiB ({:.0}% full)",
                stats.entries,
                stats.bytes / 1024,
                fill * 100.0
            ),
            ms: 0,
        };
        let now_ms = beam_proto::time::now_ms();
        let last_error = match &stats.last_error {
            None => Check {
                name: "last_error".into(),
                status: Status::Pass,
                detail: "no error logged since the agent started".into(),
                ms: 0,
            },
            Some(e) => Check {
                name: "last_error".into(),
                status: if now_ms - e.ts < RECENT_ERROR.as_millis() as i64 {
                    Status::Warn
                } else {
                    Status::Pass
                },
                detail: format!(
                    "{}: {}",
                    beam_proto::time::format_rfc3339_ms(e.ts),
                    e.message.chars().take(200).collect::<String>()
                ),
                ms: 0,
            },
        };
        let checks: Vec<Check> = [db, app]
            .into_iter()
            .flatten()
            .chain([buffer, last_error])
            .collect();
        Report {
            status: checks
                .iter()
                .map(|c| c.status)
                .max()
                .unwrap_or(Status::Pass),
            checks,
            uptime_s: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: self.environment.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact("postgres://app:hunter2@db.internal:5432/shop?sslmode=require"),
            "postgres://db.internal:5432/shop"
        );
        assert_eq!(redact("sqlite:///var/db.sqlite"), "sqlite:///var/db.sqlite");
    }

    async fn probe(url: &str) -> (Status, String) {
        let db = crate::proddb::ProdDb::new(url, crate::proddb::DbLimits::default()).unwrap();
        probe_database(&db, &redact(url)).await
    }

    #[tokio::test]
    async fn database_probes_pass_and_fail() {
        let probe_database = |u: &str| {
            let u = u.to_string();
            async move { probe(&u).await }
        };
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("sqlite://{}", dir.path().join("nope.db").display());
        let (s, d) = probe_database(&missing).await;
        assert_eq!(s, Status::Fail, "{d}");
        let path = dir.path().join("ok.db");
        std::fs::write(&path, b"").unwrap();
        let (s, d) = probe_database(&format!("sqlite://{}", path.display())).await;
        assert_eq!(s, Status::Pass, "{d}");
        let (s, d) = probe_database("postgres://u:secretpw@127.0.0.1:1/x").await;
        assert_eq!(s, Status::Fail);
        assert!(!d.contains("secretpw"), "{d}");
    }
}
