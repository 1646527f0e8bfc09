//! Request analytics: per-request records (redacted, sampled, kept for a bounded
//! time), additive per-minute and hourly totals per tunnel (exact: every request
//! counts), and the queries behind the analytics API and the dashboard's charts.

use std::collections::BTreeMap;

use serde::Serialize;
// Dynamic SQL here is built only from constant column lists and column names;
// every value is bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, now_ms, on_pool};

/// One proxied request, already redacted by the edge.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Tunnel row.
    pub tunnel_id: i64,
    /// Its organization.
    pub org_id: i64,
    /// Unix ms when the request arrived.
    pub ts: i64,
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Time to response headers, microseconds.
    pub duration_us: i64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Visitor network (/24 or /48).
    pub client_net: String,
    /// Request headers as JSON `[[name, value], …]`, sensitive values redacted.
    pub headers: String,
}

/// What the analytics endpoints return. Counts and bytes are integers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Analytics {
    /// `1h`, `24h`, `7d` or `30d`.
    pub period: String,
    /// Start of the period, unix ms.
    pub since: i64,
    /// Requests in the period.
    pub requests: i64,
    /// Responses with status ≥ 500 (including beam's own 502/504).
    pub errors: i64,
    /// `errors / requests`, 0 when there were no requests.
    pub error_rate: f64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Median time to response headers, milliseconds (integer, rounded up).
    pub latency_p50_ms: i64,
    /// 95th percentile time to response headers, milliseconds (rounded up).
    pub latency_p95_ms: i64,
    /// The ten most requested paths.
    pub top_paths: Vec<PathCount>,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, i64>,
}

/// A path and how often it was requested.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PathCount {
    /// Request path.
    pub path: String,
    /// Requests.
    pub requests: i64,
}

/// Whose requests to count.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One tunnel.
    Tunnel(i64),
    /// Every tunnel of an organization.
    Org(i64),
}

impl Scope {
    pub(super) fn column(self) -> (&'static str, i64) {
        match self {
            Scope::Tunnel(id) => ("tunnel_id", id),
            Scope::Org(id) => ("org_id", id),
        }
    }

    /// The table of exact totals per minute (`minutes`) or per hour: per
    /// tunnel, or the organization's own roll-up (one row per step).
    pub(super) fn totals_table(self, minutes: bool) -> &'static str {
        match (self, minutes) {
            (Scope::Tunnel(_), true) => "request_minutes",
            (Scope::Tunnel(_), false) => "request_hours",
            (Scope::Org(_), true) => "org_minutes",
            (Scope::Org(_), false) => "org_hours",
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// How long per-minute totals are kept at most (`--retention` can make it
/// shorter): long enough for a 24-hour chart in 1-minute steps, short enough
/// that a busy server keeps at most 2,880 rows per tunnel.
pub const MINUTES_KEPT_MS: i64 = 2 * 86_400_000;

/// Totals of one tunnel in one minute, accumulated in memory for every request
/// (records are sampled; totals are not). Written to the per-minute table and
/// added to the hourly one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteTotals {
    /// Tunnel row.
    pub tunnel_id: i64,
    /// Its organization.
    pub org_id: i64,
    /// Unix ms at the start of the minute.
    pub minute: i64,
    /// Requests.
    pub requests: i64,
    /// Responses with status ≥ 500.
    pub errors: i64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Sum of times to response headers, microseconds.
    pub duration_us: i64,
}

/// Unix ms of the first instant of the UTC calendar month containing `ms`.
pub fn month_start(ms: i64) -> i64 {
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate.
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5; // 0-based
    (days - day_of_month) * 86_400_000
}

/// Start of the hour containing `ts` (unix ms).
pub fn hour_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(HOUR_MS)
}

/// Start of the minute containing `ts` (unix ms).
pub fn minute_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(MINUTE_MS)
}

