//! Parquet input: a file's row groups read in parallel into columns.
//!
//! The footer is read once; the columns to read are chosen from the
//! projection (a table's required fields are always read) and each one's
//! Arrow type is checked against its field's kind before any data is read,
//! so a column that cannot be read (a struct where an id is expected) is a
//! [`DataError::BadFile`] naming the column and its type. Consecutive row
//! groups are grouped into blocks of at least [`ReadOptions::block_rows`]
//! rows; blocks are decoded on the rayon pool, a few at a time, each with a
//! private interner, and appended to the table in file order while the
//! next ones decode: the result and the symbol numbering do not depend on
//! the thread count. String id columns that are dictionary encoded in every
//! page are read as Arrow dictionaries, so each distinct value is interned
//! once per dictionary rather than once per row.
//!
//! Values are converted column by column, not record by record, with the
//! same meaning the JSONL and CSV readers give them (see `SCHEMA.md`):
//!
//! - ids and strings: any string type, string dictionaries, integers (their
//!   decimal text), booleans (`true`/`false`), floats (shortest text);
//! - timestamps: TIMESTAMP of any unit, with or without time zone (the
//!   stored instant is UTC; sub-millisecond parts are truncated), integer
//!   epoch milliseconds, DATE, or RFC 3339 strings;
//! - lists: lists of strings or integers, or a `|`-separated string;
//! - numbers: any integer or float type (or numeric strings);
//! - unknown columns: kept as strings; lists are joined with `|`,
//!   timestamps written as RFC 3339, other types as Arrow displays them.
//!
//! A null or empty value is an absent field. A row with a required field
//! absent, or a value that does not parse (a string timestamp), is a bad
//! record, reported with its 1-based row number in the file.
//!
//! Limits: parallelism is across row groups only, so a file of one row
//! group is decoded on one thread, and the files of a part directory are
//! read one after another. `report.bytes` counts the file's compressed
//! bytes, not decompressed ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayData, ArrayRef, AsArray, RecordBatch, new_empty_array};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Encoding;
use rayon::prelude::*;

use super::Projection;
use super::error::{DataError, TableReport};
use super::read::{ReadOptions, ReadProgress, TableSink, note_bad};
use super::schema::{Kind, TableKind};
use super::source::SourceFile;
use super::table::{Column, TableBuilder, Times, check_label, parse_num_text, parse_time_text};
use crate::intern::{Interner, LocalStrings, Sym};
use crate::time::{Millis, TimeUnit as NumericUnit, check_time, format_rfc3339};

thread_local! {
    /// Whether this thread is inside a call into the Parquet decoder.
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, a call into the Parquet and Arrow decoders on a file's bytes.
/// Those crates panic on some corrupt files (a negative column chunk
/// length, a validity bitmap shorter than its page says) instead of
/// returning an error; such a panic comes back as its message, so that a
/// corrupt file is a bad file naming it, never a crash.
pub(crate) fn decoding<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = DECODING.with(|d| d.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(outer));
    result.map_err(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("the Parquet decoder failed on this file: {why}")
    })
}

/// Whether the current thread is inside the Parquet decoder, where a panic
/// is caught and reported as a bad file: a panic hook can stay quiet then.
pub fn in_decoder() -> bool {
    DECODING.with(|d| d.get())
}

/// Rows per decoded record batch. Larger batches cost memory, smaller ones
/// per-batch overhead; not tuned beyond a quick measurement.
const BATCH_ROWS: usize = 64 * 1024;

/// Reads one Parquet file into `sink`.
pub fn read_file(
    file: &SourceFile,
    kind: TableKind,
    sink: &mut dyn TableSink,
    strings: &mut Interner,
    opts: &ReadOptions,
    report: &mut TableReport,
    progress: &ReadProgress,
) -> Result<(), DataError> {
    let handle = File::open(&file.path).map_err(|e| DataError::io(&file.path, e))?;
    let file_bytes = handle.metadata().map_err(|e| DataError::io(&file.path, e))?.len();
    let bad = |message: String| DataError::BadFile { path: file.path.clone(), message };
    let meta = decoding(|| ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new()))
        .map_err(bad)?
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    drop(handle);
    let cols = plan_columns(&file.path, kind, meta.schema(), opts.projection.as_ref())?;
    let meta = with_dictionaries(meta, &cols);
    let mask = ProjectionMask::roots(meta.parquet_schema(), cols.iter().map(|c| c.index));

    let groups = tasks(&meta, opts.block_rows);
    let unit = opts.time_unit.unwrap_or_default();
    let reader = RowGroupReader { file, kind, meta: &meta, mask: &mask, cols: &cols, records: &progress.records, unit };
    // A window of blocks is decoded in parallel while the previous window
    // is appended (in order) on this thread: at most two windows are in
    // memory.
    let window = rayon::current_num_threads().max(1);
    let mut windows = groups.chunks(window);
    let mut counted = 0u64;
    let mut pending: Vec<Result<Part, DataError>> = Vec::new();
    loop {
        let next = windows.next();
        if pending.is_empty() && next.is_none() {
            break;
        }
        let parts = std::mem::take(&mut pending);
        let (merged, decoded) = rayon::join(
            || -> Result<(), DataError> {
                for part in parts {
                    let part = part?;
                    for (row, why) in &part.bad {
                        note_bad(report, opts, &file.path, *row, "row", why.clone())?;
                    }
                    sink.push(part.into_builder(kind, &cols), strings)?;
                }
                Ok(())
            },
            || match next {
                Some(groups) => groups
                    .par_iter()
                    .map(|task| {
                        let part = reader.read(task);
                        progress.bytes.fetch_add(task.bytes, Ordering::Relaxed);
                        part
                    })
                    .collect(),
                None => Vec::new(),
            },
        );
        merged?;
        counted += next.map_or(0, |g| g.iter().map(|t| t.bytes).sum());
        pending = decoded;
    }
    progress.bytes.fetch_add(file_bytes.saturating_sub(counted), Ordering::Relaxed);
    report.bytes += file_bytes;
    Ok(())
}

