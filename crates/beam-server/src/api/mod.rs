//! The server's HTTP API, served on its API host (`<domain>`, `api.<domain>`) and
//! on the tunnel port over TLS (ALPN `http/1.1`, for the CLI): liveness, readiness,
//! metrics, and the REST API under `/api` described by `/api/openapi.json`.

pub(crate) mod accounts;
pub(crate) mod analytics;
pub(crate) mod audit;
mod credentials;
pub(crate) mod deliveries;
pub(crate) mod domains;
pub(crate) mod email;
pub mod error;
pub mod extract;
pub(crate) mod invitations;
pub(crate) mod org;
pub(crate) mod parity;
pub(crate) mod projects;
pub(crate) mod tokens;
pub(crate) mod tunnels;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::accounts::scope::Scope;
use crate::state::State;
use error::ApiError;

/// The OpenAPI description of `/api`.
#[derive(OpenApi)]
#[openapi(
    info(title = "beam API", description = "Accounts, tokens, tunnels, domains and analytics of a beam server."),
    paths(
        accounts::register, accounts::login, accounts::logout, email::forgot_password,
        email::reset_password, accounts::me,
        tokens::list, tokens::create, tokens::revoke,
        tunnels::list, tunnels::create, tunnels::get, tunnels::update, tunnels::delete,
        domains::list, domains::create, domains::get, domains::verify, domains::delete,
        analytics::tunnel, analytics::user, analytics::tunnel_series, analytics::org_series,
        email::verify_email,
        org::get, org::members, org::add_member, org::set_role, org::remove_member, org::set_limits,
        invitations::create, invitations::list, invitations::revoke, invitations::accept,
        projects::list, projects::create, projects::create_agent_token, projects::list_agent_tokens,
        projects::revoke_agent_token, parity::logs,
        parity::flags, parity::evaluate_flag, parity::env_check, parity::health,
        parity::sync, parity::sync_suggest, parity::sync_relations,
        webhooks::receive, webhooks::publish, deliveries::stream, deliveries::ack, deliveries::list, deliveries::get,
        audit::list, audit::export,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "tokens", description = "API tokens for the CLI"),
        (name = "tunnels", description = "Tunnels and their state"),
        (name = "domains", description = "Reserved subdomains and custom domains"),
        (name = "analytics", description = "Traffic numbers"),
        (name = "organization", description = "Members and plan limits"),
        (name = "projects", description = "Parity: project environments, agent tokens, production logs"),
        (name = "webhooks", description = "Parity: production webhooks, stored durably and delivered to developers"),
        (name = "audit", description = "Who looked at what: parity access and administrative changes"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Builds the API router over the shared server state, once per server: the
/// router holds the state, so the state cannot hold the router; it is passed
/// to the listeners instead.
pub(crate) fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/logout", post(accounts::logout))
        .route("/auth/forgot-password", post(email::forgot_password))
        .route("/auth/reset-password", post(email::reset_password))
        .route("/auth/verify-email", post(email::verify_email))
        .route(
            "/org/invitations",
            get(invitations::list).post(invitations::create),
        )
        .route(
            "/org/invitations/{id}",
            axum::routing::delete(invitations::revoke),
        )
        .route("/invitations/accept", post(invitations::accept))
        .route("/me", get(accounts::me))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/tunnels", get(tunnels::list).post(tunnels::create))
        .route(
            "/tunnels/{id}",
            get(tunnels::get)
                .put(tunnels::update)
                .delete(tunnels::delete),
        )
        .route("/domains", get(domains::list).post(domains::create))
        .route("/domains/{id}", get(domains::get).delete(domains::delete))
        .route("/domains/{id}/verify", post(domains::verify))
        .route("/analytics/tunnels/{id}", get(analytics::tunnel))
        .route("/analytics/user", get(analytics::user))
        .route("/analytics/series", get(analytics::org_series))
        .route(
            "/analytics/tunnels/{id}/series",
            get(analytics::tunnel_series),
        )
        .route("/org", get(org::get))
        .route("/org/members", get(org::members).post(org::add_member))
        .route(
            "/org/members/{user_id}",
            put(org::set_role).delete(org::remove_member),
        )
        .route("/orgs/{id}/limits", put(org::set_limits))
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{project}/{environment}/agent-tokens",
            get(projects::list_agent_tokens).post(projects::create_agent_token),
        )
        .route(
            "/projects/{project}/{environment}/agent-tokens/{id}",
            axum::routing::delete(projects::revoke_agent_token),
        )
        .route("/projects/{project}/{environment}/logs", get(parity::logs))
        .route(
            "/projects/{project}/{environment}/flags",
            get(parity::flags),
        )
        .route(
            "/projects/{project}/{environment}/flags/{key}",
            get(parity::evaluate_flag),
        )
        .route(
            "/projects/{project}/{environment}/env/check",
            post(parity::env_check),
        )
        .route(
            "/projects/{project}/{environment}/health",
            get(parity::health),
        )
        .route("/projects/{project}/{environment}/sync", get(parity::sync))
        .route(
            "/projects/{project}/{environment}/sync/suggest",
            get(parity::sync_suggest),
        )
        .route(
            "/projects/{project}/{environment}/sync/relations",
            get(parity::sync_relations),
        )
        .route(
            "/projects/{project}/{environment}/webhooks/events",
            get(deliveries::list).post(webhooks::publish).layer(
                // Base64 bodies of up to the receiver's limit, plus headers.
                axum::extract::DefaultBodyLimit::max(
                    state.cfg.webhook_max_body / 3 * 4 + 256 * 1024,
                ),
            ),
        )
        .route(
            "/projects/{project}/{environment}/webhooks/events/{id}",
            get(deliveries::get),
        )
        .route(
            "/projects/{project}/{environment}/webhooks/stream",
            get(deliveries::stream),
        )
        .route(
            "/projects/{project}/{environment}/webhooks/acks",
            post(deliveries::ack),
        )
        .route("/audit", get(audit::list))
        .route("/audit/export", get(audit::export))
        .route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/hooks/{org}/{project}/{environment}/{provider}",
            post(webhooks::receive),
        )
        .nest("/api", api)
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Request bodies of this API are small; refuse big ones before parsing.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Serves the API over one connection (the tunnel port's `http/1.1` ALPN, or
/// plaintext from loopback) until it closes or `shutdown`.
pub(crate) async fn serve_io<IO>(
    state: Arc<State>,
    api: Router,
    io: IO,
    (peer, secure): (std::net::SocketAddr, bool),
    shutdown: tokio_util::sync::CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
        call(api.clone(), (peer, secure), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.cfg.header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "API connection ended with error");
        },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Runs one request through the router (built once per server by
/// [`router`] and shared by every connection), with the client's address
/// and whether it came over TLS attached.
pub(crate) async fn call(
    api: Router,
    (peer, secure): (std::net::SocketAddr, bool),
    mut req: axum::http::Request<hyper::body::Incoming>,
) -> Result<axum::http::Response<crate::body::Body>, std::convert::Infallible> {
    use tower::ServiceExt;
    req.extensions_mut().insert(extract::ClientAddr(peer));
    req.extensions_mut()
        .insert(crate::dashboard::Transport { secure });
    match api.oneshot(req).await {
        Ok(resp) => Ok(resp.map(crate::body::boxed)),
        Err(never) => match never {},
    }
}

/// The OpenAPI document.
async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Liveness: the process answers.
async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: the store answers a query, and it took this node's heartbeat
/// within the node lease (past it, other nodes treat this one as dead and
/// release its names).
async fn ready(AxumState(state): AxumState<Arc<State>>) -> impl IntoResponse {
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "unavailable", "reason": reason, "node": state.node_id,
            })),
        )
    };
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return unavailable("draining: this node is shutting down".into());
    }
    // Bounded: a probe must answer even while the pool waits for a
    // database that is gone.
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            return unavailable("store unreachable".into());
        }
        Err(_) => return unavailable("store unreachable (no answer within 2 s)".into()),
    }
    let last = state
        .heartbeat_ok
        .load(std::sync::atomic::Ordering::Relaxed);
    let silent = crate::store::now_ms() - last;
    if silent > state.cfg.node_lease.as_millis() as i64 {
        return unavailable(format!(
            "the store has not taken this node's heartbeat for {} s (lease {} s): other nodes may treat it as gone",
            silent / 1000,
            state.cfg.node_lease.as_secs()
        ));
    }
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "status": "ready", "store": state.store.backend(), "node": state.node_id,
        })),
    )
}

/// Prometheus text exposition on the API host: server-wide numbers about
/// every tenant's traffic, so only the operator's organization (a token with
/// the `admin` scope there) may read them. Scrapers without a token use the
/// separate `--metrics ADDR` listener instead.
async fn metrics(
    AxumState(state): AxumState<Arc<State>>,
    auth: extract::Auth,
) -> Result<impl IntoResponse, ApiError> {
    let p = auth.require(Scope::Admin)?;
    if p.org_id != state.operator_org {
        return Err(ApiError::forbidden(
            "server metrics are for the operator's organization; scrape the --metrics listener or use an operator token",
        ));
    }
    Ok(open_metrics(AxumState(state)).await)
}

/// The router of the `--metrics` listener: `GET /metrics` without a token,
/// for a Prometheus on the operator's private network.
pub(crate) fn metrics_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(open_metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Prometheus text exposition.
async fn open_metrics(AxumState(state): AxumState<Arc<State>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// JSON for API paths, the dashboard's page for the rest (a person typed it).
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route").into_response()
    } else {
        crate::dashboard::not_found_page()
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
