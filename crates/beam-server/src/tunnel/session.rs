//! An HTTP or TCP tunnel's session, from an authenticated hello to the end of
//! its connection. Each phase is one function, in the order they run:
//! admit → claim → record → welcome → register → serve → finish. A phase that
//! fails after the claim releases the name before refusing, so a refusal
//! leaves nothing behind.

use std::net::SocketAddr;
use std::sync::Arc;

use beam_proto::{ErrorCode, Hello, Refusal, Reply, Secret, TunnelKind, TunnelRequest, Welcome};
use hyper::client::conn::http2::{Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::claim::{Claimant, Claimed, claim_port, claim_subdomain};
use super::{h2_handshake, refuse, send_ready};
use crate::accounts::auth::{Principal, hash_secret, internal, random_secret};
use crate::body::Body;
use crate::edge::visitor::Policy;
use crate::registry::Tunnel;
use crate::state::State;
use crate::store::{
    DomainKind, DomainRow, DomainStatus, NameKind, PublicName, TunnelKey, TunnelRow, now_ms,
};

/// Runs one tunnel connection until it drops, is kicked or the server stops.
pub(super) async fn run<IO>(
    state: Arc<State>,
    mut io: IO,
    peer: SocketAddr,
    hello: Hello,
    principal: Principal,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let admitted = match admit(&state, &hello, &principal).await {
        Ok(a) => a,
        Err(r) => return refuse(&mut io, r).await,
    };
    let (claimed, lease) = match claim(&state, &hello, &principal).await {
        Ok(c) => c,
        Err(r) => return refuse(&mut io, r).await,
    };
    let record = match record(&state, &principal, &claimed, &hello).await {
        Ok(row) => row,
        Err(r) => {
            claimed.release(&state).await;
            return refuse(&mut io, r).await;
        }
    };
    if let Some(d) = &admitted.domain
        && let Err(e) = state.store.attach_domain(d.id, record.id).await
    {
        tracing::warn!(error = %e, "could not attach the domain to its tunnel");
    }
    let mut other_urls = Vec::new();
    // Printed URLs say http while the server also serves HTTPS (--dev).
    if let (PublicName::Subdomain(label), Some(port), "http") = (
        &claimed.name,
        state.cfg.https_port,
        state.cfg.public_scheme.as_str(),
    ) {
        other_urls.push(format!("https://{label}.{}:{port}", state.cfg.domain));
    }
    other_urls.extend(
        admitted
            .domain
            .iter()
            .map(|d| state.cfg.domain_url(&d.hostname)),
    );
    let Some((sender, conn)) = welcome(&state, io, peer, (&claimed, other_urls), lease).await
    else {
        return claimed.release(&state).await;
    };
    let http1_streams = hello.http1_streams && hello.tunnel.kind() == TunnelKind::Http;
    let tunnel = register(
        &state,
        &principal,
        &claimed,
        &record,
        admitted,
        sender,
        http1_streams,
    );
    serve(&state, &tunnel, &principal, &hello, peer, conn, shutdown).await;
    finish(&state, claimed, &tunnel, record.id).await;
}

/// What the hello asked for that is checked before any name is claimed.
struct Admitted {
    /// Visitor protection the edge will enforce.
    policy: Arc<Policy>,
    /// The verified custom domain asked for.
    domain: Option<DomainRow>,
}

/// Checks the options and the custom domain, so a refusal here claims nothing.
async fn admit(state: &State, hello: &Hello, p: &Principal) -> Result<Admitted, Refusal> {
    let policy = Policy::new(&hello.protection, &state.cfg)
        .map(Arc::new)
        .map_err(|message| Refusal::new(ErrorCode::InvalidOption, message))?;
    if hello.tunnel.kind() == TunnelKind::Tcp && !hello.protection.is_open() {
        let message = "visitor protection (--auth, --bearer, --cors, --allow-cidr, …) applies to HTTP tunnels only";
        return Err(Refusal::new(ErrorCode::InvalidOption, message));
    }
    let domain = match &hello.tunnel {
        TunnelRequest::Http {
            domain: Some(d), ..
        } => Some(custom_domain(state, d, p.org_id).await?),
        _ => None,
    };
    Ok(Admitted { policy, domain })
}

/// Claims the name (the one asked for, the lease's, or a random one) and
/// checks the per-token cap; returns the claim and the lease to hand back.
async fn claim(state: &State, hello: &Hello, p: &Principal) -> Result<(Claimed, Secret), Refusal> {
    let session = format!("{:016x}", rand::random::<u64>());
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
        token_id: p.token_id,
        org_id: p.org_id,
        lease_hash: &lease_hash,
        presented: presented.as_ref(),
        session: &session,
    };
    let claimed = match &hello.tunnel {
        TunnelRequest::Http { subdomain, .. } => {
            claim_subdomain(state, subdomain.as_deref(), &who).await?
        }
        TunnelRequest::Tcp { port } => claim_port(state, *port, &who).await?,
        TunnelRequest::Agent { .. } => unreachable!("agents run their own session"),
    };
    // A session this one replaces (same name) does not count. The token's
    // tunnels on every node count (the store's live names), counted after
    // this claim is recorded: racing admissions, on one node or two, see
    // each other and cannot pass the cap together.
    let except = (claimed.name.kind(), claimed.name.key());
    let open = match state
        .store
        .live_names_of_token(p.token_id, (except.0, &except.1))
        .await
    {
        Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Err(e) => {
            claimed.release(state).await;
            tracing::error!(error = %e, "counting the token's tunnels failed");
            return Err(internal());
        }
    };
    let max = state.cfg.max_tunnels_per_token;
    if open >= max {
        claimed.release(state).await;
        let message = format!(
            "this token already has {open} tunnels connected (the server allows {max} per token); stop one or use another token"
        );
        return Err(Refusal::new(ErrorCode::LimitReached, message));
    }
    Ok((claimed, lease))
}

