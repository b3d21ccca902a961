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
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::csv_format;
use super::error::{DataError, RecordError, TableReport};
use super::jsonl;
use super::schema::TableKind;
use super::source::{self, BlockReader, Format, SourceFile};
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
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            strict: false,
            max_samples: 5,
            block_bytes: 4 << 20,
            block_rows: 512 * 1024,
            projection: None,
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
    let mut report = TableReport {
        files: files.len(),
        ..TableReport::default()
    };
    for file in files {
        match file.format {
            Format::Parquet => {
                super::parquet::read_file(
                    file,
                    kind,
                    &mut table,
                    strings,
                    opts,
                    &mut report,
                    progress,
                )?;
            }
            Format::Jsonl | Format::Csv => {
                read_text_file(file, kind, &mut table, strings, opts, &mut report, progress)?;
            }
        }
    }
    report.records = table.rows as u64;
    Ok((table, report))
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
    let err = RecordError {
        file: path.to_path_buf(),
        record,
        unit,
        message,
    };
    if opts.strict {
        return Err(DataError::Strict { record: err });
    }
    report.skipped += 1;
    if report.samples.len() < opts.max_samples {
        report.samples.push(err);
    }
    Ok(())
}

fn read_text_file(
    file: &SourceFile,
    kind: TableKind,
    table: &mut Table,
    strings: &mut Interner,
    opts: &ReadOptions,
    report: &mut TableReport,
    progress: &ReadProgress,
) -> Result<(), DataError> {
    let csv = file.format == Format::Csv;
    let mut blocks = BlockReader::new(source::open(file)?, opts.block_bytes, csv);
    let mut header: Option<Vec<String>> = None;
    let batch = rayon::current_num_threads().max(1) * 2;
    let mut last_bytes = 0;
    loop {
        let mut pending = Vec::with_capacity(batch);
        while pending.len() < batch {
            match blocks
                .next_block()
                .map_err(|e| DataError::io(&file.path, e))?
            {
                Some(mut block) => {
                    if csv && header.is_none() {
                        let (names, len, lines) =
                            csv_format::parse_header(&block.bytes).map_err(|message| {
                                DataError::BadFile {
                                    path: file.path.clone(),
                                    message,
                                }
                            })?;
                        header = Some(names);
                        block.bytes.drain(..len);
                        block.first_line += lines;
                    }
                    pending.push(block);
                }
                None => break,
            }
        }
        progress
            .bytes
            .fetch_add(blocks.bytes_read - last_bytes, Ordering::Relaxed);
        last_bytes = blocks.bytes_read;
        if pending.is_empty() {
            break;
        }
        let header = header.as_deref().unwrap_or(&[]);
        let parsed: Vec<(TableBuilder, Vec<(u64, String)>)> = pending
            .par_iter()
            .map(|block| {
                let mut builder = TableBuilder::new(kind);
                let mut bad = Vec::new();
                if csv {
                    csv_format::parse_block(
                        &block.bytes,
                        block.first_line,
                        header,
                        &mut builder,
                        &mut bad,
                    );
                } else {
                    jsonl::parse_block(&block.bytes, block.first_line, &mut builder, &mut bad);
                }
                progress
                    .records
                    .fetch_add((builder.rows() + bad.len()) as u64, Ordering::Relaxed);
                (builder, bad)
            })
            .collect();
        for (builder, bad) in parsed {
            for (line, why) in bad {
                note_bad(report, opts, &file.path, line, "line", why)?;
            }
            table.append(builder, strings);
        }
    }
    report.bytes += blocks.bytes_read;
    Ok(())
}
