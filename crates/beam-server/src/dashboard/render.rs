//! How the dashboard answers: a rendered page, a redirect carrying a one-time
//! flash message, and the error pages that say what happened and what to do.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::form;
use super::view;
use crate::api::error::ApiError;

/// A message shown once at the top of the next page.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    /// `ok` or `error` (a CSS class).
    pub kind: &'static str,
    /// What happened.
    pub text: String,
}

const FLASH_COOKIE: &str = "beam_flash";

impl Flash {
    /// Good news.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    /// An error, in words the person can act on.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: "error",
            text: text.into(),
        }
    }

    /// The flash a previous post left, if any.
    pub fn take(headers: &HeaderMap) -> Option<Flash> {
        let raw = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == FLASH_COOKIE)
            .map(|(_, v)| v)?;
        let decoded: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("m={raw}")).ok()?;
        let text = decoded.into_iter().next()?.1;
        match text.split_once(':') {
            Some(("ok", t)) => Some(Flash::ok(t)),
            Some(("error", t)) => Some(Flash::error(t)),
            _ => None,
        }
    }

    fn cookie(&self) -> HeaderValue {
        let text: String = self.text.chars().take(600).collect();
        let v = format!(
            "{FLASH_COOKIE}={}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict",
            form::encode(&format!("{}:{text}", self.kind))
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// A 303 to `to` that shows `flash` there (post, redirect, get: a reload
/// does not post again).
pub(crate) fn redirect_with(to: &str, flash: Flash) -> Response {
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, flash.cookie());
    resp
}

/// The page `t` as HTML; `shown` says a flash was displayed and is removed.
pub(crate) fn html<T: Template>(status: StatusCode, t: &T, shown: bool) -> Response {
    match t.render() {
        Ok(body) => {
            let mut resp = (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response();
            if shown {
                resp.headers_mut().append(
                    header::SET_COOKIE,
                    HeaderValue::from_static(
                        "beam_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                    ),
                );
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be drawn. Try again; if it persists, tell whoever runs this server.",
            )
        }
    }
}

/// A page that says what went wrong and what to do.
#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage<'a> {
    nav: Option<view::Nav>,
    flash: Option<Flash>,
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// An error page with `status`.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        nav: None,
        flash: None,
        title,
        message,
        status: status.as_u16(),
    };
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

/// The error page of an API refusal: its message is the API's, so the page
/// and `curl` say the same thing.
pub(crate) fn api_error_page(e: &ApiError) -> Response {
    let title = match e.status {
        StatusCode::FORBIDDEN => "You do not have permission to do that",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "The server hit an error",
        _ => "That did not work",
    };
    error_page(e.status, title, &e.message)
}

/// The HTML 404 for paths outside `/api` that no page serves.
pub(crate) fn not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address. The menu above leads to every part of the dashboard.",
    )
}
