//! A whole scoring run over a dataset directory: read, score, return
//! incidents. In memory when the events fit the memory budget; otherwise
//! partitioned by account through spill files, with the same result.
//!
//! - [`budget`]: the memory budget and every share of it the run plans
//!   with.
//! - This module reads: the tables other than events first, then the
//!   events into a table while they fit ([`budget::IN_MEMORY_SHARE`]);
//!   past that, what was read and everything after it is hash-partitioned
//!   by account into compressed spill files ([`crate::spill`]). Impressions
//!   are read after the events: whole in memory, or in a partitioned run
//!   partitioned by account like the events (there can be more of them).
//!   Ground truth (labels) is not read: it is for evaluation.
//! - [`in_memory`]: both phases at once over the whole table: the
//!   population aggregates and whole item indexes, then every account.
//! - [`partitioned`]: the same two phases as separate steps over spill
//!   files: per account partition (sort, aggregates, questions to the item
//!   indexes), per bucket of items (the item phase: each partition's
//!   answers), per account partition again (score).
//!
//! What stays in memory in either mode: the interned strings, the items,
//! follows and accounts tables and the population aggregates. They grow
//! with accounts, items and follow edges rather than with events; when
//! they alone take most of the budget the run says so. The incidents grow
//! with flagged accounts: a partitioned run holds them up to
//! [`budget::INCIDENTS_SHARE`] of the budget and spills sorted runs past
//! it ([`incidents`]); the in-memory path holds them.
//! Nothing here prints: the caller gets notes, counters and (with
//! `CHANGELING_TRACE_MEMORY` set) a memory trace to show.

pub mod budget;
pub mod daily;
mod in_memory;
pub mod incidents;
mod partitioned;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use self::budget::{GROWTH, IN_MEMORY_SHARE, INPUT_GUESS, PARTITION_OVERHEAD, PARTITIONING_SHARE, resident_bytes};
pub use self::budget::{MIN_MEMORY, default_memory, parse_memory, parse_memory_budget};
pub use self::incidents::Incidents;
use crate::data::read::TableSink;
use crate::data::table::{Table, TableBuilder};
use crate::data::{DataError, ReadOptions, ReadProgress, ReadReport, Reader, TableKind};
use crate::intern::Interner;
use crate::plan::Plan;
use crate::spill::{Partitioner, SpillDir};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How to read the data.
    pub read: ReadOptions,
    /// Memory budget for the whole process, in bytes.
    pub memory: u64,
    /// Where spill files go.
    pub tmp: PathBuf,
    /// Partition into this many parts whatever the size (for tests).
    pub force_partitions: Option<usize>,
    /// Split every partition again before scoring it (for tests).
    pub force_split_before_scoring: bool,
}

/// Counters a caller can watch while a run goes on.
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Reading.
    pub read: ReadProgress,
    /// Partitions scored so far, and how many there are (0 in memory).
    pub partitions_done: AtomicU64,
    /// Number of partitions, once known.
    pub partitions: AtomicU64,
    /// Accounts scored so far.
    pub accounts_done: AtomicU64,
    /// Accounts to score, once known (in memory only).
    pub accounts_total: AtomicU64,
    /// Set when the events no longer fit and go to spill files.
    pub spilling: std::sync::atomic::AtomicBool,
    /// Set when reading is over and partitions are sorted (pass A).
    pub sorting: std::sync::atomic::AtomicBool,
    /// Partitions sorted so far.
    pub partitions_sorted: AtomicU64,
    /// Set when reading is over and scoring starts.
    pub scoring: std::sync::atomic::AtomicBool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Accounts with incidents, ordered by id (in memory, or in spill
    /// files when there are many: read them in chunks).
    pub incidents: Incidents,
    /// Every string, for writing alerts.
    pub strings: Arc<Interner>,
    /// What reading found.
    pub report: ReadReport,
    /// Events scored (after dropping duplicates).
    pub events: u64,
    /// Accounts seen.
    pub accounts_seen: u64,
    /// Notes to show once (a signal abstaining on this dataset, say).
    pub notes: Vec<String>,
    /// Partitions used, when the run spilled.
    pub partitions: Option<usize>,
    /// Bytes of spill files written.
    pub spilled_bytes: u64,
    /// Seconds spent reading (and partitioning).
    pub read_secs: f64,
    /// Seconds spent scoring.
    pub score_secs: f64,
    /// With `CHANGELING_TRACE_MEMORY` set, the resident memory at each
    /// phase boundary, for the caller to show.
    pub memory_trace: Vec<String>,
}

/// An error that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A spill file could not be written or read.
    #[error("spill files in {}: {error}", dir.display())]
    Spill {
        /// The spill directory.
        dir: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

/// Where the events go: a table while they fit, then partitions.
struct EventsSink<'a> {
    table: Table,
    progress: &'a RunProgress,
    spill: Option<(SpillDir, Partitioner)>,
    opts: &'a RunOptions,
    rows: u64,
    bytes_per_row: f64,
    /// Resident memory before the events (strings and the other tables).
    baseline: u64,
}