/// Reads Arrow record batches of one table (from pyarrow, Spark or any
/// Arrow producer) into `sink`, exactly as the columns of a Parquet file
/// of that schema are read: the same type checks, conversions and bad-row
/// reports. `name` stands for the file in messages (`<events>`, say);
/// rows are numbered from 1 across the batches. Each batch is converted as
/// one block, in order, on this thread.
#[allow(clippy::too_many_arguments)]
pub fn read_batches(
    name: &Path,
    kind: TableKind,
    schema: &Schema,
    batches: impl IntoIterator<Item = RecordBatch>,
    sink: &mut dyn TableSink,
    strings: &mut Interner,
    opts: &ReadOptions,
    report: &mut TableReport,
) -> Result<(), DataError> {
    let cols = plan_columns(name, kind, schema, opts.projection.as_ref())?;
    let before = sink.rows();
    let mut row = 0u64;
    for batch in batches {
        // The projection keeps a subset of the schema's columns, by index.
        let batch = batch.project(&cols.iter().map(|c| c.index).collect::<Vec<_>>()).map_err(|e| {
            DataError::BadFile { path: name.to_path_buf(), message: format!("a batch does not match its schema: {e}") }
        })?;
        let mut part = Part::new(&cols, opts.time_unit.unwrap_or_default());
        part.add(&batch, row, kind, &cols).map_err(|col| DataError::BadFile {
            path: name.to_path_buf(),
            message: format!(
                "column `{}` changed type between batches, to {}",
                cols[col].name,
                batch.column(col).data_type()
            ),
        })?;
        row += batch.num_rows() as u64;
        for (r, why) in &part.bad {
            note_bad(report, opts, name, *r, "row", why.clone())?;
        }
        sink.push(part.into_builder(kind, &cols), strings)?;
    }
    report.records += sink.rows() - before;
    Ok(())
}

/// What a column of the file becomes in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The known field at this position of the table's schema, of this kind.
    Field(usize, Kind),
    /// An unknown field, kept as strings.
    Extra,
}

/// One column of the file that is read.
#[derive(Debug)]
struct Col {
    name: String,
    target: Target,
    /// Its position among the file's root columns.
    index: usize,
    /// A schema field outside the projection, read only to check its
    /// values (so that which rows are bad never depends on the rules
    /// loaded), then dropped.
    check_only: bool,
}

/// Chooses the columns to read and checks that each one's type can be read
/// as its field's kind.
fn plan_columns(
    path: &Path,
    kind: TableKind,
    schema: &Schema,
    projection: Option<&Projection>,
) -> Result<Vec<Col>, DataError> {
    let fields = kind.fields();
    let mut cols = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, f) in schema.fields().iter().enumerate() {
        let name = f.name();
        let known = fields.iter().position(|d| d.name == name);
        let required = known.is_some_and(|k| fields[k].required);
        let unread = !required && projection.is_some_and(|p| !p.wants(kind, name));
        if !seen.insert(name.as_str()) {
            return Err(DataError::BadFile {
                path: path.to_path_buf(),
                message: format!("column `{name}` appears more than once"),
            });
        }
        let target = match known {
            Some(k) => Target::Field(k, fields[k].kind),
            None => Target::Extra,
        };
        // Converting an empty array of the column's type runs the same type
        // dispatch as the data will, so the check cannot drift from it.
        let empty = new_empty_array(f.data_type());
        if convert(target, &empty, &mut LocalStrings::new(), &mut Vec::new(), &mut None, NumericUnit::Ms).is_err() {
            return Err(DataError::BadFile {
                path: path.to_path_buf(),
                message: format!(
                    "column `{name}` has type {}, which cannot be read as {}",
                    f.data_type(),
                    expected(target)
                ),
            });
        }
        // A column outside the projection is read only when one of its
        // values can be bad: schema times (any type: text that is no time,
        // or a time out of range), schema numbers given as text, and extra
        // columns of a time type (out of range, they have no RFC 3339 text).
        // Other columns convert without fail, so skipping them changes no
        // verdict (and an unread `lat` of doubles costs nothing).
        let fallible = match target {
            Target::Field(_, Kind::Time) => true,
            Target::Field(_, Kind::Num) => !f.data_type().is_numeric(),
            Target::Extra => f.data_type().is_temporal(),
            Target::Field(..) => false,
        };
        if unread && !fallible {
            continue;
        }
        cols.push(Col { name: name.clone(), target, index, check_only: unread });
    }
    Ok(cols)
}

