//! Watches an HTTP/1.1 connection the client only copies (a visitor
//! connection spliced to the local service): a [`Tap`] around the local side
//! hands copies of the bytes each way to parsers that find request and
//! response heads and bodies, and records each exchange as its response
//! ends. The stream itself is never held back or buffered: the parsers only
//! look at bytes already written or read.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::record::{Building, Recorder, WsLog};
use super::ws::FrameReader;

/// Largest head kept for parsing; a longer one stops the watching (the edge
/// refuses such heads before they get here).
const MAX_HEAD: usize = 64 << 10;
/// Most header lines parsed.
const MAX_HEADERS: usize = 256;

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (a response with neither).
    Close,
}

/// What follows a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A body framed so (possibly empty).
    Body(Framing),
    /// An interim response (1xx): another head follows.
    Interim,
    /// No more HTTP: an upgrade, or something that could not be parsed.
    Opaque,
}

/// Receives what a [`Parser`] finds.
pub(crate) trait Sink {
    /// A complete head (request or status line, headers and the blank
    /// line); says what follows it.
    fn head(&mut self, raw: &[u8]) -> Next;
    /// Body bytes (chunk payloads, not their framing).
    fn body(&mut self, data: &[u8]);
    /// The body ended.
    fn end(&mut self);
}

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd(u8),
    Trailers,
    Close,
    Opaque,
}

/// One direction's parser.
#[derive(Debug)]
pub(crate) struct Parser {
    state: State,
    /// The head (or chunk-size / trailer line) read so far.
    line: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            state: State::Head,
            line: Vec::new(),
        }
    }
}

impl Parser {
    /// Stops parsing: the rest is opaque bytes.
    pub(crate) fn opaque(&mut self) {
        self.state = State::Opaque;
        self.line = Vec::new();
    }

    /// Whether a body read to the connection's close is in progress.
    pub(crate) fn reads_to_close(&self) -> bool {
        matches!(self.state, State::Close)
    }

    /// Feeds bytes in the order they crossed; returns what followed the
    /// point where HTTP ended (an upgrade's first bytes).
    pub(crate) fn feed<'a>(&mut self, mut data: &'a [u8], sink: &mut impl Sink) -> &'a [u8] {
        while !data.is_empty() {
            match &mut self.state {
                State::Opaque => return data,
                State::Head => {
                    // Search only where the end could newly be.
                    let from = self.line.len().saturating_sub(3);
                    let take = data.len().min(MAX_HEAD + 4 - self.line.len().min(MAX_HEAD));
                    self.line.extend_from_slice(&data[..take]);
                    let Some(end) = find(&self.line[from..], b"\r\n\r\n").map(|i| from + i + 4)
                    else {
                        if self.line.len() > MAX_HEAD {
                            self.opaque();
                        }
                        return &[];
                    };
                    // What was appended past the head is the next part's.
                    let extra = self.line.len() - end;
                    data = &data[take - extra..];
                    let head = std::mem::take(&mut self.line);
                    self.state = match sink.head(&head[..end]) {
                        Next::Interim => State::Head,
                        Next::Opaque => State::Opaque,
                        Next::Body(Framing::Length(0)) => {
                            sink.end();
                            State::Head
                        }
                        Next::Body(Framing::Length(n)) => State::Length(n),
                        Next::Body(Framing::Chunked) => State::ChunkSize,
                        Next::Body(Framing::Close) => State::Close,
                    };
                }
                State::Length(left) => {
                    let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    sink.body(&data[..n]);
                    *left -= n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        sink.end();
                        self.state = State::Head;
                    }
                }
                State::Close => {
                    sink.body(data);
                    return &[];
                }
                State::ChunkSize | State::Trailers => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(data);
                        if self.line.len() > MAX_HEAD {
                            self.opaque();
                        }
                        return &[];
                    };
                    self.line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if matches!(self.state, State::Trailers) {
                        if line.is_empty() {
                            sink.end();
                            self.state = State::Head;
                        }
                        continue;
                    }
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                    self.state = match size {
                        Some(0) => State::Trailers,
                        Some(n) => State::ChunkData(n),
                        None => State::Opaque,
                    };
                }
                State::ChunkData(left) => {
                    let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    sink.body(&data[..n]);
                    *left -= n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::ChunkEnd(2);
                    }
                }
                State::ChunkEnd(left) => {
                    let n = data.len().min(usize::from(*left));
                    data = &data[n..];
                    *left -= n as u8;
                    if *left == 0 {
                        self.state = State::ChunkSize;
                    }
                }
            }
        }
        &[]
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header lines parsed on the stack; a head with more is parsed again with
/// room for [`MAX_HEADERS`].
const STACK_HEADERS: usize = 48;

