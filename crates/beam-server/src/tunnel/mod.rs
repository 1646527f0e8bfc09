//! The tunnel listener: accepts client connections (TLS or, on loopback, plaintext),
//! runs the handshake, claims the public name, then turns the connection into
//! reverse HTTP/2 (this server is the HTTP/2 client) and keeps the tunnel registered
//! until the connection ends.

mod claim;

use std::net::SocketAddr;
use std::sync::Arc;

use beam_proto::{
    ErrorCode, HANDSHAKE_TIMEOUT, Hello, ProtoError, Refusal, Reply, TunnelKind, TunnelRequest,
    Welcome, read_frame, read_preamble, write_frame,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::State;
use crate::accounts::auth::{Principal, hash_secret, internal, random_secret};
use crate::body::empty;
use crate::registry::Tunnel;
use crate::store::{DomainKind, DomainRow, DomainStatus, NameKind, TunnelKey, TunnelRow, now_ms};
use claim::{Claimant, Claimed, claim_port, claim_subdomain};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts tunnel connections until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
    while let Some((stream, peer)) = crate::accept::next(&listener, &shutdown, "tunnel").await {
        let state = state.clone();
        let api = api.clone();
        let shutdown = shutdown.clone();
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
                crate::api::serve_io(state, api, tls, peer, shutdown).await;
            }
            Ok(Ok(tls)) => session(state, tls, peer, deadline, shutdown).await,
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
            crate::api::serve_io(state, api, stream, peer, shutdown).await;
        } else {
            session(state, stream, peer, deadline, shutdown).await;
        }
    } else {
        let mut stream = stream;
        refuse(
            &mut stream,
            Refusal {
                code: ErrorCode::PlaintextRefused,
                message: "this server accepts plaintext tunnels only from loopback; connect with TLS (drop --insecure)".into(),
                retry_after_secs: None,
            },
        )
        .await;
    }
}

/// Plaintext tunnels only from loopback (both ends on this machine), unless the
/// operator said `--insecure`. IPv4-mapped IPv6 loopback counts as loopback.
fn plaintext_allowed(peer: SocketAddr, insecure: bool) -> bool {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        v4 => v4,
    };
    insecure || ip.is_loopback()
}

/// Writes a refusal and closes. Errors are ignored: the peer may already be gone.
async fn refuse<IO: AsyncWrite + Unpin>(io: &mut IO, refusal: Refusal) {
    tracing::debug!(code = ?refusal.code, message = %refusal.message, "tunnel refused");
    let _ = write_frame(io, &Reply::Refused(refusal)).await;
    let _ = io.shutdown().await;
}

/// Reads the hello, or explains why not.
async fn read_hello<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<Hello, ProtoError> {
    read_preamble(io).await?;
    read_frame(io).await
}

