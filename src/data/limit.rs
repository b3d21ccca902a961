//! The maximum record length of text formats (JSONL, CSV), enforced while
//! streaming.
//!
//! [`RecordLimit`] sits between a (decompressed) text stream and the block
//! cutter. It passes records through whole, holding back at most one
//! record of up to the maximum, so a record is never buffered past it: a
//! longer one is dropped as it streams by (a 145 KB zstd bomb that inflates
//! to one 3 GB line costs a constant amount of memory), replaced by its
//! line breaks only, so the line numbers of the records after it do not
//! change and readers see blank lines, which they ignore. Each dropped
//! record is noted, with its first line and length, in [`LongRecords`], for
//! the reader to report as a skipped record of that line.
//!
//! A record ends at a line break; in CSV, at a line break outside double
//! quotes, with quotes toggled at every `"`, as the block cutter
//! ([`super::source::BlockReader`]) counts them. The length counted is the
//! record's bytes up to its final `\n` (a `\r` before it counts).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// The default maximum record length: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Records dropped for their length, by first line: line number to length
/// in bytes (at least; counting stops at `u64::MAX`).
#[derive(Clone, Debug, Default)]
pub struct LongRecords(Arc<Mutex<BTreeMap<u64, u64>>>);

impl LongRecords {
    fn add(&self, line: u64, bytes: u64) {
        self.0.lock().expect("never poisoned: no code panics holding it").insert(line, bytes);
    }

    /// Adds to `bad` the records dropped in the lines of `block` (a block of
    /// whole lines of the limited stream, starting at line `first_line`),
    /// with the reason, keeping `bad` in line order.
    pub fn note_in(&self, block: &[u8], first_line: u64, max: usize, bad: &mut Vec<(u64, String)>) {
        let long = self.0.lock().expect("never poisoned: no code panics holding it");
        if long.range(first_line..).next().is_none() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', block).count() as u64;
        let before = bad.len();
        for (&line, &bytes) in long.range(first_line..first_line + lines) {
            bad.push((
                line,
                format!("record of {bytes} bytes is longer than the maximum of {max} (--max-record-bytes)"),
            ));
        }
        if bad.len() > before {
            bad.sort_by_key(|(line, _)| *line);
        }
    }
}

/// A reader that drops records longer than a maximum; see the module doc.
pub struct RecordLimit<R> {
    inner: R,
    max: usize,
    csv: bool,
    /// The current record's bytes so far, while it is no longer than `max`.
    pending: Vec<u8>,
    /// Bytes ready to be read, and how many of them were read.
    out: Vec<u8>,
    out_at: usize,
    /// Dropping the current record: its length so far.
    dropping: Option<u64>,
    /// Inside double quotes (CSV).
    quoted: bool,
    /// Line breaks inside the current record (CSV quoted cells).
    inner_breaks: u64,
    /// Line number of the current record's first line.
    line: u64,
    chunk: Vec<u8>,
    eof: bool,
    long: LongRecords,
}

impl<R: Read> RecordLimit<R> {
    /// Limits records of `inner` to `max` bytes, noting dropped ones in
    /// `long`; `csv` makes quoted line breaks part of a record.
    pub fn new(inner: R, max: usize, csv: bool, long: LongRecords) -> Self {
        RecordLimit {
            inner,
            max: max.max(1),
            csv,
            pending: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            dropping: None,
            quoted: false,
            inner_breaks: 0,
            line: 1,
            chunk: vec![0; 64 << 10],
            eof: false,
            long,
        }
    }

    /// Index of the first record end (a line break, outside quotes for
    /// CSV) in `b`, updating the quote state and the count of line breaks
    /// inside the record.
    fn record_end(&mut self, b: &[u8]) -> Option<usize> {
        if !self.csv {
            return memchr::memchr(b'\n', b);
        }
        for i in memchr::memchr2_iter(b'"', b'\n', b) {
            if b[i] == b'"' {
                self.quoted = !self.quoted;
            } else if self.quoted {
                self.inner_breaks += 1;
            } else {
                return Some(i);
            }
        }
        None
    }

    /// Takes `data`, the next bytes of the stream, into `out` and `pending`.
    fn take(&mut self, data: &[u8]) {
        // The usual case, in one copy: no JSONL record that ends or goes on
        // in `data` can be longer than the maximum.
        if !self.csv && self.dropping.is_none() && self.pending.len() + data.len() <= self.max {
            match memchr::memrchr(b'\n', data) {
                Some(last) => {
                    self.out.append(&mut self.pending);
                    self.out.extend_from_slice(&data[..=last]);
                    self.pending.extend_from_slice(&data[last + 1..]);
                    self.line += memchr::memchr_iter(b'\n', &data[..=last]).count() as u64;
                }
                None => self.pending.extend_from_slice(data),
            }
            return;
        }
        let mut at = 0;
        while at < data.len() {
            let rest_start = at;
            match self.record_end(&data[at..]) {
                Some(i) => {
                    let part = &data[rest_start..rest_start + i];
                    let len = self.pending.len() as u64 + part.len() as u64;
                    match self.dropping.take() {
                        Some(so_far) => self.drop_record(so_far.saturating_add(part.len() as u64)),
                        None if len > self.max as u64 => {
                            self.pending.clear();
                            self.drop_record(len);
                        }
                        None => {
                            self.out.append(&mut self.pending);
                            self.out.extend_from_slice(part);
                            self.out.push(b'\n');
                        }
                    }
                    self.line += self.inner_breaks + 1;
                    self.inner_breaks = 0;
                    at = rest_start + i + 1;
                }
                None => {
                    let part = &data[rest_start..];
                    match &mut self.dropping {
                        Some(so_far) => *so_far = so_far.saturating_add(part.len() as u64),
                        None if self.pending.len() + part.len() > self.max => {
                            self.dropping = Some((self.pending.len() + part.len()) as u64);
                            self.pending = Vec::new();
                        }
                        None => self.pending.extend_from_slice(part),
                    }
                    at = data.len();
                }
            }
        }
    }

