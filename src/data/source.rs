//! Finding a table's files in a dataset directory and opening them.
//!
//! A table is either one file (`events.jsonl.zst`) or a directory of part
//! files (`events/part-00000.jsonl.gz`, as Spark writes them). Part files are
//! read in name order; names starting with `_` or `.` (`_SUCCESS`, `.crc`)
//! are ignored, and anything else that is not a part file of a known format
//! is an error (see [`parts`]). This module knows formats and compression by file name only;
//! it reads no records.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::DataError;
use super::schema::TableKind;

/// A file format of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
    /// Comma-separated with a header row (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

/// A compression wrapped around a JSONL or CSV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (`.gz`), including multi-member files.
    Gzip,
    /// Zstandard (`.zst`, `.zstd`).
    Zstd,
}

/// One file of a table.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its record format.
    pub format: Format,
    /// Its compression.
    pub compression: Compression,
}

/// Tells a file's format and compression from its name, if it is a data file.
pub fn classify(name: &str) -> Option<(Format, Compression)> {
    let lower = name.to_ascii_lowercase();
    let (rest, compression) = if let Some(r) = lower.strip_suffix(".gz") {
        (r, Compression::Gzip)
    } else if let Some(r) = lower.strip_suffix(".zst").or_else(|| lower.strip_suffix(".zstd")) {
        (r, Compression::Zstd)
    } else {
        (lower.as_str(), Compression::None)
    };
    let format = if rest.ends_with(".jsonl") || rest.ends_with(".ndjson") || rest.ends_with(".json") {
        Format::Jsonl
    } else if rest.ends_with(".csv") {
        Format::Csv
    } else if rest.ends_with(".parquet") && compression == Compression::None {
        Format::Parquet
    } else {
        return None;
    };
    Some((format, compression))
}

/// Finds the files of `table` in `dir`: `None` when the table is absent.
///
/// It is an error for a table to be given twice (as `events.jsonl` and
/// `events.csv`, or as a file and a directory), or as a directory with no
/// data file in it: either would silently read less than the user meant.
pub fn locate(dir: &Path, table: TableKind) -> Result<Option<Vec<SourceFile>>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let stem = table.name();
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name == stem && path.is_dir() {
            found.push(path);
        } else if let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.'))
            && classify(&format!("x.{rest}")).is_some()
        {
            found.push(path);
        } else if let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.'))
            && let Some((format, codec)) = rest.split_once('.')
            && ["jsonl", "ndjson", "json", "csv", "parquet"].contains(&format.to_ascii_lowercase().as_str())
            && !codec.is_empty()
        {
            // `events.jsonl.bz2`: meant as the table, in a compression
            // that cannot be read; silence would drop the table.
            return Err(DataError::BadFile {
                path,
                message: format!(
                    "compression `.{codec}` is not supported: jsonl and csv may be .gz, .zst or .zstd; \
                     parquet is compressed inside the file"
                ),
            });
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => {
            let path = found.pop().expect("one element");
            if path.is_dir() {
                let files = parts(&path)?;
                if files.is_empty() {
                    return Err(DataError::EmptyTableDir { path });
                }
                Ok(Some(files))
            } else {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let (format, compression) = classify(name).expect("classified while listing");
                Ok(Some(vec![SourceFile { path, format, compression }]))
            }
        }
        _ => Err(DataError::AmbiguousTable { table, paths: found }),
    }
}

