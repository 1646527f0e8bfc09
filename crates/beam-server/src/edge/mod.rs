//! The public edge: accepts visitor HTTP connections, routes each request by `Host`
//! to a tunnel (or to the server's API), and streams it through the tunnel's HTTP/2
//! connection. Bodies are never buffered: frames flow through with backpressure.
//!
//! - [`accept`]: the listeners and each visitor connection (TLS, HTTP/1.1,
//!   HTTP/2 under [`h2`]'s frame budget); tunnel clients arriving on this port.
//! - [`route`]: host → API, tunnel or custom domain; ACME answers; HTTPS redirects;
//!   [`span`]: the request's trace span, when traces are configured.
//! - [`proxy`]: one request through a tunnel: admit → record → forward → finish;
//!   [`link`]: a visitor connection's byte stream to the tunnel client.
//! - [`carrier`]: a tunnel connection inside a WebSocket (`/_beam/tunnel`).
//! - [`visitor`]: per-tunnel protection; [`error`]: what visitors see when it fails.
//! - [`tcp`]: public ports of TCP tunnels; [`tls`], [`acme`]: edge certificates.

pub(crate) mod accept;
pub mod acme;
mod carrier;
pub mod error;
pub(crate) mod h2;
pub(crate) mod io;
mod link;
pub(crate) mod proxy;
pub(crate) mod route;
mod span;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod visitor;
mod x509;

pub(crate) use accept::{EdgeTls, serve, serve_forwarded};
