//! The partitioned path: events in spill files by account, scored part by
//! part in two phases, with the incidents of the in-memory path.
//!
//! 1. **Pass A**, per account partition (in parallel): sort and
//!    deduplicate it, fold the population aggregates over it, send its rows
//!    of the item indexes (who liked or reposted what, when) to spill
//!    buckets by item, record its questions to those indexes (each event's
//!    target and time, by partition, bucketed by item too), and write it
//!    back sorted.
//! 2. **Item phase**, per bucket of items (in parallel): build the bucket's
//!    part of each item index, answer every partition's questions with the
//!    entries within its readers' reach (see
//!    [`crate::signals::item_index::ItemActors::answer`]), and write each
//!    partition its answers.
//! 3. **Pass B**, per account partition (in parallel): read its answers
//!    into its own small item indexes, bind the plan to them, and score.
//!
//! No phase holds a whole item index: an account partition holds the
//! entries near its own events, a bucket one share of the items. The
//! answers are exactly the entries a signal can read, so the incidents are
//! those of the in-memory path, which builds the whole index at once.
//! Partitions too large for a worker's share of the budget are split again
//! by account in either pass (a split partition's parts share its answers).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::budget::{self, IMPRESSION_BYTES, PARTITION_OVERHEAD, WORKER_SHARE};
use super::incidents::IncidentStore;
use super::{MemoryTrace, RunError, RunOutput, RunProgress};
use crate::bind::BoundPlan;
use crate::data::{self, Dataset, Events, Impressions, ReadReport, Side};
use crate::facts::{Aggregates, PartIndexes};
use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::Scorer;
use crate::signals::Facts;
use crate::spill::{self, PartitionFile, Partitioner, SpillDir};

/// What reading left for the partitioned path.
pub(super) struct Input<'a> {
    pub dir: &'a Path,
    pub plan: &'a Plan,
    pub memory: u64,
    pub force_split: bool,
    /// Where spill directories go (`--tmp`).
    pub tmp: &'a Path,
    pub spill: SpillDir,
    pub events: Vec<PartitionFile>,
    pub impressions: Option<Vec<PartitionFile>>,
    pub strings: Interner,
    pub side: Side,
    pub report: ReadReport,
    pub rows: u64,
    pub bytes_per_row: f64,
}

/// Runs the three phases over the partitions of `input`.
pub(super) fn run(
    input: Input<'_>,
    progress: &RunProgress,
    trace: &mut MemoryTrace,
    t0: std::time::Instant,
) -> Result<RunOutput, RunError> {
    let Input {
        dir,
        plan,
        memory,
        force_split,
        tmp,
        spill: spill_dir,
        events,
        impressions,
        strings,
        side,
        mut report,
        ..
    } = input;
    let spill_err = |e: std::io::Error| RunError::Spill { dir: spill_dir.path().to_path_buf(), error: e };
    let parts: Vec<Part> = events
        .iter()
        .enumerate()
        .map(|(i, f)| Part { events: f.clone(), impressions: impressions.as_ref().map(|p| p[i].clone()) })
        .collect();
    progress.partitions.store(parts.len() as u64, Ordering::Relaxed);
    let strings = Arc::new(strings);
    let mut aggregates = Aggregates::for_plan(plan);
    aggregates.spill_to(&spill_dir, budget::item_buckets(input.rows, memory)).map_err(spill_err)?;
    let ctx = PartitionCtx {
        dir,
        side: &side,
        strings: &strings,
        template: &aggregates,
        spill: &spill_dir,
        budget: budget::worker_bytes(memory, WORKER_SHARE),
        bytes_per_row: input.bytes_per_row,
        names: AtomicU64::new(1),
        ids: AtomicU64::new(0),
        force_split,
        impressions: impressions.is_some(),
        unsplittable: AtomicU64::new(0),
    };

    // Pass A.
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
    let mut folded = aggregates.empty_like();
    let mut sorted = Vec::new();
    let mut duplicates = 0;
    for p in prepared {
        folded.merge(p.aggregates);
        sorted.extend(p.files);
        duplicates += p.duplicates;
    }
    sorted.sort_by_key(|(id, _)| *id);
    data::note_duplicates(&mut report, duplicates);
    trace.at("partitions sorted", &strings);

    // The item phase.
    let item_bytes = folded.spilled_bytes();
    let (facts, answers) = folded.finish_by_parts(&strings, &spill_dir, sorted.len()).map_err(spill_err)?;
    trace.at("item phase done", &strings);
    let spilled_bytes = events.iter().chain(impressions.iter().flatten()).map(|f| f.bytes).sum::<u64>()
        + sorted.iter().map(|(_, p)| p.events.bytes).sum::<u64>()
        + item_bytes
        + answers.bytes();
    let read_secs = t0.elapsed().as_secs_f64();

    // Pass B.
    progress.partitions.store(sorted.len() as u64, Ordering::Relaxed);
    progress.scoring.store(true, Ordering::Relaxed);
    let t1 = std::time::Instant::now();
    let fixed = budget::resident_bytes();
    // The incidents' share is set aside: past it they are spilled.
    let incident_bytes = (memory as f64 * budget::INCIDENTS_SHARE) as u64;
    let ctx = PartitionCtx {
        budget: budget::worker_bytes(memory - incident_bytes, WORKER_SHARE),
        unsplittable: AtomicU64::new(ctx.unsplittable.load(Ordering::Relaxed)),
        ..ctx
    };
    // Bound once for the notes; each partition binds to its own answers.
    let run_bound = BoundPlan::for_run(plan, &strings, &side, ctx.impressions, &facts);
    // In a spill directory of their own: the incidents outlive the run's
    // until they are written.
    let store = IncidentStore::new(strings.clone(), incident_bytes as usize, tmp);
    let scoring = Scoring { plan, facts: &facts, answers: &answers, incidents: &store };
    let parts: Vec<PartResult> = sorted
        .par_iter()
        .map(|(id, f)| ctx.score(*id, f, &scoring, progress))
        .collect::<Result<Vec<_>, std::io::Error>>()
        .map_err(spill_err)?;
    trace.at("partitions scored", &strings);
    let mut out = PartResult::default();
    for p in parts {
        out.merge(p);
    }
    let incidents = store.finish().map_err(spill_err)?;
    let mut notes = run_bound.notes.clone();
    let heavy = ctx.unsplittable.load(Ordering::Relaxed);
    if heavy > 0 {
        notes.push(format!(
            "a partition needing about {} MiB could not be split below a worker's {} MiB share of the {} MiB \
             memory budget: one account (or a few) holds that many events, and was scored whole, over the \
             budget (raise --memory, or lower --threads to give each worker more)",
            heavy >> 20,
            (ctx.budget as u64) >> 20,
            memory >> 20
        ));
    }
    if fixed as f64 > memory as f64 * 0.75 {
        notes.push(format!(
            "the strings, the tables other than events and the population aggregates alone took {} MiB of the \
             {} MiB memory budget: the run may have gone over it (raise --memory)",
            fixed >> 20,
            memory >> 20
        ));
    }
    Ok(RunOutput {
        incidents,
        strings,
        report,
        events: out.events,
        accounts_seen: out.accounts_seen,
        notes,
        partitions: Some(out.parts),
        spilled_bytes,
        read_secs,
        score_secs: t1.elapsed().as_secs_f64(),
        memory_trace: std::mem::take(&mut trace.lines),
    })
}