impl EventsSink<'_> {
    fn switch(&mut self, strings: &Interner) -> Result<(), DataError> {
        let bytes = self.table.used_bytes() as f64;
        self.bytes_per_row = (bytes / self.table.rows.max(1) as f64).max(16.0);
        let n = self.opts.force_partitions.unwrap_or_else(|| {
            let want = (bytes * INPUT_GUESS * PARTITION_OVERHEAD
                / budget::worker_bytes(self.opts.memory, PARTITIONING_SHARE))
            .ceil() as usize;
            want.clamp(rayon::current_num_threads() * 4, 4096)
        });
        let dir = SpillDir::new(&self.opts.tmp).map_err(|e| DataError::io(&self.opts.tmp, e))?;
        let mut partitioner = Partitioner::new(&dir, n, 1 << 20).map_err(|e| DataError::io(dir.path(), e))?;
        let table = std::mem::replace(&mut self.table, Table::new(TableKind::Events));
        // In slices, so that no partition's share of the table is copied at
        // once.
        let mut start = 0;
        while start < table.rows {
            let end = (start + (1 << 16)).min(table.rows);
            let order: Vec<u32> = (start as u32..end as u32).collect();
            let mut slice = Table::new(TableKind::Events);
            slice.names = table.names.clone();
            slice.columns = table.columns.iter().map(|c| c.gather(&order)).collect();
            slice.rows = order.len();
            partitioner.add(&slice, strings).map_err(|e| DataError::io(dir.path(), e))?;
            start = end;
        }
        self.spill = Some((dir, partitioner));
        self.progress.spilling.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl TableSink for EventsSink<'_> {
    fn push(&mut self, block: TableBuilder, strings: &mut Interner) -> Result<(), DataError> {
        self.rows += block.rows() as u64;
        match &mut self.spill {
            None => {
                self.table.append(block, strings);
                // The table's values, with room for its vectors' growth, on
                // top of what was resident before the events.
                let limit = self.opts.memory as f64 * IN_MEMORY_SHARE;
                let held = self.baseline as f64 + self.table.used_bytes() as f64 * GROWTH;
                if self.opts.force_partitions.is_some() || held > limit {
                    self.switch(strings)?;
                }
            }
            Some((dir, partitioner)) => partition_block(partitioner, dir, TableKind::Events, block, strings)?,
        }
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }
}

/// Sends one block as read to its partitions.
fn partition_block(
    partitioner: &mut Partitioner,
    dir: &SpillDir,
    kind: TableKind,
    block: TableBuilder,
    strings: &mut Interner,
) -> Result<(), DataError> {
    let mut t = Table::new(kind);
    t.append(block, strings);
    partitioner.add(&t, strings).map_err(|e| DataError::io(dir.path(), e))
}

/// Where impressions go in a partitioned run: to partitions by account,
/// like the events.
struct PartitionSink<'a> {
    partitioner: Partitioner,
    dir: &'a SpillDir,
    rows: u64,
}

impl TableSink for PartitionSink<'_> {
    fn push(&mut self, block: TableBuilder, strings: &mut Interner) -> Result<(), DataError> {
        self.rows += block.rows() as u64;
        partition_block(&mut self.partitioner, self.dir, TableKind::Impressions, block, strings)
    }

    fn rows(&self) -> u64 {
        self.rows
    }
}

/// Runs `plan` over the dataset in `dir`.
pub fn run(dir: &Path, plan: &Plan, opts: &RunOptions, progress: &RunProgress) -> Result<RunOutput, RunError> {
    let t0 = Instant::now();
    let mut trace = MemoryTrace::from_env();
    let mut reader = Reader::start_except(dir, &[TableKind::Labels], &opts.read, &progress.read)?;
    trace.at("side tables read", &reader.strings);
    let mut sink = EventsSink {
        table: Table::new(TableKind::Events),
        progress,
        spill: None,
        opts,
        rows: 0,
        bytes_per_row: 64.0,
        baseline: resident_bytes(),
    };
    reader.read_events(&mut sink)?;
    trace.at("events read", &reader.strings);
    let EventsSink { table, spill, bytes_per_row, rows, .. } = sink;
    let Some((spill, partitioner)) = spill else {
        let data = reader.finish(table)?;
        return Ok(in_memory::run(plan, data, opts.memory, progress, trace, t0));
    };
    let spill_err = |e: std::io::Error| RunError::Spill { dir: spill.path().to_path_buf(), error: e };
    let events = partitioner.finish().map_err(spill_err)?;
    // The impressions, by account into as many partitions, the same way.
    let impressions = if reader.impressions.is_some() {
        let partitioner =
            Partitioner::for_table(TableKind::Impressions, &spill, events.len(), 1 << 20, 0).map_err(spill_err)?;
        let mut sink = PartitionSink { partitioner, dir: &spill, rows: 0 };
        reader.read_impressions(&mut sink)?;
        Some(sink.partitioner.finish().map_err(spill_err)?)
    } else {
        reader.read_impressions(&mut Table::new(TableKind::Impressions))?;
        None
    };
    let Reader { strings, side, report, .. } = reader;
    let input = partitioned::Input {
        dir,
        plan,
        memory: opts.memory,
        force_split: opts.force_split_before_scoring,
        tmp: &opts.tmp,
        spill,
        events,
        impressions,
        strings,
        side,
        report,
        rows,
        bytes_per_row,
    };
    partitioned::run(input, progress, &mut trace, t0)
}

/// With `CHANGELING_TRACE_MEMORY` set, the resident memory and the interned
/// strings at each phase boundary (for tuning `--memory`), for the caller
/// to show.
#[derive(Debug, Default)]
struct MemoryTrace {
    on: bool,
    lines: Vec<String>,
}

impl MemoryTrace {
    fn from_env() -> MemoryTrace {
        MemoryTrace { on: std::env::var_os("CHANGELING_TRACE_MEMORY").is_some(), lines: Vec::new() }
    }

    fn at(&mut self, phase: &str, strings: &Interner) {
        if self.on {
            self.lines.push(format!(
                "memory: {phase}: resident {} MiB; {} strings in {} MiB",
                resident_bytes() >> 20,
                strings.len(),
                strings.heap_bytes() >> 20
            ));
        }
    }
}
