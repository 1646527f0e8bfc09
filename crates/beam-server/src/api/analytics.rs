//! `/api/analytics/*`: requests, bytes, error rate, latency percentiles, top paths
//! and status codes for one tunnel or the whole organization, as totals or as
//! time series for charts. Numbers are integers (bytes, milliseconds), never
//! formatted strings.

use std::sync::Arc;

use axum::extract::State as AxumState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Path, Query};
use crate::accounts::scope::Scope;
use crate::state::State;
use crate::store::{Analytics, AnalyticsScope, MINUTES_KEPT_MS, SeriesPoint, SeriesWindow, now_ms};

/// Time window.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub enum Period {
    /// Last hour.
    #[serde(rename = "1h")]
    Hour,
    /// Last 24 hours.
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// Last 7 days.
    #[serde(rename = "7d")]
    Week,
    /// Last 30 days.
    #[serde(rename = "30d")]
    Month,
}

impl Period {
    /// The default step: about 60 to 300 points.
    fn default_step(self) -> Step {
        match self {
            Period::Hour => Step::Minute,
            Period::Day => Step::FiveMinutes,
            Period::Week => Step::Hour,
            Period::Month => Step::SixHours,
        }
    }

    fn parts(self) -> (&'static str, i64) {
        match self {
            Period::Hour => ("1h", 3_600_000),
            Period::Day => ("24h", 86_400_000),
            Period::Week => ("7d", 7 * 86_400_000),
            Period::Month => ("30d", 30 * 86_400_000),
        }
    }
}

/// `?period=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// `1h`, `24h` (default), `7d` or `30d`.
    #[serde(default)]
    #[param(inline)]
    pub period: Option<Period>,
}

/// Length of one point of a series.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum Step {
    /// One minute.
    #[serde(rename = "1m")]
    Minute,
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// Fifteen minutes.
    #[serde(rename = "15m")]
    FifteenMinutes,
    /// One hour.
    #[serde(rename = "1h")]
    Hour,
    /// Six hours.
    #[serde(rename = "6h")]
    SixHours,
    /// One day (UTC).
    #[serde(rename = "1d")]
    Day,
}

impl Step {
    fn parts(self) -> (&'static str, i64) {
        match self {
            Step::Minute => ("1m", 60_000),
            Step::FiveMinutes => ("5m", 300_000),
            Step::FifteenMinutes => ("15m", 900_000),
            Step::Hour => ("1h", 3_600_000),
            Step::SixHours => ("6h", 6 * 3_600_000),
            Step::Day => ("1d", 86_400_000),
        }
    }
}

/// `?period=&step=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// `1h`, `24h` (default), `7d` or `30d`.
    #[serde(default)]
    #[param(inline)]
    pub period: Option<Period>,
    /// `1m`, `5m`, `15m`, `1h`, `6h` or `1d` [default: `1m` for `1h`, `5m` for
    /// `24h`, `1h` for `7d`, `6h` for `30d`]. Steps under an hour are only
    /// available for periods up to 24 hours (per-minute totals are kept two days).
    #[serde(default)]
    #[param(inline)]
    pub step: Option<Step>,
}

/// A time series for charts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    /// The period asked for.
    pub period: String,
    /// The step.
    pub step: String,
    /// Step length in ms.
    pub step_ms: i64,
    /// Start of the first point, unix ms (aligned to the step, in UTC).
    pub since: i64,
    /// End of the last point (exclusive), unix ms; the last point is the
    /// current, still-growing step.
    pub until: i64,
    /// Sums over the points (exact).
    pub totals: SeriesTotals,
    /// Fields counted from every request.
    pub exact: Vec<&'static str>,
    /// Fields computed from sampled request records (`--analytics-samples-per-sec`).
    pub sampled: Vec<&'static str>,
    /// One point per step, oldest first, zero-filled.
    pub points: Vec<SeriesPoint>,
}

/// Sums over a series.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SeriesTotals {
    /// Requests.
    pub requests: i64,
    /// Responses with status ≥ 500.
    pub errors: i64,
    /// Request bytes.
    pub bytes_in: i64,
    /// Response bytes.
    pub bytes_out: i64,
}

