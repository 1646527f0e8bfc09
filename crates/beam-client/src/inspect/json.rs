//! The inspector's JSON: one exchange as the API and the page show it, and
//! HAR 1.2 (the format browser devtools import) for one exchange or all.

use std::io::Read;

use base64::Engine;
use serde_json::{Value, json};

use super::record::{Capture, Exchange, Message, Summary};

/// `body` as text when it is UTF-8, else `body_base64`; its real size, and
/// whether bytes were left out.
fn body_json(c: &Capture) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    match std::str::from_utf8(&c.bytes) {
        Ok(text) => m.insert("body".into(), text.into()),
        Err(_) => m.insert(
            "body_base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&c.bytes)
                .into(),
        ),
    };
    m.insert("size".into(), c.size.into());
    m.insert("truncated".into(), c.truncated().into());
    m
}

/// The body decompressed, when its `Content-Encoding` is gzip, deflate or
/// br and the whole body was kept; `None` otherwise.
pub fn decoded(msg: &Message) -> Option<Vec<u8>> {
    let enc = msg.header("content-encoding")?.trim().to_ascii_lowercase();
    if msg.body.truncated() {
        return None;
    }
    let mut out = Vec::new();
    // Bounded: a small gzip bomb must not blow up the inspector.
    let limit = 16u64 << 20;
    let read = match enc.as_str() {
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(&msg.body.bytes[..])
            .take(limit)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&msg.body.bytes[..])
            .take(limit)
            .read_to_end(&mut out),
        "br" => brotli_decompressor::Decompressor::new(&msg.body.bytes[..], 4096)
            .take(limit)
            .read_to_end(&mut out),
        _ => return None,
    };
    read.ok().map(|_| out)
}

fn message_json(msg: &Message) -> Value {
    let headers: Vec<Value> = msg
        .headers
        .iter()
        .map(|(n, v)| json!([n, String::from_utf8_lossy(v)]))
        .collect();
    let mut m = body_json(&msg.body);
    m.insert("headers".into(), headers.into());
    if let Some(d) = decoded(msg) {
        let text = String::from_utf8(d).map_or_else(
            |e| {
                json!({ "decoded_base64":
                    base64::engine::general_purpose::STANDARD.encode(e.as_bytes()) })
            },
            |t| json!({ "decoded": t }),
        );
        if let Value::Object(o) = text {
            m.extend(o);
        }
    }
    Value::Object(m)
}

/// An exchange as `GET /api/requests/{id}` answers it.
pub fn exchange_json(ex: &Exchange) -> Value {
    let mut v = json!({
        "id": ex.id,
        "replay_of": ex.replay_of,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "duration_ms": round(ex.duration_ms),
        "first_byte_ms": ex.first_byte_ms.map(round),
        "started_at": beam_proto::time::format_rfc3339_ms(ex.started_at_ms as i64),
        "visitor": ex.visitor,
        "request_id": ex.request_id,
        "error": ex.error,
        "request": message_json(&ex.request),
        "response": message_json(&ex.response),
    });
    if let Some(ws) = &ex.websocket {
        let ws = ws.lock().unwrap_or_else(|e| e.into_inner());
        let frames: Vec<Value> = ws
            .frames
            .iter()
            .map(|f| {
                let mut m = json!({
                    "at_ms": f.at_ms,
                    "direction": if f.up { "up" } else { "down" },
                    "opcode": f.opcode,
                    "size": f.len,
                    "truncated": f.len > f.payload.len() as u64,
                });
                match (f.opcode, std::str::from_utf8(&f.payload)) {
                    (1 | 0 | 8, Ok(t)) => m["text"] = t.into(),
                    _ => {
                        m["base64"] = base64::engine::general_purpose::STANDARD
                            .encode(&f.payload)
                            .into()
                    }
                }
                m
            })
            .collect();
        v["websocket"] = json!({
            "up_bytes": ws.up_bytes,
            "down_bytes": ws.down_bytes,
            "closed": ws.closed,
            "frames": frames,
            "frames_dropped": ws.frames_dropped,
        });
    }
    v
}

/// A short form for the live list and the event stream (no bodies).
pub fn summary_json(s: &Summary) -> Value {
    json!({
        "id": s.id,
        "replay_of": s.replay_of,
        "method": s.method,
        "path": s.path,
        "status": s.status,
        "duration_ms": round(s.duration_ms),
        "started_at": beam_proto::time::format_rfc3339_ms(s.started_at_ms as i64),
        "error": s.error,
        "websocket": s.websocket,
        "request_size": s.request_size,
        "response_size": s.response_size,
    })
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn har_headers(msg: &Message) -> Vec<Value> {
    msg.headers
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": String::from_utf8_lossy(v) }))
        .collect()
}

fn har_content(msg: &Message) -> Value {
    let mime = msg.header("content-type").unwrap_or("").to_string();
    let body = decoded(msg).unwrap_or_else(|| msg.body.bytes.clone());
    let mut c = json!({ "size": body.len(), "mimeType": mime });
    match String::from_utf8(body) {
        Ok(t) => c["text"] = t.into(),
        Err(e) => {
            c["text"] = base64::engine::general_purpose::STANDARD
                .encode(e.as_bytes())
                .into();
            c["encoding"] = "base64".into();
        }
    }
    if msg.body.truncated() {
        c["comment"] = format!("truncated by beam: {} bytes in all", msg.body.size).into();
    }
    c
}

/// One HAR entry.
fn har_entry(ex: &Exchange) -> Value {
    let scheme = ex.request.header("x-forwarded-proto").unwrap_or("http");
    let host = ex.request.header("host").unwrap_or("localhost");
    let url = format!("{scheme}://{host}{}", ex.path);
    let query: Vec<Value> = ex
        .path
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (n, v) = p.split_once('=').unwrap_or((p, ""));
                    json!({ "name": n, "value": v })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut request = json!({
        "method": ex.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": har_headers(&ex.request),
        "queryString": query,
        "headersSize": -1,
        "bodySize": ex.request.body.size,
    });
    if ex.request.body.size > 0 {
        let content = har_content(&ex.request);
        request["postData"] = json!({
            "mimeType": content["mimeType"],
            "text": content["text"],
        });
    }
    let wait = ex.first_byte_ms.unwrap_or(ex.duration_ms);
    json!({
        "startedDateTime": beam_proto::time::format_rfc3339_ms(ex.started_at_ms as i64),
        "time": round(ex.duration_ms),
        "request": request,
        "response": {
            "status": ex.status.unwrap_or(0),
            "statusText": ex.status.and_then(|s| http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason()).unwrap_or(""),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": har_headers(&ex.response),
            "content": har_content(&ex.response),
            "redirectURL": ex.response.header("location").unwrap_or(""),
            "headersSize": -1,
            "bodySize": ex.response.body.size,
        },
        "cache": {},
        "timings": {
            "send": 0,
            "wait": round(wait),
            "receive": round((ex.duration_ms - wait).max(0.0)),
        },
        "comment": ex.replay_of.map(|id| format!("replay of #{id}")).unwrap_or_default(),
    })
}

/// A HAR 1.2 log of `exchanges`, oldest first as HAR expects.
pub fn har(exchanges: &[std::sync::Arc<Exchange>]) -> Value {
    let mut entries: Vec<Value> = exchanges.iter().map(|e| har_entry(e)).collect();
    entries.reverse();
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "beam", "version": env!("CARGO_PKG_VERSION") },
            "pages": [],
            "entries": entries,
        }
    })
}
