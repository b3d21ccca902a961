//! A whole scoring run over a dataset directory: read, score, return
//! incidents. In memory when the events fit the memory budget; otherwise
//! partitioned by account through spill files, with the same result.
//!
//! Reading starts in memory. If the events table grows past a share of the
//! budget, the run switches to partitioned mode: what was read so far and
//! everything after it is hash-partitioned by account into compressed spill
//! files (see [`crate::spill`]). Pass A loads each partition, sorts and
//! deduplicates it, folds the whole-input aggregates signals need
//! (population distributions, rates) over it, sends its rows of the item
//! indexes (who liked or reposted what when) to spill files bucketed by
//! item, and writes it back sorted. The item indexes are then built one
//! bucket at a time, and pass B scores the partitions. A partition too
//! large for a worker's share of what the budget leaves, beside what is
//! resident, is split again (in either pass). Since every account's events
//! are in one partition and the aggregates are the same fold, the incidents
//! are exactly those of the in-memory path.
//!
//! Impressions are read after the events: whole in memory, or, in a
//! partitioned run, partitioned by account the same way as the events and
//! split along with them, so that each partition is scored with its own
//! accounts' impressions.
//!
//! What stays in memory in either mode: the interned strings, the items,
//! follows, accounts and labels tables, the finished aggregates and item
//! indexes, and the incidents. They grow with
//! accounts, items and follow edges rather than with events (the item
//! indexes grow with likes that have another account's like near them);
//! when they alone take most of the budget the run says so.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::bind::BoundPlan;
use crate::data::read::TableSink;
use crate::data::table::{Table, TableBuilder};
use crate::data::{
    self, DataError, Dataset, Events, Impressions, ReadOptions, ReadProgress, ReadReport, Reader, Side, TableKind,
};
use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::{AccountIncidents, Scorer};
use crate::signals::aggregate::Aggregates;
use crate::spill::{self, PartitionFile, Partitioner, SpillDir};

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
    /// Accounts with incidents, ordered by id.
    pub accounts: Vec<AccountIncidents>,
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

/// The share of the budget the process may reach, with the events table
/// read so far, before the run switches to partitions: sorting the table
/// needs about as much again, and a growing vector briefly holds its old
/// and new storage.
const IN_MEMORY_SHARE: f64 = 0.45;

