//! The developer side of parity webhooks: a durable stream per subscription
//! (`beam webhook listen`), acknowledgements, and the event history. An event
//! stays pending for a subscription until its developer's local app answered
//! 2xx and the CLI acknowledged it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beam_proto::webhook::{self, Provider, WebhookEvent};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::projects::find_env;
use super::webhooks::provider_of;
use crate::accounts::scope::Scope;
use crate::audit::Entry;
use crate::state::State;
use crate::store::{WebhookSummary, now_ms};

/// Events fetched per store round trip of a stream (bodies are up to
/// `--webhook-max-body` each, so this bounds a stream's memory).
const BATCH: i64 = 16;
/// An idle stream sends an empty line this often, so both ends notice a dead peer.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Stream parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Subscription name (default `default`); each keeps its own acknowledgements.
    #[serde(default)]
    pub subscription: Option<String>,
    /// Only this provider's events.
    #[serde(default)]
    pub provider: Option<String>,
    /// Comma-separated event type patterns (`payment_intent.*`).
    #[serde(default)]
    pub events: Option<String>,
}

fn subscription_name(s: Option<&str>) -> Result<String, ApiError> {
    let name = s.unwrap_or("default");
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ApiError::bad_request(
            "subscription names are 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(name.to_string())
}

/// Streams the subscription's events as NDJSON, oldest first: every event not
/// yet acknowledged (within retention), then new ones as they arrive. An idle
/// stream sends an empty line every 15 s. Acknowledge each event after the
/// local app answered 2xx; unacknowledged events come again on the next stream.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/webhooks/stream", tag = "webhooks",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), StreamParams),
    responses((status = 200, description = "NDJSON webhook events", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn stream(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    Query(params): Query<StreamParams>,
) -> ApiResult<Response> {
    let entry = Entry::by(&auth.0, "webhook.stream")
        .env(&project, &environment)
        .with("subscription", params.subscription.clone())
        .with("provider", params.provider.clone())
        .with("events", params.events.clone());
    let result = open_stream(&state, auth, project, environment, params).await;
    state.audit.streamed(entry, "events", result)
}

/// [`stream`] without its audit entry.
async fn open_stream(
    state: &Arc<State>,
    auth: Auth,
    project: String,
    environment: String,
    params: StreamParams,
) -> ApiResult<Response> {
    let state = state.clone();
    let p = auth.require(Scope::WebhooksRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let name = subscription_name(params.subscription.as_deref())?;
    let provider = params.provider.as_deref().map(provider_of).transpose()?;
    let patterns: Vec<String> = params
        .events
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let sub = state
        .store
        .webhook_subscription(env.id, p.user_id, &name, now_ms())
        .await?;
    let kick = tokio_util::sync::CancellationToken::new();
    let cursor = Cursor {
        _presence: state.developers.enter(env.id, p.user_id),
        _held: state.revocation.hold(
            crate::accounts::revocation::Access::of(p, Some(Scope::WebhooksRead)),
            kick.clone(),
        ),
        kick,
        state: state.clone(),
        env: env.id,
        sub: sub.id,
        after: sub.start_after,
        provider,
        patterns,
        wake: state.webhooks.subscribe(),
        poll: state.cfg.webhook_poll,
        idle_since: tokio::time::Instant::now(),
    };
    let body = futures_util::stream::unfold(cursor, |mut c| async move {
        let chunk = c.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), c))
    });
    let mut resp = Response::new(axum::body::Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// A subscription stream's position.
struct Cursor {
    /// Counts this developer as connected while the stream is open.
    _presence: crate::parity::developers::Presence,
    /// Registers the stream's access with the revocation watcher…
    _held: crate::accounts::revocation::Held,
    /// …which cancels this when the access is gone.
    kick: tokio_util::sync::CancellationToken,
    state: Arc<State>,
    env: i64,
    sub: i64,
    after: i64,
    provider: Option<Provider>,
    patterns: Vec<String>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// How often to look without being woken.
    poll: Duration,
    idle_since: tokio::time::Instant,
}

impl Cursor {
    /// The next NDJSON chunk: pending events, or a heartbeat after 15 s idle.
    /// `None` ends the stream (store failure or shutdown; the client resumes).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.kick.is_cancelled() {
                tracing::info!("webhook stream ended: access revoked");
                return None;
            }
            let min_received = now_ms() - self.state.cfg.webhook_retention.as_millis() as i64;
            let batch = match self
                .state
                .store
                .pending_webhooks(self.env, self.sub, self.after, min_received, BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook stream: store failed; ending the stream");
                    return None;
                }
            };
            let mut out = Vec::new();
            for ev in &batch {
                self.after = self.after.max(ev.id);
                if self.provider.is_some_and(|p| p != ev.provider)
                    || !webhook::type_matches(&self.patterns, ev.event_type.as_deref())
                {
                    continue;
                }
                if serde_json::to_writer(&mut out, ev).is_ok() {
                    out.push(b'\n');
                }
            }
            if !out.is_empty() {
                self.idle_since = tokio::time::Instant::now();
                return Some(Bytes::from(out));
            }
            if !batch.is_empty() {
                continue;
            }
            let heartbeat_at = self.idle_since + HEARTBEAT;
            tokio::select! {
                // Events stored on this node wake the stream at once.
                r = self.wake.changed() => if r.is_err() { return None },
                () = self.kick.cancelled() => {}
                // Other nodes' events arrive by notification; this only
                // covers one that was lost.
                () = tokio::time::sleep(self.poll) => {}
                () = tokio::time::sleep_until(heartbeat_at) => {
                    self.idle_since = tokio::time::Instant::now();
                    return Some(Bytes::from_static(b"\n"));
                }
            }
        }
    }
}

