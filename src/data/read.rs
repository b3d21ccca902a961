//! Reading a table's files into a [`Table`]: blocks parsed in parallel,
//! merged in file order.
//!
//! Each file is cut into blocks of whole records (a few MiB each); a batch
//! of blocks is parsed on the rayon pool, each into its own builder, and the
//! batch is merged in order into the table and the shared interner. The
//! result, the symbol numbering and the list of bad records are therefore
//! the same for any thread count. Memory beyond the table is bounded by one
//! batch.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::csv_format;
use super::error::{DataError, RecordError, TableReport};
use super::jsonl;
use super::schema::TableKind;
use super::source::{self, Block, BlockReader, Format, SourceFile};
use super::table::{Table, TableBuilder};
use crate::intern::Interner;
use crate::time::{Millis, TimeUnit};

/// How to read a dataset.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Stop at the first bad record instead of skipping it.
    pub strict: bool,
    /// How many skipped records per table to keep as samples for the report.
    pub max_samples: usize,
    /// Target size of one parse block, in bytes.
    pub block_bytes: usize,
    /// Parquet: rows decoded as one block at least (consecutive row groups
    /// are grouped up to this), unless the file ends first.
    pub block_rows: u64,
    /// Columns to read, by table; `None` reads every column. Only Parquet
    /// can skip unread columns cheaply; other formats parse them anyway.
    pub projection: Option<super::Projection>,
    /// JSONL and CSV: a record (a line, or a CSV record with its quoted
    /// line breaks) longer than this is skipped as bad, without being held
    /// whole in memory; so is a CSV quoted cell never closed.
    pub max_record_bytes: usize,
    /// The unit of numeric times (`--time-unit`). `None` reads them as
    /// milliseconds (the contract's default) and refuses a table whose
    /// times fall in 1970, where epoch seconds read as milliseconds land;
    /// given, numbers are read in it and no such check is made.
    pub time_unit: Option<TimeUnit>,
}

/// The default of [`ReadOptions::max_record_bytes`]: 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            strict: false,
            max_samples: 5,
            block_bytes: 4 << 20,
            block_rows: 512 * 1024,
            projection: None,
            max_record_bytes: MAX_RECORD_BYTES,
            time_unit: None,
        }
    }
}

/// Counters a caller can watch while a read runs (for progress bars).
#[derive(Debug, Default)]
pub struct ReadProgress {
    /// Bytes read so far (decompressed for JSONL and CSV, compressed for
    /// Parquet).
    pub bytes: AtomicU64,
    /// Records parsed so far.
    pub records: AtomicU64,
    /// Bytes read from disk so far (compressed, as the files are stored).
    pub file_bytes: AtomicU64,
}

/// Where the parsed blocks of a table go, in file order: a [`Table`] in
/// memory, or a partitioner that spills them to disk.
pub trait TableSink: Send {
    /// Takes one parsed block; its strings are interned into `strings`.
    fn push(&mut self, block: TableBuilder, strings: &mut Interner) -> Result<(), DataError>;
    /// Rows taken so far.
    fn rows(&self) -> u64;
}

impl TableSink for Table {
    fn push(&mut self, block: TableBuilder, strings: &mut Interner) -> Result<(), DataError> {
        self.append(block, strings);
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows as u64
    }
}

/// Reads every file of one table into `strings` and a new [`Table`].
pub fn read_table(
    kind: TableKind,
    files: &[SourceFile],
    strings: &mut Interner,
    opts: &ReadOptions,
    progress: &ReadProgress,
) -> Result<(Table, TableReport), DataError> {
    let mut table = Table::new(kind);
    let report = read_into(kind, files, strings, opts, progress, &mut table)?;
    Ok((table, report))
}