/// The memory each worker may give a partition: a share of what the budget
/// leaves beside what is resident already (strings, the other tables, the
/// item indexes), and never less than 32 MiB (or the worker's share of
/// the whole budget, if smaller).
fn worker_budget(memory: u64, share: f64) -> f64 {
    let free = memory.saturating_sub(resident_bytes()) as f64;
    let threads = rayon::current_num_threads().max(1) as f64;
    (free * share / threads).max((memory as f64 * share / threads).min(32.0 * 1024.0 * 1024.0))
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// Whether `CHANGELING_TRACE_MEMORY` is set.
fn tracing_memory() -> bool {
    std::env::var_os("CHANGELING_TRACE_MEMORY").is_some()
}

/// With `CHANGELING_TRACE_MEMORY` set, prints the resident memory and the
/// interned strings at a phase boundary to stderr (for tuning `--memory`).
fn trace(phase: &str, strings: &Interner) {
    if tracing_memory() {
        let _ = writeln!(
            std::io::stderr(),
            "memory: {phase}: resident {} MiB; {} strings in {} MiB",
            resident_bytes() >> 20,
            strings.len(),
            strings.heap_bytes() >> 20
        );
    }
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
            let want = (bytes * 4.0 * 3.0 / worker_budget(self.opts.memory, 0.5)).ceil() as usize;
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
                let held = self.baseline as f64 + self.table.used_bytes() as f64 * 1.5;
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
    // Impressions are read after the events: in a partitioned run they are
    // partitioned by account with them (there can be more of them than
    // events).
    // Ground truth is for evaluation: scoring does not read it.
    let mut reader = Reader::start_except(dir, &[TableKind::Labels], &opts.read, &progress.read)?;
    trace("side tables read", &reader.strings);
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
    trace("events read", &reader.strings);

    let EventsSink { table, spill, bytes_per_row, rows: sink_rows, .. } = sink;
    let mut aggregates = Aggregates::for_plan(plan);
    let Some((spill_dir, partitioner)) = spill else {
        // In memory.
        let data = reader.finish(table)?;
        let read_secs = t0.elapsed().as_secs_f64();
        progress.scoring.store(true, Ordering::Relaxed);
        let t1 = Instant::now();
        let scorer = Scorer::new(plan, &data);
        progress.accounts_total.store(data.events.accounts.len() as u64, Ordering::Relaxed);
        let accounts = scorer.run_counting(&progress.accounts_done);
        let mut notes = scorer.notes().to_vec();
        let resident = resident_bytes();
        if resident > opts.memory {
            notes.push(format!(
                "this run held everything in memory and reached {} MiB, over the {} MiB memory budget \
                 (the impressions or the tables other than events are larger than their share)",
                resident >> 20,
                opts.memory >> 20
            ));
        }
        return Ok(RunOutput {
            accounts,
            events: data.events.len() as u64,
            accounts_seen: data.events.accounts.len() as u64,
            strings: data.strings.clone(),
            report: data.report.clone(),
            notes,
            partitions: None,
            spilled_bytes: 0,
            read_secs,
            score_secs: t1.elapsed().as_secs_f64(),
        });
    };

    // Partitioned. Pass A sorts and deduplicates each partition, folds the
    // aggregates over its events and writes it back sorted; pass B scores.
    let spill_err = |e: std::io::Error| RunError::Spill { dir: spill_dir.path().to_path_buf(), error: e };
    let files = partitioner.finish().map_err(spill_err)?;
    // The impressions, by account into as many partitions, the same way.
    let has_impressions = reader.impressions.is_some();
    let impression_parts = if has_impressions {
        let partitioner =
            Partitioner::for_table(TableKind::Impressions, &spill_dir, files.len(), 1 << 20, 0).map_err(spill_err)?;
        let mut sink = PartitionSink { partitioner, dir: &spill_dir, rows: 0 };
        reader.read_impressions(&mut sink)?;
        Some(sink.partitioner.finish().map_err(spill_err)?)
    } else {
        reader.read_impressions(&mut Table::new(TableKind::Impressions))?;
        None
    };
    let Reader { strings, side, mut report, .. } = reader;
    let parts: Vec<Part> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Part { events: f.clone(), impressions: impression_parts.as_ref().map(|p| p[i].clone()) })
        .collect();
    progress.partitions.store(files.len() as u64, Ordering::Relaxed);
    let strings = Arc::new(strings);
    let budget = worker_budget(opts.memory, 0.6);
    // The item indexes (who liked what when) go to spill files too, in
    // buckets by item, each small enough to build its part of the index at
    // once (16 bytes a row).
    let buckets = (sink_rows as f64 * 16.0 / (opts.memory as f64 * 0.1)).ceil() as usize;
    aggregates.spill_to(&spill_dir, buckets.clamp(1, 1024)).map_err(spill_err)?;
    let ctx = PartitionCtx {
        dir,
        side: &side,
        strings: &strings,
        template: &aggregates,
        spill: &spill_dir,
        budget,
        bytes_per_row,
        names: AtomicU64::new(1),
        force_split: opts.force_split_before_scoring,
        impressions: has_impressions,
        unsplittable: AtomicU64::new(0),
    };
    progress.sorting.store(true, Ordering::Relaxed);
    let prepared: Vec<Prepared> = parts
        .par_iter()
        .map(|f| {
            let p = ctx.prepare(f, 1);
            progress.partitions_sorted.fetch_add(1, Ordering::Relaxed);
            p
        })
        .collect::<Result<Vec<_>, std::io::Error>>()
        .map_err(spill_err)?;
    let mut aggregates = aggregates.empty_like();
    let mut sorted = Vec::new();
    let mut duplicates = 0;
    for p in prepared {
        aggregates.merge(p.aggregates);
        sorted.extend(p.files);
        duplicates += p.duplicates;
    }
    data::note_duplicates(&mut report, duplicates);
    trace("partitions sorted", &strings);
    let item_bytes = aggregates.spilled_bytes();
    let cache = aggregates.finish(&strings).map_err(spill_err)?;
    trace("aggregates finished", &strings);
    if tracing_memory() {
        for (k, index) in &cache.item_actors {
            let _ = writeln!(std::io::stderr(), "memory: index of {k:?}: {} entries", index.len());
        }
    }
    let spilled_bytes = files.iter().chain(impression_parts.iter().flatten()).map(|f| f.bytes).sum::<u64>()
        + sorted.iter().map(|p| p.events.bytes).sum::<u64>()
        + item_bytes;
    let read_secs = t0.elapsed().as_secs_f64();

    progress.partitions.store(sorted.len() as u64, Ordering::Relaxed);
    progress.scoring.store(true, Ordering::Relaxed);
    let t1 = Instant::now();
    // Scoring holds the item indexes as well: partitions too large for
    // what is left are split again.
    let fixed = resident_bytes();
    let ctx = PartitionCtx {
        budget: worker_budget(opts.memory, 0.6),
        unsplittable: AtomicU64::new(ctx.unsplittable.load(Ordering::Relaxed)),
        ..ctx
    };
    // Bound once for the run; each partition binds only its filters.
    let bound = BoundPlan::for_run(plan, &strings, &side, has_impressions, &cache).shared();
    let parts: Vec<PartResult> = sorted
        .par_iter()
        .map(|f| ctx.score(f, &bound, progress))
        .collect::<Result<Vec<_>, std::io::Error>>()
        .map_err(spill_err)?;
    trace("partitions scored", &strings);
    let mut out = PartResult::default();
    for p in parts {
        out.merge(p);
    }
    out.accounts.sort_by(|a, b| strings.resolve(a.actor).cmp(strings.resolve(b.actor)));
    let notes = {
        let mut notes = bound.notes.clone();
        let heavy = ctx.unsplittable.load(Ordering::Relaxed);
        if heavy > 0 {
            notes.push(format!(
                "a partition needing about {} MiB could not be split below a worker's {} MiB share of the {} MiB \
                 memory budget: one account (or a few) holds that many events, and was scored whole, over the \
                 budget (raise --memory, or lower --threads to give each worker more)",
                heavy >> 20,
                (ctx.budget as u64) >> 20,
                opts.memory >> 20
            ));
        }
        if fixed as f64 > opts.memory as f64 * 0.75 {
            notes.push(format!(
                "the strings, the tables other than events and the item indexes alone took {} MiB of the {} MiB \
                 memory budget: the run may have gone over it (raise --memory)",
                fixed >> 20,
                opts.memory >> 20
            ));
        }
        notes
    };
    Ok(RunOutput {
        accounts: out.accounts,
        strings,
        report,
        events: out.events,
        accounts_seen: out.accounts_seen,
        notes,
        partitions: Some(out.parts),
        spilled_bytes,
        read_secs,
        score_secs: t1.elapsed().as_secs_f64(),
    })
}

