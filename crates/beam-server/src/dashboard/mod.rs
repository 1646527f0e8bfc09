//! The dashboard: beam's web face for a team, served by the server on its API
//! host (`/` of `<domain>` and `api.<domain>`) and never on a tunnel's or a
//! custom domain's host. Pages are rendered on the server from compiled
//! templates (askama) and work without script; a small script adds live
//! updates (SSE) and charts (uPlot) that read the documented JSON API.
//!
//! Every action calls the REST API's own handler with the session's
//! principal, so a page can do exactly what the API allows that person and
//! nothing else (one code path for scopes, roles and organization checks).

mod actions;
mod assets;
pub(crate) mod cookie;
pub(crate) mod form;
pub mod links;
mod live;
mod pages;
mod render;
mod session;
mod signin;
pub(crate) mod streams;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::State;
pub use cookie::Transport;
pub(crate) use render::not_found_page;

/// The dashboard's routes, merged into the API host's router.
pub(crate) fn router() -> Router<Arc<State>> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(signin::login_page).post(signin::login))
        .route("/logout", post(signin::logout))
        .route("/switch", post(signin::switch))
        .route("/forgot", get(signin::forgot_page).post(signin::forgot))
        .route("/reset", get(signin::reset_page).post(signin::reset))
        .route("/signin/{secret}", get(signin::link))
        .route("/tunnels", get(pages::tunnels))
        .route("/tunnels/{id}", get(pages::tunnel))
        .route("/tunnels/{id}/{action}", post(actions::tunnel))
        .route("/domains", get(pages::domains).post(actions::add_domain))
        .route("/domains/{id}/{action}", post(actions::domain))
        .route("/tokens", get(pages::tokens).post(actions::create_token))
        .route("/tokens/{id}/revoke", post(actions::revoke_token))
        .route("/team", get(pages::team))
        .route("/team/invite", post(actions::invite))
        .route(
            "/team/invitations/{id}/revoke",
            post(actions::revoke_invitation),
        )
        .route("/team/members/{user}/{action}", post(actions::member))
        .route("/production", get(pages::production))
        .route("/account", get(pages::account))
        .route(
            "/account/sessions/{id}/revoke",
            post(actions::revoke_session),
        )
        .route("/events/tunnels", get(live::tunnels))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(secure_headers))
}

/// The security headers of every dashboard response.
async fn secure_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in beam_web::security_headers(beam_web::CSP) {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
