//! The dashboard's form posts. Each checks the origin and the session's CSRF
//! token, then calls the REST API's handler with the session's principal, so
//! the scopes, roles and organization checks are the API's own; the answer
//! becomes a flash message on the page the form came from.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::request::Parts;
use axum::response::Response;

use super::form::Fields;
use super::render::{Flash, api_error_page, not_found_page, redirect_with};
use super::session::{Viewer, check_post};
use crate::accounts::scope::{Role, Scope};
use crate::api::error::ApiError;
use crate::api::extract::{Json, Path};
use crate::api::{domains, invitations, org, tokens, tunnels};
use crate::state::State;

/// The page to go back to: a path of this site from the form, or `default`.
fn back<'a>(f: &'a Fields, default: &'a str) -> &'a str {
    match f.get("back") {
        b if b.starts_with('/') && !b.starts_with("//") && !b.starts_with("/\\") => b,
        _ => default,
    }
}

/// Redirects to `to` with `ok` on success and the API's message on refusal.
fn done<T>(to: &str, r: Result<T, ApiError>, ok: impl FnOnce(T) -> String) -> Response {
    match r {
        Ok(v) => redirect_with(to, Flash::ok(ok(v))),
        Err(e) if e.status.is_server_error() => api_error_page(&e),
        Err(e) => redirect_with(to, Flash::error(e.message)),
    }
}

/// `POST /tunnels/{id}/{pause|resume|stop}`.
pub(crate) async fn tunnel(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path((id, action)): axum::extract::Path<(i64, String)>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let to = back(&f, "/tunnels");
    match action.as_str() {
        "pause" | "resume" => {
            let paused = action == "pause";
            let r = tunnels::update(
                AxumState(state),
                viewer.auth(),
                Path(id),
                Json(tunnels::UpdateTunnel { paused }),
            )
            .await;
            done(to, r, |t| {
                format!(
                    "{} is {}",
                    t.0.public_url,
                    if paused {
                        "paused: visitors get 503 until you resume it"
                    } else {
                        "serving visitors again"
                    }
                )
            })
        }
        "stop" => {
            let r = tunnels::delete(AxumState(state), viewer.auth(), Path(id)).await;
            // A stopped tunnel's page is gone: back to the list.
            let to = if to.starts_with("/tunnels/") {
                "/tunnels"
            } else {
                to
            };
            done(to, r, |_| {
                "The tunnel was stopped; its client was told why.".into()
            })
        }
        _ => not_found_page(),
    }
}

/// `POST /domains`: a custom domain or a reserved subdomain.
pub(crate) async fn add_domain(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = domains::CreateDomain {
        hostname: f.get("hostname").to_string(),
    };
    let r = domains::create(AxumState(state), viewer.auth(), Json(req)).await;
    done("/domains", r, |(_, d)| match d.0.dns {
        Some(_) => format!(
            "Added {}. Publish the DNS records shown below, then press “Check now”.",
            d.0.domain.hostname
        ),
        None => format!("Reserved {} for your organization.", d.0.domain.hostname),
    })
}

/// `POST /domains/{id}/{check|remove}`.
pub(crate) async fn domain(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path((id, action)): axum::extract::Path<(i64, String)>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(r) = check_post(&parts, &viewer, &body) {
        return r;
    }
    match action.as_str() {
        "check" => {
            let r = domains::verify(AxumState(state), viewer.auth(), Path(id)).await;
            match r {
                Ok(d) => redirect_with(
                    "/domains",
                    Flash::ok(format!(
                        "{} is verified: its TXT record is in place.",
                        d.0.domain.hostname
                    )),
                ),
                Err(e) if e.code == "verification_failed" => redirect_with(
                    "/domains",
                    Flash::error(format!("Not verified yet: {}", e.message)),
                ),
                Err(e) => done("/domains", Err::<(), _>(e), |_| String::new()),
            }
        }
        "remove" => {
            let r = domains::delete(AxumState(state), viewer.auth(), Path(id)).await;
            done("/domains", r, |_| {
                "The domain was removed; traffic to it stops now.".into()
            })
        }
        _ => not_found_page(),
    }
}

