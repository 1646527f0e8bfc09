//! Parity webhooks coming in: the public receiver providers send to
//! (`POST /hooks/{org}/{project}/{environment}/{provider}`) and the agent's
//! publish route. Events are stored with their raw bytes before the provider
//! gets its 200; [`super::deliveries`] hands them to developers.

use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use axum::http::StatusCode;
use beam_proto::webhook::{self, Provider};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AgentAuth, Ip, Json, Path};
use super::projects::find_env;
use crate::parity::webhooks::Check;
use crate::state::State;
use crate::store::{EnvironmentRow, NewWebhook, now_ms};

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

pub(super) fn provider_of(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            format!(
                "'{name}' is not a webhook provider beam knows ({})",
                Provider::NAMES
            ),
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
        .filter(|(k, _)| !webhook::dropped(k, req.hmac))
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
            hmac: req.hmac,
        })
        .await?;
    if !duplicate {
        state.webhooks.stored();
        // Developers streaming from other nodes of a cluster.
        if let Err(e) = state.store.notify(crate::store::notify::WEBHOOKS).await {
            tracing::warn!(error = %e, "announcing a webhook event to other nodes failed");
        }
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
    /// The generic HMAC scheme the event is signed in (provider `hmac`).
    hmac: Option<&'a webhook::HmacScheme>,
}

/// Receives a webhook from a provider. The production signature is checked
/// with the secret configured for this source (`--webhook-sources`); the event
/// is stored with its raw bytes, then answered 200.
#[utoipa::path(post, path = "/hooks/{org}/{project}/{environment}/{provider}", tag = "webhooks",
    params(("org" = i64, Path, description = "organization id"), ("project" = String, Path),
        ("environment" = String, Path), ("provider" = String, Path, description = "stripe, svix (resend, clerk), github, shopify, slack, twilio, paddle, linear, hmac or paypal")),
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
    let Some(source) = state
        .cfg
        .webhook_sources
        .source(org, &project, &environment, provider)
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
    if matches!(source.check, Check::Unverified)
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
    let headers = webhook::header_pairs(&parts.headers);
    let urls = if provider == Provider::Twilio {
        twilio_urls(&state, &source, &parts)
    } else {
        Vec::new()
    };
    let ctx = webhook::Context {
        urls: &urls,
        hmac: source.hmac.as_ref(),
    };
    let verified = match &source.check {
        Check::Secret(secret) => {
            let now_s = now_ms() / 1000;
            webhook::verify_with(provider, secret.expose(), &headers, &body, now_s, &ctx).map_err(|e| {
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
        hmac: source.hmac.as_ref(),
    };
    Ok(axum::Json(
        store_event(&state, &env, provider, &raw, verified).await?,
    ))
}

/// The URLs Twilio may have called to reach this request: the source's
/// configured `url`, then the API URL and the request's own host over https
/// and http (a TLS terminator in front hides which). Each is only a candidate
/// for the HMAC; none is trusted for anything else.
fn twilio_urls(
    state: &State,
    source: &crate::parity::webhooks::Source,
    parts: &axum::http::request::Parts,
) -> Vec<String> {
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let mut out = Vec::new();
    if let Some(u) = &source.url {
        match parts.uri.query() {
            Some(q) if !u.contains('?') => out.push(format!("{u}?{q}")),
            _ => out.push(u.clone()),
        }
    }
    out.push(format!("{}{pq}", state.cfg.api_url.trim_end_matches('/')));
    if let Some(host) = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        out.push(format!("https://{host}{pq}"));
        out.push(format!("http://{host}{pq}"));
    }
    out.dedup();
    out
}

/// An event an agent forwards from production.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// A provider name (as in the receiver URL).
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
    /// How a generic `hmac` sender signs, as the agent was configured.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hmac: Option<webhook::HmacScheme>,
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
        hmac: ev.hmac.as_ref().filter(|_| provider == Provider::Hmac),
    };
    Ok(axum::Json(
        store_event(&state, &env, provider, &raw, ev.verified).await?,
    ))
}