/// What pass B binds each partition with: the plan, the run's facts, and
/// the item phase's answers by partition.
struct Scoring<'a> {
    plan: &'a Plan,
    facts: &'a Facts,
    answers: &'a PartIndexes,
    /// Where each partition's incidents go.
    incidents: &'a IncidentStore,
}

#[derive(Default)]
struct PartResult {
    events: u64,
    accounts_seen: u64,
    /// Partitions scored (more than one when a partition was split again).
    parts: usize,
}

impl PartResult {
    fn merge(&mut self, o: PartResult) {
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

/// A partition after pass A: sorted files, each with the number it asks the
/// item phase under; its aggregates; duplicates dropped.
struct Prepared {
    files: Vec<(u32, Part)>,
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
    /// The next sorted partition's number, under which it asks the item
    /// phase and reads its answers.
    ids: AtomicU64,
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
    /// share of the budget; sort and deduplicate; fold the aggregates and
    /// ask the item phase; write it back sorted. Impressions pass through.
    fn prepare(&self, part: &Part, depth: u64) -> std::io::Result<Prepared> {
        // Before deduplication: a partition heavy only with repeated
        // records is not noted here (scoring, after it, notes what is left).
        if let Some(subs) = self.split(part, depth, false, false)? {
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
        let id = u32::try_from(self.ids.fetch_add(1, Ordering::Relaxed))
            .map_err(|_| std::io::Error::other("more than 4 billion partitions"))?;
        aggregates.ask(&events, self.strings, id)?;
        let salt = self.names.fetch_add(1, Ordering::Relaxed) << 8 | 0xff;
        let mut w = Partitioner::with_salt(self.spill, 1, 1 << 22, salt)?;
        w.add_to(0, &events.into_table())?;
        let files =
            w.finish()?.into_iter().map(|f| (id, Part { events: f, impressions: part.impressions.clone() })).collect();
        Ok(Prepared { files, aggregates, duplicates })
    }

    /// If `part` is too large for a worker's share of the budget, splits it
    /// by account into smaller parts (rows keep their order, so a sorted
    /// file gives sorted parts) and removes its files. A part too heavy that
    /// cannot be split is noted for the run's notes when `note`.
    fn split(&self, part: &Part, depth: u64, force: bool, note: bool) -> std::io::Result<Option<Vec<Part>>> {
        let impressions = part.impressions.as_ref().map_or(0, |f| f.rows);
        let need =
            (part.events.rows as f64 * self.bytes_per_row + impressions as f64 * IMPRESSION_BYTES) * PARTITION_OVERHEAD;
        if !force && (need <= self.budget || depth >= 6) || part.events.rows <= 1 {
            if need > self.budget && note {
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

    /// Pass B for sorted partition `id`: binds the plan to its answers and
    /// scores it.
    fn score(&self, id: u32, part: &Part, s: &Scoring<'_>, progress: &RunProgress) -> std::io::Result<PartResult> {
        let mut facts = s.facts.clone();
        facts.item_actors = s.answers.load(id as usize)?;
        let bound = BoundPlan::for_run(s.plan, self.strings, self.side, self.impressions, &facts).shared();
        let out = self.score_at(part, &bound, s.incidents, progress, 1)?;
        progress.partitions_done.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn score_at(
        &self,
        part: &Part,
        bound: &Arc<BoundPlan<'_>>,
        incidents: &IncidentStore,
        progress: &RunProgress,
        depth: u64,
    ) -> std::io::Result<PartResult> {
        let force = depth == 1 && self.force_split;
        if let Some(subs) = self.split(part, depth, force, true)? {
            let mut out = PartResult::default();
            for s in &subs {
                out.merge(self.score_at(s, bound, incidents, progress, depth + 1)?);
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
        incidents.add(scorer.run_sequential())?;
        progress.accounts_done.fetch_add(data.events.accounts.len() as u64, Ordering::Relaxed);
        Ok(PartResult { events: data.events.len() as u64, accounts_seen: data.events.accounts.len() as u64, parts: 1 })
    }
}