/// Asks the reader to keep string columns read as symbols dictionary
/// encoded where every page of every row group is (writers dictionary
/// encode strings until the dictionary grows too large): each distinct
/// value is then interned once per row group instead of once per row. A
/// column that falls back to plain pages is read as plain strings: the
/// reader would rebuild a dictionary per batch by hashing, which measured
/// slower than interning the strings directly. A file whose reader refuses
/// the request is read as stored.
fn with_dictionaries(meta: ArrowReaderMetadata, cols: &[Col]) -> ArrowReaderMetadata {
    let schema = meta.schema();
    let descr = meta.parquet_schema();
    let all_dictionary = |root: usize| {
        let leaves: Vec<usize> =
            (0..descr.num_columns()).filter(|&leaf| descr.get_column_root_idx(leaf) == root).collect();
        leaves.len() == 1
            && meta.metadata().row_groups().iter().all(|rg| {
                let c = rg.column(leaves[0]);
                c.dictionary_page_offset().is_some()
                    && c.page_encoding_stats_mask()
                        .is_some_and(|m| m.is_only(Encoding::PLAIN_DICTIONARY) || m.is_only(Encoding::RLE_DICTIONARY))
            })
    };
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let symbols =
                cols.iter().any(|c| c.index == i && matches!(c.target, Target::Field(_, Kind::Sym) | Target::Extra));
            match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 if symbols && all_dictionary(i) => {
                    changed = true;
                    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(f.data_type().clone()));
                    f.as_ref().clone().with_data_type(dict)
                }
                _ => f.as_ref().clone(),
            }
        })
        .collect();
    if !changed {
        return meta;
    }
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let options = ArrowReaderOptions::new().with_schema(hinted);
    ArrowReaderMetadata::try_new(meta.metadata().clone(), options).unwrap_or(meta)
}

/// What a column of this target may be, for the error message.
fn expected(target: Target) -> &'static str {
    match target {
        Target::Field(_, Kind::Sym) | Target::Extra => {
            "an id or string (expected a string, integer, boolean or float column)"
        }
        Target::Field(_, Kind::Time) => {
            "a timestamp (expected TIMESTAMP, DATE, integer epoch milliseconds \
             or RFC 3339 strings)"
        }
        Target::Field(_, Kind::List) => {
            "a list of strings (expected a list of strings or integers, \
             or a `|`-separated string)"
        }
        Target::Field(_, Kind::Num) => "a number (expected an integer or float column)",
        Target::Field(_, Kind::Text) => "text (expected a string column)",
    }
}

/// Consecutive row groups decoded together into one block.
#[derive(Debug)]
struct Task {
    row_groups: Vec<usize>,
    /// The first row's position in the file, from 0.
    first_row: u64,
    /// Compressed bytes of its row groups.
    bytes: u64,
}

/// Cuts the file's row groups into tasks of at least `min_rows` rows.
///
/// Grouping spares small row groups (DuckDB writes 122,880 rows) each
/// paying for the merge of a block into the table; the default of
/// [`ReadOptions::block_rows`] measured about 10% faster than one row
/// group per block on such files. It does not depend on the thread count,
/// so neither do the blocks nor the symbol numbering.
fn tasks(meta: &ArrowReaderMetadata, min_rows: u64) -> Vec<Task> {
    let min_rows = min_rows.max(1);
    let mut tasks: Vec<Task> = Vec::new();
    let mut rows_in_last = min_rows;
    let mut first_row = 0u64;
    for (i, rg) in meta.metadata().row_groups().iter().enumerate() {
        if rows_in_last >= min_rows {
            tasks.push(Task { row_groups: Vec::new(), first_row, bytes: 0 });
            rows_in_last = 0;
        }
        let task = tasks.last_mut().expect("a task is open");
        task.row_groups.push(i);
        task.bytes += rg.compressed_size().max(0) as u64;
        let rows = rg.num_rows().max(0) as u64;
        rows_in_last += rows;
        first_row += rows;
    }
    tasks
}

/// Everything a row group task needs; shared by reference across tasks.
struct RowGroupReader<'a> {
    file: &'a SourceFile,
    kind: TableKind,
    meta: &'a ArrowReaderMetadata,
    mask: &'a ProjectionMask,
    cols: &'a [Col],
    records: &'a AtomicU64,
    /// The unit of integer times.
    unit: NumericUnit,
}

impl RowGroupReader<'_> {
    /// Decodes the row groups of one task into a block.
    fn read(&self, task: &Task) -> Result<Part, DataError> {
        decoding(|| self.read_groups(task)).unwrap_or_else(|why| {
            Err(DataError::BadFile {
                path: self.file.path.clone(),
                message: format!("row groups {:?}: {why}", task.row_groups),
            })
        })
    }

    fn read_groups(&self, task: &Task) -> Result<Part, DataError> {
        let bad_file = |e: &dyn std::fmt::Display| DataError::BadFile {
            path: self.file.path.clone(),
            message: format!("row groups {:?}: {e}", task.row_groups),
        };
        let mut part = Part::new(self.cols, self.unit);
        let mut row = task.first_row;
        // One reader per row group, so that no batch straddles two row
        // groups: such a batch meets two dictionaries, and the reader then
        // spells the values out and hashes them into a new dictionary
        // (about a tenth of the read's time on DuckDB's files). Each reader
        // opens its own handle: clones of one `File` share a cursor, which
        // concurrent reads would fight over.
        for &rg in &task.row_groups {
            let handle = File::open(&self.file.path).map_err(|e| DataError::io(&self.file.path, e))?;
            let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, self.meta.clone())
                .with_projection(self.mask.clone())
                .with_row_groups(vec![rg])
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| bad_file(&e))?;
            for batch in batches {
                let batch = batch.map_err(|e| bad_file(&e))?;
                part.add(&batch, row, self.kind, self.cols).map_err(|col| DataError::BadFile {
                    path: self.file.path.clone(),
                    message: format!(
                        "column `{}` changed type within the file, to {}",
                        self.cols[col].name,
                        batch.column(col).data_type()
                    ),
                })?;
                row += batch.num_rows() as u64;
                self.records.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
        }
        Ok(part)
    }
}

