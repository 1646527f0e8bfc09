//! A visitor request's span at this node, when traces are configured: it
//! continues the trace the request arrived with (`traceparent`), or starts
//! one, and hands itself on as the parent of what follows (the node that
//! holds the tunnel, then the tunnel client and the app behind it, which
//! receive the rewritten header).

use http::Request;
use http::header::HeaderValue;

use crate::telemetry::otlp::Tracer;
use crate::telemetry::trace::{Attr, Span, TRACEPARENT, TraceContext, now_ns};

/// A span in progress.
pub(crate) struct Traced {
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    start_ns: u64,
    method: String,
    path: String,
    host: String,
    client: String,
    hops: u8,
    /// Answered by the node holding the tunnel, through this one.
    pub(crate) forwarded: bool,
}

impl Traced {
    /// Starts the span of `req`, or `None` when it is not sampled. The first
    /// node decides sampling itself: a visitor's `sampled` flag could
    /// otherwise make every request recorded. Its trace id is kept, so the
    /// visitor's own trace links up. Nodes after a hop follow the first's
    /// decision, which only a cluster node can send (`beam-node-*` headers
    /// prove the hop).
    pub(crate) fn start<B>(
        tracer: &Tracer,
        req: &mut Request<B>,
        hops: u8,
        host: &str,
        client: std::net::IpAddr,
    ) -> Option<Self> {
        let incoming = req
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let sampled = if hops == 0 {
            tracer.sample()
        } else {
            incoming.is_some_and(|c| c.sampled)
        };
        let ctx = match incoming {
            Some(p) => TraceContext {
                sampled,
                ..p.child()
            },
            None if sampled => TraceContext::root(true),
            None => return None,
        };
        if let Ok(v) = HeaderValue::from_str(&ctx.header()) {
            req.headers_mut().insert(TRACEPARENT, v);
        }
        sampled.then(|| Self {
            ctx,
            parent: incoming.map(|p| p.span_id),
            start_ns: now_ns(),
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            host: host.to_string(),
            client: client.to_string(),
            hops,
            forwarded: false,
        })
    }

    /// Ends the span with the response's `status` and queues it.
    pub(crate) fn finish(self, tracer: &Tracer, status: u16, node: &str) {
        let mut attrs = vec![
            ("http.request.method", Attr::Str(self.method.clone())),
            ("url.path", Attr::Str(self.path)),
            ("server.address", Attr::Str(self.host)),
            ("client.address", Attr::Str(self.client)),
            ("http.response.status_code", Attr::Int(i64::from(status))),
            ("beam.node", Attr::Str(node.to_string())),
            ("beam.hops", Attr::Int(i64::from(self.hops))),
        ];
        if self.forwarded {
            attrs.push(("beam.forwarded", Attr::Int(1)));
        }
        tracer.record(Span {
            ctx: self.ctx,
            parent: self.parent,
            name: self.method,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attrs,
            error: status >= 500,
        });
    }
}
