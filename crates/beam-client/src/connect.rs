//! Opening a tunnel connection: along each route the transport allows
//! ([`crate::carrier`]) until one answers, then the beam handshake. Returns
//! the stream ready for HTTP/2.

use beam_proto::{Hello, Reply, Welcome, read_frame, write_frame, write_preamble};

use crate::carrier::{CarrierStream, Route, open, routes};
use crate::config::ClientConfig;
pub use crate::dial::{TunnelStream, dial, dial_via};
pub use crate::error::ConnectError;

/// Connects along the routes the transport allows (`first`, the one that
/// worked last time, ahead), authenticates, and returns the server's welcome,
/// the stream and the route taken. A refusal from the server ends the
/// search (another route reaches the same server); any other failure moves
/// on to the next route. When every route fails, the first route's error
/// is returned: it is the one the user configured.
pub async fn connect(
    cfg: &ClientConfig,
    hello: &Hello,
    first: Option<Route>,
) -> Result<(Welcome, CarrierStream, Route), ConnectError> {
    connect_along(cfg, hello, routes(cfg, first)).await
}

/// [`connect`] along `routes`, in that order.
pub(crate) async fn connect_along(
    cfg: &ClientConfig,
    hello: &Hello,
    routes: Vec<Route>,
) -> Result<(Welcome, CarrierStream, Route), ConnectError> {
    let mut first_error = None;
    for (i, route) in routes.iter().enumerate() {
        // A blackholed port must not use up the whole budget when there
        // are other routes to try.
        let limit = if i + 1 < routes.len() {
            cfg.connect_timeout.min(FALLBACK_AFTER)
        } else {
            cfg.connect_timeout
        };
        let attempt = tokio::time::timeout(limit, attempt(cfg, hello, route)).await;
        match attempt.unwrap_or_else(|_| Err(ConnectError::Timeout(cfg.server.clone()))) {
            Ok((welcome, stream)) => return Ok((welcome, stream, route.clone())),
            Err(e @ ConnectError::Refused(_)) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ConnectError::Timeout(cfg.server.clone())))
}

/// How long `auto` waits on one route before trying the next.
const FALLBACK_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// One route: open it, then the beam handshake.
async fn attempt(
    cfg: &ClientConfig,
    hello: &Hello,
    route: &Route,
) -> Result<(Welcome, CarrierStream), ConnectError> {
    let server = cfg.server.clone();
    let mut stream = open(cfg, route).await?;
    let hs = |e: beam_proto::ProtoError| ConnectError::Handshake {
        server: server.clone(),
        message: e.to_string(),
    };
    write_preamble(&mut stream).await.map_err(hs)?;
    write_frame(&mut stream, hello).await.map_err(hs)?;
    match read_frame::<_, Reply>(&mut stream).await {
        Ok(Reply::Welcome(w)) => Ok((w, stream)),
        Ok(Reply::Refused(r)) => Err(ConnectError::Refused(r)),
        Err(beam_proto::ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(ConnectError::Handshake {
                server,
                message: "the server closed the connection during the handshake (is this a beam tunnel port? plaintext to a TLS port?)".into(),
            })
        }
        Err(e) => Err(hs(e)),
    }
}
