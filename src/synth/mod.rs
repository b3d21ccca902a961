//! `synth`: a deterministic, streaming generator of realistic activity
//! datasets with planted compromise episodes (the data contract's tables,
//! with ground truth).
//!
//! ```text
//! seed --World::build--> creators, samplers, EpisodePlan   (one thread, small)
//!      --chunks of 256 accounts, in parallel--> Sim per account --> events
//!      --sort per chunk, format, compress--> buffers --in chunk order--> files
//! ```
//!
//! The population model ([`population`]) is heavy-tailed: most accounts do
//! little, a few a lot; creators post on topics at Poisson rates; accounts
//! follow creators of their interests, like mostly what their feed shows
//! (followees' posts and reposts), sometimes find things by search, take up
//! new interests after following new accounts, travel, tap by accident.
//! It is deliberately not tidy: some accounts are small (a handful of
//! events), explorers (broad, shifting interests) or dormant for weeks and
//! then back in a burst, perhaps on a new phone or abroad; and ordinary
//! accounts binge on topics they never engaged with, like off-topic items
//! friends sent them (`direct`, no impression), rate dozens of items in one
//! sitting, and remove old likes, political and adult ones more often
//! ([`account`] lists the habits and their rates, [`Habits`] counts them).
//! [`episodes`] plants five styles of compromise and five benign look-alikes
//! and writes their labels; its attackers reach their targets by links,
//! search and profiles, and sometimes act from the owner's own session.
//!
//! **Determinism.** Every random draw comes from a stream keyed by the seed
//! and what it is for (an account, a day, a chunk), never from a shared
//! generator; chunks are written in order; nothing is ever written in hash
//! order. The same configuration therefore gives the same bytes for any
//! thread count.
//!
//! **Streaming.** Nothing grows with the size of the output: items are never
//! stored (an item's author, day and index determine it), and only a group
//! of chunks is in memory at a time. Memory is the creators table, the plan
//! (a few hundred bytes per planted account) and 21 bytes per account (its
//! rates, follow count, country, traits, dormant days and plan flags, which
//! feeds read often).
//!
//! **Dirt.** Like real exports the events are not sorted globally (each
//! chunk is sorted by time, accounts interleaved), a small share of lines is
//! repeated exactly, and on request some malformed lines are inserted.
//!
//! Limits: at least 100 accounts and 2 days; timestamps are whole seconds;
//! see the submodules for the model's simplifications.

pub mod account;
pub mod daily;
pub mod episodes;
pub mod population;
pub mod rng;
pub mod world;
pub mod writer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::output::OutputFile;

pub use account::Habits;
use account::{LabelRec, Output, Sim};
use population::{ItemKey, PRE_DAYS, World};
use rng::{Rng, Stream, hash, unit};
use world::{SYLLABLES, TOPICS};
pub use writer::{Compression, Format};

use crate::data::TableKind;
use crate::time::{Millis, SECOND};

/// Accounts per chunk: the unit of parallel work and of output order. Part
/// of the output's definition: changing it changes the bytes.
pub const CHUNK_ACCOUNTS: u32 = 256;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of accounts (at least 100).
    pub accounts: u32,
    /// Days of activity (at least 2).
    pub days: u32,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// When the log starts.
    pub start: Millis,
    /// Record format.
    pub format: Format,
    /// Compression of every file.
    pub compression: Compression,
    /// Whether to write `impressions`.
    pub impressions: bool,
    /// Share of accounts with a planted compromise episode.
    pub compromise_rate: f64,
    /// Share of accounts with a benign look-alike episode.
    pub lookalike_rate: f64,
    /// Share of event lines written twice.
    pub duplicate_rate: f64,
    /// Share of event lines followed by a malformed line.
    pub broken_rate: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            accounts: 10_000,
            days: 30,
            seed: 1,
            start: 1_704_067_200_000, // 2024-01-01T00:00:00Z
            format: Format::Jsonl,
            compression: Compression::None,
            impressions: false,
            compromise_rate: 0.01,
            lookalike_rate: 0.01,
            duplicate_rate: 0.001,
            broken_rate: 0.0,
        }
    }
}