/// A string dictionary already interned: the dictionary's values and the
/// symbol of each. The batches of one column chunk share one dictionary.
type DictMemo = Option<(ArrayData, Vec<Option<Sym>>)>;

/// The rows of one row group, converted, with the bad ones left out.
struct Part {
    strings: LocalStrings,
    /// One per read column, every one `rows` long.
    columns: Vec<Column>,
    rows: usize,
    /// Bad rows: 1-based row number in the file, and why.
    bad: Vec<(u64, String)>,
    dicts: Vec<DictMemo>,
    /// The unit of integer times.
    unit: NumericUnit,
}

impl Part {
    fn new(cols: &[Col], unit: NumericUnit) -> Part {
        Part {
            unit,
            strings: LocalStrings::new(),
            columns: cols.iter().map(|c| empty_column(c.target)).collect(),
            rows: 0,
            bad: Vec::new(),
            dicts: cols.iter().map(|_| None).collect(),
        }
    }

    /// Converts one record batch whose first row is row `first_row` (from 0)
    /// of the file. Fails with the position of a column whose type it cannot
    /// read (which the footer check makes impossible).
    fn add(&mut self, batch: &RecordBatch, first_row: u64, kind: TableKind, cols: &[Col]) -> Result<(), usize> {
        let n = batch.num_rows();
        let mut problems: Vec<(usize, usize, String)> = Vec::new();
        let mut converted = Vec::with_capacity(cols.len());
        for (pos, (col, array)) in cols.iter().zip(batch.columns()).enumerate() {
            let mut local = Vec::new();
            let column = convert(col.target, array, &mut self.strings, &mut local, &mut self.dicts[pos], self.unit)
                .map_err(|Unsupported| pos)?;
            problems.extend(local.into_iter().map(|(row, why)| (row, pos, format!("field `{}`: {why}", col.name))));
            converted.push(if col.check_only { empty_column(col.target) } else { column });
        }

        // The first problem of each row, in the order the record builder
        // of the text formats finds them: values that do not parse (by
        // column), then missing required fields (by schema), then the
        // contract's value checks.
        problems.sort_by_key(|&(row, pos, _)| (row, pos));
        let mut bad: BTreeMap<usize, String> = BTreeMap::new();
        for (row, _, why) in problems {
            bad.entry(row).or_insert(why);
        }
        for (k, field) in kind.fields().iter().enumerate() {
            if !field.required {
                continue;
            }
            let missing = || format!("missing required field `{}`", field.name);
            match cols.iter().position(|c| matches!(c.target, Target::Field(f, _) if f == k)) {
                Some(pos) => {
                    for row in 0..n {
                        if absent(&converted[pos], row) {
                            bad.entry(row).or_insert_with(missing);
                        }
                    }
                }
                None => {
                    for row in 0..n {
                        bad.entry(row).or_insert_with(missing);
                    }
                }
            }
        }
        if kind == TableKind::Labels
            && let Some(pos) = cols.iter().position(|c| c.name == "label")
        {
            for row in 0..n {
                if let Some(s) = converted[pos].sym(row)
                    && !bad.contains_key(&row)
                    && let Err(why) = check_label(self.strings.resolve(s))
                {
                    bad.insert(row, why);
                }
            }
        }

        let mut kept = n;
        if !bad.is_empty() {
            let keep: Vec<u32> = (0..n).filter(|r| !bad.contains_key(r)).map(|r| r as u32).collect();
            kept = keep.len();
            converted = converted.iter().map(|c| c.gather(&keep)).collect();
            self.bad.extend(bad.into_iter().map(|(row, why)| (first_row + row as u64 + 1, why)));
        }
        for (dst, src) in self.columns.iter_mut().zip(converted) {
            extend(dst, src);
        }
        self.rows += kept;
        Ok(())
    }

    /// The block, ready for [`Table::append`].
    fn into_builder(self, kind: TableKind, cols: &[Col]) -> TableBuilder {
        let columns =
            cols.iter().zip(self.columns).map(|(c, column)| (c.name.clone(), drop_if_absent(column))).collect();
        TableBuilder::from_columns(kind, self.strings, columns, self.rows)
    }
}

fn empty_column(target: Target) -> Column {
    match target {
        Target::Field(_, Kind::Time) => Column::Time(Times::new()),
        Target::Field(_, Kind::Sym) | Target::Extra => Column::Sym(Vec::new()),
        Target::Field(_, Kind::List) => Column::List { offsets: Vec::new(), values: Vec::new() },
        Target::Field(_, Kind::Num) => Column::Num(Vec::new()),
        Target::Field(_, Kind::Text) => Column::Text(Vec::new()),
    }
}

/// Whether `row` of a fully filled column holds no value.
fn absent(column: &Column, row: usize) -> bool {
    match column {
        Column::Time(v) => v.get(row).is_none(),
        Column::Sym(v) => v[row].is_none(),
        Column::Num(v) => v[row].is_nan(),
        Column::Text(v) => v[row].is_none(),
        Column::List { offsets, .. } => offsets[row] == offsets[row + 1],
    }
}