/// `POST /tokens`: the new token is shown on the page this answers with,
/// once (never in a redirect, a cookie or a log).
pub(crate) async fn create_token(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut scopes = Vec::new();
    for s in f.all("scope") {
        match Scope::parse(s) {
            Some(scope) => scopes.push(scope),
            None => return redirect_with("/tokens", Flash::error(format!("unknown scope '{s}'"))),
        }
    }
    let expires_in_days = match f.get("expires") {
        "" | "never" => None,
        d => match d.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                return redirect_with(
                    "/tokens",
                    Flash::error("Expiry must be a number of days, or never."),
                );
            }
        },
    };
    let req = tokens::CreateToken {
        description: f.get("description").to_string(),
        scopes: Some(scopes),
        org_id: None,
        expires_in_days,
    };
    match tokens::create(AxumState(state.clone()), viewer.auth(), Json(req)).await {
        Ok((_, created)) => super::pages::tokens_page(&state, &viewer, None, Some(created.0)).await,
        Err(e) if e.status.is_server_error() => api_error_page(&e),
        Err(e) => redirect_with("/tokens", Flash::error(e.message)),
    }
}

/// `POST /tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path(id): axum::extract::Path<i64>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(r) = check_post(&parts, &viewer, &body) {
        return r;
    }
    let r = tokens::revoke(AxumState(state), viewer.auth(), Path(id)).await;
    done("/tokens", r, |_| {
        "The token was revoked: everything it opened was disconnected.".into()
    })
}

/// `POST /account/sessions/{id}/revoke`: signs one session out (the API's
/// token revocation; sessions are tokens).
pub(crate) async fn revoke_session(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path(id): axum::extract::Path<i64>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(r) = check_post(&parts, &viewer, &body) {
        return r;
    }
    let own = id == viewer.principal.token_id;
    let r = tokens::revoke(AxumState(state), viewer.auth(), Path(id)).await;
    if own && r.is_ok() {
        return redirect_with("/login?reason=signedout", Flash::ok("You are signed out."));
    }
    done("/account", r, |_| "That session was signed out.".into())
}

/// `POST /team/invite`.
pub(crate) async fn invite(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(f.get("role")) else {
        return redirect_with("/team", Flash::error("Choose a role for the invitation."));
    };
    let req = invitations::InviteRequest {
        email: f.get("email").to_string(),
        role,
    };
    match invitations::create(AxumState(state.clone()), viewer.auth(), Json(req)).await {
        // Shown on this answer only: without mail, the invitation's token
        // is for the inviter to pass on, once.
        Ok((_, inv)) => super::pages::team_page(&state, &viewer, None, Some(inv.0)).await,
        Err(e) if e.status.is_server_error() => api_error_page(&e),
        Err(e) => redirect_with("/team", Flash::error(e.message)),
    }
}

/// `POST /team/invitations/{id}/revoke`.
pub(crate) async fn revoke_invitation(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path(id): axum::extract::Path<i64>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(r) = check_post(&parts, &viewer, &body) {
        return r;
    }
    let r = invitations::revoke(AxumState(state), viewer.auth(), Path(id)).await;
    done("/team", r, |_| "The invitation was withdrawn.".into())
}

/// `POST /team/members/{user}/{role|remove}`.
pub(crate) async fn member(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    axum::extract::Path((user, action)): axum::extract::Path<(i64, String)>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match action.as_str() {
        "role" => {
            let Some(role) = Role::parse(f.get("role")) else {
                return redirect_with("/team", Flash::error("Choose a role."));
            };
            let r = org::set_role(
                AxumState(state),
                viewer.auth(),
                Path(user),
                Json(org::SetRole { role }),
            )
            .await;
            done("/team", r, |m| {
                format!("{} is now {}.", m.0.email, m.0.role.as_str())
            })
        }
        "remove" => {
            let r = org::remove_member(AxumState(state), viewer.auth(), Path(user)).await;
            done("/team", r, |_| {
                "They were removed from the organization and their sessions ended.".into()
            })
        }
        _ => not_found_page(),
    }
}
