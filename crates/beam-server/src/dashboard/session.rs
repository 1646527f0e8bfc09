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

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use beam_proto::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounts::auth::{AuthError, Principal};
use crate::api::extract::{Auth, client_ip};
use crate::state::State;
use crate::store::TokenKind;

/// The cookie's name over plain HTTP.
pub(crate) const COOKIE: &str = "beam_session";
/// The cookie's name over HTTPS: `__Host-` makes the browser refuse it with a
/// `Domain` attribute, without `Secure`, or from another host.
pub(crate) const SECURE_COOKIE: &str = "__Host-beam_session";

/// Whether the request reached the server over TLS, put into request
/// extensions by whoever serves the API (the cookie's flags depend on it).
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Over TLS.
    pub secure: bool,
}

/// Whether `parts` came over TLS.
pub(crate) fn is_secure(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<Transport>()
        .is_some_and(|t| t.secure)
}

/// The session token in the request's cookies, if any. Over HTTPS only the
/// `__Host-` cookie counts.
pub(crate) fn session_cookie(headers: &HeaderMap, secure: bool) -> Option<Secret> {
    let name = if secure { SECURE_COOKIE } else { COOKIE };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| Secret::new(v.to_string()))
}

/// `Set-Cookie` for a new session that lives `max_age_s` seconds.
pub(crate) fn set_cookie(token: &Secret, max_age_s: i64, secure: bool) -> HeaderValue {
    let value = if secure {
        format!(
            "{SECURE_COOKIE}={}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict; Secure",
            token.expose()
        )
    } else {
        format!(
            "{COOKIE}={}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict",
            token.expose()
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> HeaderValue {
    HeaderValue::from_static(if secure {
        "__Host-beam_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
    } else {
        "beam_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    })
}

/// The CSRF token of a session: derived from the session token by a one-way
/// hash, so it needs no storage, changes with every session, and reveals
/// nothing about the cookie it belongs to.
pub(crate) fn csrf_of(session: &Secret) -> String {
    let digest = Sha256::new()
        .chain_update(b"beam dashboard csrf\0")
        .chain_update(session.expose().as_bytes())
        .finalize();
    beam_proto::hex::encode(&digest[..20])
}

/// Refuses a state-changing request that a browser says came from another
/// site (`Sec-Fetch-Site`) or whose `Origin` is not this host: a second wall
/// behind the CSRF token, and the only one in front of the sign-in form
/// (which has no session yet).
// The error is the refusal page to send as it is (see `check_post`).
#[allow(clippy::result_large_err)]
pub(crate) fn same_origin(parts: &Parts) -> Result<(), Response> {
    let refuse = || {
        super::error_page(
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
                return Err(super::error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!(
                        "Too many failed sign-ins from your address. Try again in {s} seconds."
                    ),
                ));
            }
            Err(AuthError::Internal) => {
                return Err(super::error_page(
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
                return Err(super::error_page(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_by_its_name_only_and_csrf_is_per_session() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("other=1; beam_session=abc; __Host-beam_session=def"),
        );
        assert_eq!(session_cookie(&h, false).unwrap().expose(), "abc");
        assert_eq!(session_cookie(&h, true).unwrap().expose(), "def");
        let a = csrf_of(&Secret::new("abc"));
        assert_eq!(a.len(), 40);
        assert_ne!(a, csrf_of(&Secret::new("abd")));
    }

    #[test]
    fn cookies_carry_their_flags() {
        let t = Secret::new("tok");
        let plain = set_cookie(&t, 60, false);
        assert_eq!(
            plain.to_str().unwrap(),
            "beam_session=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let tls = set_cookie(&t, 60, true);
        assert!(
            tls.to_str()
                .unwrap()
                .starts_with("__Host-beam_session=tok; Path=/;")
        );
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }
}
