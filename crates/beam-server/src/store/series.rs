//! Time series of a tunnel's or an organization's traffic, for charts: exact
//! per-step totals from the per-minute or hourly tables, and latency
//! percentiles per step from the sampled request records.

use serde::Serialize;
// Dynamic SQL here is built only from constant table and column names; every
// value is bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::analytics::Scope;
use super::{Pool, Store, StoreError, on_pool};

/// Sampled records read at most per series: past this, every k-th record (by
/// id) is read, so a busy month costs a bounded query, not millions of rows.
const MAX_SAMPLES: i64 = 20_000;

/// One step of a series.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// Start of the step, unix ms.
    pub t: i64,
    /// Requests (exact).
    pub requests: i64,
    /// Responses with status ≥ 500 (exact).
    pub errors: i64,
    /// Request body bytes, including WebSocket and TCP traffic (exact).
    pub bytes_in: i64,
    /// Response body bytes, including WebSocket and TCP traffic (exact).
    pub bytes_out: i64,
    /// Median time to response headers in ms over the step's sampled records;
    /// absent when none was sampled.
    pub p50_ms: Option<f64>,
    /// 95th percentile time to response headers in ms over the sampled records.
    pub p95_ms: Option<f64>,
    /// Sampled records behind the percentiles.
    pub samples: i64,
}

/// The window of a series: `[since, since + step_ms × steps)`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start, unix ms, aligned to `step_ms`.
    pub since: i64,
    /// Step length in ms: a multiple of a minute (under an hour) or of an hour.
    pub step_ms: i64,
    /// Number of steps.
    pub steps: usize,
}

impl Window {
    /// The window of `steps` steps of `step_ms` whose last step holds `now`.
    pub fn ending_at(now: i64, step_ms: i64, steps: usize) -> Self {
        let until = now - now.rem_euclid(step_ms) + step_ms;
        Self {
            since: until - step_ms * steps as i64,
            step_ms,
            steps,
        }
    }

    /// End of the window (exclusive), unix ms.
    pub fn until(&self) -> i64 {
        self.since + self.step_ms * self.steps as i64
    }

    fn index(&self, t: i64) -> Option<usize> {
        if t < self.since || t >= self.until() {
            return None;
        }
        Some(((t - self.since) / self.step_ms) as usize)
    }
}

/// Nearest-rank percentile `q` (0–100) of sorted `v`, in ms.
fn percentile_ms(v: &[i64], q: i64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((v.len() as i64 * q + 99) / 100).max(1) as usize;
    Some(v[rank - 1] as f64 / 1000.0)
}

impl Store {
    /// The series of `scope` over `w`. Totals come from the per-minute table
    /// for steps under an hour (kept two days at most) and from the hourly table
    /// otherwise (an organization's own roll-ups, which include its stopped
    /// tunnels); percentiles from at most [`MAX_SAMPLES`] sampled records.
    pub async fn series(&self, scope: Scope, w: Window) -> Result<Vec<SeriesPoint>, StoreError> {
        let (col, id) = scope.column();
        let minutes = w.step_ms < 3_600_000;
        let table = scope.totals_table(minutes);
        let bucket = if minutes { "minute" } else { "hour" };
        // SUM of BIGINT is NUMERIC on PostgreSQL; the casts keep one decoder for both.
        let totals = format!(
            "SELECT {bucket} AS t, CAST(SUM(requests) AS BIGINT) AS r, CAST(SUM(errors) AS BIGINT) AS e, \
             CAST(SUM(bytes_in) AS BIGINT) AS bi, CAST(SUM(bytes_out) AS BIGINT) AS bo \
             FROM {table} WHERE {col} = $1 AND {bucket} >= $2 AND {bucket} < $3 GROUP BY {bucket}"
        );
        let count =
            format!("SELECT COUNT(*) AS n FROM requests WHERE {col} = $1 AND ts >= $2 AND ts < $3");
        let samples = format!(
            "SELECT ts, duration_us FROM requests WHERE {col} = $1 AND ts >= $2 AND ts < $3 AND id % $4 = 0"
        );
        let mut points: Vec<SeriesPoint> = (0..w.steps)
            .map(|i| SeriesPoint {
                t: w.since + w.step_ms * i as i64,
                ..SeriesPoint::default()
            })
            .collect();
        let mut durations: Vec<Vec<i64>> = vec![Vec::new(); w.steps];
        let (since, until) = (w.since, w.until());
        on_pool!(self, p => {
            for r in sqlx::query(AssertSqlSafe(totals.as_str())).bind(id).bind(since).bind(until).fetch_all(p).await? {
                let Some(i) = w.index(r.try_get("t")?) else { continue };
                let pt = &mut points[i];
                pt.requests += r.try_get::<i64, _>("r")?;
                pt.errors += r.try_get::<i64, _>("e")?;
                pt.bytes_in += r.try_get::<i64, _>("bi")?;
                pt.bytes_out += r.try_get::<i64, _>("bo")?;
            }
            let n: i64 = sqlx::query(AssertSqlSafe(count.as_str())).bind(id).bind(since).bind(until)
                .fetch_one(p).await?.try_get("n")?;
            if n > 0 {
                let every = (n + MAX_SAMPLES - 1) / MAX_SAMPLES;
                for r in sqlx::query(AssertSqlSafe(samples.as_str())).bind(id).bind(since).bind(until).bind(every)
                    .fetch_all(p).await? {
                    if let Some(i) = w.index(r.try_get("ts")?) {
                        durations[i].push(r.try_get("duration_us")?);
                    }
                }
            }
        });
        for (pt, mut d) in points.iter_mut().zip(durations) {
            d.sort_unstable();
            pt.samples = d.len() as i64;
            pt.p50_ms = percentile_ms(&d, 50);
            pt.p95_ms = percentile_ms(&d, 95);
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ends_with_the_step_holding_now() {
        let w = Window::ending_at(3_725_000, 60_000, 60);
        assert_eq!(w.until(), 3_780_000);
        assert_eq!(w.since, 180_000);
        assert_eq!(w.index(3_779_999), Some(59));
        assert_eq!(w.index(180_000), Some(0));
        assert_eq!(w.index(179_999), None);
        assert_eq!(w.index(3_780_000), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50), Some(50.0));
        assert_eq!(percentile_ms(&v, 95), Some(95.0));
        assert_eq!(percentile_ms(&[7_500], 95), Some(7.5));
        assert_eq!(percentile_ms(&[], 50), None);
    }
}