/// Reads every file of one table into `sink`, in file order.
pub fn read_into(
    kind: TableKind,
    files: &[SourceFile],
    strings: &mut Interner,
    opts: &ReadOptions,
    progress: &ReadProgress,
    sink: &mut dyn TableSink,
) -> Result<TableReport, DataError> {
    let mut report = TableReport { files: files.len(), ..TableReport::default() };
    let before = sink.rows();
    // The file with the earliest time, and its span.
    let mut earliest: Option<(&Path, (Millis, Millis))> = None;
    for file in files {
        let mut spanned = Spanned { sink: &mut *sink, span: None };
        match file.format {
            Format::Parquet => {
                super::parquet::read_file(file, kind, &mut spanned, strings, opts, &mut report, progress)?;
            }
            Format::Jsonl | Format::Csv => {
                read_text_file(file, kind, &mut spanned, strings, opts, &mut report, progress)?;
            }
        }
        if let Some(s) = spanned.span {
            report.span = Some(report.span.map_or(s, |r| (r.0.min(s.0), r.1.max(s.1))));
            if earliest.is_none_or(|(_, e)| s.0 < e.0) {
                earliest = Some((&file.path, s));
            }
        }
    }
    report.records = sink.rows() - before;
    if let Some((path, span)) = earliest {
        check_not_1970(kind, path, span, opts)?;
    }
    Ok(report)
}

/// Refuses a table whose earliest time (`span`, read from `path`) falls in
/// 1970, unless the time unit was given: epoch seconds read as
/// milliseconds land there (1.6e9 ms is 1970-01-19).
pub(crate) fn check_not_1970(
    kind: TableKind,
    path: &Path,
    span: (Millis, Millis),
    opts: &ReadOptions,
) -> Result<(), DataError> {
    if opts.time_unit.is_none() && span.0 < crate::time::END_OF_1970 {
        return Err(DataError::TimesIn1970 { path: path.to_path_buf(), table: kind, first: span.0, last: span.1 });
    }
    Ok(())
}

/// Passes blocks on to a sink, noting the earliest and latest of their
/// times.
pub(crate) struct Spanned<'a> {
    /// Where the blocks go.
    pub(crate) sink: &'a mut dyn TableSink,
    /// The earliest and latest time so far.
    pub(crate) span: Option<(Millis, Millis)>,
}

