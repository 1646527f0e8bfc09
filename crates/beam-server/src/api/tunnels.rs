//! `/api/tunnels`: list, reserve, inspect, pause/resume and stop tunnels. Changes
//! to a live tunnel take effect on the edge at once.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::accounts::auth::Principal;
use crate::accounts::scope::Scope;
use crate::audit::Entry;
use crate::state::State;
use crate::store::{NameKind, PublicName, TunnelKey, TunnelRow, now_ms};
use crate::tunnel::names;

/// A tunnel to reserve.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTunnel {
    /// `http` or `tcp`.
    pub kind: TunnelKindArg,
    /// Subdomain for an HTTP tunnel; random when absent.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Public port for a TCP tunnel, within the server's range; random when absent.
    #[serde(default)]
    pub port: Option<u16>,
}

/// Tunnel kinds.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKindArg {
    /// HTTP(S) and WebSocket.
    Http,
    /// Raw TCP.
    Tcp,
}

/// A change to a tunnel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTunnel {
    /// `true` to answer visitors with 503 while connected, `false` to resume.
    pub paused: bool,
}

/// The organization's tunnels, live and past (past ones are kept for the
/// analytics retention period), newest activity first.
#[utoipa::path(get, path = "/api/tunnels", tag = "tunnels", security(("bearer" = [])),
    responses((status = 200, body = Vec<TunnelRow>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<Vec<TunnelRow>>> {
    let p = auth.require(Scope::TunnelsRead)?;
    Ok(axum::Json(state.store.tunnels(p.org_id).await?))
}

/// Refuses a new reservation past the plan's `max_reserved_names`.
pub(crate) async fn reserved_name_allowed(
    state: &State,
    org: &crate::store::OrgRow,
) -> Result<(), ApiError> {
    if let Some(max) = org.limits.max_reserved_names {
        let n = state.store.count_reserved_names(org.id).await?;
        if n >= max {
            return Err(ApiError::limit(format!(
                "your plan allows {max} reserved names and you hold {n}; release one first"
            )));
        }
    }
    Ok(())
}

/// Reserves a subdomain or port for the organization; `beam http PORT -s NAME`
/// (or `beam tcp PORT --remote-port N`) then connects to it.
#[utoipa::path(post, path = "/api/tunnels", tag = "tunnels", security(("bearer" = [])), request_body = CreateTunnel,
    responses((status = 201, body = TunnelRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Json(req): Json<CreateTunnel>,
) -> ApiResult<(StatusCode, axum::Json<TunnelRow>)> {
    let p = auth.require(Scope::TunnelsWrite)?;
    let org = state
        .store
        .org(p.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    reserved_name_allowed(&state, &org).await?;
    if let Some(max) = org.limits.max_tunnels {
        let reserved = state
            .store
            .tunnels(p.org_id)
            .await?
            .iter()
            .filter(|t| t.reserved)
            .count() as i64;
        if reserved >= max {
            return Err(ApiError::limit(format!(
                "your plan allows {max} tunnels and {reserved} are reserved; delete one first"
            )));
        }
    }
    let now = now_ms();
    let name = match req.kind {
        TunnelKindArg::Http if req.port.is_some() => {
            return Err(ApiError::invalid(
                "'port' is for tcp tunnels; use 'subdomain'",
            ));
        }
        TunnelKindArg::Tcp if req.subdomain.is_some() => {
            return Err(ApiError::invalid(
                "'subdomain' is for http tunnels; use 'port'",
            ));
        }
        TunnelKindArg::Http => reserve_subdomain(&state, p, req.subdomain.as_deref(), now).await?,
        TunnelKindArg::Tcp => reserve_port(&state, p, req.port, now).await?,
    };
    let url = state.cfg.public_url(&name);
    let stored = name.key();
    let key = TunnelKey {
        org_id: p.org_id,
        user_id: p.user_id,
        kind: name.kind(),
        name: &stored,
    };
    let row = state.store.create_tunnel(key, &url, now).await?;
    Ok((StatusCode::CREATED, axum::Json(row)))
}

/// Reserves subdomain `requested`, or a random free one.
async fn reserve_subdomain(
    state: &State,
    p: &Principal,
    requested: Option<&str>,
    now: i64,
) -> Result<PublicName, ApiError> {
    let reserve = |name: String| async move {
        let ok = state
            .store
            .reserve(NameKind::Subdomain, &name, p.org_id, p.token_id, now)
            .await?;
        Ok::<_, ApiError>(ok.then_some(PublicName::Subdomain(name)))
    };
    if let Some(s) = requested {
        let name = names::validate(s, &state.cfg.reserved)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let taken = format!("subdomain '{name}' is taken");
        return reserve(name)
            .await?
            .ok_or_else(|| ApiError::conflict(taken));
    }
    for _ in 0..names::MAX_ATTEMPTS {
        let candidate = names::random_name();
        if state.cfg.reserved.contains(&candidate) {
            continue;
        }
        if let Some(name) = reserve(candidate).await? {
            return Ok(name);
        }
    }
    Err(ApiError::internal(&"no free subdomain found"))
}

/// Reserves port `requested` (inside the server's TCP range), or the first free one.
async fn reserve_port(
    state: &State,
    p: &Principal,
    requested: Option<u16>,
    now: i64,
) -> Result<PublicName, ApiError> {
    let range = state.cfg.tcp_ports.clone();
    let reserve = |port: u16| async move {
        let ok = state
            .store
            .reserve(
                NameKind::TcpPort,
                &port.to_string(),
                p.org_id,
                p.token_id,
                now,
            )
            .await?;
        Ok::<_, ApiError>(ok.then_some(PublicName::Port(port)))
    };
    match requested {
        Some(port) if range.contains(&port) => reserve(port)
            .await?
            .ok_or_else(|| ApiError::conflict(format!("port {port} is taken"))),
        Some(port) => Err(ApiError::invalid(format!(
            "port {port} is outside this server's TCP range {}-{}",
            range.start(),
            range.end()
        ))),
        None => {
            for port in range {
                if let Some(name) = reserve(port).await? {
                    return Ok(name);
                }
            }
            Err(ApiError::conflict("no free port in the server's TCP range"))
        }
    }
}

/// One tunnel.
#[utoipa::path(get, path = "/api/tunnels/{id}", tag = "tunnels", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Tunnel id")),
    responses((status = 200, body = TunnelRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn get(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<TunnelRow>> {
    let p = auth.require(Scope::TunnelsRead)?;
    let row = state
        .store
        .tunnel(p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tunnel"))?;
    Ok(axum::Json(row))
}

/// Pauses (visitors get 503) or resumes a tunnel, live or not.
#[utoipa::path(put, path = "/api/tunnels/{id}", tag = "tunnels", security(("bearer" = [])), request_body = UpdateTunnel,
    params(("id" = i64, Path, description = "Tunnel id")),
    responses((status = 200, body = TunnelRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn update(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(req): Json<UpdateTunnel>,
) -> ApiResult<axum::Json<TunnelRow>> {
    let entry = Entry::by(
        &auth.0,
        if req.paused {
            "tunnel.pause"
        } else {
            "tunnel.resume"
        },
    )
    .with("tunnel", id);
    let result = async {
        let p = auth.require(Scope::TunnelsWrite)?;
        if !state.store.set_paused(p.org_id, id, req.paused).await? {
            return Err(ApiError::not_found("tunnel"));
        }
        if let Some(live) = state.registry.by_id(id) {
            live.set_paused(req.paused);
        }
        let row = state
            .store
            .tunnel(p.org_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("tunnel"))?;
        Ok(axum::Json(row))
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Stops a tunnel: the client is told to exit (it does not reconnect), the name
/// is released and the record deleted with its analytics.
#[utoipa::path(delete, path = "/api/tunnels/{id}", tag = "tunnels", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Tunnel id")),
    responses((status = 204, description = "Stopped and deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn delete(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&auth.0, "tunnel.stop").with("tunnel", id);
    let result = async {
        let p = auth.require(Scope::TunnelsWrite)?;
        let row = state
            .store
            .tunnel(p.org_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("tunnel"))?;
        let stopped = match state.registry.by_id(id) {
            Some(live) => {
                state
                    .registry
                    .stop(&live, "this tunnel was stopped through the API (beam stop)")
                    .await;
                Some(live.session.clone())
            }
            None => None,
        };
        let kind = if row.kind == "tcp" {
            NameKind::TcpPort
        } else {
            NameKind::Subdomain
        };
        release_stopped_name(&state, p.org_id, kind, &row.name, stopped.as_deref()).await?;
        state.store.delete_tunnel(p.org_id, id).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Ends the organization's hold on a stopped tunnel's name, including the
/// live claim of `stopped_session` when this node just stopped it. A
/// subdomain reserved as a domain (`beam domains add NAME.<domain>`) keeps
/// the name. Shared by the API and by a node that learns its tunnel was
/// stopped through another node.
pub(crate) async fn release_stopped_name(
    state: &State,
    org_id: i64,
    kind: NameKind,
    name: &str,
    stopped_session: Option<&str>,
) -> Result<(), crate::store::StoreError> {
    let host = format!("{name}.{}", state.cfg.domain);
    let kept = kind == NameKind::Subdomain
        && state
            .store
            .domain_by_host(&host)
            .await?
            .is_some_and(|d| d.org_id == org_id);
    if !kept {
        state
            .store
            .unreserve(kind, name, org_id, stopped_session)
            .await?;
    }
    Ok(())
}