impl SynthConfig {
    /// Checks the settings; the error says which one is wrong and why.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        if self.accounts < 100 {
            return bad(format!(
                "--accounts {} is too few: at least 100 (a world needs creators of every topic)",
                self.accounts
            ));
        }
        if !(2..=3650).contains(&self.days) {
            return bad(format!("--days {} is out of range: 2 to 3650", self.days));
        }
        for (name, r) in [
            ("--compromise-rate", self.compromise_rate),
            ("--lookalike-rate", self.lookalike_rate),
            ("--duplicate-rate", self.duplicate_rate),
            ("--broken-rate", self.broken_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return bad(format!("{name} {r} is not a share between 0 and 1"));
            }
        }
        if self.compromise_rate + self.lookalike_rate > 0.5 {
            return bad(format!(
                "--compromise-rate {} and --lookalike-rate {} add up to more than 0.5",
                self.compromise_rate, self.lookalike_rate
            ));
        }
        Ok(())
    }

    /// The file name of `table` under this configuration.
    pub fn file_name(&self, table: TableKind) -> String {
        format!("{}.{}{}", table.name(), self.format.ext(), self.compression.ext())
    }

    /// The tables written, in order.
    pub fn tables(&self) -> Vec<TableKind> {
        TableKind::ALL.into_iter().filter(|&t| t != TableKind::Impressions || self.impressions).collect()
    }
}

/// Why a dataset could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The output directory holds table files this run would not replace,
    /// which a reader would mix with (or prefer to) the new ones.
    #[error(
        "{} already holds {}; remove them or choose another directory",
        dir.display(),
        files
            .iter()
            .map(|f| f.file_name().unwrap_or(f.as_os_str()).to_string_lossy())
            .collect::<Vec<_>>()
            .join(", ")
    )]
    Conflict {
        /// The output directory.
        dir: PathBuf,
        /// The conflicting files or directories.
        files: Vec<PathBuf>,
    },
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// What was written to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The table.
    pub table: TableKind,
    /// Where.
    pub path: PathBuf,
    /// Records written (duplicates included, broken lines not).
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// What a run wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthReport {
    /// One entry per file, in table order.
    pub files: Vec<FileReport>,
    /// Exact duplicate event lines written.
    pub duplicates: u64,
    /// Malformed event lines written.
    pub broken: u64,
    /// Planted episodes by label style (`story`, `lookalike-story`, ...).
    pub styles: BTreeMap<String, u64>,
    /// How often ordinary accounts' habits happened (binges, links, ...).
    pub habits: Habits,
}

impl SynthReport {
    /// Records written to `table`.
    pub fn records(&self, table: TableKind) -> u64 {
        self.files.iter().find(|f| f.table == table).map_or(0, |f| f.records)
    }
}

/// Counters a caller can watch during a run.
#[derive(Debug, Default)]
pub struct SynthProgress {
    /// Accounts generated so far.
    pub accounts: AtomicU64,
    /// Event records generated so far.
    pub events: AtomicU64,
}

/// One chunk's output: a buffer per table (compressed if asked), counts.
#[derive(Debug, Default)]
struct ChunkOut {
    buffers: Vec<Vec<u8>>,
    records: Vec<u64>,
    duplicates: u64,
    broken: u64,
    labels: Vec<LabelRec>,
    habits: Habits,
}

/// Generates a dataset into `dir` (created if missing).
pub fn generate(cfg: &SynthConfig, dir: &Path) -> Result<SynthReport, SynthError> {
    generate_with_progress(cfg, dir, &SynthProgress::default())
}

