//! Watches an HTTP/1.1 connection the client only copies (a visitor
//! connection spliced to the local service): the [`Observer`] gets copies of
//! the bytes each way from a [`Tap`](super::tap::Tap), pairs requests with
//! responses through the [`framing`](super::framing) parsers, and records
//! each exchange as its response ends. An upgrade turns both directions into
//! WebSocket frame readers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::framing::{Framing, Next, Parser, Sink, framing_of, parse_request, parse_response};
use super::record::{Building, Recorder, WsLog};
use super::tap::Watch;
use super::ws::WsWatch;

/// The exchanges of one connection, in request order.
struct Book {
    rec: Arc<Recorder>,
    /// Requests whose responses have not ended, oldest first (responses
    /// come in request order, pipelined or not).
    queue: VecDeque<Building>,
    /// Set when a response switched protocols: both directions go opaque.
    upgraded: Option<Arc<Mutex<WsLog>>>,
}

struct Requests<'a>(&'a mut Book);
struct Responses<'a>(&'a mut Book);

impl Sink for Requests<'_> {
    fn head(&mut self, raw: &[u8]) -> Next {
        let Some((method, path, headers)) = parse_request(raw) else {
            return Next::Opaque;
        };
        let framing = framing_of(&headers).unwrap_or(Framing::Length(0));
        let cap = self.0.rec.limits().body_cap;
        let mut b = Building::new(&method, &path, headers, cap);
        if let Framing::Length(n) = framing {
            b.ex.request.body.expect(n);
        }
        self.0.queue.push_back(b);
        Next::Body(framing)
    }

    fn body(&mut self, data: &[u8]) {
        if let Some(b) = self.0.queue.back_mut() {
            b.ex.request.body.push(data);
        }
    }

    fn end(&mut self) {}
}

impl Sink for Responses<'_> {
    fn head(&mut self, raw: &[u8]) -> Next {
        let Some((code, headers)) = parse_response(raw) else {
            return Next::Opaque;
        };
        if (100..200).contains(&code) && code != 101 {
            return Next::Interim;
        }
        let Some(b) = self.0.queue.front_mut() else {
            return Next::Opaque;
        };
        b.response_head(code, headers);
        let head_only = b.ex.method.eq_ignore_ascii_case("HEAD");
        let connect = b.ex.method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&code);
        if code == 101 || connect {
            let log = Arc::new(Mutex::new(WsLog::default()));
            b.ex.websocket = Some(log.clone());
            self.0.upgraded = Some(log);
            self.end();
            return Next::Opaque;
        }
        if head_only || code == 204 || code == 304 {
            return Next::Body(Framing::Length(0));
        }
        let framing = framing_of(&b.ex.response.headers).unwrap_or(Framing::Close);
        if let Framing::Length(n) = framing {
            b.ex.response.body.expect(n);
        }
        Next::Body(framing)
    }

    fn body(&mut self, data: &[u8]) {
        if let Some(b) = self.0.queue.front_mut() {
            b.ex.response.body.push(data);
        }
    }

    fn end(&mut self) {
        if let Some(b) = self.0.queue.pop_front() {
            self.0.rec.record(b.finish(None));
        }
    }
}

/// Watches both directions of one connection.
pub struct Observer {
    book: Book,
    requests: Parser,
    responses: Parser,
    /// The frames each way, once a response switched protocols.
    ws: Option<WsWatch>,
}

impl Observer {
    /// Watches a new connection, recording into `rec`.
    pub fn new(rec: Arc<Recorder>) -> Self {
        Self {
            book: Book {
                rec,
                queue: VecDeque::new(),
                upgraded: None,
            },
            requests: Parser::default(),
            responses: Parser::default(),
            ws: None,
        }
    }
}

impl Watch for Observer {
    fn up(&mut self, data: &[u8]) {
        match &mut self.ws {
            Some(ws) => ws.up(data),
            None => {
                self.requests.feed(data, &mut Requests(&mut self.book));
            }
        }
    }

    fn down(&mut self, data: &[u8]) {
        if let Some(ws) = &mut self.ws {
            return ws.down(data);
        }
        let rest = self.responses.feed(data, &mut Responses(&mut self.book));
        if let Some(log) = self.book.upgraded.clone() {
            // What followed the 101 in the same read is the first frames.
            self.requests.opaque();
            let mut ws = WsWatch::new(log);
            ws.down(rest);
            self.ws = Some(ws);
        }
    }