/// Appends the rows of `src` to `dst`; both are fully filled.
fn extend(dst: &mut Column, src: Column) {
    match (dst, src) {
        (Column::Time(d), Column::Time(s)) => d.extend(&s),
        (Column::Sym(d), Column::Sym(s)) => d.extend(s),
        (Column::Num(d), Column::Num(s)) => d.extend(s),
        (Column::Text(d), Column::Text(s)) => d.extend(s),
        (Column::List { offsets, values }, Column::List { offsets: so, values: sv }) => {
            if offsets.is_empty() {
                offsets.push(0);
            }
            let base = values.len() as u32;
            offsets.extend(so.iter().skip(1).map(|&o| o + base));
            values.extend(sv);
        }
        _ => unreachable!("a column is converted to its target's kind"),
    }
}

/// A column with no value in any row holds no memory, as the text readers
/// leave it.
fn drop_if_absent(column: Column) -> Column {
    let empty = match &column {
        Column::Time(v) => v.all_absent(),
        Column::Sym(v) => v.iter().all(Option::is_none),
        Column::Num(v) => v.iter().all(|x| x.is_nan()),
        Column::Text(v) => v.iter().all(Option::is_none),
        Column::List { values, .. } => values.is_empty(),
    };
    if empty {
        match column {
            Column::Time(_) => Column::Time(Times::new()),
            Column::Sym(_) => Column::Sym(Vec::new()),
            Column::Num(_) => Column::Num(Vec::new()),
            Column::Text(_) => Column::Text(Vec::new()),
            Column::List { .. } => Column::List { offsets: Vec::new(), values: Vec::new() },
        }
    } else {
        column
    }
}

/// An Arrow type that cannot be read as the column's kind.
#[derive(Debug)]
struct Unsupported;

/// Problems with single values: (index in the array, why).
type Problems = Vec<(usize, String)>;

/// Converts one array to a fully filled column of `target`'s kind.
fn convert(
    target: Target,
    a: &ArrayRef,
    strings: &mut LocalStrings,
    problems: &mut Problems,
    memo: &mut DictMemo,
    unit: NumericUnit,
) -> Result<Column, Unsupported> {
    Ok(match target {
        Target::Field(_, Kind::Sym) => Column::Sym(syms(a, strings, problems, false, Some(memo))?),
        Target::Extra => Column::Sym(extra_syms(a, strings, problems, memo)?),
        Target::Field(_, Kind::Time) => Column::Time(times(a, problems, unit)?),
        Target::Field(_, Kind::Num) => Column::Num(nums(a, problems)?),
        Target::Field(_, Kind::Text) => Column::Text(texts(a, problems)?),
        Target::Field(_, Kind::List) => {
            let (offsets, values) = lists(a, strings, problems)?;
            Column::List { offsets, values }
        }
    })
}

/// Calls `f` with each value of a string (or binary) array, `None` where
/// null or not UTF-8. Returns the indices of values that are not UTF-8, or
/// `None` when `a` holds no strings.
fn each_str<'a>(a: &'a dyn Array, mut f: impl FnMut(Option<&'a str>)) -> Option<Vec<usize>> {
    let mut not_utf8 = Vec::new();
    let mut bytes = |i: usize, b: Option<&'a [u8]>| {
        f(b.and_then(|b| match std::str::from_utf8(b) {
            Ok(s) => Some(s),
            Err(_) => {
                not_utf8.push(i);
                None
            }
        }))
    };
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().for_each(f),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().for_each(f),
        DataType::Utf8View => a.as_string_view().iter().for_each(f),
        DataType::Binary => a.as_binary::<i32>().iter().enumerate().for_each(|(i, b)| bytes(i, b)),
        DataType::LargeBinary => a.as_binary::<i64>().iter().enumerate().for_each(|(i, b)| bytes(i, b)),
        DataType::BinaryView => a.as_binary_view().iter().enumerate().for_each(|(i, b)| bytes(i, b)),
        _ => return None,
    }
    Some(not_utf8)
}

fn note_not_utf8(problems: &mut Problems, at: Vec<usize>) {
    problems.extend(at.into_iter().map(|i| (i, "not valid UTF-8".to_string())));
}

/// The values of an integer array, widened, or `None` for other types.
fn ints(a: &dyn Array) -> Option<Vec<Option<i128>>> {
    macro_rules! widen {
        ($t:ty) => {
            a.as_primitive::<$t>().iter().map(|v| v.map(i128::from)).collect()
        };
    }
    Some(match a.data_type() {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => widen!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        DataType::UInt64 => widen!(UInt64Type),
        _ => return None,
    })
}

/// The values of a float array as f64, or `None` for other types. Narrow
/// floats are widened through their shortest text, so a 32-bit `0.1` is
/// the 0.1 the writer meant, as it would be in JSON.
fn floats(a: &dyn Array) -> Option<Vec<Option<f64>>> {
    let narrow = |x: f32| {
        let mut buf = ryu::Buffer::new();
        buf.format(x).parse::<f64>().unwrap_or(f64::from(x))
    };
    Some(match a.data_type() {
        DataType::Float16 => a.as_primitive::<Float16Type>().iter().map(|v| v.map(|h| narrow(h.to_f32()))).collect(),
        DataType::Float32 => a.as_primitive::<Float32Type>().iter().map(|v| v.map(narrow)).collect(),
        DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
        _ => return None,
    })
}

/// A dictionary array's values materialised per row.
fn undictionary(a: &dyn Array) -> Result<ArrayRef, Unsupported> {
    let d = a.as_any_dictionary();
    arrow::compute::take(d.values().as_ref(), d.keys(), None).map_err(|_| Unsupported)
}

