//! Reading tokens one per line with bounded memory: a line longer than the size cap is
//! counted and skipped, never buffered, so a 50 MB line costs no more memory than a short one.

use std::io::{self, BufRead};

/// One input line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line within the cap, without its terminator (`\n` or `\r\n`).
    Text(String),
    /// A line over the cap: its length in bytes (without terminator); its content was skipped.
    TooLong(usize),
    /// A line within the cap that is not UTF-8 (so it cannot be a token).
    NotUtf8,
}

/// Splits a reader into [`Line`]s, buffering at most `limit + 1` bytes of any line.
#[derive(Debug)]
pub(crate) struct BoundedLines<R> {
    reader: R,
    limit: usize,
}

impl<R: BufRead> BoundedLines<R> {
    /// Lines of `reader`; lines longer than `limit` bytes are reported as [`Line::TooLong`].
    pub(crate) fn new(reader: R, limit: usize) -> Self {
        BoundedLines { reader, limit }
    }

    /// The next line, or `None` at the end of input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line>> {
        let cap = self.limit.saturating_add(1);
        let mut buf: Vec<u8> = Vec::new();
        let mut len = 0usize;
        let mut last = None;
        let mut any = false;
        let mut terminated = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (part, consumed) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    terminated = true;
                    (chunk.split_at(i).0, i + 1)
                }
                None => (chunk, chunk.len()),
            };
            len = len.saturating_add(part.len());
            if let Some(&b) = part.last() {
                last = Some(b);
            }
            let room = cap.saturating_sub(buf.len()).min(part.len());
            buf.extend_from_slice(part.split_at(room).0);
            self.reader.consume(consumed);
            if terminated {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        // `\r\n` ends a line too; a lone `\r` at the very end of input is content.
        if terminated && last == Some(b'\r') {
            len -= 1;
            if buf.len() > len {
                buf.truncate(len);
            }
        }
        if len > self.limit {
            return Ok(Some(Line::TooLong(len)));
        }
        Ok(Some(match String::from_utf8(buf) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::NotUtf8,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize, capacity: usize) -> Vec<Line> {
        let mut reader = BoundedLines::new(io::BufReader::with_capacity(capacity, input), limit);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> Line {
        Line::Text(s.to_owned())
    }

    #[test]
    fn splits_on_lf_and_crlf_only() {
        // Small buffer capacities exercise lines split across reads.
        for capacity in [1, 2, 3, 7, 8192] {
            assert_eq!(
                lines(b"a\nbb\r\n\n\r\nccc", 8, capacity),
                [text("a"), text("bb"), text(""), text(""), text("ccc")],
                "capacity {capacity}"
            );
            assert_eq!(lines(b"x\r", 8, capacity), [text("x\r")]);
            assert_eq!(lines(b"a\rb\n", 8, capacity), [text("a\rb")]);
            assert_eq!(lines(b"", 8, capacity), []);
            assert_eq!(lines(b"\n", 8, capacity), [text("")]);
        }
    }

    #[test]
    fn long_lines_are_counted_not_kept() {
        for capacity in [1, 5, 8192] {
            assert_eq!(
                lines(b"12345678\n123456789\r\nok", 8, capacity),
                [text("12345678"), Line::TooLong(9), text("ok")],
                "capacity {capacity}"
            );
            // Exactly at the limit with CRLF: the `\r` does not count.
            assert_eq!(lines(b"12345678\r\n", 8, capacity), [text("12345678")]);
        }
        let big = vec![b'a'; 3 * 1024 * 1024];
        assert_eq!(lines(&big, 8192, 8192), [Line::TooLong(big.len())]);
    }

    #[test]
    fn invalid_utf8_is_reported() {
        assert_eq!(
            lines(b"\xff\xfe\nok\n", 8, 8192),
            [Line::NotUtf8, text("ok")]
        );
    }
}
