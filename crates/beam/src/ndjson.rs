//! Splitting a streamed body into NDJSON lines across chunk boundaries: the
//! one line reader behind `beam logs`, `beam webhook` and `beam sync`.

/// Bytes received so far, handed out a complete line at a time.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// Start of the first line not handed out yet.
    start: usize,
}

impl Lines {
    /// Appends a received chunk (after dropping what was handed out, so the
    /// buffer holds at most one partial line plus the new chunk).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its `\n`.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.start..];
        let i = rest.iter().position(|b| *b == b'\n')?;
        let line = &self.buf[self.start..self.start + i];
        self.start += i + 1;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut l = Lines::default();
        l.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(l.next_line(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(l.next_line(), None);
        l.push(b":2}\n\n");
        assert_eq!(l.next_line(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(l.next_line(), Some(&b""[..]));
        assert_eq!(l.next_line(), None);
    }
}
