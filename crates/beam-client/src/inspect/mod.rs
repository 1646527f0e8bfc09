//! The request inspector: what went through the tunnel, kept in bounded
//! memory, shown on a local page and a JSON API, and sent again on request.
//!
//! - [`record`]: [`Exchange`]s in a [`Recorder`] bounded by count and bytes,
//!   with a broadcast of each as it completes.
//! - [`tap`]: a [`Tap`] that shows a [`Watch`] the bytes crossing a spliced
//!   connection without holding them back; [`http1`]: the [`Observer`] that
//!   makes exchanges of them, with [`framing`] (heads and bodies of one
//!   direction); [`ws`]: WebSocket frames, each way ([`WsWatch`]).
//! - [`body`]: capture on the per-request path ([`Pending`]).
//! - [`replay`]: the request a replay sends, with the user's changes.
//! - [`json`]: the API's JSON and HAR 1.2; [`server`]: the page and API.

pub mod body;
pub mod framing;
pub mod http1;
pub mod json;
pub mod record;
pub mod replay;
pub mod server;
pub mod tap;
pub mod ws;

pub use body::Pending;
pub use http1::Observer;
pub use record::{Exchange, Limits, Recorder, Summary, Update};
pub use server::Inspector;
pub use tap::{Tap, Watch};
pub use ws::WsWatch;
