//! beam's wire protocol: the handshake a tunnel client and the server exchange
//! before the connection turns into reverse HTTP/2, plus shared header names and limits.
//!
//! # Layout
//! - [`hello`]: the messages (`Hello`, `Welcome`, `Refusal`) as plain serde types.
//! - [`control`]: the server's ready/stop messages on a tunnel connection.
//! - [`codec`]: magic + version preamble and length-prefixed, size-capped JSON frames.
//! - [`secret`]: a masked string type so tokens never reach logs or `Debug` output.
//! - [`hex`]: the hex encoding of digests, nonces and fingerprints.
//! - [`urlenc`]: form (`x-www-form-urlencoded`) and percent decoding.
//! - [`headers`]: header names that carry meaning between the edge and the client.
//! - [`logs`]: log entries, drop markers and log queries between agent and reader.
//! - [`webhook`]: webhook events and the providers' signature schemes.
//! - [`ws`]: a WebSocket as a byte stream (the tunnel's WebSocket carrier).
//! - [`service`]: the production agent's routes and headers, relayed by the server.
//! - [`verify`]: TLS certificate checks by pinned fingerprint, or by the
//!   handshake signature alone (peers authenticated by other means).
//!
//! The handshake is deliberately tiny and readable in a packet capture (bore-style JSON),
//! because everything after it is standard HTTP/2.

pub mod codec;
pub mod control;
pub mod headers;
pub mod hello;
pub mod hex;
pub mod logs;
pub mod proxy_v2;
pub mod secret;
pub mod service;
pub mod splice;
pub mod time;
pub mod urlenc;
pub mod verify;
pub mod webhook;
pub mod ws;

pub use codec::{ProtoError, read_frame, read_preamble, write_frame, write_preamble};
pub use control::Control;
pub use hello::{
    BasicAuth, ErrorCode, Hello, Protection, Refusal, Reply, TunnelKind, TunnelRequest, Welcome,
    host_name, valid_instance,
};
pub use secret::Secret;
pub use splice::{SPLICE_BUF, Spliced, splice, splice_idle};

/// First bytes a client sends on a fresh tunnel connection.
///
/// They let the server tell a beam client from a browser or a port scanner, and
/// they never collide with a TLS record (which starts with `0x16`).
pub const MAGIC: [u8; 4] = *b"BEAM";

/// The protocol version this build speaks. Bumped only on incompatible changes;
/// additive fields use serde defaults instead.
pub const VERSION: u8 = 1;

/// Largest handshake frame either side accepts. A hello is a few hundred bytes;
/// the cap stops a peer from making the server allocate on its behalf.
pub const MAX_FRAME: usize = 16 * 1024;

/// How long the server waits for a complete hello before it hangs up.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest HTTP/2 frame each end of a tunnel accepts (`SETTINGS_MAX_FRAME_SIZE`).
/// 16 KiB (the default) splits bulk data into many small frames; 256 KiB measured
/// +20 % on 1 MiB responses and +40 % on iperf3 through `beam tcp` on loopback
/// (docs/decisions/0001-transport.md).
pub const MAX_H2_FRAME: u32 = 256 * 1024;

/// HTTP/2 flow-control window per stream on tunnel connections (both ends).
///
/// Fixed rather than adaptive (BDP-estimated): h2 sizes its budget for buffered
/// small DATA frames from the connection window, and with adaptive windows on
/// loopback that budget stayed at its 25 KiB floor, so 3,000 concurrent visitors
/// made h2 close the whole tunnel with `too_many_data_frames`. 2 MiB per stream
/// still carries ~40 MB/s per stream at 50 ms RTT (docs/decisions/0001-transport.md).
pub const H2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// HTTP/2 connection window: the most a tunnel buffers for slow readers, in total,
/// whatever the number of streams.
pub const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// ALPN protocol id used on the TLS tunnel connection.
pub const ALPN: &[u8] = b"beam/1";

/// ALPN marker a tunnel client offers beside `http/1.1` when it carries the
/// tunnel inside a WebSocket on the server's HTTPS port: the server then
/// presents its tunnel certificate (so pinning works as on the tunnel port)
/// and still speaks HTTP/1.1 for the upgrade.
pub const WS_CARRIER_ALPN: &[u8] = b"beam-ws";

/// Path of the WebSocket that carries a tunnel connection on the HTTPS edge.
pub const WS_CARRIER_PATH: &str = "/_beam/tunnel";

/// ALPN protocol id of the API on the tunnel port: the CLI (`beam login`, `beam
/// list`, …) reaches the API over the same pinned TLS as its tunnels.
pub const API_ALPN: &[u8] = b"http/1.1";

/// The certificate fingerprint clients pin: `sha256:` and 64 lowercase hex digits
/// of the DER-encoded leaf certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(&Sha256::digest(der)))
}
