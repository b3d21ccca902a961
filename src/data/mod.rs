//! Datasets: the data contract's tables, read into columnar memory.
//!
//! [`Dataset::open`] finds each table of a dataset directory (one file or a
//! directory of part files; JSONL, CSV or Parquet; plain, gzip or zstd),
//! reads it in parallel into interned columns, sorts and deduplicates the
//! events, and indexes the other tables. Bad records are skipped and counted
//! in the [`ReadReport`] (or stop the read when strict). This module knows
//! nothing of rules.

pub mod csv_format;
pub mod error;
pub mod events;
pub mod jsonl;
pub mod parquet;
pub mod read;
pub mod schema;
pub mod source;
pub mod table;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{DataError, ReadReport, RecordError, TableReport};
pub use events::{AccountSpan, EventRows, Events};
pub use read::{ReadOptions, ReadProgress};
pub use schema::TableKind;
pub use tables::{Accounts, Follows, Impressions, Items, Label, Labels};

use crate::intern::Interner;

/// The columns to read of each table, for formats that can skip the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    /// Column names per table; a table not listed is read whole.
    pub tables: BTreeMap<TableKind, BTreeSet<String>>,
}

impl Projection {
    /// Whether column `name` of `table` is to be read.
    pub fn wants(&self, table: TableKind, name: &str) -> bool {
        self.tables.get(&table).is_none_or(|cols| cols.contains(name))
    }
}

/// A dataset in memory.
#[derive(Debug)]
pub struct Dataset {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Every string of every table.
    pub strings: Arc<Interner>,
    /// Activity events, sorted by account and time.
    pub events: Events,
    /// Content items (empty when the table is absent).
    pub items: Arc<Items>,
    /// The initial follow graph, when the table is present.
    pub follows: Option<Arc<Follows>>,
    /// Account metadata (empty when absent).
    pub accounts: Arc<Accounts>,
    /// Logged impressions, when the table is present.
    pub impressions: Option<Arc<Impressions>>,
    /// Ground truth, when the table is present.
    pub labels: Option<Arc<Labels>>,
    /// What reading found: counts, skipped records, duplicates.
    pub report: ReadReport,
}

impl Dataset {
    /// Reads the dataset in directory `dir`.
    pub fn open(dir: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
        Dataset::open_with_progress(dir, opts, &ReadProgress::default())
    }

    /// Reads the dataset in `dir`, counting progress into `progress`, the
    /// way `changeling score` reads it when it fits in memory (see
    /// [`Reader`]).
    pub fn open_with_progress(dir: &Path, opts: &ReadOptions, progress: &ReadProgress) -> Result<Dataset, DataError> {
        let mut reader = Reader::start(dir, opts, progress)?;
        let mut events = table::Table::new(TableKind::Events);
        reader.read_events(&mut events)?;
        reader.finish(events)
    }

    /// Builds a dataset from JSONL texts held in memory, one per table (for
    /// tests and rule test cases). Bad lines are skipped and reported as in
    /// a file named `<table>` (or fail, when `strict`).
    pub fn from_jsonl(texts: &[(TableKind, &str)], strict: bool) -> Result<Dataset, DataError> {
        let opts = ReadOptions { strict, ..ReadOptions::default() };
        let mut strings = Interner::new();
        let mut report = ReadReport::default();
        let mut tables = BTreeMap::new();
        if !texts.iter().any(|(k, _)| *k == TableKind::Events) {
            return Err(DataError::MissingEvents { dir: PathBuf::from("<memory>") });
        }
        let mut order = TableKind::ALL.to_vec();
        order.rotate_left(1);
        for kind in order {
            let Some((_, text)) = texts.iter().find(|(k, _)| *k == kind) else { continue };
            let mut builder = table::TableBuilder::new(kind);
            let mut bad = Vec::new();
            jsonl::parse_block(text.as_bytes(), 1, &mut builder, &mut bad);
            let mut table_report = TableReport { files: 1, bytes: text.len() as u64, ..TableReport::default() };
            let path = PathBuf::from(format!("<{kind}>"));
            for (line, why) in bad {
                read::note_bad(&mut table_report, &opts, &path, line, "line", why)?;
            }
            let mut t = table::Table::new(kind);
            t.append(builder, &mut strings);
            table_report.records = t.rows as u64;
            report.tables.push((kind, table_report));
            tables.insert(kind, t);
        }
        Ok(Dataset::assemble(PathBuf::from("<memory>"), tables, strings, report))
    }

