//! Incremental HTTP/1.1 framing for the inspector: finds each head and
//! body in one direction's bytes, fed in whatever pieces they crossed in,
//! and hands them to a [`Sink`]. Heads are parsed with `httparse`, on the
//! stack unless a head has many header lines.

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
pub(crate) type Headers = Vec<(String, Vec<u8>)>;

/// Runs `parse` with room for [`STACK_HEADERS`] header lines on the stack,
/// and again with [`MAX_HEADERS`] on the heap when that was too few.
fn with_room<'a, T>(
    raw: &'a [u8],
    parse: impl Fn(&'a [u8], &mut [httparse::Header<'a>]) -> Result<Option<T>, httparse::Error>,
) -> Option<T> {
    match parse(raw, &mut [httparse::EMPTY_HEADER; STACK_HEADERS]) {
        Err(httparse::Error::TooManyHeaders) => {
            parse(raw, &mut vec![httparse::EMPTY_HEADER; MAX_HEADERS])
                .ok()
                .flatten()
        }
        r => r.ok().flatten(),
    }
}

/// `(method, path, headers)` of a request head.
pub(crate) fn parse_request(raw: &[u8]) -> Option<(String, String, Headers)> {
    with_room(raw, |raw, hs| {
        let mut req = httparse::Request::new(hs);
        Ok(match req.parse(raw)? {
            httparse::Status::Complete(_) => match (req.method, req.path) {
                (Some(m), Some(p)) => Some((m.to_string(), p.to_string(), headers_of(req.headers))),
                _ => None,
            },
            httparse::Status::Partial => None,
        })
    })
}

/// `(status, headers)` of a response head.
pub(crate) fn parse_response(raw: &[u8]) -> Option<(u16, Headers)> {
    with_room(raw, |raw, hs| {
        let mut resp = httparse::Response::new(hs);
        Ok(match resp.parse(raw)? {
            httparse::Status::Complete(_) => resp.code.map(|c| (c, headers_of(resp.headers))),
            httparse::Status::Partial => None,
        })
    })
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
