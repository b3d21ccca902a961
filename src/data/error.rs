//! Errors and the read report.
//!
//! A bad record is never an error of the whole read unless the user asks
//! (`strict`): it is skipped, counted per table, and the first few are kept
//! with file and line so the summary can show them. Errors that stop the
//! read (a missing `events` table, an unreadable file) are [`DataError`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::schema::TableKind;

/// An error that stops reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The dataset has no `events` table.
    #[error(
        "{}: no events table: expected events.jsonl, events.csv or events.parquet \
         (jsonl and csv optionally .gz or .zst), or a directory events/ of part files",
        dir.display()
    )]
    MissingEvents {
        /// The dataset directory.
        dir: PathBuf,
    },
    /// A table is given by more than one file or directory.
    #[error("table `{table}` is given more than once: {}", list(paths))]
    AmbiguousTable {
        /// The table.
        table: TableKind,
        /// The competing paths.
        paths: Vec<PathBuf>,
    },
    /// A table directory holds no data file.
    #[error("{}: a table directory with no .jsonl, .csv or .parquet file in it", path.display())]
    EmptyTableDir {
        /// The directory.
        path: PathBuf,
    },
    /// A bad record, fatal because the read is strict.
    #[error("{record} (stopped because of --strict)")]
    Strict {
        /// The first bad record.
        record: RecordError,
    },
    /// A file whose structure (not one record) is unreadable: a CSV header,
    /// a Parquet footer or column of the wrong type.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A table's times fall in 1970: epoch seconds read as milliseconds
    /// (the contract's default unit) land there.
    #[error(
        "{}: the {table} times run from {} to {}, in 1970: numeric times look like epoch seconds read as \
         milliseconds; pass --time-unit s (or ms, us, ns: the unit of the data's numeric times)",
        path.display(),
        crate::time::format_rfc3339(*first),
        crate::time::format_rfc3339(*last)
    )]
    TimesIn1970 {
        /// The file with the earliest time.
        path: PathBuf,
        /// The table.
        table: TableKind,
        /// The earliest time read from that file.
        first: crate::time::Millis,
        /// The latest.
        last: crate::time::Millis,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl DataError {
    /// An I/O error at `path`.
    pub fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io { path: path.to_path_buf(), error: source }
    }
}

/// One skipped record: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line (JSONL, CSV) or row (Parquet) number in that file.
    pub record: u64,
    /// Whether `record` is a line or a row number.
    pub unit: &'static str,
    /// What was wrong with it.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}: {}", self.file.display(), self.unit, self.record, self.message)
    }
}

/// What reading one table found.
#[derive(Clone, Debug, Default)]
pub struct TableReport {
    /// Files read.
    pub files: usize,
    /// Bytes read: after decompression for JSONL and CSV, the file's
    /// (compressed) size for Parquet.
    pub bytes: u64,
    /// Records kept.
    pub records: u64,
    /// Records skipped as bad.
    pub skipped: u64,
    /// Exact duplicates dropped (events only).
    pub duplicates: u64,
    /// Records at or before a daily state's watermark, left out (late:
    /// a batch holds what came after the previous one).
    pub late: u64,
    /// The first few skipped records.
    pub samples: Vec<RecordError>,
    /// The earliest and latest time of the table's records (over every
    /// time field: `ts`, `since`, `created_at`, `start`, `end`).
    pub span: Option<(crate::time::Millis, crate::time::Millis)>,
}

/// What reading a dataset found, per table present.
#[derive(Clone, Debug, Default)]
pub struct ReadReport {
    /// Tables present, in read order.
    pub tables: Vec<(TableKind, TableReport)>,
}

impl ReadReport {
    /// The report of one table, if it was present.
    pub fn table(&self, kind: TableKind) -> Option<&TableReport> {
        self.tables.iter().find(|(k, _)| *k == kind).map(|(_, r)| r)
    }

    /// Records skipped in all tables.
    pub fn skipped(&self) -> u64 {
        self.tables.iter().map(|(_, r)| r.skipped).sum()
    }
}