/// Headers in order, as the inspector keeps them.
type Headers = Vec<(String, Vec<u8>)>;

/// `(method, path, headers)` of a request head.
fn parse_request(raw: &[u8]) -> Option<(String, String, Headers)> {
    fn with<'a>(
        raw: &'a [u8],
        hs: &mut [httparse::Header<'a>],
    ) -> Result<Option<(String, String, Headers)>, httparse::Error> {
        let mut req = httparse::Request::new(hs);
        Ok(match req.parse(raw)? {
            httparse::Status::Complete(_) => match (req.method, req.path) {
                (Some(m), Some(p)) => Some((m.to_string(), p.to_string(), headers_of(req.headers))),
                _ => None,
            },
            httparse::Status::Partial => None,
        })
    }
    match with(raw, &mut [httparse::EMPTY_HEADER; STACK_HEADERS]) {
        Err(httparse::Error::TooManyHeaders) => {
            with(raw, &mut vec![httparse::EMPTY_HEADER; MAX_HEADERS])
                .ok()
                .flatten()
        }
        r => r.ok().flatten(),
    }
}

/// `(status, headers)` of a response head.
fn parse_response(raw: &[u8]) -> Option<(u16, Headers)> {
    fn with<'a>(
        raw: &'a [u8],
        hs: &mut [httparse::Header<'a>],
    ) -> Result<Option<(u16, Headers)>, httparse::Error> {
        let mut resp = httparse::Response::new(hs);
        Ok(match resp.parse(raw)? {
            httparse::Status::Complete(_) => resp.code.map(|c| (c, headers_of(resp.headers))),
            httparse::Status::Partial => None,
        })
    }
    match with(raw, &mut [httparse::EMPTY_HEADER; STACK_HEADERS]) {
        Err(httparse::Error::TooManyHeaders) => {
            with(raw, &mut vec![httparse::EMPTY_HEADER; MAX_HEADERS])
                .ok()
                .flatten()
        }
        r => r.ok().flatten(),
    }
}

/// Headers of a parsed head, in order.
pub(crate) fn headers_of(parsed: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    parsed
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}

fn has_token(headers: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .any(|(_, v)| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
}

/// The framing `Transfer-Encoding` / `Content-Length` give, if any.
pub(crate) fn framing_of(headers: &[(String, Vec<u8>)]) -> Option<Framing> {
    if has_token(headers, "transfer-encoding", "chunked") {
        return Some(Framing::Chunked);
    }
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .map(Framing::Length)
}

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
pub(crate) struct Observer {
    book: Book,
    requests: Parser,
    responses: Parser,
    /// Frames of an upgraded WebSocket, each way.
    ws_up: FrameReader,
    ws_down: FrameReader,
}

impl Observer {
    /// Watches a new connection, recording into `rec`.
    pub(crate) fn new(rec: Arc<Recorder>) -> Self {
        Self {
            book: Book {
                rec,
                queue: VecDeque::new(),
                upgraded: None,
            },
            requests: Parser::default(),
            responses: Parser::default(),
            ws_up: FrameReader::new(true),
            ws_down: FrameReader::new(false),
        }
    }

    /// Bytes from the visitor, as written to the local service.
    pub(crate) fn up(&mut self, data: &[u8]) {
        if let Some(log) = &self.book.upgraded {
            self.ws_up.feed(data, log);
            return;
        }
        self.requests.feed(data, &mut Requests(&mut self.book));
    }

    /// Bytes from the local service, as read for the visitor.
    pub(crate) fn down(&mut self, data: &[u8]) {
        if let Some(log) = &self.book.upgraded {
            self.ws_down.feed(data, log);
            return;
        }
        let rest = self.responses.feed(data, &mut Responses(&mut self.book));
        if let Some(log) = &self.book.upgraded {
            self.requests.opaque();
            self.ws_down.feed(rest, log);
        }
    }

    /// The connection closed: what it carried is recorded as it stands.
    pub(crate) fn close(&mut self) {
        if let Some(log) = &self.book.upgraded {
            log.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
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

/// The local side of a spliced connection, with an [`Observer`] watching
/// what crosses it.
pub struct Tap<S> {
    io: S,
    observer: Observer,
}

impl<S> Tap<S> {
    /// Watches `io`, recording into `rec`.
    pub fn new(io: S, rec: Arc<Recorder>) -> Self {
        Self {
            io,
            observer: Observer::new(rec),
        }
    }
}

impl<S> Drop for Tap<S> {
    fn drop(&mut self) {
        self.observer.close();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        let this = &mut *self;
        this.observer.down(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.observer.up(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
