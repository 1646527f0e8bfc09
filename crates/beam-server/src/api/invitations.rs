//! `/api/org/invitations` and `/api/invitations/accept`: membership is an
//! invitation that the invitee accepts with a one-time token, never an admin
//! adding "whichever account holds that address" (an attacker could have
//! registered `victim@company.com` first). The token goes by mail to the
//! invited address, or, on a server without mail, back to the admin to pass
//! on. Inviting answers the same whether or not the address has an account.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Ip, Json, Path};
use crate::accounts::auth::{hash_secret, random_secret};
use crate::accounts::password;
use crate::accounts::scope::{Role, Scope};
use crate::audit::Entry;
use crate::state::State;
use crate::store::{InvitationRow, NewInvitation, TokenKind, now_ms};
use beam_proto::Secret;

/// Days an invitation can be accepted.
const INVITE_DAYS: i64 = 7;

/// An invitation to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The address to invite.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// The role on acceptance.
    pub role: Role,
}

/// An invitation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Invitation id (for withdrawing it).
    pub id: i64,
    /// The invited address.
    pub email: String,
    /// The role on acceptance.
    pub role: Role,
    /// Unix ms after which it cannot be accepted.
    pub expires_at: i64,
    /// `mailed` (sent to the address) or `pass_on` (no mail transport: give
    /// `token` to the invitee yourself, over a channel you trust).
    pub delivery: String,
    /// The one-time accept token, only when `delivery` is `pass_on`, only in
    /// the answer to the invitation itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// What the invitee runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_command: Option<String>,
}

impl InvitationView {
    fn of(i: InvitationRow, delivery: &str) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: i.role,
            expires_at: i.expires_at,
            delivery: delivery.into(),
            token: None,
            accept_command: None,
        }
    }
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The one-time token.
    #[schema(value_type = String, format = Password)]
    pub token: Secret,
    /// For an address without a verified account: the password of the
    /// account to create (or to take over from an unverified registration).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Secret>,
}

/// The membership that was accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    /// The organization joined.
    pub org_id: i64,
    /// The role there.
    pub role: Role,
    /// The user (created when the address had no account).
    pub user_id: i64,
    /// The address.
    pub email: String,
}

