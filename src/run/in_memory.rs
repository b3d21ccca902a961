//! The in-memory path: the whole events table read, both phases at once
//! (population aggregates and whole item indexes, then every account in
//! parallel).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::budget::resident_bytes;
use super::{MemoryTrace, RunOutput, RunProgress};
use crate::data::Dataset;
use crate::plan::Plan;
use crate::score::Scorer;

/// Scores `data`, read whole.
pub(super) fn run(
    plan: &Plan,
    data: Dataset,
    memory: u64,
    progress: &RunProgress,
    mut trace: MemoryTrace,
    t0: Instant,
) -> RunOutput {
    let read_secs = t0.elapsed().as_secs_f64();
    progress.scoring.store(true, Ordering::Relaxed);
    let t1 = Instant::now();
    let scorer = Scorer::new(plan, &data);
    progress.accounts_total.store(data.events.accounts.len() as u64, Ordering::Relaxed);
    let accounts = scorer.run_counting(&progress.accounts_done);
    trace.at("accounts scored", &data.strings);
    let mut notes = scorer.notes().to_vec();
    let resident = resident_bytes();
    if resident > memory {
        notes.push(format!(
            "this run held everything in memory and reached {} MiB, over the {} MiB memory budget \
             (the impressions or the tables other than events are larger than their share)",
            resident >> 20,
            memory >> 20
        ));
    }
    RunOutput {
        incidents: super::Incidents::in_memory(accounts, data.strings.clone()),
        events: data.events.len() as u64,
        accounts_seen: data.events.accounts.len() as u64,
        strings: data.strings.clone(),
        report: data.report.clone(),
        notes,
        partitions: None,
        spilled_bytes: 0,
        read_secs,
        score_secs: t1.elapsed().as_secs_f64(),
        memory_trace: trace.lines,
    }
}
