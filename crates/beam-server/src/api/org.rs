//! `/api/org` and `/api/orgs/{id}/limits`: the caller's organization, its members
//! and roles, usage against plan limits; the server operator sets the limits.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::accounts::scope::{Role, Scope};
use crate::audit::Entry;
use crate::state::State;
use crate::store::Limits;

/// An organization with usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgDetails {
    /// Organization id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The caller's role.
    pub role: Role,
    /// Plan limits (`null` = unlimited).
    pub limits: Limits,
    /// Current usage.
    pub usage: Usage,
}

/// Usage counted against the limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Tunnels connected now.
    pub tunnels_connected: i64,
    /// Custom domains.
    pub custom_domains: i64,
    /// Members.
    pub members: i64,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// User id.
    pub user_id: i64,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
}

/// The caller's organization, limits and usage.
#[utoipa::path(get, path = "/api/org", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = OrgDetails), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn get(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<OrgDetails>> {
    let p = auth.require(Scope::OrgRead)?;
    let org = state
        .store
        .org(p.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(axum::Json(OrgDetails {
        id: org.id,
        name: org.name,
        role: p.role,
        limits: org.limits,
        usage: Usage {
            tunnels_connected: state.store.count_connected(p.org_id).await?,
            custom_domains: state.store.count_custom_domains(p.org_id).await?,
            members: state.store.members(p.org_id).await?.len() as i64,
        },
    }))
}

/// Members of the caller's organization.
#[utoipa::path(get, path = "/api/org/members", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = Vec<MemberView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn members(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<Vec<MemberView>>> {
    let p = auth.require(Scope::OrgRead)?;
    let rows = state.store.members(p.org_id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                role: m.role,
            })
            .collect(),
    ))
}

/// Invites an address into the organization (admin): the same as `POST
/// /api/org/invitations`. Membership is always an invitation the invitee
/// accepts; the answer never says whether the address has an account.
#[utoipa::path(post, path = "/api/org/members", tag = "organization", security(("bearer" = [])),
    request_body = super::invitations::InviteRequest,
    responses((status = 201, body = super::invitations::InvitationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn add_member(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Json(req): Json<super::invitations::InviteRequest>,
) -> ApiResult<(StatusCode, axum::Json<super::invitations::InvitationView>)> {
    let entry = Entry::by(&auth.0, "invitation.create")
        .with("email", req.email.as_str())
        .with("role", req.role.as_str());
    let result = super::invitations::invite(&state, &auth, req).await;
    state.audit.outcome(entry, result)
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// The role.
    pub role: Role,
}

/// Changes a member's role (admin; only an owner grants or takes away
/// `owner`). A lower role takes effect on their live tunnels, agents and
/// streams within seconds.
#[utoipa::path(put, path = "/api/org/members/{user_id}", tag = "organization", security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "User id")), request_body = SetRole,
    responses((status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn set_role(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(user_id): Path<i64>,
    Json(req): Json<SetRole>,
) -> ApiResult<axum::Json<MemberView>> {
    let entry = Entry::by(&auth.0, "member.role")
        .with("member", user_id)
        .with("role", req.role.as_str());
    let result = async {
        let p = auth.require(Scope::Admin)?;
        let current = state
            .store
            .role(p.org_id, user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        if (current == Role::Owner || req.role == Role::Owner) && p.role != Role::Owner {
            return Err(ApiError::forbidden(
                "only an owner can grant or take away owner",
            ));
        }
        if user_id == p.user_id {
            return Err(ApiError::invalid("you cannot change your own role"));
        }
        state.store.set_role(p.org_id, user_id, req.role).await?;
        if !req.role.scopes().allows(Scope::Admin) {
            // Their open invitations would let them (or anyone) back in above
            // their new role.
            state
                .store
                .revoke_invitations_by(p.org_id, user_id, crate::store::now_ms())
                .await?;
        }
        state.revocation.changed();
        let email = state
            .store
            .user(user_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok(axum::Json(MemberView {
            user_id,
            email,
            role: req.role,
        }))
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Removes a member (admin); their tokens for this organization stop working and
/// their tunnels in it disconnect.
#[utoipa::path(delete, path = "/api/org/members/{user_id}", tag = "organization", security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "User id")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn remove_member(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(user_id): Path<i64>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&auth.0, "member.remove").with("member", user_id);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        let role = state
            .store
            .role(p.org_id, user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        if role == Role::Owner && p.role != Role::Owner {
            return Err(ApiError::forbidden("only an owner can remove an owner"));
        }
        if user_id == p.user_id {
            return Err(ApiError::invalid("you cannot remove yourself"));
        }
        state.store.remove_member(p.org_id, user_id).await?;
        // Invitations they made cannot bring them (or anyone) back.
        state
            .store
            .revoke_invitations_by(p.org_id, user_id, crate::store::now_ms())
            .await?;
        // Their tokens for this organization fail from the next request on; their
        // live tunnels here end now, and their agents and streams within seconds.
        state.registry.kick_member(p.org_id, user_id);
        state.revocation.changed();
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Sets an organization's plan limits. Only the server operator (an admin of the
/// operator's organization) may.
#[utoipa::path(put, path = "/api/orgs/{id}/limits", tag = "organization", security(("bearer" = [])), request_body = Limits,
    params(("id" = i64, Path, description = "Organization id")),
    responses((status = 200, body = Limits), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn set_limits(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(limits): Json<Limits>,
) -> ApiResult<axum::Json<Limits>> {
    let entry = Entry::by(&auth.0, "org.limits").with("org", id);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        if p.org_id != state.operator_org {
            return Err(ApiError::forbidden(
                "only the server operator can change plan limits",
            ));
        }
        for v in [
            limits.max_tunnels,
            limits.max_custom_domains,
            limits.max_members,
            limits.max_bandwidth_bytes,
            limits.max_tcp_ports,
            limits.max_reserved_names,
        ]
        .into_iter()
        .flatten()
        {
            if v < 0 {
                return Err(ApiError::invalid(
                    "limits must be 0 or more (null for unlimited)",
                ));
            }
        }
        state
            .store
            .org(id)
            .await?
            .ok_or_else(|| ApiError::not_found("organization"))?;
        state.store.set_limits(id, limits).await?;
        Ok(axum::Json(limits))
    }
    .await;
    state.audit.outcome(entry, result)
}