    /// What the connection carried is recorded as it stands.
    fn close(&mut self) {
        if let Some(ws) = &mut self.ws {
            ws.close();
        }
        let to_close = self.responses.reads_to_close();
        let mut first = true;
        while let Some(b) = self.book.queue.pop_front() {
            let error = match (first && to_close, b.ex.status) {
                (true, _) => None,
                (false, Some(_)) => Some("the connection closed before the response ended"),
                (false, None) => Some("the connection closed before a response came"),
            };
            first = false;
            self.book.rec.record(b.finish(error.map(str::to_string)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::record::Limits;

    fn watch(up: &[&[u8]], down: &[&[u8]], split: usize) -> Vec<Arc<super::super::Exchange>> {
        let rec = Recorder::new(Limits {
            body_cap: 8,
            ..Limits::default()
        });
        let mut o = Observer::new(rec.clone());
        for part in up {
            for c in part.chunks(split) {
                o.up(c);
            }
        }
        for part in down {
            for c in part.chunks(split) {
                o.down(c);
            }
        }
        o.close();
        let mut list = rec.list(100);
        list.reverse();
        list
    }

    #[test]
    fn pipelined_requests_pair_with_their_responses_in_order() {
        for split in [1, 3, 1000] {
            let got = watch(
                &[b"POST /a?q=1 HTTP/1.1\r\nHost: h\r\nX-Real-IP: 203.0.113.9\r\nContent-Length: 5\r\n\r\nhello",
                  b"GET /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
                  b"HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n"],
                &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                  b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwxyz\r\n6\r\n123456\r\n0\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"],
                split,
            );
            let brief: Vec<_> = got
                .iter()
                .map(|e| {
                    (
                        e.method.as_str(),
                        e.path.as_str(),
                        e.status,
                        e.error.is_none(),
                    )
                })
                .collect();
            assert_eq!(
                brief,
                vec![
                    ("POST", "/a?q=1", Some(201), true),
                    ("GET", "/b", Some(200), true),
                    ("HEAD", "/c", Some(200), true)
                ],
                "split {split}"
            );
            assert_eq!(got[0].request.body.bytes, b"hello");
            assert_eq!(got[0].visitor.as_deref(), Some("203.0.113.9"));
            assert_eq!(got[0].response.body.bytes, b"ok");
            assert_eq!(got[1].request.body.bytes, b"abc");
            // The cap is 8: the 10-byte chunked body is cut, its size kept.
            assert_eq!(got[1].response.body.bytes, b"wxyz1234");
            assert_eq!(got[1].response.body.size, 10);
            assert!(got[1].response.body.truncated());
            assert_eq!(got[2].response.body.size, 0);
            assert_eq!(
                got[0].request.headers[1],
                ("X-Real-IP".to_string(), b"203.0.113.9".to_vec())
            );
        }
    }

    #[test]
    fn a_body_to_close_ends_with_the_connection_and_cut_ones_say_so() {
        let got = watch(
            &[b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"],
            &[b"HTTP/1.1 200 OK\r\n\r\nall of it"],
            4,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].response.body.bytes, b"all of i");
        assert_eq!(got[0].response.body.size, 9);
        assert!(got[0].error.is_none());

        let got = watch(
            &[b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"],
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
            5,
        );
        assert_eq!(got.len(), 2);
        assert!(
            got[0]
                .error
                .as_deref()
                .unwrap()
                .contains("before the response ended")
        );
        assert!(
            got[1]
                .error
                .as_deref()
                .unwrap()
                .contains("before a response came")
        );
    }

    #[test]
    fn an_upgrade_is_recorded_and_its_frames_logged() {
        let rec = Recorder::new(Limits::default());
        let mut o = Observer::new(rec.clone());
        o.up(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        o.down(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi");
        o.up(b"\x81\x83\x01\x02\x03\x04");
        o.up(&[b'y' ^ 1, b'o' ^ 2, b'u' ^ 3]);
        let ex = rec.list(1).pop().unwrap();
        assert_eq!(ex.status, Some(101));
        o.close();
        let ws = ex.websocket.as_ref().unwrap().lock().unwrap();
        let frames: Vec<_> = ws
            .frames
            .iter()
            .map(|f| (f.up, f.payload.clone()))
            .collect();
        assert_eq!(
            frames,
            vec![(false, b"hi".to_vec()), (true, b"you".to_vec())]
        );
        assert!(ws.closed);
    }

    #[test]
    fn garbage_stops_the_watching_without_recording_nonsense() {
        let got = watch(&[b"\x16\x03\x01 not http\r\n\r\n"], &[b"whatever"], 7);
        assert!(got.is_empty());
    }
}
