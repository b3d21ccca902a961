//! Parquet input (not yet built: see issue 4). Reading a Parquet file
//! fails with a clear error instead of being skipped.

use super::error::{DataError, TableReport};
use super::read::{ReadOptions, ReadProgress, TableSink};
use super::schema::TableKind;
use super::source::SourceFile;
use crate::intern::Interner;

/// Reads one Parquet file into `table`.
pub fn read_file(
    file: &SourceFile,
    _kind: TableKind,
    _sink: &mut dyn TableSink,
    _strings: &mut Interner,
    _opts: &ReadOptions,
    _report: &mut TableReport,
    _progress: &ReadProgress,
) -> Result<(), DataError> {
    Err(DataError::BadFile {
        path: file.path.clone(),
        message: "Parquet input is not supported by this build yet; convert to JSONL or CSV".into(),
    })
}
