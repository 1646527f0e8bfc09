//! Signing in and out of the dashboard: the e-mail and password form (the
//! API's login, with its rate limits), "forgot password" and the reset form
//! (the API's reset), signing out, switching organization, and following a
//! one-click link from `beam server --dev` (see `links`).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use beam_proto::Secret;

use super::cookie::{clear_cookie, is_secure, set_cookie};
use super::form::Fields;
use super::render::{Flash, api_error_page, error_page, html, redirect_with};
use super::session::{Viewer, check_post, same_origin};
use super::view::Nav;
use crate::accounts::scope::Role;
use crate::api::accounts::{LoginRequest, start_session};
use crate::api::email::{ForgotRequest, ResetRequest};
use crate::api::extract::{Ip, Json, client_ip};
use crate::state::State;
use crate::store::now_ms;

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    email: String,
    next: String,
    notice: &'static str,
}

/// Only paths of this site: `next=//evil.example` must not become a redirect
/// elsewhere.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// `GET /login`.
pub(crate) async fn login_page(
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let notice = match get("reason") {
        "expired" => "Your session has ended (it expired, or you were signed out). Sign in again.",
        "signedout" => "You are signed out.",
        "signin" => "Sign in to continue.",
        _ => "",
    };
    let flash = Flash::take(&headers);
    let shown = flash.is_some();
    let page = LoginPage {
        nav: None,
        flash,
        email: String::new(),
        next: safe_next(get("next")),
        notice,
    };
    html(StatusCode::OK, &page, shown)
}

/// `POST /login`: the API's login, then the session as a cookie.
pub(crate) async fn login(
    AxumState(state): AxumState<Arc<State>>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(refused) = same_origin(&parts) {
        return refused;
    }
    let f = Fields::parse(&body);
    let next = safe_next(f.get("next"));
    let req = LoginRequest {
        email: f.get("email").to_string(),
        password: Secret::new(f.all("password").next().unwrap_or("").to_string()),
        org_id: None,
    };
    match crate::api::accounts::login(AxumState(state), Ip(client_ip(&parts)), Json(req)).await {
        Ok(axum::Json(s)) => {
            let max_age = (s.expires_at - now_ms()) / 1000;
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&Secret::new(s.token), max_age, is_secure(&parts)),
            );
            resp
        }
        Err(e) => {
            let page = LoginPage {
                nav: None,
                flash: Some(Flash::error(match e.status {
                    StatusCode::UNAUTHORIZED => "Wrong e-mail or password.".to_string(),
                    _ => e.message,
                })),
                email: f.get("email").to_string(),
                next,
                notice: "",
            };
            html(e.status, &page, false)
        }
    }
}

/// `POST /logout`: ends this session everywhere (the API's logout).
pub(crate) async fn logout(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(r) = check_post(&parts, &viewer, &body) {
        return r;
    }
    if let Err(e) = crate::api::accounts::logout(AxumState(state), viewer.auth()).await {
        return api_error_page(&e);
    }
    let mut resp = Redirect::to("/login?reason=signedout").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(viewer.secure));
    resp
}

/// `POST /switch`: a session in another organization of the user (the one
/// in use ends). A session may act in any organization its user belongs to,
/// as creating a token there through the API shows; the role there applies.
pub(crate) async fn switch(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = match check_post(&parts, &viewer, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(org_id) = f.get("org").parse::<i64>() else {
        return redirect_with("/", Flash::error("Choose an organization."));
    };
    let role = match state.store.role(org_id, viewer.principal.user_id).await {
        Ok(Some(role)) => role,
        Ok(None) => {
            return redirect_with(
                "/",
                Flash::error("You are not a member of that organization."),
            );
        }
        Err(e) => return api_error_page(&e.into()),
    };
    let (token, expires_at) = match start_session(
        &state,
        (viewer.principal.user_id, org_id, role),
        viewer.principal.ip,
        "dashboard organization switch",
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return api_error_page(&e),
    };
    if let Err(e) = crate::api::accounts::logout(AxumState(state), viewer.auth()).await {
        return api_error_page(&e);
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&token, (expires_at - now_ms()) / 1000, viewer.secure),
    );
    resp
}

