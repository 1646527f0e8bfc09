//! Parity webhooks: the public receiver providers send to
//! (`POST /hooks/{org}/{project}/{environment}/{provider}`), the agent's
//! publish route, and the developer side (a durable stream per subscription,
//! acknowledgements, history). Events are stored with their raw bytes before
//! the provider gets its 200, and stay pending for a subscription until its
//! developer's local app answered 2xx.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beam_proto::webhook::{self, Provider, WebhookEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AgentAuth, Auth, Ip, Json, Path, Query};
use super::projects::find_env;
use crate::State;
use crate::accounts::scope::Scope;
use crate::parity::webhooks::Check;
use crate::store::{EnvironmentRow, NewWebhook, WebhookSummary, now_ms};

/// Events fetched per store round trip of a stream (bodies are up to
/// `--webhook-max-body` each, so this bounds a stream's memory).
const BATCH: i64 = 16;
/// An idle stream sends an empty line this often, so both ends notice a dead peer.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// What the receiver answers once the event is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always true.
    pub received: bool,
    /// Server-side event id.
    pub id: i64,
    /// True when this provider event id was stored before (nothing new stored).
    pub duplicate: bool,
}

fn provider_of(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            format!("'{name}' is not a webhook provider beam knows (stripe, svix, resend, custom, paypal)"),
        )
    })
}

/// Stores an event and wakes the streams; purges expired events now and then.
async fn store_event(
    state: &State,
    env: &EnvironmentRow,
    provider: Provider,
    req: &RawRequest<'_>,
    verified: bool,
) -> Result<Received, ApiError> {
    let (event_id, event_type) = webhook::describe(provider, req.headers, req.body);
    // Credentials meant for the production endpoint never reach laptops.
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !webhook::DROPPED_HEADERS
                .iter()
                .any(|d| k.eq_ignore_ascii_case(d))
        })
        .cloned()
        .collect();
    let now = now_ms();
    let (id, duplicate) = state
        .store
        .insert_webhook(&NewWebhook {
            environment_id: env.id,
            provider,
            event_id: event_id.as_deref(),
            event_type: event_type.as_deref(),
            method: req.method,
            path: req.path,
            query: req.query,
            headers: &headers,
            body: req.body,
            verified,
            received_at: now,
        })
        .await?;
    if !duplicate {
        state.webhooks.stored();
    }
    if state.webhooks.purge_due(now) {
        let before = now - state.cfg.webhook_retention.as_millis() as i64;
        match state.store.purge_webhooks(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged expired webhook events"),
            Err(e) => tracing::warn!(error = %e, "webhook purge failed"),
        }
    }
    Ok(Received {
        received: true,
        id,
        duplicate,
    })
}

struct RawRequest<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(String, String)],
    body: &'a [u8],
}

/// Receives a webhook from a provider. The production signature is checked
/// with the secret configured for this source (`--webhook-sources`); the event
/// is stored with its raw bytes, then answered 200.
#[utoipa::path(post, path = "/hooks/{org}/{project}/{environment}/{provider}", tag = "webhooks",
    params(("org" = i64, Path, description = "organization id"), ("project" = String, Path),
        ("environment" = String, Path), ("provider" = String, Path, description = "stripe, svix, resend, custom or paypal")),
    request_body(content = String, content_type = "application/octet-stream", description = "the provider's raw body"),
    responses((status = 200, body = Received), (status = 400, description = "Signature check failed", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn receive(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    Path((org, project, environment, provider)): Path<(String, String, String, String)>,
    req: Request,
) -> ApiResult<axum::Json<Received>> {
    let provider = provider_of(&provider)?;
    let org: i64 = org
        .parse()
        .map_err(|_| ApiError::not_found("organization"))?;
    let Some(check) = state
        .cfg
        .webhook_sources
        .get(org, &project, &environment, provider)
        .cloned()
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_webhook_source",
            format!(
                "no {provider} webhook source is configured for {project}/{environment} on this server (see `beam server --webhook-sources`)"
            ),
        ));
    };
    if matches!(check, Check::Unverified)
        && let Err(wait) = state.webhooks.admit_unverified(ip)
    {
        // Nothing authenticates these senders: cap what one address can store.
        return Err(ApiError::too_many(wait));
    }
    let env = find_env(&state, org, &project, &environment).await?;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, state.cfg.webhook_max_body)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "webhook bodies are limited to {} bytes on this server",
                    state.cfg.webhook_max_body
                ),
            )
        })?;
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let verified = match &check {
        Check::Secret(secret) => {
            let now_s = now_ms() / 1000;
            webhook::verify(provider, secret.expose(), &headers, &body, now_s).map_err(|e| {
                tracing::info!(%provider, project, environment, error = %e, "webhook signature refused");
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "signature_invalid",
                    format!("signature check failed: {e}"),
                )
            })?;
            true
        }
        Check::Unverified => false,
    };
    let raw = RawRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &headers,
        body: &body,
    };
    Ok(axum::Json(
        store_event(&state, &env, provider, &raw, verified).await?,
    ))
}

/// An event an agent forwards from production.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// stripe, svix, resend, custom or paypal.
    pub provider: String,
    /// Method as the app received it.
    pub method: String,
    /// Path as the app received it.
    pub path: String,
    /// Query string, without `?`.
    #[serde(default)]
    pub query: Option<String>,
    /// Headers in received order.
    pub headers: Vec<(String, String)>,
    /// Raw body, base64.
    pub body: String,
    /// Whether the agent verified the production signature.
    pub verified: bool,
}

/// Publishes an event from the environment's production agent (agent token
/// only: developers cannot publish).
#[utoipa::path(post, path = "/api/projects/{project}/{environment}/webhooks/events", tag = "webhooks",
    security(("bearer" = [])), request_body = PublishEvent,
    params(("project" = String, Path), ("environment" = String, Path)),
    responses((status = 200, body = Received), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn publish(
    AxumState(state): AxumState<Arc<State>>,
    AgentAuth(agent): AgentAuth,
    Path((project, environment)): Path<(String, String)>,
    Json(ev): Json<PublishEvent>,
) -> ApiResult<axum::Json<Received>> {
    let env = find_env(&state, agent.org_id, &project, &environment).await?;
    if agent.environment_id != Some(env.id) {
        return Err(ApiError::forbidden(
            "this agent token publishes for another environment",
        ));
    }
    let provider = Provider::parse(&ev.provider)
        .ok_or_else(|| ApiError::invalid(format!("unknown provider '{}'", ev.provider)))?;
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(ev.body.as_bytes())
        .map_err(|_| ApiError::invalid("body must be base64"))?;
    if body.len() > state.cfg.webhook_max_body {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "webhook bodies are limited to {} bytes on this server",
                state.cfg.webhook_max_body
            ),
        ));
    }
    if ev.method.is_empty() || ev.method.len() > 16 || !ev.path.starts_with('/') {
        return Err(ApiError::invalid(
            "method and an absolute path are required",
        ));
    }
    let raw = RawRequest {
        method: &ev.method,
        path: &ev.path,
        query: ev.query.as_deref(),
        headers: &ev.headers,
        body: &body,
    };
    Ok(axum::Json(
        store_event(&state, &env, provider, &raw, ev.verified).await?,
    ))
}

/// Stream parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
                // Other nodes' events are picked up by polling.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
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
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many (default 20, at most 200).
    #[serde(default)]
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
    let p = auth.require(Scope::WebhooksRead)?;
    let env = find_env(&state, p.org_id, &project, &environment).await?;
    let ev: WebhookEvent = state
        .store
        .webhook_event(env.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook event"))?;
    Ok(axum::Json(ev).into_response())
}