    /// Notes the current record as dropped and writes its line breaks.
    fn drop_record(&mut self, bytes: u64) {
        self.long.add(self.line, bytes);
        self.out.extend(std::iter::repeat_n(b'\n', self.inner_breaks as usize + 1));
    }

    fn finish(&mut self) {
        match self.dropping.take() {
            Some(so_far) => self.drop_record(so_far),
            None if self.pending.len() > self.max => {
                let len = self.pending.len() as u64;
                self.pending.clear();
                self.drop_record(len);
            }
            None => self.out.append(&mut self.pending),
        }
    }
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_at < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_at);
                buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
                self.out_at += n;
                return Ok(n);
            }
            self.out.clear();
            self.out_at = 0;
            if self.eof {
                return Ok(0);
            }
            // The usual case, JSONL: read straight into the caller's buffer,
            // behind the held-back start of the current line, no more than
            // the maximum in all, so no line in it can be too long; hold
            // back only what follows the last line break.
            let p = self.pending.len();
            let end = buf.len().min(self.max);
            if !self.csv && self.dropping.is_none() && end > p {
                buf[..p].copy_from_slice(&self.pending);
                let n = read_retrying(&mut self.inner, &mut buf[p..end])?;
                if n == 0 {
                    self.eof = true;
                    self.finish();
                    continue;
                }
                let filled = &buf[..p + n];
                match memchr::memrchr(b'\n', filled) {
                    Some(last) => {
                        self.pending.clear();
                        self.pending.extend_from_slice(&filled[last + 1..]);
                        self.line += memchr::memchr_iter(b'\n', &filled[..=last]).count() as u64;
                        return Ok(last + 1);
                    }
                    None => {
                        self.pending.extend_from_slice(&filled[p..]);
                        continue;
                    }
                }
            }
            let mut chunk = std::mem::take(&mut self.chunk);
            let n = read_retrying(&mut self.inner, &mut chunk);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.chunk = chunk;
                    return Err(e);
                }
            };
            if n == 0 {
                self.eof = true;
                self.finish();
            } else {
                self.take(&chunk[..n]);
            }
            self.chunk = chunk;
        }
    }
}

/// One `read`, repeated when interrupted.
fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(input: &[u8], max: usize, csv: bool) -> (String, Vec<(u64, u64)>) {
        let long = LongRecords::default();
        let mut r = RecordLimit::new(input, max, csv, long.clone());
        // Small chunks and small reads, to cut records at every place.
        r.chunk = vec![0; 3];
        let mut out = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        // And big reads, straight into the caller's buffer.
        let again = LongRecords::default();
        let mut whole = Vec::new();
        RecordLimit::new(input, max, csv, again.clone()).read_to_end(&mut whole).unwrap();
        assert_eq!(whole, out);
        assert_eq!(*again.0.lock().unwrap(), *long.0.lock().unwrap());
        let dropped = long.0.lock().unwrap().iter().map(|(&l, &b)| (l, b)).collect();
        (String::from_utf8(out).unwrap(), dropped)
    }

    #[test]
    fn long_lines_become_blank_and_are_noted_with_their_line() {
        let (out, dropped) = limit(b"ab\nabcdef\r\nabcd\r\n\nxyzxyzxyz", 5, false);
        assert_eq!(out, "ab\n\nabcd\r\n\n\n");
        assert_eq!(dropped, [(2, 7), (5, 9)]);
        let (out, dropped) = limit(b"ab\ncd", 4, false);
        assert_eq!((out.as_str(), dropped), ("ab\ncd", vec![]));
    }

    #[test]
    fn csv_records_keep_their_quoted_line_breaks() {
        let (out, dropped) = limit(b"a,\"x\ny\"\nb,\"long\n\nquoted\"\nc,d\n", 7, true);
        assert_eq!(out, "a,\"x\ny\"\n\n\n\nc,d\n");
        assert_eq!(dropped, [(3, 16)]);
    }

    #[test]
    fn a_huge_line_is_never_held() {
        struct Zeros(u64);
        impl Read for Zeros {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = (buf.len() as u64).min(self.0) as usize;
                buf[..n].fill(b'0');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let long = LongRecords::default();
        let mut r = RecordLimit::new(Zeros(1 << 30), 1 << 20, false, long.clone());
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"\n");
        assert!(r.pending.capacity() <= (1 << 20) + (64 << 10), "held {}", r.pending.capacity());
        let mut bad = Vec::new();
        long.note_in(&out, 1, 1 << 20, &mut bad);
        assert_eq!(
            bad,
            [(1, format!("record of {} bytes is longer than the maximum of 1048576 (--max-record-bytes)", 1u64 << 30))]
        );
    }
}