/// A column read as interned strings (ids, categories).
fn syms(
    a: &dyn Array,
    strings: &mut LocalStrings,
    problems: &mut Problems,
    keep_empty: bool,
    memo: Option<&mut DictMemo>,
) -> Result<Vec<Option<Sym>>, Unsupported> {
    let mut out = Vec::with_capacity(a.len());
    let mut put = |s: &str| (keep_empty || !s.is_empty()).then(|| strings.intern(s));
    if let Some(bad) = each_str(a, |s| out.push(s.and_then(&mut put))) {
        note_not_utf8(problems, bad);
        return Ok(out);
    }
    if let Some(values) = ints(a) {
        let mut buf = itoa::Buffer::new();
        out.extend(values.into_iter().map(|v| v.map(|x| put(buf.format(x)).expect("digits"))));
        return Ok(out);
    }
    if let Some(values) = floats(a) {
        let mut buf = ryu::Buffer::new();
        out.extend(values.into_iter().map(|v| v.map(|x| put(buf.format(x)).expect("digits"))));
        return Ok(out);
    }
    match a.data_type() {
        DataType::Boolean => {
            out.extend(a.as_boolean().iter().map(|v| v.and_then(|b| put(if b { "true" } else { "false" }))));
            Ok(out)
        }
        DataType::Dictionary(..) => {
            let d = a.as_any_dictionary();
            if !is_int(d.keys().data_type()) {
                return Err(Unsupported);
            }
            let data = d.values().to_data();
            let mut sub = Vec::new();
            let fresh;
            let values: &[Option<Sym>] = match memo {
                // The reader may hand out equal copies: comparing is
                // cheaper than interning again.
                Some(Some((seen, v))) if seen.ptr_eq(&data) || *seen == data => v,
                Some(m) => {
                    let v = syms(d.values(), strings, &mut sub, keep_empty, None)?;
                    if sub.is_empty() {
                        &m.insert((data, v)).1
                    } else {
                        fresh = v;
                        &fresh
                    }
                }
                None => {
                    fresh = syms(d.values(), strings, &mut sub, keep_empty, None)?;
                    &fresh
                }
            };
            let lookup = |k: Option<usize>| k.and_then(|k| values.get(k).copied().flatten());
            if sub.is_empty() {
                each_key(d.keys(), |_, k| out.push(lookup(k)));
            } else {
                let bad_values: HashMap<usize, String> = sub.into_iter().collect();
                each_key(d.keys(), |row, k| {
                    if let Some(why) = k.and_then(|k| bad_values.get(&k)) {
                        problems.push((row, why.clone()));
                    }
                    out.push(lookup(k));
                });
            }
            Ok(out)
        }
        _ => Err(Unsupported),
    }
}

/// Whether `t` is an integer type (of dictionary keys, say).
fn is_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Calls `f` with each row and its dictionary key (`None` where null or
/// negative) of an integer array, without widening the keys into a vector
/// first (a dictionary column is mostly keys).
fn each_key(a: &dyn Array, mut f: impl FnMut(usize, Option<usize>)) {
    macro_rules! keys {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>();
            if p.null_count() == 0 {
                p.values().iter().enumerate().for_each(|(row, &k)| f(row, usize::try_from(k).ok()));
            } else {
                p.iter().enumerate().for_each(|(row, k)| f(row, k.and_then(|k| usize::try_from(k).ok())));
            }
        }};
    }
    match a.data_type() {
        DataType::Int8 => keys!(Int8Type),
        DataType::Int16 => keys!(Int16Type),
        DataType::Int32 => keys!(Int32Type),
        DataType::Int64 => keys!(Int64Type),
        DataType::UInt8 => keys!(UInt8Type),
        DataType::UInt16 => keys!(UInt16Type),
        DataType::UInt32 => keys!(UInt32Type),
        DataType::UInt64 => keys!(UInt64Type),
        _ => unreachable!("checked by is_int"),
    }
}

/// An unknown column, kept as strings whatever its type.
fn extra_syms(
    a: &dyn Array,
    strings: &mut LocalStrings,
    problems: &mut Problems,
    memo: &mut DictMemo,
) -> Result<Vec<Option<Sym>>, Unsupported> {
    if let Ok(v) = syms(a, strings, problems, false, Some(memo)) {
        return Ok(v);
    }
    if let Some((items, ranges)) = list_parts(a) {
        // Items joined with `|`, nulls left out, as JSON arrays are kept.
        let mut sub = Vec::new();
        let items = syms(&items, strings, &mut sub, true, None)?;
        let mut joined = String::new();
        let out = ranges
            .iter()
            .enumerate()
            .map(|(row, &(start, end))| {
                if a.is_null(row) {
                    return None;
                }
                joined.clear();
                for (k, s) in items[start..end].iter().flatten().enumerate() {
                    if k > 0 {
                        joined.push('|');
                    }
                    joined.push_str(strings.resolve(*s));
                }
                Some(strings.intern(&joined))
            })
            .collect();
        problems.extend(sub.into_iter().map(|(i, why)| (row_of(&ranges, i), why)));
        return Ok(out);
    }
    if matches!(a.data_type(), DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) {
        let t = times(a, problems, NumericUnit::Ms)?;
        return Ok((0..t.len()).map(|r| t.get(r).map(|t| strings.intern(&format_rfc3339(t)))).collect());
    }
    let options = arrow::util::display::FormatOptions::default();
    let shown = arrow::util::display::ArrayFormatter::try_new(a, &options).map_err(|_| Unsupported)?;
    let mut text = String::new();
    Ok((0..a.len())
        .map(|i| {
            if a.is_null(i) {
                return None;
            }
            text.clear();
            use std::fmt::Write;
            write!(text, "{}", shown.value(i)).ok()?;
            (!text.is_empty()).then(|| strings.intern(&text))
        })
        .collect())
}

