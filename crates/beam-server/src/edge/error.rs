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
    /// A WebSocket upgrade on the tunnel carrier path without a valid key.
    #[error("tunnel carrier upgrade without Sec-WebSocket-Key")]
    BadCarrier,
    /// A tunnel carried over plain HTTP from a non-loopback address.
    #[error("plaintext tunnel carrier from a remote address")]
    PlaintextCarrier,
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
    /// The tunnel is held by another node of the cluster, which could not
    /// be reached (or the tunnel is moving and did not arrive in time).
    #[error("the node serving '{name}' could not be reached")]
    NodeUnreachable {
        /// Subdomain or domain.
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
    /// Missing or wrong credentials on a tunnel with `--auth` or `--bearer`.
    #[error("tunnel '{name}' needs credentials")]
    Unauthorized {
        /// Subdomain or domain.
        name: String,
        /// `WWW-Authenticate` challenges.
        challenges: Vec<String>,
    },
    /// The visitor's address is not allowed on this tunnel.
    #[error("address not allowed on tunnel '{name}'")]
    AddressRefused {
        /// Subdomain or domain.
        name: String,
    },
    /// A WebSocket upgrade from a browser origin outside the tunnel's `--cors` list.
    #[error("origin not allowed on tunnel '{name}'")]
    OriginRefused {
        /// Subdomain or domain.
        name: String,
    },
    /// A rate limit (per visitor address, tunnel or client token) was hit.
    #[error("rate limit ({scope}) on tunnel '{name}'")]
    RateLimited {
        /// Subdomain or domain.
        name: String,
        /// `visitor`, `tunnel` or `token`.
        scope: &'static str,
        /// Seconds until a retry can succeed.
        retry_after: u64,
    },
    /// Credential checks are saturated (this tunnel's budget or the server's):
    /// the visitor retries shortly instead of queueing behind a flood.
    #[error("credential checks for tunnel '{name}' are busy")]
    AuthBusy {
        /// Subdomain or domain.
        name: String,
        /// Seconds until a retry is likely to be served.
        retry_after: u64,
    },
    /// The tunnel has its maximum of requests in flight.
    #[error("tunnel '{name}' has too many requests in flight")]
    TooManyStreams {
        /// Subdomain or domain.
        name: String,
    },
    /// The request body is larger than the tunnel allows.
    #[error("request body over {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request target is longer than the server allows.
    #[error("request target over {limit} bytes")]
    UriTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The local service closed its connection after the request was sent
    /// and before it answered.
    #[error("the local service behind '{name}' closed the connection without answering")]
    LocalClosed {
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
            Self::BadCarrier | Self::PlaintextCarrier => Side::Visitor,
            Self::Paused { .. } | Self::OverQuota { .. } => Side::Visitor,
            Self::Unauthorized { .. }
            | Self::AddressRefused { .. }
            | Self::OriginRefused { .. }
            | Self::RateLimited { .. }
            | Self::TooManyStreams { .. }
            | Self::AuthBusy { .. }
            | Self::BodyTooLarge { .. }
            | Self::UriTooLong { .. } => Side::Visitor,
            Self::TunnelGone { .. } | Self::NodeUnreachable { .. } => Side::Tunnel,
            Self::Timeout { .. } | Self::LocalClosed { .. } => Side::Local,
        }
    }

    /// `type` label for `beam_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadHost | Self::Connect | Self::BadCarrier => "bad_request",
            Self::PlaintextCarrier => "plaintext_refused",
            Self::NoTunnel { .. } => "no_tunnel",
            Self::Paused { .. } => "paused",
            Self::OverQuota { .. } => "over_quota",
            Self::TunnelGone { .. } => "tunnel_gone",
            Self::NodeUnreachable { .. } => "node_unreachable",
            Self::Timeout { .. } => "timeout",
            Self::LocalClosed { .. } => "local_failed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::AddressRefused { .. } | Self::OriginRefused { .. } => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::AuthBusy { .. } => "auth_busy",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UriTooLong { .. } => "uri_too_long",
        }
    }

    /// HTTP status for the visitor.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadHost | Self::BadCarrier => StatusCode::BAD_REQUEST,
            Self::PlaintextCarrier => StatusCode::FORBIDDEN,
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoTunnel { .. } => StatusCode::NOT_FOUND,
            Self::Paused { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::OverQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TunnelGone { .. } | Self::LocalClosed { .. } | Self::NodeUnreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::AddressRefused { .. } | Self::OriginRefused { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyStreams { .. } | Self::AuthBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
        }
    }

    /// The page the visitor sees: plain text that says what happened and what to do.
    pub fn page(&self) -> String {
        match self {
            Self::BadHost => "400 Bad Request\n\nbeam routes requests by their Host header, and this request had none.\n".into(),
            Self::BadCarrier => "400 Bad Request\n\nThe beam tunnel carrier is a WebSocket: send Sec-WebSocket-Key with the upgrade.\n".into(),
            Self::PlaintextCarrier => "403 Forbidden\n\nThis server accepts tunnels over plain HTTP only from its own machine; connect over HTTPS.\n".into(),
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
            Self::NodeUnreachable { name } => format!(
                "502 Bad Gateway\n\nThe beam server node serving '{name}' could not be reached from this one.\nThe tunnel's client moves to a working node on its own; try again in a few seconds.\n"
            ),
            Self::LocalClosed { name } => format!(
                "502 Bad Gateway\n\nThe local service behind '{name}' closed the connection without answering.\nCheck its logs; then reload this page.\n"
            ),
            Self::Timeout { name, secs } => format!(
                "504 Gateway Timeout\n\nThe local service behind '{name}' did not answer within {secs} s.\n"
            ),
            Self::Unauthorized { name, .. } => format!(
                "401 Unauthorized\n\nThe tunnel '{name}' is protected. Sign in with the credentials its owner gave you.\n"
            ),
            Self::AddressRefused { name } => format!(
                "403 Forbidden\n\nThe tunnel '{name}' does not accept visitors from your network.\n"
            ),
            Self::OriginRefused { name } => format!(
                "403 Forbidden\n\nThe tunnel '{name}' does not accept WebSocket connections from this page's origin.\n"
            ),
            Self::RateLimited { name, scope, retry_after } => format!(
                "429 Too Many Requests\n\nThe tunnel '{name}' is receiving more requests than its {scope} limit allows.\nTry again in {retry_after} s.\n"
            ),
            Self::TooManyStreams { name } => format!(
                "503 Service Unavailable\n\nThe tunnel '{name}' has too many requests in flight. Try again in a moment.\n"
            ),
            Self::AuthBusy { name, retry_after } => format!(
                "503 Service Unavailable\n\nThe tunnel '{name}' is checking too many credentials right now. Try again in {retry_after} s.\n"
            ),
            Self::BodyTooLarge { limit } => format!(
                "413 Content Too Large\n\nThis tunnel accepts request bodies up to {limit} bytes.\n"
            ),
            Self::UriTooLong { limit } => format!(
                "414 URI Too Long\n\nbeam accepts request targets (path and query) up to {limit} bytes.\n"
            ),
        }
    }

    /// The full response, tagged with the request id.
    pub fn response(&self, request_id: &str) -> Response<Body> {
        let mut resp = error_response(self.status(), self.page(), request_id);
        let h = resp.headers_mut();
        match self {
            Self::Unauthorized { challenges, .. } => {
                for c in challenges {
                    if let Ok(v) = header::HeaderValue::from_str(c) {
                        h.append(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            Self::RateLimited { retry_after, .. } | Self::AuthBusy { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, (*retry_after).into());
            }
            Self::TooManyStreams { .. } | Self::NodeUnreachable { .. } => {
                h.insert(header::RETRY_AFTER, 1u64.into());
            }
            Self::BodyTooLarge { .. } | Self::UriTooLong { .. } => {
                // The rest of the request is not read: the connection cannot be reused.
                h.insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            _ => {}
        }
        resp
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