/// Acknowledgements: one (`event` and `status`) or several (`acks`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Subscription name (default `default`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Server-side event id (one acknowledgement).
    #[serde(default)]
    pub event: Option<i64>,
    /// The local app's HTTP status (2xx), with `event`.
    #[serde(default)]
    pub status: Option<u16>,
    /// Several acknowledgements at once (at most 500).
    #[serde(default)]
    pub acks: Option<Vec<AckItem>>,
}

/// One acknowledgement in a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckItem {
    /// Server-side event id.
    pub event: i64,
    /// The local app's HTTP status (2xx).
    pub status: u16,
}

/// Most acknowledgements in one call.
const MAX_ACKS: usize = 500;

/// Acknowledges delivered events: they will not be streamed to this
/// subscription again. Only 2xx local answers are acknowledgements.
#[utoipa::path(post, path = "/api/projects/{project}/{environment}/webhooks/acks", tag = "webhooks",
    security(("bearer" = [])), request_body = Ack, params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn ack(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    Json(body): Json<Ack>,
) -> ApiResult<StatusCode> {
    let p = auth.require(Scope::WebhooksRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let acks: Vec<(i64, u16)> = match (body.event, body.status, body.acks) {
        (Some(event), Some(status), None) => vec![(event, status)],
        (None, None, Some(list)) if !list.is_empty() && list.len() <= MAX_ACKS => {
            list.into_iter().map(|a| (a.event, a.status)).collect()
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "send `event` and `status`, or `acks` with 1-{MAX_ACKS} items"
            )));
        }
    };
    if acks.iter().any(|(_, s)| !(200..300).contains(s)) {
        return Err(ApiError::invalid(
            "only a 2xx local answer acknowledges an event; it stays pending otherwise",
        ));
    }
    let name = subscription_name(body.subscription.as_deref())?;
    let sub = state
        .store
        .webhook_subscription(env.id, p.user_id, &name, now_ms())
        .await?;
    let unknown = state
        .store
        .ack_webhooks(env.id, sub.id, &acks, now_ms())
        .await?;
    if unknown.is_empty() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such webhook event: {unknown:?} (the others were acknowledged)"),
        ))
    }
}

/// History parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many (default 20, at most 200).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Only events older than this id (paging).
    #[serde(default)]
    pub before: Option<i64>,
}

/// The environment's recent webhook events, newest first.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/webhooks/events", tag = "webhooks",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), ListParams),
    responses((status = 200, body = Vec<WebhookSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment)): Path<(String, String)>,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<WebhookSummary>>> {
    let p = auth.require(Scope::WebhooksRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-200"));
    }
    let rows = state
        .store
        .recent_webhooks(env.id, p.user_id, q.before, limit)
        .await?;
    Ok(axum::Json(rows))
}

/// One event with its raw body (base64) and headers, for replay.
#[utoipa::path(get, path = "/api/projects/{project}/{environment}/webhooks/events/{id}", tag = "webhooks",
    security(("bearer" = [])), params(("project" = String, Path), ("environment" = String, Path), ("id" = i64, Path)),
    responses((status = 200, description = "The event: id, provider, event_id, event_type, method, path, query, headers, body (base64), verified, received_at"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn get(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path((project, environment, id)): Path<(String, String, i64)>,
) -> ApiResult<Response> {
    // Reading one event's raw bytes is what a replay does.
    let entry = Entry::by(&auth.0, "webhook.replay")
        .env(&project, &environment)
        .with("event", id);
    let result = async {
        let p = auth.require(Scope::WebhooksRead)?;
        let env = find_env(&state, p.org_id, &project, &environment).await?;
        let ev: WebhookEvent = state
            .store
            .webhook_event(env.id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("webhook event"))?;
        Ok(axum::Json(ev).into_response())
    }
    .await;
    state.audit.outcome(entry, result)
}
