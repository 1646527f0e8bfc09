//! Which way the tunnel connection takes to the server: the tunnel port
//! directly, the server's HTTPS port with ALPN `beam/1`, or a WebSocket on
//! that port (`wss://SERVER/_beam/tunnel`), each optionally through an HTTP
//! proxy. `--transport auto` tries them in that order and keeps the one that
//! worked for reconnects, so a network that allows only HTTPS out still gets
//! a tunnel.

use beam_proto::ws::WsIo;
use tokio_util::either::Either;

pub use crate::config::Transport;
use crate::config::{ClientConfig, TlsMode};
use crate::dial::{TunnelStream, dial_via};
use crate::error::ConnectError;

/// A tunnel connection as it reached the server.
pub type CarrierStream = Either<TunnelStream, WsIo<TunnelStream>>;

/// One way to one server: a tunnel address from `--server` (a list when
/// the server runs as several nodes), and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The tunnel port.
    Direct(String),
    /// That host's HTTPS port, ALPN `beam/1`.
    EdgeTls(String),
    /// A WebSocket on that host's HTTPS port.
    WebSocket(String),
}

/// The routes `cfg` allows, in the order to try them: every address
/// directly, then (with `auto`) every HTTPS port, then every WebSocket;
/// `first` (the one that worked last time) ahead of the others.
pub(crate) fn routes(cfg: &ClientConfig, first: Option<Route>) -> Vec<Route> {
    ordered(cfg, first, None)
}

/// [`routes`] with `last` (a draining node's) behind all the others.
pub(crate) fn ordered(
    cfg: &ClientConfig,
    first: Option<Route>,
    last: Option<&Route>,
) -> Vec<Route> {
    let servers: Vec<String> = cfg.servers().map(String::from).collect();
    let each = |make: fn(String) -> Route| servers.iter().cloned().map(make).collect::<Vec<_>>();
    let mut routes = match cfg.transport {
        Transport::Tls => each(Route::Direct),
        Transport::WebSocket => each(Route::WebSocket),
        Transport::Auto => {
            let mut v = each(Route::Direct);
            // The HTTPS port speaks beam only over TLS, and is worth a try
            // only when it is not the port just tried.
            if cfg.tls != TlsMode::Plaintext {
                v.extend(
                    each(Route::EdgeTls)
                        .into_iter()
                        .filter(|r| matches!(r, Route::EdgeTls(s) if edge_addr(cfg, s) != *s)),
                );
            }
            v.extend(each(Route::WebSocket));
            v
        }
    };
    if let Some(pos) = first.and_then(|f| routes.iter().position(|r| *r == f)) {
        let r = routes.remove(pos);
        routes.insert(0, r);
    }
    if let Some(pos) = last.and_then(|l| routes.iter().position(|r| r == l)) {
        let r = routes.remove(pos);
        routes.push(r);
    }
    routes
}

/// `host:port` of `server`'s HTTPS port.
fn edge_addr(cfg: &ClientConfig, server: &str) -> String {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    format!("{host}:{}", cfg.edge_port)
}

/// The route in words, for the UI: `tls to HOST:PORT`, `websocket wss://…`,
/// with the proxy when there is one.
pub fn describe(cfg: &ClientConfig, route: &Route) -> String {
    let plain = cfg.tls == TlsMode::Plaintext;
    let how = match route {
        Route::Direct(s) if plain => format!("plaintext to {s}"),
        Route::Direct(s) => format!("tls to {s}"),
        Route::EdgeTls(s) => format!("tls to the HTTPS port {}", edge_addr(cfg, s)),
        Route::WebSocket(s) => format!("websocket {}", ws_url(cfg, s)),
    };
    match &cfg.egress {
        Some(p) => format!("{how} through proxy {p}"),
        None => how,
    }
}

fn ws_url(cfg: &ClientConfig, server: &str) -> String {
    let scheme = if cfg.tls == TlsMode::Plaintext {
        "ws"
    } else {
        "wss"
    };
    format!(
        "{scheme}://{}{}",
        edge_addr(cfg, server),
        beam_proto::WS_CARRIER_PATH
    )
}