impl Store {
    /// Writes sampled records, adds per-minute and hourly totals and the tunnels' running totals,
    /// in one transaction. Rows of tunnels deleted meanwhile are skipped. A
    /// `batch` id already written is skipped whole, so a caller that did not
    /// hear back retries the same batch without counting it twice.
    pub async fn flush_analytics(
        &self,
        batch: &str,
        records: &[RequestRecord],
        totals: &[MinuteTotals],
    ) -> Result<(), StoreError> {
        if records.is_empty() && totals.is_empty() {
            return Ok(());
        }
        // The organizations' roll-ups: one row per organization and minute.
        let mut by_org: BTreeMap<(i64, i64), MinuteTotals> = BTreeMap::new();
        for t in totals {
            let o = by_org.entry((t.org_id, t.minute)).or_default();
            o.requests += t.requests;
            o.errors += t.errors;
            o.bytes_in += t.bytes_in;
            o.bytes_out += t.bytes_out;
            o.duration_us += t.duration_us;
        }
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            // Written before, by an attempt whose answer was lost: done.
            let fresh = sqlx::query(
                "INSERT INTO analytics_batches (id, written_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(batch).bind(now_ms()).execute(&mut *tx).await?.rows_affected();
            if fresh == 0 {
                return Ok(());
            }
            for r in records {
                sqlx::query(
                    "INSERT INTO requests (tunnel_id, org_id, ts, method, path, status, duration_us, \
                     bytes_in, bytes_out, client_net, headers) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
                     WHERE EXISTS (SELECT 1 FROM tunnels WHERE id = $1)")
                    .bind(r.tunnel_id).bind(r.org_id).bind(r.ts).bind(&r.method).bind(&r.path)
                    .bind(i32::from(r.status)).bind(r.duration_us).bind(r.bytes_in).bind(r.bytes_out)
                    .bind(&r.client_net).bind(&r.headers)
                    .execute(&mut *tx).await?;
            }
            for h in totals {
                sqlx::query(
                    "INSERT INTO request_minutes (tunnel_id, org_id, minute, requests, errors, bytes_in, bytes_out, duration_us) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM tunnels WHERE id = $1) \
                     ON CONFLICT (tunnel_id, minute) DO UPDATE SET \
                       requests = request_minutes.requests + excluded.requests, \
                       errors = request_minutes.errors + excluded.errors, \
                       bytes_in = request_minutes.bytes_in + excluded.bytes_in, \
                       bytes_out = request_minutes.bytes_out + excluded.bytes_out, \
                       duration_us = request_minutes.duration_us + excluded.duration_us")
                    .bind(h.tunnel_id).bind(h.org_id).bind(h.minute).bind(h.requests).bind(h.errors)
                    .bind(h.bytes_in).bind(h.bytes_out).bind(h.duration_us)
                    .execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO request_hours (tunnel_id, org_id, hour, requests, errors, bytes_in, bytes_out, duration_us) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM tunnels WHERE id = $1) \
                     ON CONFLICT (tunnel_id, hour) DO UPDATE SET \
                       requests = request_hours.requests + excluded.requests, \
                       errors = request_hours.errors + excluded.errors, \
                       bytes_in = request_hours.bytes_in + excluded.bytes_in, \
                       bytes_out = request_hours.bytes_out + excluded.bytes_out, \
                       duration_us = request_hours.duration_us + excluded.duration_us")
                    .bind(h.tunnel_id).bind(h.org_id).bind(hour_of(h.minute)).bind(h.requests).bind(h.errors)
                    .bind(h.bytes_in).bind(h.bytes_out).bind(h.duration_us)
                    .execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE tunnels SET requests = requests + $1, bytes_in = bytes_in + $2, \
                     bytes_out = bytes_out + $3 WHERE id = $4")
                    .bind(h.requests).bind(h.bytes_in).bind(h.bytes_out).bind(h.tunnel_id)
                    .execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO org_usage (org_id, month, bytes) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $1) \
                     ON CONFLICT (org_id, month) DO UPDATE SET bytes = org_usage.bytes + excluded.bytes")
                    .bind(h.org_id).bind(month_start(h.minute)).bind(h.bytes_in + h.bytes_out)
                    .execute(&mut *tx).await?;
            }
            for (&(org, minute), t) in &by_org {
                for (table, col, at) in [("org_minutes", "minute", minute), ("org_hours", "hour", hour_of(minute))] {
                    let sql = format!(
                        "INSERT INTO {table} (org_id, {col}, requests, errors, bytes_in, bytes_out, duration_us) \
                         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $1) \
                         ON CONFLICT (org_id, {col}) DO UPDATE SET \
                           requests = {table}.requests + excluded.requests, \
                           errors = {table}.errors + excluded.errors, \
                           bytes_in = {table}.bytes_in + excluded.bytes_in, \
                           bytes_out = {table}.bytes_out + excluded.bytes_out, \
                           duration_us = {table}.duration_us + excluded.duration_us");
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(org).bind(at).bind(t.requests).bind(t.errors)
                        .bind(t.bytes_in).bind(t.bytes_out).bind(t.duration_us)
                        .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Analytics of `scope` since `since` (unix ms). Totals come from the hourly
    /// table (whole hours overlapping the period; an organization's include its
    /// stopped tunnels' traffic); latency percentiles, top paths
    /// and status codes from the request records.
    pub async fn analytics(
        &self,
        scope: Scope,
        period: &str,
        since: i64,
    ) -> Result<Analytics, StoreError> {
        let (col, id) = scope.column();
        let table = scope.totals_table(false);
        let hour_start = since - since.rem_euclid(HOUR_MS);
        // SUM of BIGINT is NUMERIC on PostgreSQL; the cast keeps one decoder for both.
        let totals = format!(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS r, \
             CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS e, \
             CAST(COALESCE(SUM(bytes_in), 0) AS BIGINT) AS bi, \
             CAST(COALESCE(SUM(bytes_out), 0) AS BIGINT) AS bo \
             FROM {table} WHERE {col} = $1 AND hour >= $2"
        );
        let count = format!("SELECT COUNT(*) AS n FROM requests WHERE {col} = $1 AND ts >= $2");
        let nth = format!(
            "SELECT duration_us FROM requests WHERE {col} = $1 AND ts >= $2 \
             ORDER BY duration_us LIMIT 1 OFFSET $3"
        );
        let paths = format!(
            "SELECT path, COUNT(*) AS n FROM requests WHERE {col} = $1 AND ts >= $2 \
             GROUP BY path ORDER BY n DESC, path LIMIT 10"
        );
        let codes = format!(
            "SELECT status, COUNT(*) AS n FROM requests WHERE {col} = $1 AND ts >= $2 GROUP BY status"
        );
        let mut a = Analytics {
            period: period.to_string(),
            since,
            ..Analytics::default()
        };
        on_pool!(self, p => {
            let r = sqlx::query(AssertSqlSafe(totals.as_str())).bind(id).bind(hour_start).fetch_one(p).await?;
            a.requests = r.try_get("r")?;
            a.errors = r.try_get("e")?;
            a.bytes_in = r.try_get("bi")?;
            a.bytes_out = r.try_get("bo")?;
            let n: i64 = sqlx::query(AssertSqlSafe(count.as_str())).bind(id).bind(since).fetch_one(p).await?.try_get("n")?;
            // Nearest-rank percentile over the records: the value at rank ceil(q·n).
            for (q, slot) in [(50, &mut a.latency_p50_ms), (95, &mut a.latency_p95_ms)] {
                if n > 0 {
                    let rank = ((n * q + 99) / 100).max(1);
                    let us: i64 = sqlx::query(AssertSqlSafe(nth.as_str())).bind(id).bind(since).bind(rank - 1)
                        .fetch_one(p).await?.try_get("duration_us")?;
                    *slot = (us + 999) / 1000;
                }
            }
            for r in sqlx::query(AssertSqlSafe(paths.as_str())).bind(id).bind(since).fetch_all(p).await? {
                a.top_paths.push(PathCount { path: r.try_get("path")?, requests: r.try_get("n")? });
            }
            for r in sqlx::query(AssertSqlSafe(codes.as_str())).bind(id).bind(since).fetch_all(p).await? {
                let status: i32 = r.try_get("status")?;
                a.status_codes.insert(status as u16, r.try_get("n")?);
            }
        });
        a.error_rate = if a.requests > 0 {
            a.errors as f64 / a.requests as f64
        } else {
            0.0
        };
        Ok(a)
    }

    /// The newest sampled request records of a tunnel, newest first.
    pub async fn recent_requests(
        &self,
        tunnel_id: i64,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT tunnel_id, org_id, ts, method, path, status, duration_us, bytes_in, bytes_out, \
                 client_net, headers FROM requests WHERE tunnel_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(tunnel_id).bind(limit).fetch_all(p).await? {
                let status: i32 = r.try_get("status")?;
                out.push(RequestRecord {
                    tunnel_id: r.try_get("tunnel_id")?,
                    org_id: r.try_get("org_id")?,
                    ts: r.try_get("ts")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    status: status as u16,
                    duration_us: r.try_get("duration_us")?,
                    bytes_in: r.try_get("bytes_in")?,
                    bytes_out: r.try_get("bytes_out")?,
                    client_net: r.try_get("client_net")?,
                    headers: r.try_get("headers")?,
                });
            }
            out
        });
        Ok(rows)
    }

    /// Bytes in + out in the month starting at `month` (see [`month_start`]) per
    /// organization that has a bandwidth limit, with the limit: `(org_id, used, limit)`.
    pub async fn bandwidth_usage(&self, month: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT o.id AS org_id, o.max_bandwidth_bytes AS lim, COALESCE(u.bytes, 0) AS used \
                 FROM organizations o LEFT JOIN org_usage u ON u.org_id = o.id AND u.month = $1 \
                 WHERE o.max_bandwidth_bytes IS NOT NULL")
                .bind(month).fetch_all(p).await? {
                out.push((r.try_get("org_id")?, r.try_get("used")?, r.try_get("lim")?));
            }
            out
        });
        Ok(rows)
    }

    /// Deletes request records older than `before`, hourly totals older than
    /// `hours_before` and per-minute totals older than `minutes_before`.
    pub async fn purge_requests(
        &self,
        before: i64,
        hours_before: i64,
        minutes_before: i64,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => {
            let n = sqlx::query("DELETE FROM requests WHERE ts < $1")
                .bind(before).execute(p).await?.rows_affected();
            sqlx::query("DELETE FROM request_hours WHERE hour < $1")
                .bind(hours_before).execute(p).await?;
            sqlx::query("DELETE FROM request_minutes WHERE minute < $1")
                .bind(minutes_before).execute(p).await?;
            sqlx::query("DELETE FROM org_hours WHERE hour < $1")
                .bind(hours_before).execute(p).await?;
            sqlx::query("DELETE FROM org_minutes WHERE minute < $1")
                .bind(minutes_before).execute(p).await?;
            n
        });
        Ok(n)
    }

    /// Forgets analytics batch ids written before `before` (a retry comes
    /// within seconds; an hour is plenty).
    pub async fn purge_batches(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM analytics_batches WHERE written_at < $1")
            .bind(before).execute(p).await?.rows_affected());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::month_start;

    #[test]
    fn month_start_is_the_first_of_the_month_utc() {
        // 2026-11-22T05:00:00Z → 2026-11-01T00:00:00Z
        assert_eq!(month_start(1_795_323_600_000), 1_793_491_200_000);
        // 2024-03-01T00:00:00Z is its own month start (after a leap February).
        assert_eq!(month_start(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(month_start(1_709_251_199_999), 1_706_745_600_000);
    }
}
