//! Edge errors, classified by whose side failed (pingora style), each with the
//! status and page a visitor sees and the `type` label of `beam_errors_total`.

use http::{Response, StatusCode, header};

use crate::body::{Body, full};

/// Who caused an edge error. Decides what we log and whether it is our problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The visitor sent something we cannot route or parse.
    Visitor,
    /// The tunnel client or the path to it failed.
    Tunnel,
    /// The developer's local service failed (reported by the tunnel client).
    Local,
    /// A bug or resource problem in the server.
    Internal,
}

/// Something that stopped a visitor request from reaching the local service.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// No `Host` header, or one we cannot parse.
    #[error("request has no valid Host header")]
    BadHost,
    /// `CONNECT` to an HTTP tunnel: a forward-proxy request, not something to tunnel.
    #[error("CONNECT is not proxied through HTTP tunnels")]
    Connect,
    /// No tunnel with that name.
    #[error("no tunnel is serving {host}")]
    NoTunnel {
        /// The host the visitor asked for.
        host: String,
    },
    /// The tunnel connection failed before a response arrived.
    #[error("tunnel '{name}' disconnected before answering")]
    TunnelGone {
        /// Subdomain.
        name: String,
    },
    /// The tunnel was paused through the API.
    #[error("tunnel '{name}' is paused")]
    Paused {
        /// Subdomain or domain.
        name: String,
    },
    /// The tunnel's organization used its monthly bandwidth.
    #[error("tunnel '{name}' is over its monthly bandwidth")]
    OverQuota {
        /// Subdomain or domain.
        name: String,
    },
    /// No response headers within the configured timeout.
    #[error("no response through tunnel '{name}' within {secs} s")]
    Timeout {
        /// Subdomain.
        name: String,
        /// The configured timeout.
        secs: u64,
    },
}

impl EdgeError {
    /// Whose side failed.
    pub fn side(&self) -> Side {
        match self {
            Self::BadHost | Self::Connect | Self::NoTunnel { .. } => Side::Visitor,
            Self::Paused { .. } | Self::OverQuota { .. } => Side::Visitor,
            Self::TunnelGone { .. } => Side::Tunnel,
            Self::Timeout { .. } => Side::Local,
        }
    }

    /// `type` label for `beam_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadHost | Self::Connect => "bad_request",
            Self::NoTunnel { .. } => "no_tunnel",
            Self::Paused { .. } => "paused",
            Self::OverQuota { .. } => "over_quota",
            Self::TunnelGone { .. } => "tunnel_gone",
            Self::Timeout { .. } => "timeout",
        }
    }

    /// HTTP status for the visitor.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadHost => StatusCode::BAD_REQUEST,
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoTunnel { .. } => StatusCode::NOT_FOUND,
            Self::Paused { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::OverQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TunnelGone { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The page the visitor sees: plain text that says what happened and what to do.
    pub fn page(&self) -> String {
        match self {
            Self::BadHost => "400 Bad Request\n\nbeam routes requests by their Host header, and this request had none.\n".into(),
            Self::Connect => "405 Method Not Allowed\n\nbeam HTTP tunnels do not proxy CONNECT; expose raw TCP with `beam tcp`.\n".into(),
            Self::NoTunnel { host } => format!(
                "404 Not Found\n\nNo tunnel has the name {host}.\nIf this is your tunnel, start it with `beam http <port>` and check the URL it prints.\n"
            ),
            Self::Paused { name } => format!(
                "503 Service Unavailable\n\nThe tunnel '{name}' is paused by its owner. Try again later.\n"
            ),
            Self::OverQuota { name } => format!(
                "429 Too Many Requests\n\nThe tunnel '{name}' has used its plan's bandwidth for this month.\n"
            ),
            Self::TunnelGone { name } => format!(
                "502 Bad Gateway\n\nThe beam client serving '{name}' disconnected before it answered.\nIt reconnects on its own; try again in a few seconds.\n"
            ),
            Self::Timeout { name, secs } => format!(
                "504 Gateway Timeout\n\nThe local service behind '{name}' did not answer within {secs} s.\n"
            ),
        }
    }

    /// The full response, tagged with the request id.
    pub fn response(&self, request_id: &str) -> Response<Body> {
        error_response(self.status(), self.page(), request_id)
    }
}

/// A plain-text error response with the request id header.
pub fn error_response(status: StatusCode, page: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(full(page));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = header::HeaderValue::from_str(request_id) {
        h.insert(beam_proto::headers::REQUEST_ID, v);
    }
    resp
}
