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
    /// JSONL and CSV: records longer than this many bytes are skipped as
    /// they stream by, never held whole (see [`super::limit`]).
    pub max_record_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            strict: false,
            max_samples: 5,
            block_bytes: 4 << 20,
            block_rows: 512 * 1024,
            projection: None,
            max_record_bytes: super::limit::DEFAULT_MAX_RECORD_BYTES,
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
    for file in files {
        match file.format {
            Format::Parquet => {
                super::parquet::read_file(file, kind, sink, strings, opts, &mut report, progress)?;
            }
            Format::Jsonl | Format::Csv => {
                read_text_file(file, kind, sink, strings, opts, &mut report, progress)?;
            }
        }
    }
    report.records = sink.rows() - before;
    Ok(report)
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

/// Reads one JSONL or CSV file as a pipeline: a reader thread cuts the
/// (decompressed) stream into batches of blocks; each batch is parsed on the
/// pool while the previous one is merged, in order, into the sink.
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
    let long = super::limit::LongRecords::default();
    let stream = super::limit::RecordLimit::new(
        source::open(file, &progress.file_bytes)?,
        opts.max_record_bytes,
        csv,
        long.clone(),
    );
    let batch = rayon::current_num_threads().max(1) * 2;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Block>, DataError>>(2);
    let header = std::sync::OnceLock::<Vec<String>>::new();
    std::thread::scope(|scope| {
        let header = &header;
        scope.spawn(move || {
            let mut blocks = BlockReader::new(stream, opts.block_bytes, csv);
            let mut last_bytes = 0;
            loop {
                let mut pending = Vec::with_capacity(batch);
                while pending.len() < batch {
                    match blocks.next_block() {
                        Ok(Some(mut block)) => {
                            if csv && header.get().is_none() {
                                match csv_format::parse_header(&block.bytes) {
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

        let keep = opts.projection.as_ref().and_then(|p| p.tables.get(&kind)).map(|set| Arc::new(set.clone()));
        let parse = |pending: Vec<Block>| -> Parsed {
            let header = header.get().map_or(&[][..], Vec::as_slice);
            pending
                .par_iter()
                .map(|block| {
                    let mut builder = TableBuilder::with_projection(kind, keep.clone());
                    let mut bad = Vec::new();
                    if csv {
                        csv_format::parse_block(&block.bytes, block.first_line, header, &mut builder, &mut bad);
                    } else {
                        jsonl::parse_block(&block.bytes, block.first_line, &mut builder, &mut bad);
                    }
                    long.note_in(&block.bytes, block.first_line, opts.max_record_bytes, &mut bad);
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
    })?;
    report.bytes += progress.bytes.load(Ordering::Relaxed) - bytes_before;
    Ok(())
}