/// The items array of a list array and each row's range in it.
fn list_parts(a: &dyn Array) -> Option<(ArrayRef, Vec<(usize, usize)>)> {
    match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let ranges = l.value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect();
            Some((l.values().clone(), ranges))
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let ranges = l.value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect();
            Some((l.values().clone(), ranges))
        }
        DataType::FixedSizeList(_, size) => {
            let l = a.as_fixed_size_list();
            let size = (*size).max(0) as usize;
            let ranges = (0..l.len())
                .map(|i| {
                    let start = (l.offset() + i) * size;
                    (start, start + size)
                })
                .collect();
            Some((l.values().clone(), ranges))
        }
        _ => None,
    }
}

/// The row whose range holds item `i`.
fn row_of(ranges: &[(usize, usize)], i: usize) -> usize {
    ranges.partition_point(|&(_, end)| end <= i)
}

/// A column read as timestamps, in UTC milliseconds. A value that is not a
/// time, or a time outside [`crate::time::MIN_TIME`]..=[`crate::time::MAX_TIME`]
/// (in any unit), is a problem of its row.
fn times(a: &dyn Array, problems: &mut Problems, unit: NumericUnit) -> Result<Times, Unsupported> {
    let mut out = Times::new();
    let mut unparsed = Vec::new();
    if let Some(bad) = each_str(a, |s| {
        let t = match s {
            Some(s) if !s.is_empty() => parse_time_text(s, unit).map_or_else(
                |why| {
                    unparsed.push((out.len(), why));
                    None
                },
                Some,
            ),
            _ => None,
        };
        out.push(t);
    }) {
        note_not_utf8(problems, bad);
        problems.extend(unparsed);
        return Ok(out);
    }
    let mut checked = |i: usize, ms: Option<i128>, shown: &dyn std::fmt::Display| -> Option<Millis> {
        match check_time(ms?) {
            Ok(t) => Some(t),
            Err(why) => {
                problems.push((i, format!("timestamp {shown} is {why}")));
                None
            }
        }
    };
    if let Some(values) = ints(a) {
        for (i, v) in values.into_iter().enumerate() {
            let t = v.and_then(|v| checked(i, Some(unit.to_millis(v)), &v));
            out.push(t);
        }
        return Ok(out);
    }
    // Scaled to milliseconds in i128, where no unit can overflow, then
    // checked against the range.
    macro_rules! scaled {
        ($t:ty, $f:expr) => {{
            for (i, v) in a.as_primitive::<$t>().iter().enumerate() {
                let t = v.and_then(|v| checked(i, Some($f(i128::from(v))), &v));
                out.push(t);
            }
        }};
    }
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => scaled!(TimestampSecondType, |v: i128| v * 1000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => scaled!(TimestampMillisecondType, |v: i128| v),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled!(TimestampMicrosecondType, |v: i128| v.div_euclid(1000))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled!(TimestampNanosecondType, |v: i128| v.div_euclid(1_000_000))
        }
        DataType::Date32 => scaled!(Date32Type, |v: i128| v * 86_400_000),
        DataType::Date64 => scaled!(Date64Type, |v: i128| v),
        DataType::Dictionary(..) => return times(&undictionary(a)?, problems, unit),
        _ => return Err(Unsupported),
    }
    Ok(out)
}

/// A column read as numbers; NaN where absent.
fn nums(a: &dyn Array, problems: &mut Problems) -> Result<Vec<f64>, Unsupported> {
    if let Some(values) = floats(a) {
        return Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect());
    }
    if let Some(values) = ints(a) {
        return Ok(values.into_iter().map(|v| v.map_or(f64::NAN, |x| x as f64)).collect());
    }
    let mut out = Vec::with_capacity(a.len());
    let mut unparsed = Vec::new();
    if let Some(bad) = each_str(a, |s| {
        let x = match s {
            Some(s) if !s.is_empty() => match parse_num_text(s) {
                Ok(x) => x.unwrap_or(f64::NAN),
                Err(why) => {
                    unparsed.push((out.len(), why));
                    f64::NAN
                }
            },
            _ => f64::NAN,
        };
        out.push(x);
    }) {
        note_not_utf8(problems, bad);
        problems.extend(unparsed);
        return Ok(out);
    }
    match a.data_type() {
        DataType::Dictionary(..) => nums(&undictionary(a)?, problems),
        _ => Err(Unsupported),
    }
}

/// A column read as free text.
fn texts(a: &dyn Array, problems: &mut Problems) -> Result<Vec<Option<Box<str>>>, Unsupported> {
    let mut out = Vec::with_capacity(a.len());
    if let Some(bad) = each_str(a, |s| out.push(s.filter(|s| !s.is_empty()).map(Box::from))) {
        note_not_utf8(problems, bad);
        return Ok(out);
    }
    if let Some(values) = ints(a) {
        let mut buf = itoa::Buffer::new();
        return Ok(values.into_iter().map(|v| v.map(|x| buf.format(x).into())).collect());
    }
    if let Some(values) = floats(a) {
        let mut buf = ryu::Buffer::new();
        return Ok(values.into_iter().map(|v| v.map(|x| buf.format(x).into())).collect());
    }
    match a.data_type() {
        DataType::Dictionary(..) => texts(&undictionary(a)?, problems),
        _ => Err(Unsupported),
    }
}

