//! `/api/domains`: reserved subdomains and custom domains. A custom domain starts
//! `pending` with a random token to publish as TXT; `verify` looks it up once
//! (no waiting for propagation inside the request), and a background job keeps
//! checking.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::accounts::auth::random_secret;
use crate::accounts::scope::Scope;
use crate::audit::Entry;
use crate::domains::dns::challenge_name;
use crate::domains::{HostKind, parse_hostname};
use crate::state::State;
use crate::store::{DomainKind, DomainRow, DomainStatus, NameKind, NewDomain, now_ms};

/// A domain to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    /// `app.example.com` (custom, verified by DNS) or `name.<server domain>`
    /// (a reserved subdomain, active at once).
    pub hostname: String,
}

/// A domain and what its owner must publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    /// The domain.
    #[serde(flatten)]
    pub domain: DomainRow,
    /// DNS records to publish (custom domains only).
    pub dns: Option<DnsInstructions>,
}

/// Records that prove ownership and route traffic.
#[derive(Debug, Serialize, ToSchema)]
pub struct DnsInstructions {
    /// TXT record name: `_beam-challenge.<hostname>`.
    pub txt_name: String,
    /// TXT record value: the domain's verification token.
    pub txt_value: String,
    /// CNAME target for `<hostname>`: this server's host.
    pub cname_target: String,
}

fn view(state: &State, d: DomainRow) -> DomainView {
    let dns = (d.kind == DomainKind::Custom).then(|| DnsInstructions {
        txt_name: challenge_name(&d.hostname),
        txt_value: d.verification_token.clone(),
        cname_target: state.cfg.domain.clone(),
    });
    DomainView { domain: d, dns }
}

/// The organization's domains.
#[utoipa::path(get, path = "/api/domains", tag = "domains", security(("bearer" = [])),
    responses((status = 200, body = Vec<DomainView>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<Vec<DomainView>>> {
    let p = auth.require(Scope::DomainsRead)?;
    let rows = state.store.domains(p.org_id).await?;
    Ok(axum::Json(
        rows.into_iter().map(|d| view(&state, d)).collect(),
    ))
}

/// Adds a domain.
#[utoipa::path(post, path = "/api/domains", tag = "domains", security(("bearer" = [])), request_body = CreateDomain,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Host name taken", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Json(req): Json<CreateDomain>,
) -> ApiResult<(StatusCode, axum::Json<DomainView>)> {
    let entry = Entry::by(&auth.0, "domain.add").with("hostname", req.hostname.as_str());
    let result = async {
        let p = auth.require(Scope::DomainsWrite)?;
        let (hostname, kind) =
            parse_hostname(&req.hostname, &state.cfg.domain).map_err(ApiError::invalid)?;
        let now = now_ms();
        let taken = || ApiError::conflict(format!("'{hostname}' is already registered"));
        let (domain_kind, status) = match &kind {
            HostKind::Subdomain(label) => {
                let label = crate::tunnel::names::validate(label, &state.cfg.reserved)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                let org = state
                    .store
                    .org(p.org_id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("organization"))?;
                super::tunnels::reserved_name_allowed(&state, &org).await?;
                if !state
                    .store
                    .reserve(NameKind::Subdomain, &label, p.org_id, p.token_id, now)
                    .await?
                {
                    return Err(taken());
                }
                (DomainKind::Subdomain, DomainStatus::Active)
            }
            HostKind::Custom => {
                let org = state
                    .store
                    .org(p.org_id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("organization"))?;
                if let Some(max) = org.limits.max_custom_domains {
                    let n = state.store.count_custom_domains(p.org_id).await?;
                    if n >= max {
                        return Err(ApiError::limit(format!(
                            "your plan allows {max} custom domains and you have {n}; remove one first"
                        )));
                    }
                }
                (DomainKind::Custom, DomainStatus::Pending)
            }
        };
        // 32 random base62 characters: unguessable, and DNS-safe in a TXT string.
        let token = random_secret("beam-verify-");
        let row = state
            .store
            .create_domain(
                NewDomain {
                    org_id: p.org_id,
                    hostname: &hostname,
                    kind: domain_kind,
                    status,
                    verification_token: token.expose(),
                },
                now,
            )
            .await?
            .ok_or_else(taken)?;
        Ok((StatusCode::CREATED, axum::Json(view(&state, row))))
    }
    .await;
    state.audit.outcome(entry, result)
}

/// One domain.
#[utoipa::path(get, path = "/api/domains/{id}", tag = "domains", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Domain id")),
    responses((status = 200, body = DomainView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn get(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<DomainView>> {
    let p = auth.require(Scope::DomainsRead)?;
    let d = state
        .store
        .domain(p.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))?;
    Ok(axum::Json(view(&state, d)))
}

/// Looks the TXT record up now. 200 with the domain when it is verified; 422
/// `verification_failed` saying what was found otherwise.
#[utoipa::path(post, path = "/api/domains/{id}/verify", tag = "domains", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Domain id")),
    responses((status = 200, body = DomainView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "Record missing or wrong", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn verify(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<DomainView>> {
    let entry = Entry::by(&auth.0, "domain.verify").with("domain", id);
    let result = async {
        let p = auth.require(Scope::DomainsWrite)?;
        let d = state
            .store
            .domain(p.org_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("domain"))?;
        if d.kind == DomainKind::Custom {
            crate::domains::check(&state, &d).await?;
        }
        let d = state
            .store
            .domain(p.org_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("domain"))?;
        if d.status == DomainStatus::Active {
            Ok(axum::Json(view(&state, d)))
        } else {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification_failed",
                d.last_error
                    .unwrap_or_else(|| "the domain is not verified".into()),
            ))
        }
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Removes a domain; traffic to it stops at once.
#[utoipa::path(delete, path = "/api/domains/{id}", tag = "domains", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Domain id")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn delete(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&auth.0, "domain.remove").with("domain", id);
    let result = async {
        let p = auth.require(Scope::DomainsWrite)?;
        let d = state
            .store
            .delete_domain(p.org_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("domain"))?;
        state.registry.remove_domain(&d.hostname);
        if d.kind == DomainKind::Subdomain
            && let Some((label, _)) = d.hostname.split_once('.')
        {
            // A reserved tunnel definition of the same name keeps the reservation.
            let kept = state
                .store
                .tunnels(p.org_id)
                .await?
                .iter()
                .any(|t| t.reserved && t.kind == "http" && t.name == label);
            if !kept {
                state
                    .store
                    .unreserve(NameKind::Subdomain, label, p.org_id, None)
                    .await?;
            }
        }
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.audit.outcome(entry, result)
}