/// Invites an address into the caller's organization (admin). With mail
/// configured the token is mailed; without it the answer carries the token
/// for the admin to pass on. The answer does not depend on whether the
/// address has an account.
#[utoipa::path(post, path = "/api/org/invitations", tag = "organization", security(("bearer" = [])),
    request_body = InviteRequest,
    responses((status = 201, body = InvitationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn create(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Json(req): Json<InviteRequest>,
) -> ApiResult<(StatusCode, axum::Json<InvitationView>)> {
    let entry = Entry::by(&auth.0, "invitation.create")
        .with("email", req.email.as_str())
        .with("role", req.role.as_str());
    let result = invite(&state, &auth, req).await;
    state.audit.outcome(entry, result)
}

/// Creates an invitation (shared by the legacy `POST /api/org/members`).
pub(crate) async fn invite(
    state: &State,
    auth: &Auth,
    req: InviteRequest,
) -> ApiResult<(StatusCode, axum::Json<InvitationView>)> {
    let p = auth.require(Scope::Admin)?;
    super::email::require_verified(state, p.user_id).await?;
    if req.role == Role::Owner && p.role != Role::Owner {
        return Err(ApiError::forbidden("only an owner can invite owners"));
    }
    let email = super::credentials::normalize_email(&req.email)?;
    let org = state
        .store
        .org(p.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    if let Some(max) = org.limits.max_members {
        let n = state.store.members(p.org_id).await?.len() as i64;
        if n >= max {
            return Err(ApiError::limit(format!(
                "your plan allows {max} members and you have {n}"
            )));
        }
    }
    let token = random_secret("beaminvite_");
    let now = now_ms();
    let expires_at = now + INVITE_DAYS * 86_400_000;
    let id = state
        .store
        .create_invitation(
            &NewInvitation {
                org_id: p.org_id,
                email: &email,
                role: req.role,
                token_hash: &hash_secret(token.expose()),
                invited_by: p.user_id,
                expires_at,
            },
            now,
        )
        .await?;
    let command = format!("beam org accept {}", token.expose());
    let view = |delivery: &str| InvitationView {
        id,
        email: email.clone(),
        role: req.role,
        expires_at,
        delivery: delivery.into(),
        token: None,
        accept_command: None,
    };
    let Some(mailer) = state.cfg.mailer.clone() else {
        // No mail: the admin passes the one-time token on. It is shown once.
        return Ok((
            StatusCode::CREATED,
            axum::Json(InvitationView {
                token: Some(token.expose().to_string()),
                accept_command: Some(command),
                ..view("pass_on")
            }),
        ));
    };
    let text = format!(
        "You are invited to the organization \"{org}\" on beam ({domain}) as {role}.\n\
         To accept within {INVITE_DAYS} days, run:\n\n    {command}\n\n\
         (or POST {{\"token\": \"…\"}} to {api}/api/invitations/accept).\n\
         If you did not expect this, ignore this message.\n",
        org = org.name,
        domain = state.cfg.domain,
        role = req.role.as_str(),
        api = state.cfg.api_url,
    );
    let to = email.clone();
    tokio::spawn(async move {
        if let Err(e) = mailer
            .send(&to, "You are invited to a beam organization", &text)
            .await
        {
            tracing::warn!(invitation = id, error = %e, "invitation mail failed");
        }
    });
    Ok((StatusCode::CREATED, axum::Json(view("mailed"))))
}

/// Open invitations of the caller's organization (admin).
#[utoipa::path(get, path = "/api/org/invitations", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = Vec<InvitationView>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
) -> ApiResult<axum::Json<Vec<InvitationView>>> {
    let p = auth.require(Scope::Admin)?;
    let delivery = if state.cfg.mailer.is_some() {
        "mailed"
    } else {
        "pass_on"
    };
    let rows = state.store.open_invitations(p.org_id, now_ms()).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|i| InvitationView::of(i, delivery))
            .collect(),
    ))
}

