//! Who is looking at the dashboard: the session cookie, its CSRF token, the
//! same-origin check on every form post, and the [`Viewer`] extractor that
//! turns a cookie into the same [`Principal`] the REST API checks.
//!
//! The cookie holds a login session token (the kind `POST /api/auth/login`
//! returns), so signing out anywhere, a password reset or a revocation ends
//! it like any other token. It is `HttpOnly` and `SameSite=Strict`, and over
//! HTTPS `Secure` with the `__Host-` prefix (which a browser only accepts from
//! the exact host, so a tunnel on a sibling subdomain cannot plant one).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use beam_proto::Secret;
use subtle::ConstantTimeEq;

use super::cookie::{clear_cookie, csrf_of, is_secure, session_cookie};
use super::form::Fields;
use super::render::error_page;
use super::view::{Can, Nav};
use crate::accounts::auth::{AuthError, Principal};
use crate::accounts::scope::Scope;
use crate::api::extract::{Auth, client_ip};
use crate::state::State;
use crate::store::TokenKind;

/// Refuses a state-changing request that a browser says came from another
/// site (`Sec-Fetch-Site`) or whose `Origin` is not this host: a second wall
/// behind the CSRF token, and the only one in front of the sign-in form
/// (which has no session yet).
// The error is the refusal page to send as it is (see `check_post`).
#[allow(clippy::result_large_err)]
pub(crate) fn same_origin(parts: &Parts) -> Result<(), Response> {
    let refuse = || {
        error_page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site",
            "beam only accepts forms posted from its own pages. Open the dashboard and try again.",
        )
    };
    if let Some(site) = parts.headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(refuse());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h);
        if origin_host.is_none_or(|h| !h.eq_ignore_ascii_case(host)) {
            return Err(refuse());
        }
    }
    Ok(())
}

/// A signed-in person looking at the dashboard: the session's principal
/// (token scopes capped by role, exactly as the API computes them), who
/// they are, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The principal every action is checked against.
    pub principal: Principal,
    /// The session token (to sign out, and for the SSE stream's re-checks).
    pub token: Secret,
    /// The CSRF token of this session.
    pub csrf: String,
    /// The user's e-mail address.
    pub email: String,
    /// The organization's name.
    pub org_name: String,
    /// Every organization the user belongs to, `(id, name)`, for switching.
    pub orgs: Vec<(i64, String)>,
    /// Whether the request came over TLS.
    pub secure: bool,
}

impl Viewer {
    /// The principal as the API's extractor, to call API handlers with.
    pub fn auth(&self) -> Auth {
        Auth(self.principal.clone())
    }

    /// Whether the form's `csrf` field (or `X-CSRF-Token`) is this session's.
    pub fn csrf_ok(&self, sent: &str) -> bool {
        bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// The header and navigation of a page on `page`.
    pub fn nav(&self, page: &'static str) -> Nav {
        Nav {
            page,
            email: self.email.clone(),
            org: self.org_name.clone(),
            role: self.principal.role.as_str(),
            csrf: self.csrf.clone(),
            org_id: self.principal.org_id,
            orgs: if self.orgs.len() > 1 {
                self.orgs.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// What this viewer may change, from the same scopes the API checks.
    pub fn can(&self) -> Can {
        let p = &self.principal;
        Can {
            tunnels: p.allows(Scope::TunnelsWrite),
            domains: p.allows(Scope::DomainsWrite),
            admin: p.allows(Scope::Admin),
        }
    }
}

/// Checks a post's origin and CSRF token and returns its fields. A post
/// without the token (or with another session's) is refused with 403 and
/// changes nothing.
// The error is the response to send as it is; it is built once per refused
// post, so its size on the stack costs nothing worth boxing.
#[allow(clippy::result_large_err)]
pub(crate) fn check_post(parts: &Parts, viewer: &Viewer, body: &Bytes) -> Result<Fields, Response> {
    same_origin(parts)?;
    let f = Fields::parse(body);
    let sent = match f.get("csrf") {
        "" => parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        v => v,
    };
    if !viewer.csrf_ok(sent) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was missing its security token, or it belongs to another session. Reload the page and try again; nothing was changed.",
        ));
    }
    Ok(f)
}

/// Where an unauthenticated page request goes: the sign-in page, which
/// comes back to `next` and says why the person landed there.
fn to_login(parts: &Parts, reason: &str) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut url = format!("/login?reason={reason}");
    if parts.method == Method::GET && next != "/" {
        url.push_str("&next=");
        url.push_str(&super::form::encode(&next));
    }
    let mut resp = Redirect::to(&url).into_response();
    if reason == "expired" {
        // A dead cookie is removed so the next visit starts clean.
        resp.headers_mut()
            .insert(header::SET_COOKIE, clear_cookie(is_secure(parts)));
    }
    resp
}

impl FromRequestParts<Arc<State>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Response> {
        let secure = is_secure(parts);
        let Some(token) = session_cookie(&parts.headers, secure) else {
            return Err(to_login(parts, "signin"));
        };
        let ip = client_ip(parts);
        let principal = match state
            .auth
            .authenticate(token.expose(), ip, &[TokenKind::Session])
            .await
        {
            Ok(p) => p,
            Err(AuthError::Throttled(s)) => {
                return Err(error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!(
                        "Too many failed sign-ins from your address. Try again in {s} seconds."
                    ),
                ));
            }
            Err(AuthError::Internal | AuthError::Unavailable(_)) => {
                return Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server cannot reach its database",
                    "beam could not check your session. Try again in a moment; if it persists, tell whoever runs this server.",
                ));
            }
            Err(_) => return Err(to_login(parts, "expired")),
        };
        let (user, org, orgs) = match tokio::try_join!(
            state.store.user(principal.user_id),
            state.store.org(principal.org_id),
            state.store.memberships(principal.user_id)
        ) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "dashboard: loading the viewer failed");
                return Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server cannot reach its database",
                    "Try again in a moment.",
                ));
            }
        };
        Ok(Viewer {
            csrf: csrf_of(&token),
            token,
            email: user.map(|u| u.email).unwrap_or_default(),
            org_name: org.map(|o| o.name).unwrap_or_default(),
            orgs: orgs.into_iter().map(|(id, name, _)| (id, name)).collect(),
            principal,
            secure,
        })
    }
}
