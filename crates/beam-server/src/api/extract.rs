//! Request extractors whose failures are API errors: the bearer principal, JSON
//! bodies, path and query parameters, and the client address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::accounts::auth::{AuthError, Principal};
use crate::accounts::scope::Scope;
use crate::state::State;
use crate::store::TokenKind;

/// The visitor's address, put into request extensions by whoever serves the API.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client's IP (unspecified when the server did not record one, e.g. in a
/// unit test calling the router directly).
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ClientAddr>()
        .map(|a| a.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The client IP as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct Ip(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Ip {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Ip(client_ip(parts)))
    }
}

/// An authenticated caller (API or session token). Tokens are read only from the
/// `Authorization: Bearer` header, never from the URL, so they stay out of logs.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// The principal, if it may do what `scope` covers; 403 otherwise.
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.allows(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "this token lacks the '{scope}' scope (or your role, {}, does not allow it)",
                self.0.role.as_str()
            )))
        }
    }
}

/// The bearer token of a request, or why it has none.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))
}

/// Authenticates the request's bearer token as one of `kinds`; `wrong_kind` is
/// the message for a valid token of another kind.
async fn principal(
    parts: &Parts,
    state: &State,
    kinds: &[TokenKind],
    wrong_kind: &'static str,
) -> Result<Principal, ApiError> {
    let ip = client_ip(parts);
    let token = bearer(parts)?;
    state
        .auth
        .authenticate(token, ip, kinds)
        .await
        .map_err(|e| match e {
            AuthError::Throttled(s) => ApiError::too_many(s),
            AuthError::Internal => ApiError::internal(&e),
            AuthError::Unavailable(u) => ApiError::unavailable(u),
            AuthError::Expired => ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "token_expired",
                e.to_string(),
            ),
            AuthError::WrongKind => ApiError::unauthorized(wrong_kind),
            other => ApiError::unauthorized(other.to_string()),
        })
}

impl FromRequestParts<Arc<State>> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, ApiError> {
        // The dashboard's script reads the API (charts) with its session
        // cookie; only reads: a cookie is sent by the browser on its own, so
        // anything that changes state takes a bearer token or a dashboard
        // form with its CSRF token.
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            )
            && let Some(token) = crate::dashboard::cookie::session_cookie(
                &parts.headers,
                crate::dashboard::cookie::is_secure(parts),
            )
        {
            return state
                .auth
                .authenticate(token.expose(), client_ip(parts), &[TokenKind::Session])
                .await
                .map(Auth)
                .map_err(|e| match e {
                    AuthError::Throttled(s) => ApiError::too_many(s),
                    AuthError::Internal => ApiError::internal(&e),
                    AuthError::Unavailable(u) => ApiError::unavailable(u),
                    _ => ApiError::unauthorized("your dashboard session has ended; sign in again"),
                });
        }
        principal(
            parts,
            state,
            &[TokenKind::Api, TokenKind::Session],
            "this kind of token cannot be used here (agent tokens only publish from production; developers read with their own token from `beam login`)",
        )
        .await
        .map(Auth)
    }
}

/// A production agent (producer) token: it may publish for its own environment
/// and nothing else.
#[derive(Debug, Clone)]
pub struct AgentAuth(pub Principal);

impl FromRequestParts<Arc<State>> for AgentAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, ApiError> {
        principal(
            parts,
            state,
            &[TokenKind::Agent],
            "only a production agent token can publish; developer tokens only read (`beam projects token PROJECT/ENV` makes an agent token)",
        )
        .await
        .map(AgentAuth)
    }
}

/// A JSON body; malformed JSON is a 400 and a well-formed body of the wrong shape
/// a 422, both as JSON errors.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than this API accepts (64 KiB)",
                ))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// Path parameters; a malformed one is a 400 JSON error.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters; a malformed one is a 400 JSON error.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}
