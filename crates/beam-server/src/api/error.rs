//! API errors: every failure is JSON `{"error": {"code", "message"}}` with the
//! matching status; 429 carries `Retry-After` in seconds; 500 never shows internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// What happened, in words a user can act on.
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

/// The JSON shape of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for `what` (also used for other organizations' resources, so their
    /// existence is not revealed).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 for a value that is well-formed but not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 422 for a plan limit.
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {} s", retry_after.max(1)),
            )
        }
    }

    /// 503 with `Retry-After`: the database is full or unreachable for a while.
    pub fn unavailable(why: crate::store::Unavailable) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!(
                    "the server's database is unavailable ({}); connected tunnels keep working; try again in a few seconds",
                    why.describe()
                ),
            )
        }
    }

    /// 500, logged with `context`; the response says nothing more.
    pub fn internal(context: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %context, "API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server hit an internal error",
        )
    }
}

impl From<StoreError> for ApiError {
    /// A database that is full or unreachable is 503 with `Retry-After` and
    /// says so (tunnels already connected keep serving without it); any
    /// other store error is a 500 that shows nothing.
    fn from(e: StoreError) -> Self {
        match e.unavailable() {
            Some(why) => {
                tracing::warn!(error = %e, "API request refused: the database is unavailable");
                Self::unavailable(why)
            }
            None => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"beam\""),
            );
        }
        resp
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// A database that is really full (SQLite refusing to grow past its page
    /// limit) and one that is really unreachable (nothing listens on its port)
    /// are 503 `store_unavailable` with Retry-After; a mistake in SQL stays a
    /// 500 that shows nothing.
    #[tokio::test]
    async fn full_and_unreachable_databases_are_503_and_bugs_are_500() {
        let mut db = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query("PRAGMA max_page_count = 16")
            .execute(&mut db)
            .await
            .unwrap();
        let full = loop {
            if let Err(e) = sqlx::query("INSERT INTO t VALUES (randomblob(4096))")
                .execute(&mut db)
                .await
            {
                break e;
            }
        };
        let e = ApiError::from(StoreError::Db(full));
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                Some(5)
            )
        );
        assert!(e.message.contains("its disk is full"), "{}", e.message);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unreachable = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect(&format!("postgres://beam@127.0.0.1:{port}/beam"))
            .await
            .unwrap_err();
        let e = ApiError::from(StoreError::Db(unreachable));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("cannot be reached"), "{}", e.message);

        let bug = sqlx::query("SELECT missing FROM t")
            .execute(&mut db)
            .await
            .unwrap_err();
        let e = ApiError::from(StoreError::Db(bug));
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server hit an internal error"
            )
        );
    }
}