/// A column read as lists of interned strings: (offsets, values).
fn lists(
    a: &dyn Array,
    strings: &mut LocalStrings,
    problems: &mut Problems,
) -> Result<(Vec<u32>, Vec<Sym>), Unsupported> {
    let mut offsets = Vec::with_capacity(a.len() + 1);
    let mut values = Vec::new();
    offsets.push(0u32);
    if let Some((items, ranges)) = list_parts(a) {
        let mut sub = Vec::new();
        let items = syms(&items, strings, &mut sub, false, None)?;
        for (row, &(start, end)) in ranges.iter().enumerate() {
            if !a.is_null(row) {
                values.extend(items[start..end].iter().flatten());
            }
            offsets.push(values.len() as u32);
        }
        problems.extend(sub.into_iter().map(|(i, why)| (row_of(&ranges, i), why)));
        return Ok((offsets, values));
    }
    if let Some(bad) = each_str(a, |s| {
        if let Some(s) = s {
            values.extend(s.split('|').filter(|p| !p.is_empty()).map(|p| strings.intern(p)));
        }
        offsets.push(values.len() as u32);
    }) {
        note_not_utf8(problems, bad);
        return Ok((offsets, values));
    }
    if let Some(ints) = ints(a) {
        let mut buf = itoa::Buffer::new();
        for v in ints {
            if let Some(x) = v {
                values.push(strings.intern(buf.format(x)));
            }
            offsets.push(values.len() as u32);
        }
        return Ok((offsets, values));
    }
    match a.data_type() {
        DataType::Dictionary(..) => lists(&undictionary(a)?, strings, problems),
        _ => Err(Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, Float32Array, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
        TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
    };
    use arrow::datatypes::Field;

    use super::*;

    fn texts_of(column: &[Option<Sym>], strings: &LocalStrings) -> Vec<Option<String>> {
        column.iter().map(|s| s.map(|s| strings.resolve(s).to_string())).collect()
    }

    #[test]
    fn timestamps_of_every_unit_become_utc_millis() {
        let mut p = Vec::new();
        let all = |t: Times| (0..t.len()).map(|r| t.get(r)).collect::<Vec<_>>();
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(1_500_999_999), Some(-1), None]));
        assert_eq!(all(times(&ns, &mut p, NumericUnit::Ms).unwrap()), [Some(1500), None, None]);
        assert_eq!(p.len(), 1);
        assert!(p[0].1.contains("outside 1970"), "{p:?}");
        let mut p = Vec::new();
        let us: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![2_000_999]).with_timezone("-05:00"));
        assert_eq!(all(times(&us, &mut p, NumericUnit::Ms).unwrap()), [Some(2000)]);
        let s: ArrayRef = Arc::new(TimestampSecondArray::from(vec![i64::MAX, 3, i64::MIN]));
        assert_eq!(all(times(&s, &mut p, NumericUnit::Ms).unwrap()), [None, Some(3000), None]);
        assert_eq!(p.len(), 2);
        assert!(p[0].1.contains("outside 1970"), "{p:?}");
        let text: ArrayRef = Arc::new(StringArray::from(vec!["1970-01-01T00:00:01Z", "soon", ""]));
        let mut p = Vec::new();
        assert_eq!(all(times(&text, &mut p, NumericUnit::Ms).unwrap()), [Some(1000), None, None]);
        assert_eq!(p[0].0, 1);
    }

    #[test]
    fn ids_of_any_scalar_type_are_their_text() {
        let mut strings = LocalStrings::new();
        let mut p = Vec::new();
        let big: ArrayRef = Arc::new(UInt64Array::from(vec![Some(u64::MAX), None]));
        let v = syms(&big, &mut strings, &mut p, false, None).unwrap();
        assert_eq!(texts_of(&v, &strings), [Some("18446744073709551615".to_string()), None]);
        let f: ArrayRef = Arc::new(Float32Array::from(vec![0.1, 3.0]));
        let v = syms(&f, &mut strings, &mut p, false, None).unwrap();
        assert_eq!(texts_of(&v, &strings), [Some("0.1".to_string()), Some("3.0".to_string())]);
        let bin: ArrayRef = Arc::new(BinaryArray::from(vec![&b"ok"[..], &b"\xff"[..]]));
        let v = syms(&bin, &mut strings, &mut p, false, None).unwrap();
        assert_eq!(texts_of(&v, &strings), [Some("ok".to_string()), None]);
        assert_eq!(p, [(1, "not valid UTF-8".to_string())]);
    }

    #[test]
    fn extras_of_any_type_are_kept_as_text_but_ids_are_not() {
        let s: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("a", DataType::Int64, false)),
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )]));
        let mut strings = LocalStrings::new();
        let v = extra_syms(&s, &mut strings, &mut Vec::new(), &mut None).unwrap();
        assert_eq!(texts_of(&v, &strings), [Some("{a: 1}".to_string())]);
        let target = Target::Field(1, Kind::Sym);
        assert!(convert(target, &s, &mut strings, &mut Vec::new(), &mut None, NumericUnit::Ms).is_err());
        assert!(expected(target).contains("string, integer"));
    }
}