async fn session<IO>(
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
            return refuse(
                &mut io,
                Refusal::new(
                    ErrorCode::Timeout,
                    format!("handshake not completed within {secs} s"),
                ),
            )
            .await;
        }
        Ok(Err(ProtoError::Io(_))) => return,
        Ok(Err(e)) => {
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
            return refuse(&mut io, Refusal::new(code, message)).await;
        }
    };

    let agent = hello.tunnel.kind() == TunnelKind::Agent;
    let principal = match state.auth.verify(&hello.token, peer.ip(), agent).await {
        Ok(p) => p,
        Err(r) => return refuse(&mut io, r).await,
    };
    if let TunnelRequest::Agent {
        project,
        environment,
    } = &hello.tunnel
    {
        let (project, environment) = (project.clone(), environment.clone());
        return agent_session(state, io, peer, principal, &project, &environment, shutdown).await;
    }
    let token_id = principal.token_id;
    let policy = match crate::edge::visitor::Policy::new(&hello.protection, &state.cfg) {
        Ok(p) => Arc::new(p),
        Err(message) => {
            return refuse(&mut io, Refusal::new(ErrorCode::InvalidOption, message)).await;
        }
    };
    if hello.tunnel.kind() == TunnelKind::Tcp && !hello.protection.is_open() {
        let message = "visitor protection (--auth, --bearer, --cors, --allow-cidr, …) applies to HTTP tunnels only";
        return refuse(&mut io, Refusal::new(ErrorCode::InvalidOption, message)).await;
    }
    // A custom domain is checked before any name is claimed, so a refusal
    // leaves nothing behind.
    let custom = match &hello.tunnel {
        TunnelRequest::Http {
            domain: Some(d), ..
        } => match custom_domain(&state, d, principal.org_id).await {
            Ok(row) => Some(row),
            Err(r) => return refuse(&mut io, r).await,
        },
        _ => None,
    };

    let session_id = format!("{:016x}", rand::random::<u64>());
    // A reconnecting client keeps its lease: if this attempt dies before the client
    // reads the Welcome, the lease it holds must still match the stored one.
    let lease = hello
        .lease
        .clone()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| random_secret("lease_"));
    let lease_hash = hash_secret(lease.expose());
    let presented = hello.lease.as_ref().map(|l| hash_secret(l.expose()));

    let who = Claimant {
        token_id,
        org_id: principal.org_id,
        lease_hash: &lease_hash,
        presented: presented.as_ref(),
        session: &session_id,
    };
    let claimed = match &hello.tunnel {
        TunnelRequest::Http { subdomain, .. } => {
            claim_subdomain(&state, subdomain.as_deref(), &who).await
        }
        TunnelRequest::Tcp { port } => claim_port(&state, *port, &who).await,
        TunnelRequest::Agent { .. } => unreachable!("agents returned above"),
    };
    let claimed = match claimed {
        Ok(c) => c,
        Err(r) => return refuse(&mut io, r).await,
    };
    // A session this one replaces (same name) does not count.
    let open = state
        .registry
        .all()
        .iter()
        .filter(|t| t.token_id == token_id && t.name != claimed.name)
        .count();
    let max = state.cfg.max_tunnels_per_token;
    if open >= max {
        release(&state, &claimed, &session_id).await;
        let message = format!(
            "this token already has {open} tunnels connected (the server allows {max} per token); stop one or use another token"
        );
        return refuse(&mut io, Refusal::new(ErrorCode::LimitReached, message)).await;
    }
    let record = match record_connect(&state, &principal, &claimed, &hello).await {
        Ok(row) => row,
        Err(r) => {
            release(&state, &claimed, &session_id).await;
            return refuse(&mut io, r).await;
        }
    };
    if let Some(d) = &custom
        && let Err(e) = state.store.attach_domain(d.id, record.id).await
    {
        tracing::warn!(error = %e, "could not attach the domain to its tunnel");
    }

    let welcome = Welcome {
        session: session_id.clone(),
        public_url: claimed.public_url.clone(),
        name: claimed.name.clone(),
        lease,
        grace_secs: state.cfg.grace.as_secs(),
        enforced: true,
    };
    if write_frame(&mut io, &Reply::Welcome(welcome))
        .await
        .is_err()
    {
        release(&state, &claimed, &session_id).await;
        return;
    }

    let (sender, conn) = match h2_handshake(&state, io).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            release(&state, &claimed, &session_id).await;
            return;
        }
    };
    let kick = CancellationToken::new();
    let tunnel = Arc::new(Tunnel {
        session: session_id.clone(),
        name: claimed.name.clone(),
        id: record.id,
        org_id: principal.org_id,
        user_id: principal.user_id,
        token_id,
        paused: record.paused.into(),
        domains: custom.iter().map(|d| d.hostname.clone()).collect(),
        sender,
        kick: kick.clone(),
        listener: claimed.listener.clone(),
        policy,
    });
    let kind = hello.tunnel.kind();
    match claimed.kind {
        NameKind::Subdomain => state.registry.insert_http(tunnel.clone()),
        NameKind::TcpPort => {
            let port = claimed.name.parse().unwrap_or_default();
            state.registry.insert_tcp(port, tunnel.clone());
        }
    }
    state.registry.insert_domains(&tunnel);
    // Revoking the token, removing the member or lowering the role ends it.
    let _held = state.revocation.hold(
        crate::accounts::revocation::Access::of(
            &principal,
            Some(crate::accounts::scope::Scope::TunnelsWrite),
        ),
        kick.clone(),
    );
    let gauge = state.metrics.tunnels(kind.as_str());
    gauge.inc();
    tracing::info!(%peer, session = %session_id, name = %claimed.name, kind = kind.as_str(), client = %hello.client, "tunnel connected");

    tokio::spawn(send_ready(tunnel.sender.clone()));

    if kind == TunnelKind::Tcp
        && let Some(listener) = claimed.listener.clone()
    {
        tokio::spawn(crate::edge::tcp::serve(
            listener,
            tunnel.clone(),
            state.clone(),
            kick.clone(),
        ));
    }

    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(session = %session_id, error = %e, "tunnel connection ended");
        },
        () = kick.cancelled() => tracing::info!(session = %session_id, "tunnel disconnected by the server (replaced by a newer session, stopped, or its token revoked)"),
        () = shutdown.cancelled() => {},
    }
    kick.cancel();
    gauge.dec();
    // Start the grace period before leaving the registry: a client reconnecting in
    // between finds the old entry and takes over its TCP listener instead of racing
    // the old one for the port.
    release(&state, &claimed, &session_id).await;
    state.registry.remove_domains_of(&tunnel);
    // Only the last session of a name marks the record disconnected (a takeover
    // by a newer session of the same tunnel already marked it connected).
    let replaced = match claimed.kind {
        NameKind::Subdomain => state.registry.http(&claimed.name),
        NameKind::TcpPort => state.registry.tcp(claimed.name.parse().unwrap_or_default()),
    }
    .is_some_and(|t| t.session != session_id);
    if !replaced && let Err(e) = state.store.tunnel_disconnected(record.id, now_ms()).await {
        tracing::warn!(error = %e, "could not record the disconnect");
    }
    match claimed.kind {
        NameKind::Subdomain => state.registry.remove_http(&claimed.name, &session_id),
        NameKind::TcpPort => state
            .registry
            .remove_tcp(claimed.name.parse().unwrap_or_default(), &session_id),
    }
    tracing::info!(session = %session_id, name = %claimed.name, "tunnel disconnected; name held for the grace period");
}