#[derive(Default)]
struct PartResult {
    accounts: Vec<AccountIncidents>,
    events: u64,
    accounts_seen: u64,
    /// Partitions scored (more than one when a partition was split again).
    parts: usize,
}

impl PartResult {
    fn merge(&mut self, o: PartResult) {
        self.accounts.extend(o.accounts);
        self.events += o.events;
        self.accounts_seen += o.accounts_seen;
        self.parts += o.parts;
    }
}

/// One partition's files: its events and, when the dataset has an
/// impressions table, its accounts' impressions.
#[derive(Clone, Debug)]
struct Part {
    events: PartitionFile,
    impressions: Option<PartitionFile>,
}

/// A partition after pass A: sorted files, its aggregates, duplicates dropped.
struct Prepared {
    files: Vec<Part>,
    aggregates: Aggregates,
    duplicates: u64,
}

struct PartitionCtx<'a> {
    dir: &'a Path,
    side: &'a Side,
    strings: &'a Arc<Interner>,
    template: &'a Aggregates,
    spill: &'a SpillDir,
    budget: f64,
    bytes_per_row: f64,
    /// Distinct names for files written in pass A.
    names: AtomicU64,
    /// Split every partition before scoring it (for tests).
    force_split: bool,
    /// Whether the dataset has an impressions table (partitioned in
    /// [`Part::impressions`], not in `side`).
    impressions: bool,
    /// The memory the largest partition that could not be split further
    /// needed (0 if none).
    unsplittable: AtomicU64,
}

