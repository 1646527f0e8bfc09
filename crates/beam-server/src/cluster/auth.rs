//! How two nodes trust each other: after TLS, each proves it knows the
//! cluster secret with an HMAC over this TLS session's exported keying
//! material (RFC 5705 / RFC 8446 §7.5). The proof is bound to the session, so
//! it cannot be replayed on another connection or relayed by a node in the
//! middle (its two sessions export different values), and the secret itself
//! never crosses the wire. TLS gives the encryption; certificates are not
//! what nodes trust, so operators need no cluster CA.
//!
//! The dialer speaks first: `BEAMNODE` and its 32-byte proof. The listener
//! answers one byte (`1` accepted, `0` refused) and, when accepted, its own
//! proof, which the dialer checks before sending any request.

use ring::hmac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// ALPN of node-to-node connections.
pub(crate) const ALPN: &[u8] = b"beam-node/1";

/// Opens the dialer's proof, so a stray client is told apart from a wrong secret.
const MAGIC: &[u8; 8] = b"BEAMNODE";

/// The exporter label (RFC 5705 labels for private use start with `EXPORTER-`).
const LABEL: &[u8] = b"EXPORTER-beam-node";

/// Why a node-to-node connection was not trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The other node refused our proof: the two secrets differ.
    #[error("the other node refused this node's cluster secret (BEAM_CLUSTER_SECRET differs)")]
    Refused,
    /// The peer's proof did not match: it does not know our secret.
    #[error("the peer does not know the cluster secret")]
    WrongSecret,
    /// Not a beam node.
    #[error("the peer does not speak the beam node protocol")]
    Protocol,
    /// The TLS session could not export keying material.
    #[error("TLS keying material: {0}")]
    Tls(#[from] rustls::Error),
    /// The connection failed during the exchange.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The 32 bytes both ends' proofs are bound to.
pub(crate) fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, LABEL, None)?;
    Ok(out)
}

/// One side's proof: HMAC-SHA256 keyed by the secret over its role and the
/// session's keying material (the roles differ so a proof is never echoed back).
fn proof(secret: &[u8], role: &[u8], ekm: &[u8; 32]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(role);
    ctx.update(ekm);
    ctx.sign()
}

/// Checks a proof in constant time.
fn verify(secret: &[u8], role: &[u8], ekm: &[u8; 32], tag: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut msg = Vec::with_capacity(role.len() + ekm.len());
    msg.extend_from_slice(role);
    msg.extend_from_slice(ekm);
    hmac::verify(&key, &msg, tag).is_ok()
}

/// The dialing side: proves itself, then checks the listener's proof.
pub(crate) async fn dial<IO>(io: &mut IO, secret: &[u8], ekm: &[u8; 32]) -> Result<(), AuthError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = Vec::with_capacity(40);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(proof(secret, b"dialer", ekm).as_ref());
    io.write_all(&hello).await?;
    io.flush().await?;
    let mut verdict = [0u8; 1];
    io.read_exact(&mut verdict).await?;
    if verdict[0] != 1 {
        return Err(AuthError::Refused);
    }
    let mut tag = [0u8; 32];
    io.read_exact(&mut tag).await?;
    if !verify(secret, b"listener", ekm, &tag) {
        return Err(AuthError::WrongSecret);
    }
    Ok(())
}

/// The listening side: checks the dialer's proof, answers with the verdict
/// and, when accepted, its own proof.
pub(crate) async fn accept<IO>(io: &mut IO, secret: &[u8], ekm: &[u8; 32]) -> Result<(), AuthError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = [0u8; 40];
    io.read_exact(&mut hello).await?;
    if &hello[..8] != MAGIC {
        return Err(AuthError::Protocol);
    }
    if !verify(secret, b"dialer", ekm, &hello[8..]) {
        // Told, so the operator of the other node sees "secret differs"
        // instead of a bare reset.
        let _ = io.write_all(&[0]).await;
        let _ = io.shutdown().await;
        return Err(AuthError::WrongSecret);
    }
    let mut answer = Vec::with_capacity(33);
    answer.push(1);
    answer.extend_from_slice(proof(secret, b"listener", ekm).as_ref());
    io.write_all(&answer).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_secret_passes_and_a_different_one_is_refused_on_both_sides() {
        let ekm = [7u8; 32];
        let (mut a, mut b) = tokio::io::duplex(256);
        let (d, l) = tokio::join!(dial(&mut a, b"s3cret-s3cret-s3", &ekm), async {
            accept(&mut b, b"s3cret-s3cret-s3", &ekm).await
        });
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");

        let (mut a, mut b) = tokio::io::duplex(256);
        let (d, l) = tokio::join!(dial(&mut a, b"wrong-wrong-wron", &ekm), async {
            accept(&mut b, b"s3cret-s3cret-s3", &ekm).await
        });
        assert!(matches!(d, Err(AuthError::Refused)), "{d:?}");
        assert!(matches!(l, Err(AuthError::WrongSecret)), "{l:?}");
    }

    #[tokio::test]
    async fn a_proof_for_another_session_is_refused() {
        // A node in the middle relays the dialer's proof from its own
        // session: the keying material differs, so the proof fails.
        let (mut a, mut b) = tokio::io::duplex(256);
        let (d, l) = tokio::join!(dial(&mut a, b"s3cret-s3cret-s3", &[1; 32]), async {
            accept(&mut b, b"s3cret-s3cret-s3", &[2; 32]).await
        });
        assert!(matches!(d, Err(AuthError::Refused)), "{d:?}");
        assert!(matches!(l, Err(AuthError::WrongSecret)), "{l:?}");
    }

    #[tokio::test]
    async fn a_stranger_is_told_apart_from_a_wrong_secret() {
        let (mut a, mut b) = tokio::io::duplex(256);
        a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n.............")
            .await
            .unwrap();
        let r = accept(&mut b, b"s3cret-s3cret-s3", &[0; 32]).await;
        assert!(matches!(r, Err(AuthError::Protocol)), "{r:?}");
    }
}