/// Checks the plan's limits and records the connect.
async fn record(
    state: &State,
    p: &Principal,
    claimed: &Claimed,
    hello: &Hello,
) -> Result<TunnelRow, Refusal> {
    check_plan(state, p, &claimed.name).await?;
    let config = serde_json::json!({
        "client": hello.client,
        "domain": match &hello.tunnel { TunnelRequest::Http { domain, .. } => domain.clone(), _ => None },
    });
    let key = claimed.name.key();
    let key = TunnelKey {
        org_id: p.org_id,
        user_id: p.user_id,
        kind: claimed.name.kind(),
        name: &key,
    };
    state
        .store
        .tunnel_connected(key, &claimed.public_url, &config, &state.node_id, now_ms())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "recording the tunnel failed");
            internal()
        })
}

/// The organization's plan limits on tunnels and public TCP ports, counted
/// over the names live connections hold on every node, this claim excluded
/// (so a reconnect of a tunnel still held does not count twice). Counted
/// after this connection's claim is recorded: admissions racing on two
/// nodes each see the other's claim, so together they never pass the limit
/// (at worst both are refused, and one gets in when its client tries again).
async fn check_plan(state: &State, p: &Principal, name: &PublicName) -> Result<(), Refusal> {
    let failed = |what: &'static str| {
        move |e: crate::store::StoreError| {
            tracing::error!(error = %e, "{what} failed");
            internal()
        }
    };
    let org = state
        .store
        .org(p.org_id)
        .await
        .map_err(failed("org lookup"))?
        .ok_or_else(internal)?;
    let key = name.key();
    let except = (name.kind(), key.as_str());
    if let Some(max) = org.limits.max_tunnels {
        let others = state
            .store
            .live_names_of_org(p.org_id, None, except)
            .await
            .map_err(failed("counting tunnels"))?;
        if others >= max {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "your plan allows {max} tunnels at once and {others} are connected; stop one (`beam list`, `beam stop`)"
                ),
            ));
        }
    }
    if let (Some(max), PublicName::Port(_)) = (org.limits.max_tcp_ports, name) {
        let others = state
            .store
            .live_names_of_org(p.org_id, Some(NameKind::TcpPort), except)
            .await
            .map_err(failed("counting TCP tunnels"))?;
        if others >= max {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "your plan allows {max} public TCP ports at once and {others} are in use; stop a `beam tcp` tunnel first"
                ),
            ));
        }
    }
    Ok(())
}