    /// Sorts events, indexes the other tables, and fills duplicate counts.
    /// A dataset from Arrow record batches, one entry per table (each with
    /// its schema, as pyarrow and Spark hand them over), read as Parquet
    /// columns of those types are ([`parquet::read_batches`]): the same
    /// conversions, the same bad-row reports (rows numbered from 1 per
    /// table, the table named `<events>` and so on). For the Python
    /// package and Spark; the batches are borrowed, not copied, until
    /// their values are interned.
    pub fn from_arrow(
        tables: Vec<(TableKind, arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>)>,
        opts: &ReadOptions,
    ) -> Result<Dataset, DataError> {
        let dir = PathBuf::from("<arrow>");
        if !tables.iter().any(|(k, _, _)| *k == TableKind::Events) {
            return Err(DataError::MissingEvents { dir });
        }
        let mut strings = Interner::new();
        let mut report = ReadReport::default();
        let mut read = BTreeMap::new();
        // The other tables first, then the events, as a directory is read.
        let mut order = TableKind::ALL.to_vec();
        order.rotate_left(1);
        for kind in order {
            let Some((_, schema, batches)) = tables.iter().find(|(k, _, _)| *k == kind) else { continue };
            let mut t = table::Table::new(kind);
            let mut table_report = TableReport { files: 1, ..TableReport::default() };
            let name = PathBuf::from(format!("<{kind}>"));
            let mut spanned = read::Spanned { sink: &mut t, span: None };
            parquet::read_batches(
                &name,
                kind,
                schema,
                batches.iter().cloned(),
                &mut spanned,
                &mut strings,
                opts,
                &mut table_report,
            )?;
            table_report.span = spanned.span;
            if let Some(span) = spanned.span {
                read::check_not_1970(kind, &name, span, opts)?;
            }
            report.tables.push((kind, table_report));
            read.insert(kind, t);
        }
        Ok(Dataset::assemble(dir, read, strings, report))
    }

    fn assemble(
        dir: PathBuf,
        mut tables: BTreeMap<TableKind, table::Table>,
        strings: Interner,
        mut report: ReadReport,
    ) -> Dataset {
        let (events, dups) =
            Events::from_table(tables.remove(&TableKind::Events).expect("events is required"), &strings);
        note_duplicates(&mut report, dups);
        let side = Side::from_tables(tables, &strings, &mut report);
        Dataset::from_parts(dir, Arc::new(strings), events, &side, report)
    }

    /// A dataset from its events and its other tables.
    pub fn from_parts(
        dir: PathBuf,
        strings: Arc<Interner>,
        events: Events,
        side: &Side,
        report: ReadReport,
    ) -> Dataset {
        Dataset {
            dir,
            strings,
            events,
            items: side.items.clone(),
            follows: side.follows.clone(),
            accounts: side.accounts.clone(),
            impressions: side.impressions.clone(),
            labels: side.labels.clone(),
            report,
        }
    }

    /// The same dataset with other events (one partition of them): every
    /// other table is shared, not copied. The events must have been
    /// interned into this dataset's strings.
    pub fn with_events(&self, events: Events) -> Dataset {
        Dataset {
            dir: self.dir.clone(),
            strings: self.strings.clone(),
            events,
            items: self.items.clone(),
            follows: self.follows.clone(),
            accounts: self.accounts.clone(),
            impressions: self.impressions.clone(),
            labels: self.labels.clone(),
            report: self.report.clone(),
        }
    }
}

/// Counts exact duplicate events dropped into the events report.
pub fn note_duplicates(report: &mut ReadReport, dups: u64) {
    if let Some((_, r)) = report.tables.iter_mut().find(|(k, _)| *k == TableKind::Events) {
        r.duplicates += dups;
        r.records -= dups.min(r.records);
    }
}

/// Every table of a dataset but its events, indexed: read first, since
/// judging events needs them, and shared by every partition of the events.
#[derive(Clone, Debug)]
pub struct Side {
    /// Content items (empty when the table is absent).
    pub items: Arc<Items>,
    /// The initial follow graph, when present.
    pub follows: Option<Arc<Follows>>,
    /// Account metadata (empty when absent).
    pub accounts: Arc<Accounts>,
    /// Logged impressions, when present.
    pub impressions: Option<Arc<Impressions>>,
    /// Ground truth, when present.
    pub labels: Option<Arc<Labels>>,
}

impl Side {
    /// Reads every table of `dir` but `events` into `strings`, adding their
    /// reports to `report`.
    pub fn read(
        dir: &Path,
        opts: &ReadOptions,
        progress: &ReadProgress,
        strings: &mut Interner,
        report: &mut ReadReport,
    ) -> Result<Side, DataError> {
        Side::read_except(dir, &[], opts, progress, strings, report)
    }

    /// Like [`Side::read`], leaving out the tables in `skip` too (as if
    /// absent; a caller that reads one of them itself fills it in).
    pub fn read_except(
        dir: &Path,
        skip: &[TableKind],
        opts: &ReadOptions,
        progress: &ReadProgress,
        strings: &mut Interner,
        report: &mut ReadReport,
    ) -> Result<Side, DataError> {
        let mut tables = BTreeMap::new();
        for kind in TableKind::ALL.into_iter().filter(|k| *k != TableKind::Events && !skip.contains(k)) {
            let Some(files) = source::locate(dir, kind)? else { continue };
            let (table, table_report) = read::read_table(kind, &files, strings, opts, progress)?;
            report.tables.push((kind, table_report));
            tables.insert(kind, table);
        }
        Ok(Side::from_tables(tables, strings, report))
    }

