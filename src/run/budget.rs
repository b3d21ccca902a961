//! The memory budget of a run (`--memory`) and every share of it the run
//! plans with, in one place.
//!
//! The budget is for the whole process. What the run holds beside the
//! events (the strings, the tables other than events, the whole-input
//! facts) is measured as resident memory when it matters, not estimated;
//! the events and the work on them are sized from the shares below.

/// The share of the budget the process may reach, with the events table
/// read so far, before the run switches to partitions: sorting the table
/// needs about as much again, and a growing vector briefly holds its old
/// and new storage.
pub const IN_MEMORY_SHARE: f64 = 0.45;

/// How much more than its values a table being appended to may hold (a
/// vector's spare capacity after it grew).
pub const GROWTH: f64 = 1.5;

/// The share of what is free that the workers together give the
/// partitions when the run decides how many partitions to make.
pub const PARTITIONING_SHARE: f64 = 0.5;

/// How many times the events read so far the whole input is assumed to be
/// when the run switches to partitions (it cannot know yet); more
/// partitions than needed cost little, too few are split again.
pub const INPUT_GUESS: f64 = 4.0;

/// The share of what is free that the workers together give the
/// partitions in either pass.
pub const WORKER_SHARE: f64 = 0.6;

/// Bytes a partition needs per byte of its events on disk decoded: the
/// table, its sorted copy and the scorer's per-account state.
pub const PARTITION_OVERHEAD: f64 = 3.0;

/// The share of the budget the incidents of a partitioned run may take
/// in memory while partitions are scored; past it they go to spill files
/// in sorted runs ([`super::incidents`]).
pub const INCIDENTS_SHARE: f64 = 0.1;

/// Bytes of one impression in memory (an account's impressions index).
pub const IMPRESSION_BYTES: f64 = 32.0;

/// The share of the budget one bucket of the item phase may take: its
/// index rows and its partitions' questions (16 bytes each, and as many
/// questions as events at most).
pub const ITEM_BUCKET_SHARE: f64 = 0.1;

/// Bytes of one item index row plus one question about it.
pub const ITEM_PHASE_ROW_BYTES: f64 = 32.0;

/// No worker is given less than this (or its share of the whole budget,
/// if smaller).
pub const MIN_WORKER_BYTES: f64 = 32.0 * 1024.0 * 1024.0;

/// The memory each worker may give a partition: `share` of what the
/// budget leaves beside what is resident already, divided among the
/// threads, and never less than [`MIN_WORKER_BYTES`] (or the worker's
/// share of the whole budget, if smaller).
pub fn worker_bytes(memory: u64, share: f64) -> f64 {
    let free = memory.saturating_sub(resident_bytes()) as f64;
    let threads = rayon::current_num_threads().max(1) as f64;
    (free * share / threads).max((memory as f64 * share / threads).min(MIN_WORKER_BYTES))
}

/// How many buckets of items the item phase uses for `rows` events, so
/// that each fits [`ITEM_BUCKET_SHARE`] of the budget.
pub fn item_buckets(rows: u64, memory: u64) -> usize {
    let want = (rows as f64 * ITEM_PHASE_ROW_BYTES / (memory as f64 * ITEM_BUCKET_SHARE)).ceil();
    (want as usize).clamp(1, 1024)
}

/// Resident memory of this process, in bytes: `VmRSS` of
/// `/proc/self/status`, which the kernel gives in KiB whatever the page
/// size (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
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
    use super::*;

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

    #[test]
    fn resident_memory_is_measured() {
        // A test process holds at least a few MiB, and not terabytes.
        let r = resident_bytes();
        assert!(r > 1 << 20 && r < 1 << 40, "{r}");
        let held = vec![1u8; 64 << 20];
        std::hint::black_box(&held);
        assert!(resident_bytes() >= r + (60 << 20), "64 MiB touched shows");
        drop(held);
    }
}