/// [`generate`], counting progress into `progress`. Runs on the current
/// rayon pool.
pub fn generate_with_progress(
    cfg: &SynthConfig,
    dir: &Path,
    progress: &SynthProgress,
) -> Result<SynthReport, SynthError> {
    cfg.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SynthError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    check_conflicts(cfg, dir)?;

    let world = World::build(cfg.seed, cfg.accounts, cfg.days, cfg.start, cfg.compromise_rate, cfg.lookalike_rate);
    let tables = cfg.tables();
    let mut files = Vec::new();
    for &t in &tables {
        let path = dir.join(cfg.file_name(t));
        // Each table appears whole at its path when the run succeeds, and
        // not at all (an earlier file left as it was) when it fails.
        let f = OutputFile::create(&path).map_err(io(&path))?;
        files.push((t, path, f, 0u64, 0u64));
    }
    if cfg.format == Format::Csv {
        for (t, path, w, _, bytes) in &mut files {
            let header = cfg.compression.apply(writer::csv_header(columns(*t))).map_err(io(path))?;
            w.write_all(&header).map_err(io(path))?;
            *bytes += header.len() as u64;
        }
    }

    let n_chunks = cfg.accounts.div_ceil(CHUNK_ACCOUNTS);
    let group = (rayon::current_num_threads() * 4).max(4) as u32;
    let mut report = SynthReport::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<ChunkOut>>(1);
    let written: Result<(), SynthError> = std::thread::scope(|s| {
        let files = &mut files;
        let report = &mut report;
        let sink = s.spawn(move || -> Result<(), SynthError> {
            for outs in rx {
                for out in outs {
                    for (i, buf) in out.buffers.iter().enumerate() {
                        let (_, path, w, records, bytes) = &mut files[i];
                        w.write_all(buf).map_err(io(path))?;
                        *bytes += buf.len() as u64;
                        *records += out.records[i];
                    }
                    report.duplicates += out.duplicates;
                    report.broken += out.broken;
                    report.habits.add(&out.habits);
                    for l in &out.labels {
                        *report.styles.entry(l.style.clone()).or_default() += 1;
                    }
                }
            }
            Ok(())
        });
        let mut first = 0;
        while first < n_chunks {
            let last = (first + group).min(n_chunks);
            let outs: Result<Vec<ChunkOut>, SynthError> = (first..last)
                .into_par_iter()
                .map(|c| {
                    let out = chunk(&world, cfg, &tables, c);
                    let hi = ((c + 1) * CHUNK_ACCOUNTS).min(cfg.accounts);
                    progress.accounts.fetch_add(u64::from(hi - c * CHUNK_ACCOUNTS), Ordering::Relaxed);
                    if let Ok(out) = &out {
                        progress.events.fetch_add(out.records[0], Ordering::Relaxed);
                    }
                    out.map_err(|source| SynthError::Io { path: dir.to_path_buf(), source })
                })
                .collect();
            if tx.send(outs?).is_err() {
                // The writer stopped: its error is reported below.
                break;
            }
            first = last;
        }
        drop(tx);
        sink.join().expect("the writer thread does not panic")
    });
    written?;

    for (t, path, mut w, records, mut bytes) in files {
        if bytes == 0 && cfg.compression != Compression::None {
            // An empty table is still a valid compressed stream.
            let empty = cfg.compression.apply(Vec::new()).map_err(io(&path))?;
            w.write_all(&empty).map_err(io(&path))?;
            bytes += empty.len() as u64;
        }
        w.commit().map_err(io(&path))?;
        report.files.push(FileReport { table: t, path, records, bytes });
    }
    Ok(report)
}

fn columns(t: TableKind) -> &'static [&'static str] {
    match t {
        TableKind::Events => writer::EVENT_COLUMNS,
        TableKind::Items => writer::ITEM_COLUMNS,
        TableKind::Follows => writer::FOLLOW_COLUMNS,
        TableKind::Accounts => writer::ACCOUNT_COLUMNS,
        TableKind::Impressions => writer::IMPRESSION_COLUMNS,
        TableKind::Labels => writer::LABEL_COLUMNS,
    }
}

/// The dataset table files and directories already in `dir` (`events.jsonl`,
/// `items.csv.gz`, `events/`, ... and the `daily/` datasets of `--daily`),
/// sorted: a dataset that generating into `dir` would write over or mix
/// with. Empty when `dir` does not exist.
pub fn existing_dataset(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|name| name == "daily" || is_table_name(name)))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Whether `name` is a table's file or directory name: `events`,
/// `events.jsonl`, `items.csv.zst`, ...
fn is_table_name(name: &str) -> bool {
    TableKind::ALL.iter().any(|t| {
        name == t.name()
            || name
                .strip_prefix(t.name())
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| crate::data::source::classify(&format!("x.{r}")).is_some())
    })
}

/// Refuses to write next to table files this run would not overwrite
/// (another format or compression, or impressions left from an earlier run).
fn check_conflicts(cfg: &SynthConfig, dir: &Path) -> Result<(), SynthError> {
    let ours: Vec<String> = cfg.tables().iter().map(|&t| cfg.file_name(t)).collect();
    let mut conflicts = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| SynthError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| SynthError::Io { path: dir.to_path_buf(), source })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if ours.iter().any(|o| o == name) {
            continue;
        }
        if is_table_name(name) {
            conflicts.push(entry.path());
        }
    }
    conflicts.sort();
    if conflicts.is_empty() { Ok(()) } else { Err(SynthError::Conflict { dir: dir.to_path_buf(), files: conflicts }) }
}

/// A handle for account `a`: two or three syllables, sometimes digits.
pub fn handle(seed: u64, a: u32) -> String {
    let mut rng = Rng::stream(seed, Stream::Profile, u64::from(a), 6);
    let mut s = String::from("@");
    for i in 0..rng.range(2, 3) {
        if i > 0 && rng.chance(0.2) {
            s.push('_');
        }
        let syllable = SYLLABLES[rng.index(SYLLABLES.len())];
        s.push_str(syllable);
    }
    if rng.chance(0.6) {
        s.push_str(&rng.range(1, 999).to_string());
    }
    s
}

