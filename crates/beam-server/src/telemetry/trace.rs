//! Distributed tracing's data: the W3C trace context a request carries in its
//! `traceparent` header (<https://www.w3.org/TR/trace-context/>), the span
//! the edge records per visitor request, and their OTLP/JSON encoding
//! (the `ExportTraceServiceRequest` of OTLP over HTTP, JSON form).

use serde_json::{Value, json};

/// The header carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A position in a trace: the trace and the span that is the parent of
/// whatever comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// Whether spans of this trace are recorded.
    pub sampled: bool,
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TraceContext {
    /// Parses a `traceparent` value: `VERSION-TRACEID-SPANID-FLAGS`, lower-case
    /// hex. Version `ff` and all-zero ids are invalid; a later version may
    /// append fields, which are ignored (the specification's rule).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let mut v = [0u8; 1];
        hex_into(version, &mut v)?;
        if v[0] == 0xff || (v[0] == 0 && parts.next().is_some()) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut f = [0u8; 1];
        hex_into(trace, &mut trace_id)?;
        hex_into(span, &mut span_id)?;
        hex_into(flags, &mut f)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: f[0] & 1 == 1,
        })
    }

    /// The `traceparent` value (version 00).
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    /// A new trace.
    pub fn root(sampled: bool) -> Self {
        let mut trace_id: [u8; 16] = rand::random();
        trace_id[0] |= 1; // never all zero
        Self {
            trace_id,
            span_id: new_span_id(),
            sampled,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }
}

fn new_span_id() -> [u8; 8] {
    let mut id: [u8; 8] = rand::random();
    id[0] |= 1;
    id
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Its trace and id.
    pub ctx: TraceContext,
    /// The span it is a child of, when it continues a trace.
    pub parent: Option<[u8; 8]>,
    /// E.g. `GET`.
    pub name: String,
    /// Unix nanoseconds.
    pub start_ns: u64,
    /// Unix nanoseconds.
    pub end_ns: u64,
    /// Semantic-convention attributes.
    pub attrs: Vec<(&'static str, Attr)>,
    /// The request failed on the server's side (5xx).
    pub error: bool,
}

/// Now, in unix nanoseconds.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attr_json((key, value): &(&str, Attr)) -> Value {
    match value {
        Attr::Str(s) => json!({"key": key, "value": {"stringValue": s}}),
        Attr::Int(i) => json!({"key": key, "value": {"intValue": i.to_string()}}),
    }
}

/// `spans` as an OTLP/JSON `ExportTraceServiceRequest` from `service`
/// (ids in hex, times as decimal strings, kind SERVER).
pub fn encode(service: &str, node: &str, spans: &[Span]) -> Vec<u8> {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut v = json!({
                "traceId": hex(&s.ctx.trace_id),
                "spanId": hex(&s.ctx.span_id),
                "name": s.name,
                "kind": 2,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": s.attrs.iter().map(attr_json).collect::<Vec<_>>(),
                "status": {"code": if s.error { 2 } else { 0 }},
            });
            if let Some(p) = s.parent {
                v["parentSpanId"] = hex(&p).into();
            }
            v
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            attr_json(&("service.name", Attr::Str(service.to_string()))),
            attr_json(&("service.instance.id", Attr::Str(node.to_string()))),
            attr_json(&("service.version", Attr::Str(env!("CARGO_PKG_VERSION").to_string()))),
        ]},
        "scopeSpans": [{"scope": {"name": "beam"}, "spans": spans}],
    }]});
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_values_are_refused() {
        // The specification's example.
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(v).unwrap();
        assert!(ctx.sampled);
        assert_eq!(ctx.header(), v);
        assert!(
            !TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .sampled
        );
        // A later version may add fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
        let root = TraceContext::root(true);
        assert_eq!(TraceContext::parse(&root.header()), Some(root));
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let ctx =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = Span {
            ctx,
            parent: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            name: "GET".into(),
            start_ns: 1,
            end_ns: 2,
            attrs: vec![
                ("http.response.status_code", Attr::Int(502)),
                ("url.path", Attr::Str("/x".into())),
            ],
            error: true,
        };
        let v: Value = serde_json::from_slice(&encode("beam-server", "n1", &[span])).unwrap();
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["spanId"], "00f067aa0ba902b7");
        assert_eq!(s["parentSpanId"], "0102030405060708");
        assert_eq!(s["startTimeUnixNano"], "1");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][0]["value"]["intValue"], "502");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "beam-server"
        );
    }
}