    /// Indexes tables already read.
    pub(crate) fn from_tables(
        mut tables: BTreeMap<TableKind, table::Table>,
        strings: &Interner,
        report: &mut ReadReport,
    ) -> Side {
        let mut set_dups = |kind: TableKind, dups: u64| {
            if let Some((_, r)) = report.tables.iter_mut().find(|(k, _)| *k == kind) {
                r.duplicates = dups;
            }
        };
        let items = match tables.remove(&TableKind::Items) {
            Some(t) => {
                let (items, dups) = Items::new(t, strings);
                set_dups(TableKind::Items, dups);
                items
            }
            None => Items::empty(),
        };
        let accounts = match tables.remove(&TableKind::Accounts) {
            Some(t) => {
                let (accounts, dups) = Accounts::new(t, strings);
                set_dups(TableKind::Accounts, dups);
                accounts
            }
            None => Accounts::empty(),
        };
        Side {
            items: Arc::new(items),
            follows: tables.remove(&TableKind::Follows).map(|t| Arc::new(Follows::new(&t))),
            accounts: Arc::new(accounts),
            impressions: tables.remove(&TableKind::Impressions).map(|t| Arc::new(Impressions::new(&t))),
            labels: tables.remove(&TableKind::Labels).map(|t| Arc::new(Labels::new(t, strings))),
        }
    }
}

/// A dataset being read, in the one order every command reads it: the
/// tables other than events and impressions (small, and needed to judge
/// the events), then the events into a sink of the caller's choosing (a
/// table, or partitions when they do not fit in memory), then, for events
/// held in memory, the impressions. Reading in one order numbers the
/// strings alike, so a benchmark of [`Dataset::open`] measures what
/// `changeling score` does.
pub struct Reader<'a> {
    dir: PathBuf,
    opts: &'a ReadOptions,
    progress: &'a ReadProgress,
    events: Vec<source::SourceFile>,
    /// The impressions' files, if the table is present.
    pub impressions: Option<Vec<source::SourceFile>>,
    /// Every string read so far.
    pub strings: Interner,
    /// The tables other than events, indexed (impressions not yet read).
    pub side: Side,
    /// What reading found so far.
    pub report: ReadReport,
}

impl<'a> Reader<'a> {
    /// Finds the tables of `dir` and reads all but the events and the
    /// impressions.
    pub fn start(dir: &Path, opts: &'a ReadOptions, progress: &'a ReadProgress) -> Result<Reader<'a>, DataError> {
        Reader::start_except(dir, &[], opts, progress)
    }

    /// As [`Reader::start`], leaving out the side tables in `skip` (scoring
    /// does not read the ground truth, which is for evaluation).
    pub fn start_except(
        dir: &Path,
        skip: &[TableKind],
        opts: &'a ReadOptions,
        progress: &'a ReadProgress,
    ) -> Result<Reader<'a>, DataError> {
        let events = events_files(dir)?;
        let impressions = source::locate(dir, TableKind::Impressions)?;
        let mut strings = Interner::new();
        let mut report = ReadReport::default();
        let skip: Vec<TableKind> = skip.iter().copied().chain([TableKind::Impressions]).collect();
        let side = Side::read_except(dir, &skip, opts, progress, &mut strings, &mut report)?;
        Ok(Reader { dir: dir.to_path_buf(), opts, progress, events, impressions, strings, side, report })
    }

    /// Reads the events into `sink`.
    pub fn read_events(&mut self, sink: &mut dyn read::TableSink) -> Result<(), DataError> {
        let r = read::read_into(TableKind::Events, &self.events, &mut self.strings, self.opts, self.progress, sink)?;
        self.report.tables.push((TableKind::Events, r));
        Ok(())
    }

    /// Reads the impressions into `sink`, if the table is present.
    pub fn read_impressions(&mut self, sink: &mut dyn read::TableSink) -> Result<(), DataError> {
        if let Some(files) = &self.impressions {
            let r = read::read_into(TableKind::Impressions, files, &mut self.strings, self.opts, self.progress, sink)?;
            self.report.tables.push((TableKind::Impressions, r));
        }
        self.report.tables.sort_by_key(|(k, _)| (*k == TableKind::Events, TableKind::ALL.iter().position(|x| x == k)));
        Ok(())
    }

    /// The dataset, its events read into `events`: reads the impressions,
    /// sorts and deduplicates the events.
    pub fn finish(mut self, events: table::Table) -> Result<Dataset, DataError> {
        let mut impressions = table::Table::new(TableKind::Impressions);
        self.read_impressions(&mut impressions)?;
        if self.impressions.is_some() {
            self.side.impressions = Some(Arc::new(Impressions::new(&impressions)));
        }
        drop(impressions);
        let (events, dups) = Events::from_table(events, &self.strings);
        note_duplicates(&mut self.report, dups);
        Ok(Dataset::from_parts(self.dir, Arc::new(self.strings), events, &self.side, self.report))
    }
}

/// The files of the events table of `dir`.
pub fn events_files(dir: &Path) -> Result<Vec<source::SourceFile>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such dataset directory")));
    }
    source::locate(dir, TableKind::Events)?.ok_or_else(|| DataError::MissingEvents { dir: dir.to_path_buf() })
}