/// Roles flip after the Welcome: this side becomes the HTTP/2 client of the
/// connection.
async fn h2_handshake<IO>(
    state: &State,
    io: IO,
) -> hyper::Result<(
    hyper::client::conn::http2::SendRequest<crate::body::Body>,
    hyper::client::conn::http2::Connection<TokioIo<IO>, crate::body::Body, TokioExecutor>,
)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(beam_proto::H2_STREAM_WINDOW)
        .initial_connection_window_size(beam_proto::H2_CONNECTION_WINDOW)
        .max_frame_size(beam_proto::MAX_H2_FRAME)
        // Every visitor that hangs up mid-request makes us reset its stream; h2's
        // guard against peers provoking resets (1024) would then close the whole
        // tunnel under ordinary load. The resets are ours, caused by visitors.
        .max_local_error_reset_streams(None)
        .keep_alive_interval(state.cfg.keepalive_interval)
        .keep_alive_timeout(state.cfg.keepalive_timeout)
        .keep_alive_while_idle(true)
        .max_send_buf_size(1 << 20)
        .handshake(TokioIo::new(io))
        .await
}

/// A production agent's session: checks that its token belongs to the
/// environment it names, registers it for parity requests until it drops.
async fn agent_session<IO>(
    state: Arc<State>,
    mut io: IO,
    peer: SocketAddr,
    principal: Principal,
    project: &str,
    environment: &str,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let env = match state
        .store
        .environment(principal.org_id, project, environment)
        .await
    {
        Ok(Some(env)) if principal.environment_id == Some(env.id) => env,
        Ok(_) => {
            let message = format!(
                "this agent token is not for {project}/{environment}; create one with `beam projects token {project}/{environment}`"
            );
            state.auth.record_failure(peer.ip());
            return refuse(&mut io, Refusal::new(ErrorCode::Unauthorized, message)).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "environment lookup failed");
            return refuse(&mut io, internal()).await;
        }
    };
    let session_id = format!("{:016x}", rand::random::<u64>());
    let name = format!("{project}/{environment}");
    let welcome = Welcome {
        session: session_id.clone(),
        public_url: format!("agent://{name}"),
        name: name.clone(),
        // Agents hold no public name; the lease is not used.
        lease: random_secret("lease_"),
        grace_secs: 0,
        enforced: true,
    };
    if write_frame(&mut io, &Reply::Welcome(welcome))
        .await
        .is_err()
    {
        return;
    }
    let (sender, conn) = match h2_handshake(&state, io).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "agent HTTP/2 handshake failed");
            return;
        }
    };
    let policy = match crate::edge::visitor::Policy::new(&Default::default(), &state.cfg) {
        Ok(p) => Arc::new(p),
        Err(_) => return,
    };
    let kick = CancellationToken::new();
    let agent = Arc::new(Tunnel {
        session: session_id.clone(),
        name: name.clone(),
        id: env.id,
        org_id: principal.org_id,
        user_id: principal.user_id,
        token_id: principal.token_id,
        paused: false.into(),
        domains: Vec::new(),
        sender,
        kick: kick.clone(),
        listener: None,
        policy,
    });
    state.registry.insert_agent(env.id, agent.clone());
    // An agent token revoked (or its creator leaving the organization) ends
    // the agent's connection too.
    let _held = state.revocation.hold(
        crate::accounts::revocation::Access::of(&principal, None),
        kick.clone(),
    );
    let gauge = state.metrics.tunnels(TunnelKind::Agent.as_str());
    gauge.inc();
    tracing::info!(%peer, session = %session_id, environment = %name, "agent connected");
    tokio::spawn(send_ready(agent.sender.clone()));
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(session = %session_id, error = %e, "agent connection ended");
        },
        () = kick.cancelled() => {},
        () = shutdown.cancelled() => {},
    }
    gauge.dec();
    state.registry.remove_agent(env.id, &session_id);
    tracing::info!(session = %session_id, environment = %name, "agent disconnected");
}