/// Generates and formats one chunk of accounts.
fn chunk(world: &World, cfg: &SynthConfig, tables: &[TableKind], c: u32) -> std::io::Result<ChunkOut> {
    let lo = c * CHUNK_ACCOUNTS;
    let hi = (lo + CHUNK_ACCOUNTS).min(world.n);
    let mut w = writer::Writer::new(cfg.format);
    let mut out = Output::default();
    let mut items = Vec::new();
    let mut follows = Vec::new();
    let mut accounts = Vec::new();
    let mut labels_buf = Vec::new();
    let (mut n_items, mut n_follows) = (0u64, 0u64);
    let mut labels = Vec::new();
    for a in lo..hi {
        let sim = Sim::new(world, a, cfg.impressions);
        for &f in &sim.follows {
            let created = sim.created_at.min(world.start);
            let frac = unit(hash(&[world.seed, u64::from(a), u64::from(f), 17]));
            let since = created + ((world.start - created) as f64 * frac) as Millis;
            w.follow(&mut follows, a, f, since / SECOND * SECOND);
            n_follows += 1;
        }
        let mut account_labels: Vec<&str> = Vec::new();
        if let Some(cr) = world.creator(a) {
            account_labels.push("creator");
            account_labels.push(TOPICS[cr.topics[0] as usize].name);
            if cr.popularity > 100.0 {
                account_labels.push("verified");
            }
        }
        w.account(&mut accounts, a, sim.created_at, &handle(world.seed, a), &account_labels);
        let rates = sim.p.rates;
        for d in -PRE_DAYS..world.days {
            for k in 0..world.posts_with(a, d, &rates) {
                let key = ItemKey { author: a, day: d, k };
                let meta = world.item(key);
                if meta.created_at < sim.created_at {
                    continue;
                }
                w.item(&mut items, key, &meta);
                n_items += 1;
            }
        }
        if let Some(l) = sim.run(&mut out) {
            labels.push(l);
        }
    }
    for l in &labels {
        w.label(&mut labels_buf, l);
    }

    // Events: sorted by time within the chunk, accounts interleaved; some
    // lines repeated, some broken ones inserted when asked.
    out.events.sort_unstable_by_key(|e| (e.ts, e.actor, e.seq));
    let mut events = Vec::with_capacity(out.events.len() * 200);
    let mut dups = Rng::stream(world.seed, Stream::Dirt, u64::from(c), 0);
    let mut broken = Rng::stream(world.seed, Stream::Dirt, u64::from(c), 1);
    let (mut n_events, mut n_dups, mut n_broken) = (0u64, 0u64, 0u64);
    for e in &out.events {
        let start = events.len();
        w.event(&mut events, e);
        n_events += 1;
        if cfg.duplicate_rate > 0.0 && dups.chance(cfg.duplicate_rate) {
            events.extend_from_within(start..);
            n_events += 1;
            n_dups += 1;
        }
        if cfg.broken_rate > 0.0 && broken.chance(cfg.broken_rate) {
            let line_end = start + memchr::memchr(b'\n', &events[start..]).unwrap_or(0);
            let cut = match cfg.format {
                // Cut before the last separator: fewer cells than the header.
                Format::Csv => memchr::memrchr(b',', &events[start..line_end]).unwrap_or(1),
                Format::Jsonl => 1 + broken.index(line_end - start - 2),
            };
            events.extend_from_within(start..start + cut.max(1));
            events.push(b'\n');
            n_broken += 1;
        }
    }
    let mut impressions = Vec::new();
    out.impressions.sort_unstable();
    for i in &out.impressions {
        w.impression(&mut impressions, i);
    }
    let mut buffers = Vec::with_capacity(tables.len());
    let mut records = Vec::with_capacity(tables.len());
    let mut bufs = [
        (TableKind::Events, events, n_events),
        (TableKind::Items, items, n_items),
        (TableKind::Follows, follows, n_follows),
        (TableKind::Accounts, accounts, u64::from(hi - lo)),
        (TableKind::Impressions, impressions, out.impressions.len() as u64),
        (TableKind::Labels, labels_buf, labels.len() as u64),
    ];
    for (t, buf, n) in &mut bufs {
        if !tables.contains(t) {
            continue;
        }
        let buf = std::mem::take(buf);
        buffers.push(if buf.is_empty() { buf } else { cfg.compression.apply(buf)? });
        records.push(*n);
    }
    Ok(ChunkOut { buffers, records, duplicates: n_dups, broken: n_broken, labels, habits: out.habits })
}

#[cfg(test)]
mod tests;