impl PartitionCtx<'_> {
    /// Pass A for one partition: split it if it is too large for a worker's
    /// share of the budget; sort and deduplicate; fold the aggregates; write
    /// it back sorted. Impressions pass through.
    fn prepare(&self, part: &Part, depth: u64) -> std::io::Result<Prepared> {
        if let Some(subs) = self.split(part, depth, false)? {
            let mut out = Prepared { files: Vec::new(), aggregates: self.template.empty_like(), duplicates: 0 };
            for s in &subs {
                let p = self.prepare(s, depth + 1)?;
                out.files.extend(p.files);
                out.aggregates.merge(p.aggregates);
                out.duplicates += p.duplicates;
            }
            return Ok(out);
        }
        let table = spill::load(&part.events)?;
        std::fs::remove_file(&part.events.path)?;
        let (events, duplicates) = Events::from_table(table, self.strings);
        let mut aggregates = self.template.empty_like();
        aggregates.add_all(&events, self.strings, &self.side.items);
        aggregates.spill_rows()?;
        let salt = self.names.fetch_add(1, Ordering::Relaxed) << 8 | 0xff;
        let mut w = Partitioner::with_salt(self.spill, 1, 1 << 22, salt)?;
        w.add_to(0, &events.into_table())?;
        let files =
            w.finish()?.into_iter().map(|f| Part { events: f, impressions: part.impressions.clone() }).collect();
        Ok(Prepared { files, aggregates, duplicates })
    }

    /// If `part` is too large for a worker's share of the budget, splits it
    /// by account into smaller parts (rows keep their order, so a sorted
    /// file gives sorted parts) and removes its files.
    fn split(&self, part: &Part, depth: u64, force: bool) -> std::io::Result<Option<Vec<Part>>> {
        let impressions = part.impressions.as_ref().map_or(0, |f| f.rows);
        let need = (part.events.rows as f64 * self.bytes_per_row + impressions as f64 * 32.0) * 3.0;
        if !force && (need <= self.budget || depth >= 6) || part.events.rows <= 1 {
            if need > self.budget {
                // One account, or a few, too heavy to split away: said in a
                // note (the run goes on, over the budget).
                self.unsplittable.fetch_max(need as u64, Ordering::Relaxed);
            }
            return Ok(None);
        }
        let n = ((need / self.budget).ceil() as usize * 2).clamp(2, 256);
        let salt = self.names.fetch_add(1, Ordering::Relaxed) << 8 | depth;
        let events = self.split_file(&part.events, n, salt)?;
        let impressions: Vec<Option<PartitionFile>> = match &part.impressions {
            Some(f) => self.split_file(f, n, salt)?.into_iter().map(Some).collect(),
            None => vec![None; n],
        };
        let mut parts = Vec::new();
        for (events, impressions) in events.into_iter().zip(impressions) {
            if events.rows > 0 {
                parts.push(Part { events, impressions });
            } else {
                // No events: nothing to score, and so no use for impressions.
                std::fs::remove_file(&events.path)?;
                if let Some(f) = impressions {
                    std::fs::remove_file(&f.path)?;
                }
            }
        }
        Ok(Some(parts))
    }

    /// Splits one file into `n` by account with `salt`, and removes it.
    fn split_file(&self, file: &PartitionFile, n: usize, salt: u64) -> std::io::Result<Vec<PartitionFile>> {
        let mut sub = Partitioner::for_table(file.kind, self.spill, n, 1 << 20, salt)?;
        spill::for_each_chunk(file, |chunk| sub.add(&chunk, self.strings))?;
        let subs = sub.finish()?;
        std::fs::remove_file(&file.path)?;
        Ok(subs)
    }

    /// The tables other than events, with the impressions of one partition
    /// (read and removed), or none.
    fn side_with(&self, impressions: Option<&PartitionFile>) -> std::io::Result<Side> {
        let mut side = self.side.clone();
        if self.impressions {
            let index = match impressions {
                Some(f) => {
                    let table = spill::load(f)?;
                    std::fs::remove_file(&f.path)?;
                    Impressions::new(&table)
                }
                None => Impressions::default(),
            };
            side.impressions = Some(Arc::new(index));
        }
        Ok(side)
    }

    /// Pass B for one sorted partition.
    fn score(&self, part: &Part, bound: &Arc<BoundPlan<'_>>, progress: &RunProgress) -> std::io::Result<PartResult> {
        let out = self.score_at(part, bound, progress, 1)?;
        progress.partitions_done.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn score_at(
        &self,
        part: &Part,
        bound: &Arc<BoundPlan<'_>>,
        progress: &RunProgress,
        depth: u64,
    ) -> std::io::Result<PartResult> {
        let force = depth == 1 && self.force_split;
        if let Some(subs) = self.split(part, depth, force)? {
            let mut out = PartResult::default();
            for s in &subs {
                out.merge(self.score_at(s, bound, progress, depth + 1)?);
            }
            return Ok(out);
        }
        let table = spill::load(&part.events)?;
        std::fs::remove_file(&part.events.path)?;
        let (events, _) = Events::from_table(table, self.strings);
        let side = self.side_with(part.impressions.as_ref())?;
        let data =
            Dataset::from_parts(self.dir.to_path_buf(), self.strings.clone(), events, &side, ReadReport::default());
        let scorer = Scorer::bound(bound.clone(), &data);
        let accounts = scorer.run_sequential();
        progress.accounts_done.fetch_add(data.events.accounts.len() as u64, Ordering::Relaxed);
        Ok(PartResult {
            accounts,
            events: data.events.len() as u64,
            accounts_seen: data.events.accounts.len() as u64,
            parts: 1,
        })
    }
}

