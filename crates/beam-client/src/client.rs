//! The client's life: connect, serve the tunnel, and when the connection drops,
//! reconnect with full-jitter backoff, presenting the lease so the server hands back
//! the same subdomain or port. Never gives up on its own; stops on a fatal refusal
//! (bad token, invalid name) or when the caller's shutdown completes.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use beam_proto::{Control, ErrorCode, Hello, Refusal, Secret, TunnelRequest, Welcome};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::mpsc;

use crate::carrier::{Route, ordered};
use crate::config::ClientConfig;
use crate::connect::connect_along;
use crate::error::ConnectError;
use crate::handler::{StreamHandler, status};

/// What the client is doing, for the UI.
#[derive(Debug, Clone)]
pub enum Event {
    /// Dialling the server (attempt 0 is the first).
    Connecting {
        /// Attempts since the last success.
        attempt: u32,
    },
    /// The tunnel is routable at `welcome.public_url`.
    Connected {
        /// The server's answer.
        welcome: Welcome,
        /// True when this is a reconnect and the public URL changed (the name
        /// was lost after the grace period).
        url_changed: bool,
        /// The way the connection took, in words (`tls to host:port`,
        /// `websocket wss://…`, through which proxy).
        via: String,
    },
    /// The connection ended; a retry follows after `retry_in`.
    Disconnected {
        /// Why, in words.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// Why [`run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A refusal or error that retrying cannot fix.
    #[error(transparent)]
    Fatal(ConnectError),
    /// The tunnel asked for visitor protection and the server did not confirm
    /// it enforces it (a server older than this client): going online would
    /// expose the service unprotected.
    #[error(
        "the server at {0} does not enforce visitor protection (--auth, --bearer, --cors, CIDR, limits); upgrade the server, or start the tunnel without those options"
    )]
    Unprotected(String),
    /// The tunnel was stopped on the server (API or `beam stop`); reconnecting
    /// would bring back what the user stopped.
    #[error("{0}")]
    Stopped(String),
    /// The tunnel never came up in the attempts allowed
    /// ([`ClientConfig::first_connect_attempts`]).
    #[error(
        "could not reach the beam server at {server} in {attempts} tries (last: {last}). Is `beam server` running there, and is that its tunnel port? (Once connected, beam keeps reconnecting for as long as it runs.)"
    )]
    NeverConnected {
        /// The address(es) tried.
        server: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
}

