//! Cutting a byte stream into log lines of bounded length, for the app's
//! output and for followed files alike.

/// Longest line kept as one entry; longer output is split (a stream without
/// newlines must not grow a buffer without bound).
pub const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `line` for each complete (or over-long) line.
    pub fn feed(&mut self, mut data: &[u8], mut line: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let nl = data.iter().position(|b| *b == b'\n');
            let (take, complete) = match nl {
                Some(i) if i < room => (i + 1, true),
                _ if data.len() >= room => (room, true),
                _ => (data.len(), false),
            };
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if complete {
                line(&self.partial);
                self.partial.clear();
            }
        }
    }

    /// Emits a last line without a newline, if any.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            line(&self.partial);
            self.partial.clear();
        }
    }
}
