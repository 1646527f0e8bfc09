//! Preamble and frame codec for the handshake.
//!
//! Frames are a 4-byte big-endian length followed by that many bytes of JSON.
//! Reads are capped at [`crate::MAX_FRAME`] *before* allocating, so a peer cannot
//! make us reserve memory by announcing a huge length.

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{MAGIC, MAX_FRAME, VERSION};

/// Errors while reading or writing handshake frames.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The socket failed or closed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame larger than the cap.
    #[error("handshake frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The frame was not the JSON we expected.
    #[error("malformed handshake frame: {0}")]
    Json(#[from] serde_json::Error),
    /// The first bytes were not [`MAGIC`]: not a beam client.
    #[error("not a beam tunnel client (bad preamble)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version {got} is not supported (this build speaks {VERSION})")]
    Version {
        /// The version the peer sent.
        got: u8,
    },
}

/// Writes [`MAGIC`] and [`VERSION`].
pub async fn write_preamble<W: AsyncWrite + Unpin>(w: &mut W) -> Result<(), ProtoError> {
    let mut buf = [0u8; 5];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4] = VERSION;
    w.write_all(&buf).await?;
    Ok(())
}

/// Reads and checks the preamble. A wrong magic is [`ProtoError::BadMagic`]; a
/// wrong version is [`ProtoError::Version`] so the caller can answer politely.
pub async fn read_preamble<R: AsyncRead + Unpin>(r: &mut R) -> Result<(), ProtoError> {
    let mut buf = [0u8; 5];
    r.read_exact(&mut buf).await?;
    if buf[..4] != MAGIC {
        return Err(ProtoError::BadMagic);
    }
    if buf[4] != VERSION {
        return Err(ProtoError::Version { got: buf[4] });
    }
    Ok(())
}

/// Serializes `msg` as one length-prefixed JSON frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), ProtoError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame and decodes it, refusing frames over [`MAX_FRAME`].
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<T, ProtoError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests;
