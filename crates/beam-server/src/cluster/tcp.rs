//! TCP tunnel ports across nodes. A TCP tunnel's port is bound on the node
//! whose connection holds it; every other node binds the same port too (a
//! mirror) and forwards each visitor connection to the holder as one
//! `beam-tcp` stream, so a load balancer or DNS name may send TCP visitors
//! to any node. When the tunnel moves to a node that mirrors its port, the
//! mirror's listener is handed to the tunnel: the port never closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::mirrors::{Mirror, Mirrors};
use super::wire::{NODE_PEER, NODE_PORT, TCP};
use crate::body::{Body, empty};
use crate::state::State;

/// Mirrors exactly the ports in `remote` (`port → (node, addr)`, held on
/// other live nodes) that this node does not hold itself.
pub(crate) async fn sync(
    state: &Arc<State>,
    mirrors: &Mirrors,
    remote: HashMap<u16, (String, String)>,
) {
    mirrors.retain(|p| remote.contains_key(&p));
    for (port, target) in remote {
        if state.registry.tcp(port).is_some() || mirrors.retarget(port, &target) {
            continue;
        }
        let listener = match TcpListener::bind((state.cfg.tcp_bind, port)).await {
            Ok(l) => Arc::new(l),
            Err(e) => {
                tracing::warn!(port, error = %e, "cannot mirror another node's TCP tunnel port");
                continue;
            }
        };
        let m = Mirror {
            listener: listener.clone(),
            target: Arc::new(Mutex::new(target)),
            stop: state.shutdown.child_token(),
        };
        tokio::spawn(accept(
            listener,
            m.target.clone(),
            state.clone(),
            m.stop.clone(),
        ));
        mirrors.insert(port, m);
    }
}

/// Forwards each visitor of a mirrored port to the port's holder.
async fn accept(
    listener: Arc<TcpListener>,
    target: Arc<Mutex<(String, String)>>,
    state: Arc<State>,
    stop: CancellationToken,
) {
    while let Some((visitor, peer)) = crate::accept::next(&listener, &stop, "tcp mirror").await {
        let (node, addr) = target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let state = state.clone();
        state.tasks.clone().spawn(async move {
            if let Err(e) = relay(&state, &node, &addr, visitor, peer).await {
                state.metrics.error("node_unreachable");
                tracing::debug!(node, error = %e, "forwarding a TCP visitor failed");
            }
        });
    }
}

/// One visitor connection to the holder node, spliced.
async fn relay(
    state: &State,
    node: &str,
    addr: &str,
    mut visitor: TcpStream,
    peer: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(cluster) = &state.cluster else {
        return Ok(());
    };
    let port = visitor.local_addr()?.port();
    let mut h2 = match cluster.peers.sender(node, addr).await {
        Ok(s) => s,
        Err(e) => {
            cluster.peers.forget(node);
            return Err(e.into());
        }
    };
    let mut req = Request::new(empty());
    *req.method_mut() = Method::CONNECT;
    *req.version_mut() = Version::HTTP_2;
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(format!("tcp.beam:{port}"))
        .path_and_query("/")
        .build()?;
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static(TCP));
    req.headers_mut()
        .insert(NODE_PEER, HeaderValue::from_str(&peer.to_string())?);
    req.headers_mut().insert(NODE_PORT, port.into());
    let mut resp = h2.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("node answered {}", resp.status()).into());
    }
    let mut io = TokioIo::new(hyper::upgrade::on(&mut resp).await?);
    let done = beam_proto::splice_idle(&mut visitor, &mut io, state.cfg.idle_timeout).await;
    done.result.map_err(Into::into)
}

/// The holder's side: a `beam-tcp` stream for one of this node's TCP
/// tunnels, relayed to its client like a visitor of its own port.
pub(crate) fn accept_stream(
    state: &Arc<State>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let port = req
        .headers()
        .get(NODE_PORT)
        .and_then(|v| v.to_str().ok()?.parse::<u16>().ok());
    let Some(tunnel) = port.and_then(|p| state.registry.tcp(p)) else {
        return crate::body::bare(StatusCode::NOT_FOUND);
    };
    // Paused or over its bandwidth: refused here as on the port itself.
    if tunnel.is_paused() || state.over_quota(tunnel.org_id) {
        state.metrics.error(if tunnel.is_paused() {
            "paused"
        } else {
            "over_quota"
        });
        return crate::body::bare(StatusCode::FORBIDDEN);
    }
    let public = SocketAddr::new(state.cfg.tcp_bind, port.unwrap_or_default());
    let on = hyper::upgrade::on(&mut req);
    let state = state.clone();
    state.tasks.clone().spawn(async move {
        match on.await {
            Ok(io) => {
                let stop = tunnel.kick.clone();
                crate::edge::tcp::relay(&state, &tunnel, TokioIo::new(io), (peer, public), stop)
                    .await
            }
            Err(e) => tracing::debug!(error = %e, "forwarded TCP stream failed"),
        }
    });
    crate::body::bare(StatusCode::OK)
}