/// A memory budget from the machine: half of its physical memory, at
/// least 512 MiB (Linux; elsewhere 4 GiB).
pub fn default_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    total.map_or(4 << 30, |t| (t / 2).max(512 << 20))
}

/// Parses a memory size: `2GiB`, `512MiB`, `1.5G`, `800M`, `4096` (bytes).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size such as 2GiB or 512MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown unit `{other}` in `{s}` (use KiB, MiB, GiB)")),
    };
    Ok((n * mult as f64) as u64)
}

/// The smallest memory budget a run accepts: 1 MiB. Near zero, every
/// partition is split again and again, down to single accounts, and a run
/// spends its time opening spill files (`--memory 0` ran for minutes). Any
/// budget from this one up gives the same alerts; below a few hundred MiB
/// a large dataset is cut into many small partitions, which is slower.
pub const MIN_MEMORY: u64 = 1 << 20;

/// A `--memory` argument: a size (see [`parse_memory`]) of at least
/// [`MIN_MEMORY`].
pub fn parse_memory_budget(s: &str) -> Result<u64, String> {
    let n = parse_memory(s)?;
    if n < MIN_MEMORY {
        return Err(format!(
            "`{s}` is below the minimum memory budget of 1MiB: pass 1MiB or more, better some GiB (without \
             --memory, a run takes half of physical memory)"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::{parse_memory, parse_memory_budget};

    #[test]
    fn memory_budgets_have_a_minimum() {
        assert!(parse_memory_budget("0").unwrap_err().contains("pass 1MiB or more"));
        assert!(parse_memory_budget("1000KiB").is_err());
        assert_eq!(parse_memory_budget("1MiB"), Ok(1 << 20));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("2GiB"), Ok(2 << 30));
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("1.5G"), Ok(3 << 29));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("2 parsecs").is_err());
    }
}
