//! The request inspector: what went through the tunnel, kept in bounded
//! memory, shown on a local page and a JSON API, and sent again on request.
//!
//! - [`record`]: [`Exchange`]s in a [`Recorder`] bounded by count and bytes,
//!   with a broadcast of each as it completes.
//! - [`http1`]: a [`Tap`] that watches a spliced HTTP/1.1 connection's bytes
//!   without holding them back; [`ws`]: WebSocket frames, each way.
//! - [`body`]: capture on the per-request path ([`Pending`]).
//! - [`replay`]: the request a replay sends, with the user's changes.
//! - [`json`]: the API's JSON and HAR 1.2; [`server`]: the page and API.

pub mod body;
pub mod http1;
pub mod json;
pub mod record;
pub mod replay;
pub mod server;
pub mod ws;

pub use body::Pending;
pub use http1::Tap;
pub use record::{Exchange, Limits, Recorder, Summary, Update};
pub use server::Inspector;
pub use ws::WsTap;
