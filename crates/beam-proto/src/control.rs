//! The server's control messages on a tunnel connection: "you are routable",
//! "you were stopped, do not come back" and "this node is draining, move to
//! another". They travel as ordinary HTTP/2
//! streams from the server, told apart from visitor streams by an authority no
//! visitor request can carry (the edge always sets the visitor's host and
//! strips `beam-*` headers from visitors).

use http::{HeaderValue, Method, Request};

/// Header naming the message (`ready`, `stop` or `move`).
pub const HEADER: &str = "beam-control";
/// Header carrying a stop's reason, shown to the user.
pub const REASON_HEADER: &str = "beam-reason";
/// The authority of control streams.
const AUTHORITY: &str = "beam-control";
/// What a client says when a stop came without a (readable) reason.
const DEFAULT_REASON: &str = "the tunnel was stopped on the server";

/// One control message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The tunnel is routable: the client may say it is online.
    Ready,
    /// The tunnel was stopped through the API or `beam stop`: reconnecting
    /// would bring back what the user stopped.
    Stop(String),
    /// This server node is shutting down while others serve the same
    /// database: reconnect now, to another node first, with the lease.
    /// (Older clients read an unknown message as `Ready` and reconnect when
    /// the node closes.)
    Move,
}

impl Control {
    /// The request that carries this message to the client.
    pub fn request<B>(&self, body: B) -> Request<B> {
        let (path, kind) = match self {
            Control::Ready => ("ready", "ready"),
            Control::Stop(_) => ("stop", "stop"),
            Control::Move => ("move", "move"),
        };
        let mut req = Request::new(body);
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("http://{AUTHORITY}/{path}")
            .parse()
            .expect("a fixed, valid URI");
        let headers = req.headers_mut();
        headers.insert(HEADER, HeaderValue::from_static(kind));
        if let Control::Stop(reason) = self {
            // A reason that is not a valid header value is dropped, not the stop.
            if let Ok(v) = HeaderValue::from_str(reason) {
                headers.insert(REASON_HEADER, v);
            }
        }
        req
    }

    /// The message `req` carries, or `None` when it is a stream for the
    /// tunnel's handler.
    pub fn parse<B>(req: &Request<B>) -> Option<Self> {
        let kind = req.headers().get(HEADER)?;
        if req.uri().authority().map(|a| a.as_str()) != Some(AUTHORITY) {
            return None;
        }
        Some(match kind.as_bytes() {
            b"stop" => Control::Stop(
                req.headers()
                    .get(REASON_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(DEFAULT_REASON)
                    .to_string(),
            ),
            b"move" => Control::Move,
            _ => Control::Ready,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_visitor_requests_are_not_control() {
        for msg in [
            Control::Ready,
            Control::Stop("over quota".into()),
            Control::Move,
        ] {
            assert_eq!(Control::parse(&msg.request(())), Some(msg));
        }
        // A reason that cannot be a header still stops the tunnel.
        let stop = Control::Stop("bad\nreason".into()).request(());
        assert_eq!(
            Control::parse(&stop),
            Some(Control::Stop(DEFAULT_REASON.into()))
        );
        // The header alone, on a visitor's authority, is not a control message.
        let mut visitor = Request::new(());
        *visitor.uri_mut() = "http://app.example.dev/".parse().unwrap();
        visitor
            .headers_mut()
            .insert(HEADER, HeaderValue::from_static("stop"));
        assert_eq!(Control::parse(&visitor), None);
    }
}