/// The part files of a table directory, in name order.
///
/// What is in a table directory is read or refused, never silently left
/// out: names starting with `_` or `.` (`_SUCCESS`, `_temporary/`,
/// `.part-0.crc`) and names ending in `.crc` are markers and ignored; a
/// file of a known format is read; anything else is an error naming it: a
/// file of an unknown format or compression (`.txt`, `.bz2`, `.snappy`,
/// `.lz4`), a dangling or looping symbolic link, a subdirectory (including
/// Spark's `key=value/` partitions, which are not supported), a name that
/// is not UTF-8.
fn parts(dir: &Path) -> Result<Vec<SourceFile>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let bad = |message: String| Err(DataError::BadFile { path: path.clone(), message });
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return bad("a file name that is not UTF-8 in a table directory; rename it".into());
        };
        if is_marker(name) {
            continue;
        }
        // Follows a symbolic link: a dangling or looping one is an error.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => return bad(format!("cannot be read ({e}): a dangling or looping symbolic link?")),
        };
        if meta.is_dir() {
            if name.contains('=') {
                return bad(format!(
                    "a partition directory (`{name}/`, as Spark's partitionBy writes them): partitioned \
                     tables are not supported; write the table unpartitioned, with `{}` as a column",
                    name.split('=').next().unwrap_or(name)
                ));
            }
            return bad("a subdirectory in a table directory: only part files are read".into());
        }
        if !meta.is_file() {
            return bad("not a regular file".into());
        }
        match classify(name) {
            Some((format, compression)) => files.push(SourceFile { path, format, compression }),
            None => {
                return bad(format!(
                    "not a data file of a known format: part files end in .jsonl, .ndjson, .json or .csv \
                     (optionally .gz, .zst or .zstd), or .parquet; {}",
                    "names starting with `_` or `.` and .crc files are ignored"
                ));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Names in a table directory that are not data: Spark's `_SUCCESS` and
/// `_temporary`, hidden files, `.crc` checksums.
fn is_marker(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.') || name.to_ascii_lowercase().ends_with(".crc")
}

/// Every file of every table of the dataset in `dir` (as far as they can be
/// found), for checking that an output does not overwrite one.
pub fn input_files(dir: &Path) -> Vec<PathBuf> {
    TableKind::ALL.iter().filter_map(|&kind| locate(dir, kind).ok().flatten()).flatten().map(|f| f.path).collect()
}

/// Whether a file at `rest` (a path relative to a dataset directory) would
/// be read as (part of) a table.
pub fn would_be_read(rest: &Path) -> bool {
    let parts: Vec<&str> = rest.iter().filter_map(|c| c.to_str()).collect();
    match parts.as_slice() {
        [] => true,
        [name] => TableKind::ALL.iter().any(|k| {
            name.strip_prefix(k.name())
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| classify(&format!("x.{r}")).is_some())
                || *name == k.name()
        }),
        [first, ..] => TableKind::ALL.iter().any(|k| k.name() == *first),
    }
}

/// A reader that counts the bytes it passes into a shared counter.
struct Counted<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a JSONL or CSV file as a stream of its decompressed bytes,
/// counting the bytes read from disk (before decompression) into `counter`.
pub fn open<'a>(file: &SourceFile, counter: &'a AtomicU64) -> Result<Box<dyn Read + Send + 'a>, DataError> {
    let f = File::open(&file.path).map_err(|e| DataError::io(&file.path, e))?;
    let buffered = BufReader::with_capacity(1 << 20, Counted { inner: f, counter });
    Ok(match file.compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| DataError::io(&file.path, e))?)
        }
    })
}

/// A block of whole lines (or whole CSV records) of one file.
pub struct Block {
    /// The bytes: complete records, the last one possibly unterminated at EOF.
    pub bytes: Vec<u8>,
    /// 1-based line number of the block's first line in its file.
    pub first_line: u64,
    /// Records the reader skipped, as (line, reason): longer than the
    /// maximum (cut out of `bytes`, their line breaks left as blank lines),
    /// or a quoted CSV cell never closed (just after `bytes`).
    pub bad: Vec<(u64, String)>,
}

/// Cuts a byte stream into blocks of whole records, about `target` bytes each.
///
/// JSONL records are lines; CSV records are found by
/// [`super::csv_format::scan_record`], the machine the CSV parser splits
/// them with, so a quoted cell with a line break in it stays in one block
/// and the parser sees exactly the records cut here. A record longer than
/// `max_record` bytes is skipped as bad (reported in [`Block::bad`]) without
/// being held in memory whole; a CSV quoted cell left open at the end of the
/// input or past that length is skipped the same way, and reading resumes at
/// the line after the one it opened on. A long record whose end is already
/// in the buffer is cut out of the block in place (its line breaks stay, as
/// blank lines, so that line numbers hold) and the block goes on: a file of
/// many long records costs one pass, not a block and a copy of the buffer
/// per record.
pub struct BlockReader<R> {
    inner: R,
    carry: Vec<u8>,
    target: usize,
    max_record: usize,
    csv: bool,
    next_line: u64,
    eof: bool,
    /// Dropping bytes up to the next line break (after a record too long).
    skipping: bool,
    /// Whether a record with more than blanks has been passed on (in CSV,
    /// the first one is the header: a bad one ends its block, so that the
    /// reader of the header sees it missing).
    data_seen: bool,
    /// Bytes read from the (decompressed) stream so far.
    pub bytes_read: u64,
}

