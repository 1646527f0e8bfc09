//! Accepting tunnel connections: sniff TLS, plaintext or the API on the tunnel
//! port, read the hello within the handshake deadline, authenticate it, and
//! hand the connection to a tunnel or agent session.

use std::net::SocketAddr;
use std::sync::Arc;

use beam_proto::{
    ErrorCode, HANDSHAKE_TIMEOUT, Hello, ProtoError, Refusal, TunnelKind, TunnelRequest,
    read_frame, read_preamble,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{agent, refuse, session};
use crate::state::State;

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts tunnel connections until `stop_accepting` (a draining node stops
/// taking new clients before it asks its own to move); the sessions run until
/// the server's shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    api: axum::Router,
    stop_accepting: CancellationToken,
) {
    while let Some((stream, peer)) = crate::accept::next(&listener, &stop_accepting, "tunnel").await
    {
        let state = state.clone();
        let api = api.clone();
        let shutdown = state.shutdown.clone();
        state.tasks.clone().spawn(async move {
            accept(state, api, stream, peer, shutdown).await;
        });
    }
}

/// Sniffs TLS vs plaintext and runs the session on the right stream type.
async fn accept(
    state: Arc<State>,
    api: axum::Router,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == TLS_HANDSHAKE {
        let Some(acceptor) = state.tls.clone() else {
            tracing::debug!(%peer, "TLS hello on a plaintext-only tunnel listener");
            return;
        };
        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(beam_proto::API_ALPN) => {
                crate::api::serve_io(state, api, tls, (peer, true), shutdown).await;
            }
            Ok(Ok(tls)) => handshake(state, tls, peer, deadline, shutdown).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tunnel TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "tunnel TLS handshake timed out"),
        }
    } else if plaintext_allowed(peer, state.cfg.insecure) {
        // `BEAM` starts a tunnel; anything else is the API over plain HTTP/1.1
        // (loopback or --insecure only, like plaintext tunnels).
        let mut head = [0u8; 4];
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut head)).await {
            Ok(Ok(n)) => n,
            _ => return,
        };
        if n > 0 && head[..n] != beam_proto::MAGIC[..n] && head[0].is_ascii_uppercase() {
            crate::api::serve_io(state, api, stream, (peer, false), shutdown).await;
        } else {
            handshake(state, stream, peer, deadline, shutdown).await;
        }
    } else {
        let mut stream = stream;
        let message = "this server accepts plaintext tunnels only from loopback; connect with TLS (drop --insecure)";
        refuse(
            &mut stream,
            Refusal::new(ErrorCode::PlaintextRefused, message),
        )
        .await;
    }
}

/// Plaintext tunnels only from loopback (both ends on this machine), unless the
/// operator said `--insecure`. IPv4-mapped IPv6 loopback counts as loopback.
pub(crate) fn plaintext_allowed(peer: SocketAddr, insecure: bool) -> bool {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        v4 => v4,
    };
    insecure || ip.is_loopback()
}

/// Reads and authenticates the hello, then runs the session it asks for.
pub(crate) async fn handshake<IO>(
    state: Arc<State>,
    mut io: IO,
    peer: SocketAddr,
    deadline: Instant,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hello = match tokio::time::timeout_at(deadline, read_hello(&mut io)).await {
        Ok(Ok(h)) => h,
        Err(_) => {
            let secs = HANDSHAKE_TIMEOUT.as_secs();
            let message = format!("handshake not completed within {secs} s");
            return refuse(&mut io, Refusal::new(ErrorCode::Timeout, message)).await;
        }
        Ok(Err(ProtoError::Io(_))) => return,
        Ok(Err(e)) => return refuse(&mut io, bad_hello(&state, peer, e)).await,
    };
    let agent = hello.tunnel.kind() == TunnelKind::Agent;
    let principal = match state.auth.verify(&hello.token, peer.ip(), agent).await {
        Ok(p) => p,
        Err(r) => return refuse(&mut io, r).await,
    };
    match &hello.tunnel {
        TunnelRequest::Agent {
            project,
            environment,
            instance,
        } => {
            let instance = instance.clone().unwrap_or_else(|| "default".into());
            if !beam_proto::valid_instance(&instance) {
                let message = format!(
                    "instance name '{instance}' is not valid: use 1 to 64 of A-Z a-z 0-9 . _ -"
                );
                return refuse(&mut io, Refusal::new(ErrorCode::BadHello, message)).await;
            }
            let (project, environment) = (project.clone(), environment.clone());
            let name = agent::AgentName {
                project: &project,
                environment: &environment,
                instance: &instance,
            };
            agent::run(state, io, peer, principal, name, shutdown).await;
        }
        _ => session::run(state, io, peer, hello, principal, shutdown).await,
    }
}

/// Reads the hello, or explains why not.
async fn read_hello<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<Hello, ProtoError> {
    read_preamble(io).await?;
    read_frame(io).await
}

/// The refusal for a hello that could not be read. Garbage counts as a failed
/// attempt for the address (a scanner); an old client's version does not.
fn bad_hello(state: &State, peer: SocketAddr, e: ProtoError) -> Refusal {
    let code = match e {
        ProtoError::Version { .. } => ErrorCode::UnsupportedVersion,
        ProtoError::TooLarge { .. } => ErrorCode::HelloTooLarge,
        _ => ErrorCode::BadHello,
    };
    if code != ErrorCode::UnsupportedVersion {
        state.auth.record_failure(peer.ip());
    }
    let message = match e {
        ProtoError::Version { got } => format!(
            "this server speaks beam protocol {}, the client speaks {got}: install matching beam versions",
            beam_proto::VERSION
        ),
        other => other.to_string(),
    };
    Refusal::new(code, message)
}

#[cfg(test)]
mod tests {
    use super::plaintext_allowed;

    #[test]
    fn plaintext_only_from_loopback_unless_insecure() {
        for ok in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(plaintext_allowed(ok.parse().unwrap(), false), "{ok}");
        }
        for remote in [
            "10.0.0.5:1",
            "203.0.113.7:1",
            "[2001:db8::1]:1",
            "[::ffff:10.0.0.5]:1",
        ] {
            assert!(
                !plaintext_allowed(remote.parse().unwrap(), false),
                "{remote}"
            );
            assert!(plaintext_allowed(remote.parse().unwrap(), true), "{remote}");
        }
    }
}
