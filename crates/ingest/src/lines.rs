//! [`LineLimit`]: caps the length of every input line before any parser buffers it, so one huge
//! line costs at most the limit in memory, whatever its size. The bytes of a line beyond the
//! limit are dropped on the fly (never held) and the line's number is recorded; the parser
//! then rejects that line (NDJSON) or the record containing it (CSV) by asking
//! [`Oversized::take_through`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

/// Default of [`crate::Options::max_line_bytes`] (`--max-line-bytes`).
pub const DEFAULT_MAX_LINE_BYTES: usize = domain::defaults::MAX_LINE_BYTES;

/// Numbers (1-based) of the lines [`LineLimit`] cut, in input order; shared between the reader
/// (which may run ahead of the parser) and the parser.
#[derive(Clone, Default)]
pub(crate) struct Oversized(Rc<RefCell<VecDeque<u64>>>);

impl Oversized {
    /// Forgets every recorded line up to `line` (inclusive); the first of them, if any.
    pub(crate) fn take_through(&self, line: u64) -> Option<u64> {
        let mut q = self.0.borrow_mut();
        let first = q.front().copied().filter(|l| *l <= line);
        while q.front().is_some_and(|l| *l <= line) {
            q.pop_front();
        }
        first
    }

    fn record(&self, line: u64) {
        self.0.borrow_mut().push_back(line);
    }
}

/// Passes `inner` through, cutting each line (the bytes before a `\n`) to at most `max` bytes.
/// A cut line keeps the parity of its double quotes (a `"` is added when it dropped an odd
/// number), so a CSV reader's quoting state after the line is what it would have been.
pub(crate) struct LineLimit<R> {
    inner: R,
    max: usize,
    chunk: Box<[u8]>,
    /// Unread part of `chunk`.
    start: usize,
    end: usize,
    /// Number of the line being read.
    line: u64,
    /// Bytes of this line passed on so far.
    len: usize,
    /// Dropping the rest of an over-long line.
    cutting: bool,
    /// Whether an odd number of `"` has been dropped from it.
    odd_quotes: bool,
    oversized: Oversized,
}

impl<R: Read> LineLimit<R> {
    pub(crate) fn new(inner: R, max: usize, oversized: Oversized) -> Self {
        Self {
            inner,
            max,
            chunk: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            line: 1,
            len: 0,
            cutting: false,
            odd_quotes: false,
            oversized,
        }
    }

    /// Moves input to `out` from `w` on; returns the new end of `out`'s filled part. Only
    /// called with input available and room in `out`.
    fn pass(&mut self, out: &mut [u8], mut w: usize) -> usize {
        let input = &self.chunk[self.start..self.end];
        let nl = memchr::memchr(b'\n', input);
        let body = &input[..nl.unwrap_or(input.len())];
        if self.cutting {
            let quotes = body.iter().filter(|&&b| b == b'"').count();
            self.odd_quotes ^= quotes % 2 == 1;
            self.start += body.len();
            if nl.is_some() {
                // The line ends here: restore the quote parity, then pass the newline on.
                self.cutting = false;
                if std::mem::take(&mut self.odd_quotes) {
                    out[w] = b'"';
                    w += 1;
                }
            }
            return w;
        }
        let take = body.len().min(self.max - self.len).min(out.len() - w);
        out[w..w + take].copy_from_slice(&body[..take]);
        (w, self.start, self.len) = (w + take, self.start + take, self.len + take);
        if take < body.len() {
            if self.len == self.max {
                self.cutting = true;
                self.oversized.record(self.line);
            }
            return w;
        }
        if nl.is_some() && w < out.len() {
            out[w] = b'\n';
            (w, self.start, self.line, self.len) = (w + 1, self.start + 1, self.line + 1, 0);
        }
        w
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut w = 0;
        while w < out.len() {
            if self.start == self.end {
                if w > 0 {
                    break; // hand out what there is rather than wait for more input
                }
                let n = self.inner.read(&mut self.chunk)?;
                if n == 0 {
                    // End of input inside a cut line: its quote parity still needs restoring.
                    self.cutting = false;
                    if std::mem::take(&mut self.odd_quotes) {
                        out[0] = b'"';
                        return Ok(1);
                    }
                    return Ok(0);
                }
                (self.start, self.end) = (0, n);
            }
            w = self.pass(out, w);
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hands out at most `step` bytes per read, to cut lines across reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// What LineLimit should produce: each line cut to `max` bytes (plus a `"` when the cut
    /// part held an odd number of them), and the numbers of the cut lines.
    fn expected(input: &[u8], max: usize) -> (Vec<u8>, Vec<u64>) {
        let (mut out, mut cut) = (Vec::new(), Vec::new());
        let parts: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        for (i, line) in parts.iter().enumerate() {
            let keep = line.len().min(max);
            out.extend_from_slice(&line[..keep]);
            if line.len() > max {
                cut.push(i as u64 + 1);
                if line[max..].iter().filter(|&&b| b == b'"').count() % 2 == 1 {
                    out.push(b'"');
                }
            }
            if i + 1 < parts.len() {
                out.push(b'\n');
            }
        }
        (out, cut)
    }

    fn run(input: &[u8], max: usize, step: usize, out_len: usize) -> (Vec<u8>, Vec<u64>) {
        let oversized = Oversized::default();
        let mut r = LineLimit::new(Trickle(input, step), max, oversized.clone());
        let mut out = Vec::new();
        let mut buf = vec![0; out_len];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let cut = oversized.0.borrow().iter().copied().collect();
        (out, cut)
    }

    #[test]
    fn cuts_long_lines_and_records_them() {
        let input = b"short\nexactly8\nnine char\n\"a\"\"b\"\"\"\nlast line without newline";
        let (out, cut) = run(input, 8, 3, 5);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "short\nexactly8\nnine cha\n\"a\"\"b\"\"\"\nlast lin"
        );
        assert_eq!(cut, [3, 5]);
        let o = Oversized(Rc::new(RefCell::new(cut.into())));
        assert_eq!(o.take_through(2), None);
        assert_eq!(o.take_through(4), Some(3));
        assert_eq!(o.take_through(9), Some(5));
        assert_eq!(o.take_through(9), None);
    }

    proptest! {
        #[test]
        fn matches_the_line_by_line_model(
            input in prop::collection::vec(prop::sample::select(vec![b'a', b'"', b'\n']), 0..300),
            max in 1usize..12,
            step in 1usize..70,
            out_len in 1usize..40,
        ) {
            prop_assert_eq!(run(&input, max, step, out_len), expected(&input, max));
        }
    }
}
