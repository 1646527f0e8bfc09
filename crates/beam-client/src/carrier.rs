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

/// One way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The tunnel port (`--server`).
    Direct,
    /// The HTTPS port, ALPN `beam/1`.
    EdgeTls,
    /// A WebSocket on the HTTPS port.
    WebSocket,
}

/// The routes `cfg` allows, in the order to try them, `first` (the one
/// that worked last time) ahead of the others.
pub(crate) fn routes(cfg: &ClientConfig, first: Option<Route>) -> Vec<Route> {
    let mut routes = match cfg.transport {
        Transport::Tls => vec![Route::Direct],
        Transport::WebSocket => vec![Route::WebSocket],
        Transport::Auto => {
            let mut v = vec![Route::Direct];
            // The HTTPS port speaks beam only over TLS, and is worth a try
            // only when it is not the port just tried.
            if cfg.tls != TlsMode::Plaintext && edge_addr(cfg) != cfg.server {
                v.push(Route::EdgeTls);
            }
            v.push(Route::WebSocket);
            v
        }
    };
    if let Some(pos) = first.and_then(|f| routes.iter().position(|r| *r == f)) {
        let r = routes.remove(pos);
        routes.insert(0, r);
    }
    routes
}

/// `host:port` of the server's HTTPS port.
fn edge_addr(cfg: &ClientConfig) -> String {
    let host = cfg
        .server
        .rsplit_once(':')
        .map_or(cfg.server.as_str(), |(h, _)| h);
    format!("{host}:{}", cfg.edge_port)
}

/// The route in words, for the UI: `tls to HOST:PORT`, `websocket wss://…`,
/// with the proxy when there is one.
pub fn describe(cfg: &ClientConfig, route: Route) -> String {
    let plain = cfg.tls == TlsMode::Plaintext;
    let how = match route {
        Route::Direct if plain => format!("plaintext to {}", cfg.server),
        Route::Direct => format!("tls to {}", cfg.server),
        Route::EdgeTls => format!("tls to the HTTPS port {}", edge_addr(cfg)),
        Route::WebSocket => format!("websocket {}", ws_url(cfg)),
    };
    match &cfg.egress {
        Some(p) => format!("{how} through proxy {p}"),
        None => how,
    }
}

fn ws_url(cfg: &ClientConfig) -> String {
    let scheme = if cfg.tls == TlsMode::Plaintext {
        "ws"
    } else {
        "wss"
    };
    format!(
        "{scheme}://{}{}",
        edge_addr(cfg),
        beam_proto::WS_CARRIER_PATH
    )
}

/// Opens the connection along `route`, ready for the beam handshake.
pub(crate) async fn open(cfg: &ClientConfig, route: Route) -> Result<CarrierStream, ConnectError> {
    let proxy = cfg.egress.as_ref();
    match route {
        Route::Direct => dial_via(&cfg.server, &cfg.tls, &[beam_proto::ALPN], proxy)
            .await
            .map(Either::Left),
        Route::EdgeTls => dial_via(&edge_addr(cfg), &cfg.tls, &[beam_proto::ALPN], proxy)
            .await
            .map(Either::Left),
        Route::WebSocket => {
            let edge = edge_addr(cfg);
            // `beam-ws` asks the server for its tunnel certificate, so a
            // pinned fingerprint verifies here as on the tunnel port.
            let alpn: &[&[u8]] = &[b"http/1.1", beam_proto::WS_CARRIER_ALPN];
            let stream = dial_via(&edge, &cfg.tls, alpn, proxy).await?;
            let (ws, _) = tokio_tungstenite::client_async(ws_url(cfg), stream)
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
        use Route::*;
        assert_eq!(routes(&auto, None), [Direct, EdgeTls, WebSocket]);
        assert_eq!(routes(&auto, Some(WebSocket)), [WebSocket, Direct, EdgeTls]);
        assert_eq!(
            routes(&cfg(Transport::Auto, TlsMode::Plaintext), None),
            [Direct, WebSocket]
        );
        assert_eq!(
            routes(&cfg(Transport::Tls, TlsMode::WebPki), Some(WebSocket)),
            [Direct]
        );
        assert_eq!(
            routes(&cfg(Transport::WebSocket, TlsMode::WebPki), None),
            [WebSocket]
        );
        let mut on_443 = cfg(Transport::Auto, TlsMode::WebPki);
        on_443.server = "beam.example.com:443".into();
        assert_eq!(routes(&on_443, None), [Direct, WebSocket]);
        assert_eq!(
            describe(&auto, WebSocket),
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
}