impl TableSink for Spanned<'_> {
    fn push(&mut self, block: TableBuilder, strings: &mut Interner) -> Result<(), DataError> {
        if let Some((a, b)) = block.time_span() {
            self.span = Some(self.span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        self.sink.push(block, strings)
    }

    fn rows(&self) -> u64 {
        self.sink.rows()
    }
}

/// Records one bad record in the report, or fails when strict.
pub(crate) fn note_bad(
    report: &mut TableReport,
    opts: &ReadOptions,
    path: &Path,
    record: u64,
    unit: &'static str,
    message: String,
) -> Result<(), DataError> {
    let err = RecordError { file: path.to_path_buf(), record, unit, message };
    if opts.strict {
        return Err(DataError::Strict { record: err });
    }
    report.skipped += 1;
    if report.samples.len() < opts.max_samples {
        report.samples.push(err);
    }
    Ok(())
}

type Parsed = Vec<(TableBuilder, Vec<(u64, String)>)>;

/// The header `h` of a CSV file of table `kind`, or an error when it lacks
/// a column every record needs. Such a "header" is most likely the first
/// record of a file written without a header row (one part of a Spark
/// export among others with one): read as names, that record would be
/// lost without a count, and every record after it skipped.
fn header_has_required(kind: TableKind, h: (Vec<String>, usize, u64)) -> Result<(Vec<String>, usize, u64), String> {
    let names = &h.0;
    let missing: Vec<&str> =
        kind.fields().iter().filter(|f| f.required && !names.iter().any(|n| n == f.name)).map(|f| f.name).collect();
    if missing.is_empty() {
        return Ok(h);
    }
    Err(format!(
        "the header row has no column {} (every {} record needs {}); a file without a header row? Its first line \
         reads `{}`",
        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
        kind.name(),
        if missing.len() == 1 { "it" } else { "them" },
        crate::terminal::value(&names.join(","), 200)
    ))
}

/// Reads one JSONL or CSV file as a pipeline: a reader thread cuts the
/// (decompressed) stream into batches of blocks; each batch is parsed on the
/// pool while the previous one is merged, in order, into the sink.
///
/// When the merge stops early (a bad record under `strict`, a full disk
/// under the sink), the receiving end of the channel is dropped before the
/// reader thread is joined, so a reader blocked on a full channel wakes up
/// with an error and ends: an early stop never hangs.
fn read_text_file(
    file: &SourceFile,
    kind: TableKind,
    sink: &mut dyn TableSink,
    strings: &mut Interner,
    opts: &ReadOptions,
    report: &mut TableReport,
    progress: &ReadProgress,
) -> Result<(), DataError> {
    let csv = file.format == Format::Csv;
    let bytes_before = progress.bytes.load(Ordering::Relaxed);
    let stream = source::open(file, &progress.file_bytes)?;
    let batch = rayon::current_num_threads().max(1) * 2;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Block>, DataError>>(2);
    let header = std::sync::OnceLock::<Vec<String>>::new();
    std::thread::scope(|scope| {
        let header = &header;
        scope.spawn(move || {
            let mut blocks = BlockReader::with_max_record(stream, opts.block_bytes, opts.max_record_bytes, csv);
            let mut last_bytes = 0;
            loop {
                let mut pending = Vec::with_capacity(batch);
                while pending.len() < batch {
                    match blocks.next_block() {
                        Ok(Some(mut block)) => {
                            if csv && header.get().is_none() {
                                if block.bytes.iter().all(u8::is_ascii_whitespace)
                                    && let Some((line, why)) = block.bad.first()
                                {
                                    let message = format!("line {line}: unreadable header row: {why}");
                                    let _ = tx.send(Err(DataError::BadFile { path: file.path.clone(), message }));
                                    return;
                                }
                                match csv_format::parse_header(&block.bytes).and_then(|h| header_has_required(kind, h))
                                {
                                    Ok((names, len, lines)) => {
                                        let _ = header.set(names);
                                        block.bytes.drain(..len);
                                        block.first_line += lines;
                                    }
                                    Err(message) => {
                                        let _ = tx.send(Err(DataError::BadFile { path: file.path.clone(), message }));
                                        return;
                                    }
                                }
                            }
                            pending.push(block);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(DataError::io(&file.path, e)));
                            return;
                        }
                    }
                }
                progress.bytes.fetch_add(blocks.bytes_read - last_bytes, Ordering::Relaxed);
                last_bytes = blocks.bytes_read;
                if pending.is_empty() || tx.send(Ok(pending)).is_err() {
                    return;
                }
            }
        });
        merge_batches(rx, file, kind, sink, strings, opts, report, progress, header)
    })?;
    report.bytes += progress.bytes.load(Ordering::Relaxed) - bytes_before;
    Ok(())
}