/// Runs the tunnel until `shutdown` completes (returns `Ok`) or a fatal error,
/// serving every stream the server opens with `handler`.
pub async fn run<H: StreamHandler>(
    cfg: ClientConfig,
    handler: H,
    events: mpsc::UnboundedSender<Event>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    tokio::pin!(shutdown);
    let mut request = cfg.tunnel.clone();
    let asked_for_name = match &cfg.tunnel {
        TunnelRequest::Http { subdomain, .. } => subdomain.is_some(),
        TunnelRequest::Tcp { port } => port.is_some(),
        TunnelRequest::Agent { .. } => true,
    };
    let mut lease: Option<Secret> = None;
    let mut last_url: Option<String> = None;
    let mut attempt: u32 = 0;
    // The route that worked last, tried first on reconnect, and the route of
    // a node that asked us to move, tried last.
    let mut route: Option<Route> = None;
    let mut moved_from: Option<Route> = None;
    // Whether the tunnel was ever up, and failed attempts before it was.
    let mut ever_connected = false;
    let mut failed_first = 0u32;
    loop {
        let _ = events.send(Event::Connecting { attempt });
        let hello = Hello {
            token: cfg.token.clone(),
            tunnel: request.clone(),
            lease: lease.clone(),
            client: client_string(),
            protection: cfg.protection.clone(),
            http1_streams: cfg.http1_streams,
        };
        let attempt_result = tokio::select! {
            r = connect_along(&cfg, &hello, ordered(&cfg, route.clone(), moved_from.as_ref())) => r,
            () = &mut shutdown => return Ok(()),
        };
        // Set when a draining node asked us to move: reconnect without a delay.
        let mut continue_now = false;
        let reason = match attempt_result {
            Ok((welcome, ..)) if !cfg.protection.is_open() && !welcome.enforced => {
                return Err(ClientError::Unprotected(cfg.server.clone()));
            }
            Ok((welcome, stream, taken)) => {
                attempt = 0;
                ever_connected = true;
                let via = crate::carrier::describe(&cfg, &taken);
                route = Some(taken);
                moved_from = None;
                lease = Some(welcome.lease.clone());
                request = match &request {
                    TunnelRequest::Http { domain, .. } => TunnelRequest::Http {
                        subdomain: Some(welcome.name.clone()),
                        domain: domain.clone(),
                    },
                    TunnelRequest::Tcp { .. } => TunnelRequest::Tcp {
                        port: welcome.name.parse().ok(),
                    },
                    agent @ TunnelRequest::Agent { .. } => agent.clone(),
                };
                let url_changed = last_url.as_ref().is_some_and(|u| *u != welcome.public_url);
                last_url = Some(welcome.public_url.clone());
                let (control_tx, mut control) = mpsc::unbounded_channel();
                let handler = handler.clone();
                let mut welcome = Some(welcome);
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .initial_stream_window_size(beam_proto::H2_STREAM_WINDOW)
                    .initial_connection_window_size(beam_proto::H2_CONNECTION_WINDOW)
                    .max_frame_size(beam_proto::MAX_H2_FRAME)
                    .enable_connect_protocol()
                    // Thousands of concurrent visitor requests share this connection.
                    .max_concurrent_streams(16_384)
                    // Visitors hanging up make the server reset streams before we
                    // accept them; h2's rapid-reset guard (20 by default) would then
                    // drop the whole tunnel. The peer is our authenticated server, so
                    // allow as many as there can be concurrent streams.
                    .max_pending_accept_reset_streams(16_384)
                    // Likewise for resets this side makes (local app failing mid-stream).
                    .max_local_error_reset_streams(None)
                    .max_send_buf_size(1 << 20)
                    .keep_alive_interval(cfg.keepalive_interval)
                    .keep_alive_timeout(cfg.keepalive_timeout)
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req: Request<Incoming>| {
                            let handler = handler.clone();
                            let control_tx = control_tx.clone();
                            async move {
                                if let Some(msg) = Control::parse(&req) {
                                    let _ = control_tx.send(msg);
                                    return Ok::<_, Infallible>(status(StatusCode::NO_CONTENT));
                                }
                                Ok(handler.handle(req).await)
                            }
                        }),
                    );
                tokio::pin!(conn);
                loop {
                    tokio::select! {
                        r = conn.as_mut() => break match r {
                            Ok(()) => "the server closed the tunnel".to_string(),
                            Err(e) => format!("connection lost: {e}"),
                        },
                        Some(msg) = control.recv() => match msg {
                            Control::Ready => {
                                if let Some(welcome) = welcome.take() {
                                    let via = via.clone();
                                    let _ = events.send(Event::Connected { welcome, url_changed, via });
                                }
                            }
                            Control::Stop(reason) => {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                                return Err(ClientError::Stopped(reason));
                            }
                            Control::Move => {
                                // Streams in flight finish; the next connection
                                // goes to another node first, at once.
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                                moved_from = route.take();
                                let _ = events.send(Event::Disconnected {
                                    reason: "the server node is shutting down: moving to another".into(),
                                    retry_in: Duration::ZERO,
                                });
                                continue_now = true;
                                break String::new();
                            }
                        },
                        () = &mut shutdown => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                            return Ok(());
                        }
                    }
                }
            }
            Err(ConnectError::Refused(r))
                if r.code == ErrorCode::NameTaken && !asked_for_name && lease.is_some() =>
            {
                // The grace period ran out and someone took our random name: get a
                // new one rather than fail; the UI says the URL changed.
                lease = None;
                request = cfg.tunnel.clone();
                r.message
            }
            Err(e) if e.is_fatal() => return Err(ClientError::Fatal(e)),
            Err(e) => {
                if let ConnectError::Refused(Refusal {
                    retry_after_secs: Some(s),
                    ..
                }) = &e
                {
                    attempt = attempt.max(1);
                    let wait = Duration::from_secs(*s);
                    let _ = events.send(Event::Disconnected {
                        reason: e.to_string(),
                        retry_in: wait,
                    });
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        () = &mut shutdown => return Ok(()),
                    }
                }
                e.to_string()
            }
        };
        if continue_now {
            continue;
        }
        if !ever_connected {
            failed_first += 1;
            if cfg
                .first_connect_attempts
                .is_some_and(|n| failed_first >= n)
            {
                return Err(ClientError::NeverConnected {
                    server: cfg.server.clone(),
                    attempts: failed_first,
                    last: reason,
                });
            }
        }
        let retry_in = cfg.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        let _ = events.send(Event::Disconnected { reason, retry_in });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {},
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// What the client tells the server about itself: version, OS and host name
/// (shown in `beam list` and the dashboard as "from which machine").
fn client_string() -> String {
    let host: String = beam_proto::host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    format!(
        "beam/{} {} on {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        if host.is_empty() { "?" } else { &host }
    )
}