/// Tells the client it is routable, so it reports "online" only when it is.
async fn send_ready(mut sender: hyper::client::conn::http2::SendRequest<crate::body::Body>) {
    let _ = sender
        .send_request(beam_proto::Control::Ready.request(empty()))
        .await;
}

async fn release(state: &State, claimed: &Claimed, session: &str) {
    let until = now_ms() + state.cfg.grace.as_millis() as i64;
    if let Err(e) = state
        .store
        .release(claimed.kind, &claimed.name, session, until)
        .await
    {
        tracing::warn!(error = %e, "could not start the grace period");
    }
}

/// Checks the plan's tunnel limit and records the connect.
async fn record_connect(
    state: &State,
    p: &Principal,
    claimed: &Claimed,
    hello: &Hello,
) -> Result<TunnelRow, Refusal> {
    let org = state
        .store
        .org(p.org_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "org lookup failed");
            internal()
        })?
        .ok_or_else(internal)?;
    if let Some(max) = org.limits.max_tunnels {
        let connected = state.store.count_connected(p.org_id).await.map_err(|e| {
            tracing::error!(error = %e, "counting tunnels failed");
            internal()
        })?;
        // A reconnect of a tunnel still marked connected does not count twice.
        let live = match claimed.kind {
            NameKind::Subdomain => state.registry.http(&claimed.name),
            NameKind::TcpPort => state.registry.tcp(claimed.name.parse().unwrap_or_default()),
        }
        .is_some();
        if connected - i64::from(live) >= max {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "your plan allows {max} tunnels at once and {connected} are connected; stop one (`beam list`, `beam stop`)"
                ),
            ));
        }
    }
    if let (Some(max), NameKind::TcpPort) = (org.limits.max_tcp_ports, claimed.kind) {
        let connected = state
            .store
            .count_connected_tcp(p.org_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "counting TCP tunnels failed");
                internal()
            })?;
        let live = state
            .registry
            .tcp(claimed.name.parse().unwrap_or_default())
            .is_some();
        if connected - i64::from(live) >= max {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "your plan allows {max} public TCP ports at once and {connected} are in use; stop a `beam tcp` tunnel first"
                ),
            ));
        }
    }
    let config = serde_json::json!({
        "client": hello.client,
        "domain": match &hello.tunnel { TunnelRequest::Http { domain, .. } => domain.clone(), _ => None },
    });
    let key = TunnelKey {
        org_id: p.org_id,
        user_id: p.user_id,
        kind: claimed.kind,
        name: &claimed.name,
    };
    state
        .store
        .tunnel_connected(key, &claimed.public_url, &config, now_ms())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "recording the tunnel failed");
            internal()
        })
}

/// The verified custom domain `host` of organization `org_id`, or why not.
async fn custom_domain(state: &State, host: &str, org_id: i64) -> Result<DomainRow, Refusal> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let row = state.store.domain_by_host(&host).await.map_err(|e| {
        tracing::error!(error = %e, "domain lookup failed");
        internal()
    })?;
    match row {
        Some(d)
            if d.org_id == org_id
                && d.kind == DomainKind::Custom
                && d.status == DomainStatus::Active =>
        {
            Ok(d)
        }
        Some(d) if d.org_id == org_id && d.kind == DomainKind::Custom => Err(Refusal::new(
            ErrorCode::DomainInvalid,
            format!(
                "domain {host} is {}: publish TXT {} = {} and run `beam domains verify {host}`",
                d.status.as_str(),
                crate::domains::dns::challenge_name(&host),
                d.verification_token
            ),
        )),
        _ => Err(Refusal::new(
            ErrorCode::DomainInvalid,
            format!(
                "domain {host} is not one of your custom domains; add it with `beam domains add {host}`"
            ),
        )),
    }
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