/// The consuming end of [`read_text_file`]: parses each batch while the
/// previous one is merged. Takes `rx` by value, so that returning early
/// drops it and unblocks the reader thread.
#[allow(clippy::too_many_arguments)]
fn merge_batches(
    rx: std::sync::mpsc::Receiver<Result<Vec<Block>, DataError>>,
    file: &SourceFile,
    kind: TableKind,
    sink: &mut dyn TableSink,
    strings: &mut Interner,
    opts: &ReadOptions,
    report: &mut TableReport,
    progress: &ReadProgress,
    header: &std::sync::OnceLock<Vec<String>>,
) -> Result<(), DataError> {
    let csv = file.format == Format::Csv;
    let keep = opts.projection.as_ref().and_then(|p| p.tables.get(&kind)).map(|set| Arc::new(set.clone()));
    let parse = |pending: Vec<Block>| -> Parsed {
        let header = header.get().map_or(&[][..], Vec::as_slice);
        pending
            .into_par_iter()
            .map(|block| {
                let mut builder = TableBuilder::with_projection(kind, keep.clone())
                    .with_time_unit(opts.time_unit.unwrap_or_default());
                let mut bad = Vec::new();
                if csv {
                    csv_format::parse_block(&block.bytes, block.first_line, header, &mut builder, &mut bad);
                } else {
                    jsonl::parse_block(&block.bytes, block.first_line, &mut builder, &mut bad);
                }
                // The records the block reader skipped are among the block's:
                // in line order.
                bad.extend(block.bad);
                bad.sort_by_key(|b| b.0);
                progress.records.fetch_add((builder.rows() + bad.len()) as u64, Ordering::Relaxed);
                (builder, bad)
            })
            .collect()
    };
    let mut merge = |parsed: Parsed| -> Result<(), DataError> {
        for (builder, bad) in parsed {
            for (line, why) in bad {
                note_bad(report, opts, &file.path, line, "line", why)?;
            }
            sink.push(builder, strings)?;
        }
        Ok(())
    };
    let mut previous: Option<Parsed> = None;
    for batch in rx.iter() {
        let batch = batch?;
        let (merged, parsed) = rayon::join(|| previous.take().map_or(Ok(()), &mut merge), || parse(batch));
        merged?;
        previous = Some(parsed);
    }
    if let Some(p) = previous {
        merge(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::source::Compression;

    /// Reads `text` as an events file with small blocks, in a thread, and
    /// fails if it does not end within 30 s.
    fn read_with_timeout(text: String, name: &str, opts: ReadOptions) -> Result<TableReport, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (format, compression) = source::classify(name).unwrap();
        assert_eq!(compression, Compression::None);
        let file = SourceFile { path, format, compression };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut strings = Interner::new();
            let r = read_table(TableKind::Events, &[file], &mut strings, &opts, &ReadProgress::default());
            let _ = tx.send(r.map(|(_, report)| report).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the read hung")
    }

    #[test]
    fn an_early_stop_does_not_hang_the_reader() {
        // Far more blocks than the channel and a batch hold, and a bad line
        // at the start: the strict merge stops while the reader still has
        // blocks to send.
        for (name, header) in [("events.jsonl", ""), ("events.csv", "ts,actor,action\n")] {
            let mut text = header.to_string();
            text.push_str(if header.is_empty() { "{\"ts\": \"bad\"}\n" } else { "bad,liu,like\n" });
            for i in 0..20_000 {
                if header.is_empty() {
                    text.push_str(&format!("{{\"ts\": {i}, \"actor\": \"a{i}\", \"action\": \"like\"}}\n"));
                } else {
                    text.push_str(&format!("{i},a{i},like\n"));
                }
            }
            let opts = ReadOptions { strict: true, block_bytes: 256, ..ReadOptions::default() };
            let e = read_with_timeout(text, name, opts).unwrap_err();
            assert!(e.contains("--strict"), "{e}");
        }
    }

    #[test]
    fn an_unclosed_csv_quote_costs_one_record() {
        // A quote opened and never closed near the start used to swallow
        // the rest of the file into one cell.
        let mut text = "ts,actor,action,target\n1000,liu,like,\"t-1\n".to_string();
        for i in 0..2_000 {
            text.push_str(&format!("{},a{i},like,t-{i}\n", 2000 + i));
        }
        // Times in 1970, told so (see ReadOptions::time_unit).
        let opts = ReadOptions {
            block_bytes: 1024,
            max_record_bytes: 4096,
            time_unit: Some(TimeUnit::Ms),
            ..ReadOptions::default()
        };
        let report = read_with_timeout(text, "events.csv", opts).unwrap();
        assert_eq!((report.records, report.skipped), (2_000, 1));
        assert_eq!(report.samples[0].record, 2);
        assert!(report.samples[0].message.contains("quoted cell opened on line 2 is not closed"));
    }

    #[test]
    fn a_stray_quote_does_not_split_a_later_quoted_cell() {
        // A `"` inside an unquoted cell is a character. The old block
        // cutter took it for an opening quote, cut inside the later quoted
        // cell, and the second half of that cell was read as a record of
        // its own (a password_change that never happened).
        let mut text = "ts,actor,action,target\n1000,li\"u,like,t-1\n".to_string();
        for i in 0..200 {
            text.push_str(&format!("{},a{i},like,t-{i}\n", 2000 + i));
        }
        text.push_str("9000,liu,post,\"line one\n9001,liu,password_change,x\"\n");
        for block_bytes in [16, 64, 333, 4096] {
            let opts = ReadOptions { block_bytes, time_unit: Some(TimeUnit::Ms), ..ReadOptions::default() };
            let report = read_with_timeout(text.clone(), "events.csv", opts).unwrap();
            assert_eq!((report.records, report.skipped), (202, 0), "block_bytes {block_bytes}");
        }
    }
}
