//! A visitor connection's byte stream to a tunnel client. When the client
//! takes visitor connections as streams (`Hello::http1_streams`), the edge
//! opens one extended `CONNECT` stream per visitor connection and speaks
//! HTTP/1.1 over it; the client splices the stream to one local connection.
//! Every request is still parsed, checked and rewritten here first; what
//! goes away is the per-request work of an HTTP/2 stream on both ends (HPACK,
//! header maps, and the client's own HTTP/1.1 encode and parse).

use std::sync::Mutex;

use beam_proto::headers::HTTP1_STREAM;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};

use crate::body::{Body, empty};
use crate::edge::visitor::StreamPermit;
use crate::registry::Tunnel;

/// The link of one visitor connection, if it has one.
#[derive(Default)]
pub(crate) struct LinkSlot(Mutex<Option<Link>>);

struct Link {
    /// The tunnel session it belongs to: a reconnected tunnel needs a new link.
    session: String,
    sender: SendRequest<Body>,
    /// Its place among the tunnel's links, freed when the visitor connection ends.
    permit: StreamPermit,
}

/// What a request on a linked visitor connection goes with: the connection's
/// link, or a place to open one.
pub(super) enum Ticket {
    Link(SendRequest<Body>, StreamPermit),
    Open(StreamPermit),
}

/// Why a request did not get an answer over the link.
#[derive(Debug)]
pub(super) enum LinkError {
    /// The tunnel connection failed to open a stream, or the stream broke
    /// before the client accepted it.
    Tunnel(hyper::Error),
    /// The request was written and the stream broke before an answer
    /// (the local service closed the connection, or the client went away).
    Broken(hyper::Error),
}

impl LinkSlot {
    /// This connection's link to `tunnel`, or a place to open one; `None`
    /// when the tunnel has its maximum of links (the request then goes as a
    /// stream of its own, which holds nothing on the developer's machine).
    pub(super) fn ticket(&self, tunnel: &Tunnel) -> Option<Ticket> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some(l) if l.session == tunnel.session && !l.sender.is_closed() => {
                Some(Ticket::Link(l.sender, l.permit))
            }
            // A stale link's place is reused for its replacement.
            Some(l) if l.session == tunnel.session => Some(Ticket::Open(l.permit)),
            _ => {
                drop(slot);
                tunnel.policy.link_permit().map(Ticket::Open)
            }
        }
    }

    fn put(&self, session: &str, sender: SendRequest<Body>, permit: StreamPermit) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Link {
            session: session.to_string(),
            sender,
            permit,
        });
    }
}

/// Sends `req` (HTTP/1.1, origin-form) on this connection's link to `tunnel`,
/// opening one when there is none yet, it belongs to an older session, or
/// the local service closed it: a request that was not written yet is sent
/// again on a fresh link, once. A client that could not reach the local
/// service answers the stream itself; that answer is returned as the response.
pub(super) async fn send(
    tunnel: &Tunnel,
    slot: &LinkSlot,
    ticket: Ticket,
    authority: &str,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, LinkError> {
    let (mut current, permit) = match ticket {
        Ticket::Link(s, p) => (Some(s), p),
        Ticket::Open(p) => (None, p),
    };
    let mut fresh = false;
    loop {
        let mut sender = match current.take() {
            Some(s) => s,
            None => {
                fresh = true;
                match open(tunnel, authority).await? {
                    Opened::Link(s) => s,
                    Opened::Answer(resp) => return Ok(resp),
                }
            }
        };
        if let Err(e) = sender.ready().await {
            if fresh {
                return Err(LinkError::Broken(e));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                // Ready again once this response's body has been read, which
                // happens before the visitor's next request on this connection.
                slot.put(&tunnel.session, sender, permit);
                return Ok(resp);
            }
            Err(mut e) => match e.take_message() {
                Some(back) if !fresh => req = back,
                _ => return Err(LinkError::Broken(e.into_error())),
            },
        }
    }
}

enum Opened {
    Link(SendRequest<Body>),
    /// The client's own answer (a 502 naming the local service).
    Answer(Response<Incoming>),
}

async fn open(tunnel: &Tunnel, authority: &str) -> Result<Opened, LinkError> {
    let mut req = Request::new(empty());
    *req.method_mut() = Method::CONNECT;
    *req.version_mut() = Version::HTTP_2;
    // The client never connects where the authority says: it has one target.
    *req.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| Uri::from_static("http://tunnel/"));
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static(HTTP1_STREAM));
    let mut resp = tunnel
        .sender
        .clone()
        .send_request(req)
        .await
        .map_err(LinkError::Tunnel)?;
    if resp.status() != StatusCode::OK {
        return Ok(Opened::Answer(resp));
    }
    let io = hyper::upgrade::on(&mut resp)
        .await
        .map_err(LinkError::Tunnel)?;
    let (sender, conn) = http1::handshake(io).await.map_err(LinkError::Tunnel)?;
    // Errors of the link after the handshake reach the request that was on it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Opened::Link(sender))
}
