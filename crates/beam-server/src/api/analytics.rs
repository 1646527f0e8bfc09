//! `/api/analytics/*`: requests, bytes, error rate, latency percentiles, top paths
//! and status codes for one tunnel or the whole organization. Numbers are integers
//! (bytes, milliseconds), never formatted strings.

use std::sync::Arc;

use axum::extract::State as AxumState;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Path, Query};
use crate::accounts::scope::Scope;
use crate::state::State;
use crate::store::{Analytics, AnalyticsScope, now_ms};

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