async fn series_of(state: &State, scope: AnalyticsScope, q: SeriesQuery) -> ApiResult<Series> {
    let period = q.period.unwrap_or_default();
    let step = q.step.unwrap_or(period.default_step());
    let (period_name, span) = period.parts();
    let (step_name, step_ms) = step.parts();
    if step_ms > span {
        return Err(ApiError::invalid(format!(
            "step={step_name} is longer than period={period_name}"
        )));
    }
    if step_ms < 3_600_000 && span > MINUTES_KEPT_MS / 2 {
        return Err(ApiError::invalid(format!(
            "steps under an hour are kept for two days only; use step=1h or longer for period={period_name}"
        )));
    }
    let window = SeriesWindow::ending_at(now_ms(), step_ms, (span / step_ms) as usize);
    let points = state.store.series(scope, window).await?;
    let mut totals = SeriesTotals::default();
    for p in &points {
        totals.requests += p.requests;
        totals.errors += p.errors;
        totals.bytes_in += p.bytes_in;
        totals.bytes_out += p.bytes_out;
    }
    Ok(Series {
        period: period_name.into(),
        step: step_name.into(),
        step_ms,
        since: window.since,
        until: window.until(),
        totals,
        exact: vec!["requests", "errors", "bytes_in", "bytes_out"],
        sampled: vec!["p50_ms", "p95_ms", "samples"],
        points,
    })
}

/// A time series of one tunnel.
#[utoipa::path(get, path = "/api/analytics/tunnels/{id}/series", tag = "analytics", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Tunnel id"), SeriesQuery),
    responses((status = 200, body = Series), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn tunnel_series(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<axum::Json<Series>> {
    let p = auth.require(Scope::TunnelsRead)?;
    state
        .store
        .tunnel(p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tunnel"))?;
    Ok(axum::Json(
        series_of(&state, AnalyticsScope::Tunnel(id), q).await?,
    ))
}

/// A time series of every tunnel of the caller's organization.
#[utoipa::path(get, path = "/api/analytics/series", tag = "analytics", security(("bearer" = [])),
    params(SeriesQuery),
    responses((status = 200, body = Series), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn org_series(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<axum::Json<Series>> {
    let p = auth.require(Scope::TunnelsRead)?;
    Ok(axum::Json(
        series_of(&state, AnalyticsScope::Org(p.org_id), q).await?,
    ))
}

async fn compute(state: &State, scope: AnalyticsScope, period: Period) -> ApiResult<Analytics> {
    let (name, span) = period.parts();
    Ok(state.store.analytics(scope, name, now_ms() - span).await?)
}

/// Analytics of one tunnel.
#[utoipa::path(get, path = "/api/analytics/tunnels/{id}", tag = "analytics", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Tunnel id"), PeriodQuery),
    responses((status = 200, body = Analytics), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn tunnel(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<Analytics>> {
    let p = auth.require(Scope::TunnelsRead)?;
    state
        .store
        .tunnel(p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tunnel"))?;
    Ok(axum::Json(
        compute(
            &state,
            AnalyticsScope::Tunnel(id),
            q.period.unwrap_or_default(),
        )
        .await?,
    ))
}

/// The organization's traffic over the last `period` for the dashboard's
/// overview: exact totals (hourly roll-ups from the start of the hour
/// `period` ago) and the 95th percentile over sampled records, in one step
/// of the series, without the top paths and status codes
/// [`user`] computes (on a busy organization those cost a full scan of the
/// period's records; the overview does not show them). Checks the same
/// scope as `/api/analytics/user`.
pub(crate) async fn org_summary(
    state: &State,
    auth: &Auth,
    period: Period,
) -> ApiResult<SeriesPoint> {
    let p = auth.require(Scope::TunnelsRead)?;
    let (_, ms) = period.parts();
    let now = now_ms();
    let hour = 3_600_000;
    let since = (now - ms) - (now - ms).rem_euclid(hour);
    let until = now - now.rem_euclid(hour) + hour;
    let w = SeriesWindow {
        since,
        step_ms: until - since,
        steps: 1,
    };
    let mut points = state.store.series(AnalyticsScope::Org(p.org_id), w).await?;
    Ok(points.pop().unwrap_or_default())
}

/// Analytics of every tunnel of the caller's organization.
#[utoipa::path(get, path = "/api/analytics/user", tag = "analytics", security(("bearer" = [])),
    params(PeriodQuery),
    responses((status = 200, body = Analytics), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn user(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<Analytics>> {
    let p = auth.require(Scope::TunnelsRead)?;
    Ok(axum::Json(
        compute(
            &state,
            AnalyticsScope::Org(p.org_id),
            q.period.unwrap_or_default(),
        )
        .await?,
    ))
}