/// Opens the connection along `route`, ready for the beam handshake.
pub(crate) async fn open(cfg: &ClientConfig, route: &Route) -> Result<CarrierStream, ConnectError> {
    let proxy = cfg.egress.as_ref();
    match route {
        Route::Direct(s) => dial_via(s, &cfg.tls, &[beam_proto::ALPN], proxy)
            .await
            .map(Either::Left),
        Route::EdgeTls(s) => dial_via(&edge_addr(cfg, s), &cfg.tls, &[beam_proto::ALPN], proxy)
            .await
            .map(Either::Left),
        Route::WebSocket(s) => {
            let edge = edge_addr(cfg, s);
            // `beam-ws` asks the server for its tunnel certificate, so a
            // pinned fingerprint verifies here as on the tunnel port.
            let alpn: &[&[u8]] = &[b"http/1.1", beam_proto::WS_CARRIER_ALPN];
            let stream = dial_via(&edge, &cfg.tls, alpn, proxy).await?;
            let (ws, _) = tokio_tungstenite::client_async(ws_url(cfg, s), stream)
                .await
                .map_err(|e| ConnectError::Handshake {
                    server: edge.clone(),
                    message: match e {
                        tokio_tungstenite::tungstenite::Error::Http(resp) => format!(
                            "the server's HTTPS port answered {} instead of opening the WebSocket carrier (is --edge-port the server's HTTPS port?)",
                            resp.status()
                        ),
                        other => other.to_string(),
                    },
                })?;
            Ok(Either::Right(WsIo::new(ws)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(transport: Transport, tls: TlsMode) -> ClientConfig {
        let mut c = ClientConfig::new(
            "beam.example.com:8081".into(),
            beam_proto::Secret::new("t"),
            beam_proto::TunnelRequest::Tcp { port: None },
        );
        c.transport = transport;
        c.tls = tls;
        c
    }

    #[test]
    fn auto_tries_direct_then_the_https_port_then_websocket() {
        let auto = cfg(Transport::Auto, TlsMode::WebPki);
        let a = || "beam.example.com:8081".to_string();
        use Route::*;
        assert_eq!(
            routes(&auto, None),
            [Direct(a()), EdgeTls(a()), WebSocket(a())]
        );
        assert_eq!(
            routes(&auto, Some(WebSocket(a()))),
            [WebSocket(a()), Direct(a()), EdgeTls(a())]
        );
        assert_eq!(
            routes(&cfg(Transport::Auto, TlsMode::Plaintext), None),
            [Direct(a()), WebSocket(a())]
        );
        assert_eq!(
            routes(&cfg(Transport::Tls, TlsMode::WebPki), Some(WebSocket(a()))),
            [Direct(a())]
        );
        assert_eq!(
            routes(&cfg(Transport::WebSocket, TlsMode::WebPki), None),
            [WebSocket(a())]
        );
        let mut on_443 = cfg(Transport::Auto, TlsMode::WebPki);
        on_443.server = "beam.example.com:443".into();
        let b = || "beam.example.com:443".to_string();
        assert_eq!(routes(&on_443, None), [Direct(b()), WebSocket(b())]);
        assert_eq!(
            describe(&auto, &WebSocket(a())),
            "websocket wss://beam.example.com:443/_beam/tunnel"
        );
        assert_eq!("WS".parse::<Transport>(), Ok(Transport::WebSocket));
        assert!(
            "quic"
                .parse::<Transport>()
                .unwrap_err()
                .contains("auto, tls or websocket")
        );
    }

    #[test]
    fn several_servers_are_each_tried_directly_first() {
        let mut c = cfg(Transport::Auto, TlsMode::WebPki);
        c.server = "a.example:8081, b.example:8081".into();
        use Route::*;
        let (a, b) = (
            || "a.example:8081".to_string(),
            || "b.example:8081".to_string(),
        );
        assert_eq!(
            routes(&c, None),
            [
                Direct(a()),
                Direct(b()),
                EdgeTls(a()),
                EdgeTls(b()),
                WebSocket(a()),
                WebSocket(b())
            ]
        );
        assert_eq!(routes(&c, Some(Direct(b())))[0], Direct(b()));
        // Moving off a draining node: it goes last.
        let moved = ordered(&c, None, Some(&Direct(a())));
        assert_eq!(moved[..2], [Direct(b()), EdgeTls(a())]);
        assert_eq!(moved.last(), Some(&Direct(a())));
    }
}