/// Withdraws an open invitation (admin).
#[utoipa::path(delete, path = "/api/org/invitations/{id}", tag = "organization", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Invitation id")),
    responses((status = 204, description = "Withdrawn"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke(
    AxumState(state): AxumState<Arc<State>>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let entry = Entry::by(&auth.0, "invitation.revoke").with("invitation", id);
    let result = async {
        let p = auth.require(Scope::Admin)?;
        if state
            .store
            .revoke_invitation(p.org_id, id, now_ms())
            .await?
        {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("open invitation"))
        }
    }
    .await;
    state.audit.outcome(entry, result)
}

/// Accepts an invitation with its one-time token. The token proves the
/// invited address, so:
/// - an address with a verified account joins as that account, which must
///   be the caller (`Authorization: Bearer` of that user);
/// - an address without an account gets one, verified, with `password`;
/// - an address whose account was never verified (possibly someone else's
///   pre-registration) is taken over: `password` replaces the old one and
///   every session of the old registration is revoked.
#[utoipa::path(post, path = "/api/invitations/accept", tag = "organization", request_body = AcceptRequest,
    responses((status = 201, body = Joined), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn accept(
    AxumState(state): AxumState<Arc<State>>,
    Ip(ip): Ip,
    headers: HeaderMap,
    Json(req): Json<AcceptRequest>,
) -> ApiResult<(StatusCode, axum::Json<Joined>)> {
    super::credentials::rate_limit(&state, ip)?;
    let now = now_ms();
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_invitation",
            "the invitation token is invalid, already used, withdrawn or expired; ask for a new invitation",
        )
    };
    let inv = state
        .store
        .invitation_by_hash(&hash_secret(req.token.expose()))
        .await?
        .filter(|i| i.is_open(now))
        .ok_or_else(invalid)?;
    // The invitation is only as good as its inviter: one removed from the
    // organization, or no longer allowed to grant this role, invited no one.
    let inviter_ok = match inv.invited_by {
        Some(by) => match state.store.role(inv.org_id, by).await? {
            Some(r) => {
                r.scopes().allows(Scope::Admin) && (inv.role != Role::Owner || r == Role::Owner)
            }
            None => false,
        },
        None => false,
    };
    if !inviter_ok {
        return Err(invalid());
    }
    if let Some(org) = state.store.org(inv.org_id).await?
        && let Some(max) = org.limits.max_members
        && state.store.members(inv.org_id).await?.len() as i64 >= max
    {
        return Err(ApiError::limit(format!(
            "the organization's plan allows {max} members and it has reached them; ask its admin"
        )));
    }
    // Without mail the token went to the admin, not to the address: it
    // proves nothing about the address. Then only the operator's
    // invitations create (or take over) accounts; others can only be
    // accepted by an existing verified account, logged in as itself. The
    // answer to an anonymous caller is the same either way, so it says
    // nothing about whether the address has an account.
    let proves_address = state.cfg.mailer.is_some() || inv.org_id == state.operator_org;
    let user = state.store.user_by_email(&inv.email).await?;
    let log_in_first = || {
        ApiError::unauthorized(format!(
            "log in as {email} first (`beam login --email {email}`), then accept{}",
            if proves_address {
                ""
            } else {
                "; on this server only the operator's invitations create accounts"
            },
            email = inv.email
        ))
    };
    let user_id = match user {
        Some(u) if u.email_verified_at.is_some() || !proves_address => {
            // The account is proven (or this invitation cannot prove it):
            // only its owner may use it.
            let caller = bearer(&headers).ok_or_else(log_in_first)?;
            let p = state
                .auth
                .authenticate(caller, ip, &[TokenKind::Api, TokenKind::Session])
                .await
                .map_err(|e| ApiError::unauthorized(e.to_string()))?;
            if p.user_id != u.id || u.email_verified_at.is_none() {
                return Err(ApiError::forbidden(format!(
                    "this invitation is for {}, not for the account you are logged in as",
                    inv.email
                )));
            }
            u.id
        }
        None if !proves_address => return Err(log_in_first()),
        existing => {
            let password = req.password.ok_or_else(|| {
                ApiError::invalid(format!(
                    "choose a password for {} (field 'password', at least {} characters)",
                    inv.email,
                    password::MIN_LEN
                ))
            })?;
            password::check_policy(password.expose()).map_err(ApiError::invalid)?;
            let hash = super::credentials::hash_password(&state, password).await?;
            match existing {
                Some(u) => {
                    // An unverified registration of this address: whoever made
                    // it never proved the address; the invitee just did.
                    state.store.set_password(u.id, &hash).await?;
                    state.store.revoke_user(u.id, now).await?;
                    state.revocation.changed();
                    tracing::info!(
                        user_id = u.id,
                        "unverified account taken over by its invited owner"
                    );
                    u.id
                }
                None => state
                    .store
                    .create_user(&inv.email, "", Some(&hash), now)
                    .await?
                    .ok_or_else(|| {
                        ApiError::conflict("the account was created meanwhile; try again")
                    })?,
            }
        }
    };
    if !state.store.accept_invitation(inv.id, now).await? {
        return Err(invalid());
    }
    state.store.mark_verified(user_id, now).await?;
    if !state
        .store
        .add_member(inv.org_id, user_id, inv.role, now)
        .await?
    {
        return Err(ApiError::conflict(
            "you are already a member of this organization",
        ));
    }
    tracing::info!(user_id, org_id = inv.org_id, "invitation accepted");
    // Who joined the organization, as what. A refused token names no
    // organization (that is the point of refusing it), so only acceptances
    // are recorded; the rate limit above caps guessing.
    state.audit.record(
        Entry::user(inv.org_id, user_id, ip, "invitation.accept")
            .with("email", inv.email.as_str())
            .with("role", inv.role.as_str())
            .status(StatusCode::CREATED),
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(Joined {
            org_id: inv.org_id,
            role: inv.role,
            user_id,
            email: inv.email,
        }),
    ))
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}