#[derive(Template)]
#[template(path = "dashboard/forgot.html")]
struct ForgotPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    sent: bool,
    mail: bool,
}

/// `GET /forgot`.
pub(crate) async fn forgot_page(AxumState(state): AxumState<Arc<State>>) -> Response {
    let page = ForgotPage {
        nav: None,
        flash: None,
        sent: false,
        mail: state.cfg.mailer.is_some(),
    };
    html(StatusCode::OK, &page, false)
}

/// `POST /forgot`: the API's forgot-password; the answer is the same whether
/// the address has an account or not.
pub(crate) async fn forgot(
    AxumState(state): AxumState<Arc<State>>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(refused) = same_origin(&parts) {
        return refused;
    }
    let f = Fields::parse(&body);
    let mail = state.cfg.mailer.is_some();
    let req = ForgotRequest {
        email: f.get("email").to_string(),
    };
    let (status, flash, sent) = match crate::api::email::forgot_password(
        AxumState(state),
        Ip(client_ip(&parts)),
        Json(req),
    )
    .await
    {
        Ok(_) => (StatusCode::OK, None, true),
        Err(e) => (e.status, Some(Flash::error(e.message)), false),
    };
    let page = ForgotPage {
        nav: None,
        flash,
        sent,
        mail,
    };
    html(status, &page, false)
}

#[derive(Template)]
#[template(path = "dashboard/reset.html")]
struct ResetPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
}

/// `GET /reset` (the mail links to `/reset#token=…`: a fragment never
/// reaches a server or its logs; the page's script copies it into the form).
pub(crate) async fn reset_page() -> Response {
    html(
        StatusCode::OK,
        &ResetPage {
            nav: None,
            flash: None,
        },
        false,
    )
}

/// `POST /reset`: the API's reset, which signs the account out everywhere.
pub(crate) async fn reset(
    AxumState(state): AxumState<Arc<State>>,
    parts: Parts,
    body: Bytes,
) -> Response {
    if let Err(refused) = same_origin(&parts) {
        return refused;
    }
    let f = Fields::parse(&body);
    let (password, again) = (f.get("password"), f.get("password2"));
    let error = |status: StatusCode, text: String| {
        html(
            status,
            &ResetPage {
                nav: None,
                flash: Some(Flash::error(text)),
            },
            false,
        )
    };
    if password != again {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ; type the same one twice.".into(),
        );
    }
    let req = ResetRequest {
        token: Secret::new(f.get("token").to_string()),
        password: Secret::new(password.to_string()),
    };
    match crate::api::email::reset_password(AxumState(state), Ip(client_ip(&parts)), Json(req))
        .await
    {
        Ok(_) => redirect_with(
            "/login",
            Flash::ok(
                "Your password is changed and every session was signed out. Sign in with the new password.",
            ),
        ),
        Err(e) => error(e.status, e.message),
    }
}

/// `GET /signin/{secret}`: a one-click link from `beam server --dev`.
pub(crate) async fn link(
    AxumState(state): AxumState<Arc<State>>,
    axum::extract::Path(secret): axum::extract::Path<String>,
    parts: Parts,
) -> Response {
    let Some(op) = state.sign_in.take(&secret, now_ms()) else {
        return error_page(
            StatusCode::GONE,
            "This sign-in link no longer works",
            "Sign-in links work once and for 30 minutes. Restart `beam server --dev` for a new one, or sign in with your e-mail and password.",
        );
    };
    let ip = crate::api::extract::client_ip(&parts);
    match start_session(
        &state,
        (op.user_id, op.org_id, Role::Owner),
        ip,
        "one-click link (--dev)",
    )
    .await
    {
        Ok((token, expires_at)) => {
            let mut resp = Redirect::to("/").into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&token, (expires_at - now_ms()) / 1000, is_secure(&parts)),
            );
            resp
        }
        Err(e) => api_error_page(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/tunnels/3"), "/tunnels/3");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
    }
}
