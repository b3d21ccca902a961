//! Finding a table's files in a dataset directory and opening them.
//!
//! A table is either one file (`events.jsonl.zst`) or a directory of part
//! files (`events/part-00000.jsonl.gz`, as Spark writes them). Part files are
//! read in name order; names starting with `_` or `.` (`_SUCCESS`, `.crc`)
//! are ignored. This module knows formats and compression by file name only;
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

fn parts(dir: &Path) -> Result<Vec<SourceFile>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('_') || name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        if let Some((format, compression)) = classify(name) {
            files.push(SourceFile { path: entry.path(), format, compression });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
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
}

/// Cuts a byte stream into blocks of whole records, about `target` bytes each.
///
/// For CSV it only cuts at a newline outside double quotes, so a quoted
/// field with a line break in it stays in one block.
pub struct BlockReader<R> {
    inner: R,
    carry: Vec<u8>,
    target: usize,
    csv_quotes: bool,
    next_line: u64,
    eof: bool,
    /// Bytes read from the (decompressed) stream so far.
    pub bytes_read: u64,
}

impl<R: Read> BlockReader<R> {
    /// A reader of `inner`; `csv_quotes` makes cuts respect CSV quoting.
    pub fn new(inner: R, target: usize, csv_quotes: bool) -> Self {
        BlockReader { inner, carry: Vec::new(), target, csv_quotes, next_line: 1, eof: false, bytes_read: 0 }
    }

    /// The next block, or `None` at the end of the stream.
    pub fn next_block(&mut self) -> std::io::Result<Option<Block>> {
        if self.eof && self.carry.is_empty() {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.carry);
        let mut want = self.target.max(1);
        loop {
            if !self.eof && buf.len() < want {
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
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                self.bytes_read += (filled - start) as u64;
            }
            if self.eof {
                break;
            }
            if let Some(cut) = self.cut_point(&buf) {
                self.carry = buf[cut..].to_vec();
                buf.truncate(cut);
                break;
            }
            // No complete record in the buffer yet: read more.
            want = buf.len() * 2;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &buf).count() as u64;
        Ok(Some(Block { bytes: buf, first_line }))
    }

    /// Index just past the last record terminator in `buf`, if any.
    fn cut_point(&self, buf: &[u8]) -> Option<usize> {
        if !self.csv_quotes {
            return memchr::memrchr(b'\n', buf).map(|i| i + 1);
        }
        let mut in_quotes = false;
        let mut last = None;
        for i in memchr::memchr2_iter(b'"', b'\n', buf) {
            if buf[i] == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes {
                last = Some(i + 1);
            }
        }
        last
    }
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
        let text = b"id,text\n1,\"two\nlines\"\n2,x\n";
        let r = BlockReader::new(&text[..], 1, true);
        assert_eq!(r.cut_point(b"1,\"two\nli"), None);
        assert_eq!(r.cut_point(b"1,\"two\nlines\"\n2"), Some(14));
    }
}
