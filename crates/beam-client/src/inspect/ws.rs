//! Reads WebSocket frames (RFC 6455 §5.2) from copies of one direction's
//! bytes, for the inspector: each frame's opcode, length and the start of its
//! payload, unmasked, into a bounded [`WsLog`].

use std::sync::{Arc, Mutex};

use super::record::{WS_FRAME_BYTES, WS_FRAMES, WsFrame, WsLog};
use super::tap::Watch;

/// The frames of an upgraded WebSocket, each way, into its log.
pub struct WsWatch {
    log: Arc<Mutex<WsLog>>,
    up: FrameReader,
    down: FrameReader,
}

impl WsWatch {
    /// Logs into `log` from now on.
    pub fn new(log: Arc<Mutex<WsLog>>) -> Self {
        Self {
            log,
            up: FrameReader::new(true),
            down: FrameReader::new(false),
        }
    }
}

impl Watch for WsWatch {
    fn up(&mut self, data: &[u8]) {
        self.up.feed(data, &self.log);
    }

    fn down(&mut self, data: &[u8]) {
        self.down.feed(data, &self.log);
    }

    fn close(&mut self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
    }
}

/// Frames of one direction.
#[derive(Debug)]
pub(crate) struct FrameReader {
    up: bool,
    started: tokio::time::Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading a frame header (at most 14 bytes).
    Header { buf: [u8; 14], have: usize },
    /// Reading a payload: bytes left, its mask and offset, and the index
    /// of its kept frame (when kept).
    Payload {
        left: u64,
        mask: Option<[u8; 4]>,
        offset: usize,
        kept: Option<usize>,
    },
}

impl FrameReader {
    /// A reader of frames from the visitor (`up`) or to it.
    pub(crate) fn new(up: bool) -> Self {
        Self {
            up,
            started: tokio::time::Instant::now(),
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
        }
    }

    /// Feeds bytes in the order they crossed, logging into `log`.
    pub(crate) fn feed(&mut self, mut data: &[u8], log: &Mutex<WsLog>) {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if self.up {
            log.up_bytes += data.len() as u64;
        } else {
            log.down_bytes += data.len() as u64;
        }
        while !data.is_empty() {
            match &mut self.state {
                State::Header { buf, have } => {
                    let need = header_len(&buf[..*have]);
                    let n = (need - *have).min(data.len());
                    buf[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data = &data[n..];
                    if *have < header_len(&buf[..*have]) {
                        continue;
                    }
                    let (opcode, len, mask) = parse_header(&buf[..*have]);
                    let kept = if log.frames.len() < WS_FRAMES {
                        log.frames.push(WsFrame {
                            at_ms: self.started.elapsed().as_millis() as u64,
                            up: self.up,
                            opcode,
                            len,
                            payload: Vec::new(),
                        });
                        Some(log.frames.len() - 1)
                    } else {
                        log.frames_dropped += 1;
                        None
                    };
                    self.state = State::Payload {
                        left: len,
                        mask,
                        offset: 0,
                        kept,
                    };
                    self.next_if_done();
                }
                State::Payload {
                    left,
                    mask,
                    offset,
                    kept,
                } => {
                    let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    if let Some(frame) = kept.and_then(|i| log.frames.get_mut(i)) {
                        let room = WS_FRAME_BYTES.saturating_sub(frame.payload.len());
                        for (i, &b) in data[..n.min(room)].iter().enumerate() {
                            let k = mask.map_or(0, |m| m[(*offset + i) % 4]);
                            frame.payload.push(b ^ k);
                        }
                    }
                    *offset += n;
                    *left -= n as u64;
                    data = &data[n..];
                    self.next_if_done();
                }
            }
        }
    }

    fn next_if_done(&mut self) {
        if matches!(self.state, State::Payload { left: 0, .. }) {
            self.state = State::Header {
                buf: [0; 14],
                have: 0,
            };
        }
    }
}

/// The header's full length, from what of it has arrived (2 until the
/// length byte is known).
fn header_len(have: &[u8]) -> usize {
    if have.len() < 2 {
        return 2;
    }
    let masked = if have[1] & 0x80 != 0 { 4 } else { 0 };
    2 + masked
        + match have[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        }
}

/// `(opcode, payload length, mask)` of a complete header.
fn parse_header(h: &[u8]) -> (u8, u64, Option<[u8; 4]>) {
    let opcode = h[0] & 0x0f;
    let (len, at) = match h[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
        127 => (
            u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            10,
        ),
        n => (u64::from(n), 2),
    };
    let mask = (h[1] & 0x80 != 0).then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
    (opcode, len, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = mask {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        } else {
            f.extend_from_slice(payload);
        }
        f
    }

    #[test]
    fn frames_split_anywhere_are_read_and_unmasked() {
        let mut wire = frame(1, b"hello", Some([1, 2, 3, 4]));
        wire.extend(frame(2, &vec![7u8; 70_000], Some([9, 9, 9, 9])));
        wire.extend(frame(8, b"", Some([0, 0, 0, 0])));
        let log = Mutex::new(WsLog::default());
        let mut r = FrameReader::new(true);
        for chunk in wire.chunks(3) {
            r.feed(chunk, &log);
        }
        let log = log.into_inner().unwrap();
        assert_eq!(log.up_bytes, wire.len() as u64);
        let got: Vec<(u8, u64)> = log.frames.iter().map(|f| (f.opcode, f.len)).collect();
        assert_eq!(got, vec![(1, 5), (2, 70_000), (8, 0)]);
        assert_eq!(log.frames[0].payload, b"hello");
        assert_eq!(log.frames[1].payload.len(), WS_FRAME_BYTES);
        assert!(log.frames[1].payload.iter().all(|&b| b == 7));
    }

    #[test]
    fn frames_past_the_bound_are_counted_not_kept() {
        let log = Mutex::new(WsLog::default());
        let mut r = FrameReader::new(false);
        for _ in 0..WS_FRAMES + 5 {
            r.feed(&frame(1, b"x", None), &log);
        }
        let log = log.into_inner().unwrap();
        assert_eq!(log.frames.len(), WS_FRAMES);
        assert_eq!(log.frames_dropped, 5);
    }
}