/// Sends the Welcome and turns the connection into reverse HTTP/2; `None`
/// when the client is gone.
async fn welcome<IO>(
    state: &State,
    mut io: IO,
    peer: SocketAddr,
    (claimed, other_urls): (&Claimed, Vec<String>),
    lease: Secret,
) -> Option<(
    SendRequest<Body>,
    Connection<TokioIo<IO>, Body, TokioExecutor>,
)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let welcome = Welcome {
        session: claimed.session().to_string(),
        public_url: claimed.public_url.clone(),
        name: claimed.name.key(),
        lease,
        grace_secs: state.cfg.grace.as_secs(),
        enforced: true,
        other_urls,
    };
    beam_proto::write_frame(&mut io, &Reply::Welcome(welcome))
        .await
        .ok()?;
    match h2_handshake(state, io).await {
        Ok(pair) => Some(pair),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            None
        }
    }
}

/// Makes the tunnel reachable: by name, and by its custom domain.
fn register(
    state: &State,
    p: &Principal,
    claimed: &Claimed,
    record: &TunnelRow,
    admitted: Admitted,
    sender: SendRequest<Body>,
    http1_streams: bool,
) -> Arc<Tunnel> {
    let tunnel = Arc::new(Tunnel {
        session: claimed.session().to_string(),
        name: claimed.name.clone(),
        id: record.id,
        org_id: p.org_id,
        user_id: p.user_id,
        token_id: p.token_id,
        paused: record.paused.into(),
        moving: false.into(),
        domains: admitted.domain.into_iter().map(|d| d.hostname).collect(),
        sender,
        kick: CancellationToken::new(),
        listener: claimed.listener.clone(),
        policy: admitted.policy,
        http1_streams,
    });
    state.registry.insert(tunnel.clone());
    state.registry.insert_domains(&tunnel);
    tunnel
}

/// Serves visitors until the connection drops, the tunnel is kicked (replaced,
/// stopped, revoked) or the server shuts down.
async fn serve<IO>(
    state: &Arc<State>,
    tunnel: &Arc<Tunnel>,
    p: &Principal,
    hello: &Hello,
    peer: SocketAddr,
    conn: Connection<TokioIo<IO>, Body, TokioExecutor>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kick = &tunnel.kick;
    // Revoking the token, removing the member or lowering the role ends it.
    let _held = state.revocation.hold(
        crate::accounts::revocation::Access::of(
            p,
            Some(crate::accounts::scope::Scope::TunnelsWrite),
        ),
        kick.clone(),
    );
    let kind = hello.tunnel.kind();
    let gauge = state.metrics.tunnels(kind.as_str());
    gauge.inc();
    let session = tunnel.session.as_str();
    tracing::info!(%peer, session, name = %tunnel.name, kind = kind.as_str(), client = %hello.client, "tunnel connected");
    tokio::spawn(send_ready(tunnel.sender.clone()));
    if let Some(listener) = tunnel.listener.clone() {
        tokio::spawn(crate::edge::tcp::serve(
            listener,
            tunnel.clone(),
            state.clone(),
            kick.clone(),
        ));
    }
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(session, error = %e, "tunnel connection ended");
        },
        () = kick.cancelled() => tracing::info!(session, "tunnel disconnected by the server (replaced by a newer session, stopped, or its token revoked)"),
        () = shutdown.cancelled() => {},
    }
    kick.cancel();
    gauge.dec();
}

/// Releases the name into its grace period and unregisters the session.
async fn finish(state: &State, claimed: Claimed, tunnel: &Tunnel, record_id: i64) {
    // Start the grace period before leaving the registry: a client reconnecting in
    // between finds the old entry and takes over its TCP listener instead of racing
    // the old one for the port.
    // A client this draining node asked to move keeps the name live: it is
    // reconnecting to another node, and visitors wait for it there rather
    // than get 404 for a name in its grace period. If it never arrives, the
    // node's leaving releases the name like any orphan.
    let moving = tunnel.is_moving();
    if !moving {
        claimed.release(state).await;
    }
    state.registry.remove_domains_of(tunnel);
    // Only the last session of a name marks the record disconnected (a takeover
    // by a newer session of the same tunnel already marked it connected).
    let replaced = state
        .registry
        .get(&tunnel.name)
        .is_some_and(|t| t.session != tunnel.session);
    if !replaced
        && !moving
        && let Err(e) = state
            .store
            .tunnel_disconnected(record_id, &state.node_id, now_ms())
            .await
    {
        tracing::warn!(error = %e, "could not record the disconnect");
    }
    state.registry.remove(&tunnel.name, &tunnel.session);
    tracing::info!(session = %tunnel.session, name = %tunnel.name, "tunnel disconnected; name held for the grace period");
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