/// Where a record ends in a buffer, or why it is not known.
enum End {
    At(usize),
    /// More input is needed (or, at EOF, a CSV quote opened at `quote` is
    /// never closed).
    Open(Option<usize>),
}

impl<R: Read> BlockReader<R> {
    /// A reader of `inner`; `csv` selects CSV records (else lines).
    pub fn new(inner: R, target: usize, csv: bool) -> Self {
        Self::with_max_record(inner, target, usize::MAX, csv)
    }

    /// A reader that skips records longer than `max_record` bytes.
    pub fn with_max_record(inner: R, target: usize, max_record: usize, csv: bool) -> Self {
        BlockReader {
            inner,
            carry: Vec::new(),
            target: target.max(1),
            max_record: max_record.max(1),
            csv,
            next_line: 1,
            eof: false,
            skipping: false,
            data_seen: false,
            bytes_read: 0,
        }
    }

    /// Reads until `buf` holds `want` bytes or the stream ends.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> std::io::Result<()> {
        if self.eof || buf.len() >= want {
            return Ok(());
        }
        let start = buf.len();
        buf.resize(want, 0);
        let mut filled = start;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(filled);
                    return Err(e);
                }
            }
        }
        buf.truncate(filled);
        self.bytes_read += (filled - start) as u64;
        Ok(())
    }

    /// Drops bytes up to and including the next line break.
    fn skip_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', buf) {
                buf.drain(..=i);
                self.next_line += 1;
                self.skipping = false;
                return Ok(());
            }
            buf.clear();
            if self.eof {
                self.skipping = false;
                return Ok(());
            }
            self.fill(buf, self.target)?;
        }
    }

    fn record_end(&self, buf: &[u8], pos: usize) -> End {
        if self.csv {
            match super::csv_format::scan_record(buf, pos, self.eof, None) {
                super::csv_format::Scan::Record(end) => End::At(end),
                super::csv_format::Scan::Open { quote } => End::Open(quote),
            }
        } else {
            match memchr::memchr(b'\n', &buf[pos..]) {
                Some(i) => End::At(pos + i + 1),
                None if self.eof => End::At(buf.len()),
                None => End::Open(None),
            }
        }
    }

    /// The next block, or `None` at the end of the stream.
    pub fn next_block(&mut self) -> std::io::Result<Option<Block>> {
        let mut buf = std::mem::take(&mut self.carry);
        if self.skipping {
            self.skip_line(&mut buf)?;
        }
        // `pos`: the end of the whole records scanned so far; `kept`: the
        // end of the block's bytes, `buf[..kept]`, the records scanned with
        // each long one replaced by its line breaks; `lines`: the line
        // breaks scanned. After a bad record that ends the block, `resume`
        // says where reading goes on: `Some(r)` at byte r, `None` after the
        // next line break, beyond `buf`.
        let mut pos = 0;
        let mut kept = 0;
        let mut lines = 0u64;
        let mut bad = Vec::new();
        let mut resume: Option<Option<usize>> = None;
        while pos < self.target {
            if pos == buf.len() {
                if self.eof {
                    break;
                }
                self.fill(&mut buf, pos + self.target)?;
                continue;
            }
            match self.record_end(&buf, pos) {
                End::At(end) if end - pos <= self.max_record => {
                    if kept != pos {
                        buf.copy_within(pos..end, kept);
                    }
                    if !self.data_seen {
                        self.data_seen = buf[kept..kept + end - pos].iter().any(|b| !b.is_ascii_whitespace());
                    }
                    kept += end - pos;
                    lines += newlines(&buf[kept - (end - pos)..kept]);
                    pos = end;
                }
                End::At(end) => {
                    let what = if self.csv { "record" } else { "line" };
                    let why = format!("{what} of {} bytes, over the maximum of {}", end - pos, self.max_record);
                    bad.push((self.next_line + lines, why));
                    if self.csv && !self.data_seen {
                        resume = Some(Some(end));
                        break;
                    }
                    let breaks = newlines(&buf[pos..end]);
                    buf[kept..kept + breaks as usize].fill(b'\n');
                    kept += breaks as usize;
                    lines += breaks;
                    pos = end;
                }
                End::Open(quote) if self.eof || buf.len() - pos > self.max_record => {
                    let line = self.next_line + lines;
                    match quote {
                        Some(q) => {
                            let opened = line + newlines(&buf[pos..q]);
                            let why = if self.eof && buf.len() - pos <= self.max_record {
                                "before the end of the file".to_string()
                            } else {
                                format!("within the maximum record length of {} bytes", self.max_record)
                            };
                            bad.push((
                                line,
                                format!(
                                    "a quoted cell opened on line {opened} is not closed {why}; \
                                     skipped up to the end of line {opened}"
                                ),
                            ));
                            resume = Some(memchr::memchr(b'\n', &buf[q..]).map(|i| q + i + 1));
                        }
                        None => {
                            let what = if self.csv { "record" } else { "line" };
                            bad.push((line, format!("{what} longer than the maximum of {} bytes", self.max_record)));
                            resume = Some(None);
                        }
                    }
                    break;
                }
                End::Open(_) => {
                    let want = (buf.len() * 2)
                        .max(pos + self.target)
                        .min(pos.saturating_add(self.max_record).saturating_add(1));
                    let want = want.max(buf.len() + 1);
                    self.fill(&mut buf, want)?;
                }
            }
        }
        let first_line = self.next_line;
        match resume {
            None => {
                self.next_line += lines;
                self.carry = buf.split_off(pos);
            }
            Some(Some(r)) => {
                self.next_line += lines + newlines(&buf[pos..r]);
                self.carry = buf[r..].to_vec();
            }
            Some(None) => {
                self.next_line += lines + newlines(&buf[pos..]);
                self.skipping = true;
            }
        }
        buf.truncate(kept);
        if buf.is_empty() && bad.is_empty() {
            return Ok(None);
        }
        Ok(Some(Block { bytes: buf, first_line, bad }))
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify("events.jsonl"), Some((Format::Jsonl, Compression::None)));
        assert_eq!(classify("part-0001.json.gz"), Some((Format::Jsonl, Compression::Gzip)));
        assert_eq!(classify("events.csv.zst"), Some((Format::Csv, Compression::Zstd)));
        assert_eq!(classify("x.snappy.parquet"), Some((Format::Parquet, Compression::None)));
        assert_eq!(classify("_SUCCESS"), None);
        assert_eq!(classify("events.txt"), None);
    }

    #[test]
    fn part_directories_read_or_refuse_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("events");
        std::fs::create_dir(&t).unwrap();
        for name in ["part-0.jsonl", "part-1.csv.gz", "_SUCCESS", ".part-0.jsonl.crc", "part-0.jsonl.crc"] {
            std::fs::write(t.join(name), "").unwrap();
        }
        std::fs::create_dir(t.join("_temporary")).unwrap();
        let found = locate(dir.path(), TableKind::Events).unwrap().unwrap();
        assert_eq!(found.len(), 2);
        let refused = |setup: &dyn Fn(&Path), fragment: &str| {
            let d = tempfile::tempdir().unwrap();
            let t = d.path().join("events");
            std::fs::create_dir(&t).unwrap();
            std::fs::write(t.join("part-0.jsonl"), "").unwrap();
            setup(&t);
            let e = locate(d.path(), TableKind::Events).unwrap_err().to_string();
            assert!(e.contains(fragment), "{e}");
        };
        for ext in ["bz2", "snappy", "lz4", "txt"] {
            refused(&|t| std::fs::write(t.join(format!("part-1.jsonl.{ext}")), "").unwrap(), "not a data file");
        }
        refused(&|t| std::fs::create_dir(t.join("day=2020-09-09")).unwrap(), "partitioned tables are not supported");
        refused(&|t| std::fs::create_dir(t.join("more")).unwrap(), "subdirectory");
        refused(&|t| std::os::unix::fs::symlink(t.join("gone.jsonl"), t.join("part-2.jsonl")).unwrap(), "dangling");
        refused(&|t| std::os::unix::fs::symlink(t.join("part-3.jsonl"), t.join("part-3.jsonl")).unwrap(), "looping");
        // At the top level: a table in an unknown compression.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("events.jsonl.bz2"), "").unwrap();
        let e = locate(d.path(), TableKind::Events).unwrap_err().to_string();
        assert!(e.contains("compression `.bz2` is not supported"), "{e}");
    }

    #[test]
    fn blocks_keep_whole_lines_and_count_them() {
        let text = b"a\nbb\nccc\ndddd\nlast";
        let mut r = BlockReader::new(&text[..], 4, false);
        let mut seen = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            seen.push((b.first_line, String::from_utf8(b.bytes).unwrap()));
        }
        let joined: String = seen.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(joined, "a\nbb\nccc\ndddd\nlast");
        for (_, s) in &seen[..seen.len() - 1] {
            assert!(s.ends_with('\n'));
        }
        // Line numbers add up.
        let mut line = 1;
        for (first, s) in &seen {
            assert_eq!(*first, line);
            line += s.matches('\n').count() as u64;
        }
    }

    #[test]
    fn csv_blocks_do_not_cut_inside_quotes() {
        // A stray quote inside an unquoted cell does not open a quoted cell;
        // the quoted cell after it stays whole, whatever the block size.
        let text = b"id,text\n1,a\"b\n2,\"two\nlines\"\n3,x\n";
        for target in 1..text.len() + 1 {
            let mut r = BlockReader::new(&text[..], target, true);
            let mut blocks = Vec::new();
            while let Some(b) = r.next_block().unwrap() {
                assert!(b.bad.is_empty());
                blocks.push(String::from_utf8(b.bytes).unwrap());
            }
            assert!(!blocks.iter().any(|b| b.ends_with("two\n")), "cut inside quotes: {blocks:?}");
            assert_eq!(blocks.concat().as_bytes(), text);
        }
    }

    fn read_all(text: &[u8], target: usize, max: usize, csv: bool) -> (String, Vec<(u64, u64, String)>) {
        let mut r = BlockReader::with_max_record(text, target, max, csv);
        let (mut kept, mut bad) = (String::new(), Vec::new());
        while let Some(b) = r.next_block().unwrap() {
            let mut line = b.first_line;
            // Blank lines (a long record cut out leaves its line breaks)
            // are skipped, as the parsers skip them.
            for l in String::from_utf8(b.bytes).unwrap().split_inclusive('\n') {
                if l != "\n" {
                    kept.push_str(&format!("{line}:{l}"));
                }
                line += 1;
            }
            bad.extend(b.bad.into_iter().map(|(l, why)| (l, line, why)));
        }
        (kept, bad)
    }

    #[test]
    fn an_unclosed_quote_is_one_bad_record_and_reading_goes_on() {
        let text = b"id,t\n1,\"open\n2,b\n3,c\n";
        for target in [1, 4, 64] {
            let (kept, bad) = read_all(text, target, 1 << 20, true);
            assert_eq!(kept, "1:id,t\n3:2,b\n4:3,c\n", "target {target}");
            assert_eq!(bad.len(), 1);
            assert_eq!(bad[0].0, 2);
            assert!(bad[0].2.contains("not closed before the end of the file"), "{}", bad[0].2);
        }
        // Past the maximum length, before the end of the input.
        let mut text = b"id,t\n1,\"open\n".to_vec();
        for i in 0..1000 {
            text.extend_from_slice(format!("{i},x\n").as_bytes());
        }
        text.extend_from_slice(b"9,x\n");
        let (kept, bad) = read_all(&text, 16, 100, true);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].2.contains("within the maximum record length of 100 bytes"));
        assert!(kept.starts_with("1:id,t\n3:0,x\n"), "{}", &kept[..40]);
        assert_eq!(kept.lines().count(), 1002, "every other line read");
    }

    #[test]
    fn lines_over_the_maximum_are_skipped_wherever_they_fall() {
        let long = "x".repeat(50);
        let text = format!("a\n{long}\nb\n{long}");
        for target in [1, 7, 30, 1000] {
            let (kept, bad) = read_all(text.as_bytes(), target, 20, false);
            assert_eq!(kept, "1:a\n3:b\n", "target {target}");
            let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
            assert_eq!(lines, [2, 4], "target {target}: {bad:?}");
        }
    }

    #[test]
    fn many_long_lines_are_cut_out_of_one_block() {
        // Before, every long line ended its block (and the rest of the
        // buffer was copied): 1,000 long lines made 1,000 blocks.
        let long = "x".repeat(50);
        let text: String = (0..1000).map(|i| format!("{long}\nshort {i}\n")).collect();
        let mut r = BlockReader::with_max_record(text.as_bytes(), 1 << 20, 20, false);
        let (mut blocks, mut bad, mut kept) = (0, 0, 0);
        while let Some(b) = r.next_block().unwrap() {
            blocks += 1;
            bad += b.bad.len();
            kept += b.bytes.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count();
            for (i, (line, _)) in b.bad.iter().enumerate() {
                assert_eq!(*line, b.first_line + 2 * i as u64, "line numbers hold");
            }
        }
        assert_eq!((blocks, bad, kept), (1, 1000, 1000));
    }
}
