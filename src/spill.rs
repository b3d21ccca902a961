//! Spill files: events partitioned by account onto disk, for inputs larger
//! than the memory budget.
//!
//! A [`SpillDir`] is a private temporary directory, removed when dropped
//! (normal exit, error, panic unwinding) and by the Ctrl-C handler the
//! binary installs ([`remove_all_on_interrupt`]). A [`Partitioner`] takes
//! blocks of events whose symbols belong to the shared interner, sends each
//! row to partition `hash(actor text) % n`, and appends it to that
//! partition's file as zstd-compressed columnar chunks. [`load`] reads a
//! partition back into one events table. All of an account's events land in
//! one partition, so partitions can be scored independently.
//!
//! The chunk format is private to one run (symbols are numbers of that
//! run's interner): `[u32 compressed length][zstd frame]`, the frame holding
//! `u32 rows, u32 columns`, then per column its name, a kind byte and the
//! values (times as i64, symbols as u32 with 0 for absent, numbers as f64,
//! text as length-prefixed bytes, lists as offsets and symbols).

use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::data::schema::TableKind;
use crate::data::table::{Column, Table};
use crate::intern::{Interner, Sym};
use crate::time::Millis;

/// Directories to remove if the process is interrupted.
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every live spill directory; for the binary's signal handler,
/// which then exits. The one global of the crate: a signal handler has no
/// other way to find what to clean up. The registry stays locked
/// afterwards, so that no spill directory can be made between this and the
/// exit.
pub fn remove_all_on_interrupt() {
    if let Ok(dirs) = LIVE_DIRS.lock() {
        for d in dirs.iter() {
            // A worker may be creating a file in it meanwhile: try again.
            for _ in 0..5 {
                if std::fs::remove_dir_all(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        std::mem::forget(dirs);
    }
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct SpillDir {
    path: PathBuf,
}

/// The prefix of spill directories' names, before `<pid>-<n>`.
pub const SPILL_PREFIX: &str = "changeling-spill-";

/// Removes the entries of `parent` named `<prefix><pid>-...` whose process
/// `pid` is no longer running (a run killed with SIGKILL, which no handler
/// sees) and whose owner is the owner of `mine` (an entry this process
/// made there). Returns how many were removed. Liveness is read from
/// `/proc`; where there is none, nothing is removed. A process id reused
/// by a live process keeps its entries until that process ends.
pub fn remove_left_by_dead_processes(parent: &Path, prefix: &str, mine: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    #[cfg(unix)]
    let owner = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    #[cfg(not(unix))]
    let owner = |_: &Path| None::<u32>;
    let Some(me) = owner(mine) else { return 0 };
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let path = entry.path();
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() || owner(&path) != Some(me) {
            continue;
        }
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

impl SpillDir {
    /// Creates `changeling-spill-<pid>-<n>` under `parent`, and removes the
    /// spill directories there of processes that are gone
    /// ([`remove_left_by_dead_processes`]).
    pub fn new(parent: &Path) -> io::Result<SpillDir> {
        std::fs::create_dir_all(parent)?;
        let pid = std::process::id();
        for n in 0..1000u32 {
            let path = parent.join(format!("{SPILL_PREFIX}{pid}-{n}"));
            // Made and registered under the lock: a signal handler either
            // sees it or runs before it exists.
            let mut dirs = LIVE_DIRS.lock().map_err(|_| io::Error::other("spill registry poisoned"))?;
            match private_dir(&path) {
                Ok(()) => {
                    dirs.push(path.clone());
                    drop(dirs);
                    remove_left_by_dead_processes(parent, SPILL_PREFIX, &path);
                    return Ok(SpillDir { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not create a spill directory"))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        if let Ok(mut dirs) = LIVE_DIRS.lock() {
            dirs.retain(|d| d != &self.path);
        }
    }
}

/// Creates `path` readable by its owner only: spill files hold the
/// activity being scored.
fn private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// One partition's file.
#[derive(Debug, Clone)]
pub struct PartitionFile {
    /// The table its rows belong to (events, or impressions).
    pub kind: TableKind,
    /// Its path.
    pub path: PathBuf,
    /// Rows written to it.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Distributes rows of a table keyed by account (events, impressions) to
/// partition files by account.
pub struct Partitioner {
    /// The account column.
    key: usize,
    files: Vec<PartitionFile>,
    buffers: Vec<Vec<u8>>,
    flush_at: usize,
    hasher: foldhash::fast::FixedState,
    salt: u64,
}

impl Partitioner {
    /// `n` partitions of events in `dir`; each buffers about `flush_at`
    /// bytes before compressing a chunk to disk.
    pub fn new(dir: &SpillDir, n: usize, flush_at: usize) -> io::Result<Partitioner> {
        Partitioner::with_salt(dir, n, flush_at, 0)
    }

    /// Like [`Partitioner::new`], with a different assignment of accounts
    /// to partitions for each `salt` (to split a partition further).
    pub fn with_salt(dir: &SpillDir, n: usize, flush_at: usize, salt: u64) -> io::Result<Partitioner> {
        Partitioner::for_table(TableKind::Events, dir, n, flush_at, salt)
    }

    /// Like [`Partitioner::with_salt`] for rows of `kind`, a table with an
    /// `actor` column: the same `n` and `salt` send an account to the same
    /// partition whatever the table.
    pub fn for_table(kind: TableKind, dir: &SpillDir, n: usize, flush_at: usize, salt: u64) -> io::Result<Partitioner> {
        let key = kind.fields().iter().position(|f| f.name == "actor").expect("a table keyed by actor");
        let n = n.max(1);
        let mut files = Vec::with_capacity(n);
        for p in 0..n {
            let path = dir.path().join(format!("{kind}-{salt}-{p:05}.bin"));
            File::create(&path)?;
            files.push(PartitionFile { kind, path, rows: 0, bytes: 0 });
        }
        Ok(Partitioner {
            key,
            files,
            buffers: vec![Vec::new(); n],
            flush_at,
            hasher: foldhash::fast::FixedState::default(),
            salt,
        })
    }

    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no partitions (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The partition of an account.
    pub fn partition_of(&self, actor: &str) -> usize {
        (self.hasher.hash_one((self.salt, actor)) % self.files.len() as u64) as usize
    }

    /// Adds every row of an events block (symbols of `strings`).
    pub fn add(&mut self, block: &Table, strings: &Interner) -> io::Result<()> {
        let n = self.files.len();
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
        for r in 0..block.rows {
            let actor = block.columns[self.key].sym(r).expect("actor is required");
            rows[self.partition_of(strings.resolve(actor))].push(r as u32);
        }
        for (p, order) in rows.into_iter().enumerate() {
            if order.is_empty() {
                continue;
            }
            let mut part = block.clone_structure();
            part.rows = 0;
            let gathered: Vec<Column> = block.columns.iter().map(|c| c.gather(&order)).collect();
            part.columns = gathered;
            part.rows = order.len();
            encode(&part, &mut self.buffers[p]);
            self.files[p].rows += order.len() as u64;
            if self.buffers[p].len() >= self.flush_at {
                self.flush(p)?;
            }
        }
        Ok(())
    }

    /// Adds every row of `table` to partition `p`, whatever its accounts
    /// (to write back one partition, sorted).
    pub fn add_to(&mut self, p: usize, table: &Table) -> io::Result<()> {
        // Chunks of at most 64 Ki rows keep encode buffers small.
        let mut start = 0;
        while start < table.rows {
            let end = (start + (1 << 16)).min(table.rows);
            let order: Vec<u32> = (start as u32..end as u32).collect();
            let mut part = table.clone_structure();
            part.columns = table.columns.iter().map(|c| c.gather(&order)).collect();
            part.rows = order.len();
            encode(&part, &mut self.buffers[p]);
            self.files[p].rows += order.len() as u64;
            if self.buffers[p].len() >= self.flush_at {
                self.flush(p)?;
            }
            start = end;
        }
        Ok(())
    }

    fn flush(&mut self, p: usize) -> io::Result<()> {
        if self.buffers[p].is_empty() {
            return Ok(());
        }
        self.files[p].bytes += append_frame(&self.files[p].path, &self.buffers[p])?;
        self.buffers[p].clear();
        Ok(())
    }

    /// Flushes every buffer and returns the partitions.
    pub fn finish(mut self) -> io::Result<Vec<PartitionFile>> {
        for p in 0..self.files.len() {
            self.flush(p)?;
        }
        Ok(self.files)
    }
}

pub use crate::facts::item_index::ItemRow;

/// Rows of a whole-input item index (who acted on which item when), spilled
/// in buckets by item, so that the index can be built one bucket at a time
/// (see [`crate::facts`]). Any thread may append; each append
/// writes one zstd frame per bucket it touches: `[u32 length][frame]`, the
/// frame holding 16-byte rows (u32 item, i64 time, u32 account).
pub struct ItemBuckets {
    files: Vec<Mutex<(PathBuf, u64)>>,
    /// The earliest time appended.
    min_time: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for ItemBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemBuckets").field("buckets", &self.files.len()).finish()
    }
}

impl ItemBuckets {
    /// `n` empty buckets in `dir`, their files named after `name`.
    pub fn new(dir: &SpillDir, name: &str, n: usize) -> io::Result<ItemBuckets> {
        let files = (0..n.max(1))
            .map(|b| {
                let path = dir.path().join(format!("items-{name}-{b:04}.bin"));
                File::create(&path)?;
                Ok(Mutex::new((path, 0)))
            })
            .collect::<io::Result<_>>()?;
        Ok(ItemBuckets { files, min_time: std::sync::atomic::AtomicI64::new(Millis::MAX) })
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no buckets (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.lock().map_or(0, |g| g.1)).sum()
    }

    /// The earliest time appended, if any row was.
    pub fn min_time(&self) -> Option<Millis> {
        Some(self.min_time.load(std::sync::atomic::Ordering::Relaxed)).filter(|&t| t != Millis::MAX)
    }

    fn bucket_of(&self, item: Sym) -> usize {
        ((item.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.files.len()
    }

    /// Appends `rows` to their buckets and empties it.
    pub fn append(&self, rows: &mut Vec<ItemRow>) -> io::Result<()> {
        let mut by_bucket: Vec<Vec<u8>> = vec![Vec::new(); self.files.len()];
        if let Some(min) = rows.iter().map(|r| r.1).min() {
            self.min_time.fetch_min(min, std::sync::atomic::Ordering::Relaxed);
        }
        for &(item, ts, who) in rows.iter() {
            let out = &mut by_bucket[self.bucket_of(item)];
            put_u32(out, item.index() as u32);
            out.extend_from_slice(&ts.to_le_bytes());
            put_u32(out, who.index() as u32);
        }
        rows.clear();
        for (b, raw) in by_bucket.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let mut file = self.files[b].lock().map_err(|_| io::Error::other("a spill writer panicked"))?;
            file.1 += append_frame(&file.0, &raw)?;
        }
        Ok(())
    }

    /// Appends `rows` to bucket `b` whatever their items, and empties it
    /// (for buckets that are partitions, not groups of items).
    pub fn append_to(&self, b: usize, rows: &mut Vec<ItemRow>) -> io::Result<()> {
        let mut raw = Vec::with_capacity(rows.len() * 16);
        for &(item, ts, who) in rows.iter() {
            put_u32(&mut raw, item.index() as u32);
            raw.extend_from_slice(&ts.to_le_bytes());
            put_u32(&mut raw, who.index() as u32);
        }
        rows.clear();
        let mut file = self.files[b].lock().map_err(|_| io::Error::other("a spill writer panicked"))?;
        file.1 += append_frame(&file.0, &raw)?;
        Ok(())
    }

    /// Reads bucket `b` back and removes its file.
    pub fn take(&self, b: usize) -> io::Result<Vec<ItemRow>> {
        let file = self.files[b].lock().map_err(|_| io::Error::other("a spill writer panicked"))?;
        let mut rows = Vec::new();
        for_each_frame(&file.0, file.1, |raw| {
            let mut c = Cursor { b: raw, at: 0 };
            rows.reserve(raw.len() / 16);
            while c.at < raw.len() {
                let item = sym(c.u32()?)?;
                let ts = c.u64()? as Millis;
                rows.push((item, ts, sym(c.u32()?)?));
            }
            Ok(())
        })?;
        std::fs::remove_file(&file.0)?;
        Ok(rows)
    }
}

impl Table {
    /// An empty table with this table's kind and column names.
    fn clone_structure(&self) -> Table {
        let mut t = Table::new(self.kind);
        t.names = self.names.clone();
        t.columns = self.columns.iter().map(|c| c.gather(&[])).collect();
        t
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `t` to `out` in the spill format (uncompressed); public for
/// the fuzz targets, which check that [`decode`] inverts it.
pub fn encode(t: &Table, out: &mut Vec<u8>) {
    let n = t.rows;
    let mut block = Vec::new();
    let mut cols = 0u32;
    for (name, c) in t.names.iter().zip(&t.columns) {
        let (kind, empty) = match c {
            Column::Time(v) => (0u8, v.is_empty()),
            Column::Sym(v) => (1, v.is_empty()),
            Column::Num(v) => (2, v.is_empty()),
            Column::Text(v) => (3, v.is_empty()),
            Column::List { offsets, .. } => (4, offsets.is_empty()),
        };
        if empty {
            continue;
        }
        cols += 1;
        put_u32(&mut block, name.len() as u32);
        block.extend_from_slice(name.as_bytes());
        block.push(kind);
        match c {
            // Values, then a bitmap of the rows present: absence is never
            // a value.
            Column::Time(_) => {
                (0..n).for_each(|r| block.extend_from_slice(&c.time(r).unwrap_or(0).to_le_bytes()));
                for byte in 0..n.div_ceil(8) {
                    let bits = (0..8).filter(|b| c.time(byte * 8 + b).is_some()).fold(0u8, |acc, b| acc | 1 << b);
                    block.push(bits);
                }
            }
            Column::Sym(_) => (0..n).for_each(|r| put_u32(&mut block, c.sym(r).map_or(0, |s| s.index() as u32 + 1))),
            Column::Num(_) => (0..n).for_each(|r| block.extend_from_slice(&c.num(r).unwrap_or(f64::NAN).to_le_bytes())),
            Column::Text(_) => (0..n).for_each(|r| match c.text(r) {
                Some(t) => {
                    put_u32(&mut block, t.len() as u32);
                    block.extend_from_slice(t.as_bytes());
                }
                None => put_u32(&mut block, u32::MAX),
            }),
            Column::List { .. } => {
                let mut total = 0u32;
                put_u32(&mut block, 0);
                for r in 0..n {
                    total += c.list(r).len() as u32;
                    put_u32(&mut block, total);
                }
                for r in 0..n {
                    c.list(r).iter().for_each(|s| put_u32(&mut block, s.index() as u32));
                }
            }
        }
    }
    put_u32(out, n as u32);
    put_u32(out, cols);
    out.extend_from_slice(&block);
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Fails unless `count` values of at least `width` bytes each can still
    /// follow, so a corrupt count cannot ask for a huge allocation.
    fn expect(&self, count: usize, width: usize) -> io::Result<()> {
        match count.checked_mul(width) {
            Some(need) if need <= self.b.len() - self.at => Ok(()),
            _ => Err(corrupt("a count larger than the chunk")),
        }
    }
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
            .ok_or_else(|| corrupt("truncated chunk"))?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt spill data: {what}"))
}

/// The symbol of a written index; `u32::MAX` is none that the writer
/// could have numbered, so data holding it is corrupt.
fn sym(index: u32) -> io::Result<Sym> {
    if index == u32::MAX {
        return Err(corrupt("a string index out of range"));
    }
    Ok(Interner::sym_at(index as usize))
}

/// Decodes the chunks of one uncompressed spill frame. Any byte string is
/// either tables or an `InvalidData` error, never a panic; public for the
/// fuzz targets.
pub fn decode(bytes: &[u8], kind: TableKind) -> io::Result<Vec<Table>> {
    let mut c = Cursor { b: bytes, at: 0 };
    let mut out = Vec::new();
    while c.at < bytes.len() {
        let n = c.u32()? as usize;
        let cols = c.u32()? as usize;
        c.expect(cols, 5)?;
        let mut t = Table::new(kind);
        t.names.clear();
        t.columns.clear();
        for _ in 0..cols {
            let len = c.u32()? as usize;
            let name = String::from_utf8(c.take(len)?.to_vec()).map_err(io::Error::other)?;
            let kind = c.take(1)?[0];
            c.expect(n, [8, 4, 8, 4, 4].get(kind as usize).copied().unwrap_or(1))?;
            let column = match kind {
                0 => {
                    let values: Vec<i64> = (0..n).map(|_| c.u64().map(|v| v as i64)).collect::<io::Result<_>>()?;
                    let bits = c.take(n.div_ceil(8))?;
                    Column::Time(
                        values
                            .iter()
                            .enumerate()
                            .map(|(r, &v)| (bits[r / 8] >> (r % 8) & 1 == 1).then_some(v))
                            .collect(),
                    )
                }
                1 => Column::Sym(
                    (0..n)
                        .map(|_| c.u32().and_then(|v| v.checked_sub(1).map(sym).transpose()))
                        .collect::<io::Result<_>>()?,
                ),
                2 => Column::Num((0..n).map(|_| c.u64().map(f64::from_bits)).collect::<io::Result<_>>()?),
                3 => Column::Text(
                    (0..n)
                        .map(|_| {
                            let len = c.u32()?;
                            if len == u32::MAX {
                                return Ok(None);
                            }
                            let s = std::str::from_utf8(c.take(len as usize)?).map_err(io::Error::other)?;
                            Ok(Some(s.into()))
                        })
                        .collect::<io::Result<_>>()?,
                ),
                4 => {
                    let offsets: Vec<u32> = (0..=n).map(|_| c.u32()).collect::<io::Result<_>>()?;
                    if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
                        return Err(corrupt("list offsets out of order"));
                    }
                    let total = offsets[n] as usize;
                    c.expect(total, 4)?;
                    let values = (0..total).map(|_| c.u32().and_then(sym)).collect::<io::Result<_>>()?;
                    Column::List { offsets, values }
                }
                _ => return Err(corrupt("unknown column kind")),
            };
            t.names.push(name);
            t.columns.push(column);
        }
        t.rows = n;
        out.push(t);
    }
    Ok(out)
}

/// Reads one partition back into a table.
pub fn load(file: &PartitionFile) -> io::Result<Table> {
    let mut table = Table::new(file.kind);
    for_each_chunk(file, |chunk| {
        table.append_table(chunk);
        Ok(())
    })?;
    Ok(table)
}

/// Calls `f` with each chunk of a partition, in the order written.
/// Fails, naming the file, if it does not hold exactly the rows written.
pub fn for_each_chunk(file: &PartitionFile, mut f: impl FnMut(Table) -> io::Result<()>) -> io::Result<()> {
    let mut rows = 0u64;
    for_each_frame(&file.path, file.bytes, |raw| {
        for chunk in decode(raw, file.kind)? {
            rows += chunk.rows as u64;
            f(chunk)?;
        }
        Ok(())
    })?;
    if rows != file.rows {
        let what = format!("{rows} rows read, {} written", file.rows);
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("spill file {}: {what}", file.path.display())));
    }
    Ok(())
}

/// Compresses `raw` into one frame at the end of the file at `path`:
/// `[u32 length][zstd frame]`. Returns the bytes written.
fn append_frame(path: &Path, raw: &[u8]) -> io::Result<u64> {
    let mut compressor = zstd::bulk::Compressor::new(1)?;
    compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    let frame = compressor.compress(raw)?;
    crate::output::fault::spill(4 + frame.len())?;
    let mut f = BufWriter::new(OpenOptions::new().append(true).open(path)?);
    f.write_all(&(frame.len() as u32).to_le_bytes())?;
    f.write_all(&frame)?;
    f.flush()?;
    Ok(4 + frame.len() as u64)
}

/// Calls `f` with each frame of the file at `path`, decompressed, in the
/// order written. `written` is the file's length as written; every frame
/// carries zstd's checksum, so a file changed on disk is an error naming it,
/// never rows that were not written.
fn for_each_frame(path: &Path, written: u64, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("spill file {}: {e}", path.display()));
    let file = File::open(path).map_err(named)?;
    let mut left = file.metadata().map_err(named)?.len();
    if left != written {
        return Err(named(corrupt(&format!("{left} bytes on disk, {written} written"))));
    }
    let mut r = BufReader::new(file);
    let mut len = [0u8; 4];
    while left > 0 {
        r.read_exact(&mut len).map_err(named)?;
        let n = u64::from(u32::from_le_bytes(len));
        left = left.checked_sub(4 + n).ok_or_else(|| named(corrupt("a frame longer than the file")))?;
        let mut frame = vec![0u8; n as usize];
        r.read_exact(&mut frame).map_err(named)?;
        let raw = zstd::stream::decode_all(&frame[..]).map_err(|e| named(corrupt(&e.to_string())))?;
        f(&raw).map_err(named)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::jsonl;
    use crate::data::schema::ev;
    use crate::data::table::TableBuilder;

    #[test]
    fn partitions_round_trip_and_clean_up() {
        let text = [
            r#"{"ts":1,"actor":"a","action":"like","target":"x","lat":1.5,"tags":["p","q"]}"#,
            r#"{"ts":2,"actor":"b","action":"like","target":"y"}"#,
            r#"{"ts":3,"actor":"a","action":"unlike","target":"x","note":"n"}"#,
        ]
        .join("\n");
        let mut b = TableBuilder::new(TableKind::Events);
        let mut bad = Vec::new();
        jsonl::parse_block(text.as_bytes(), 1, &mut b, &mut bad);
        let mut strings = Interner::new();
        let mut block = Table::new(TableKind::Events);
        block.append(b, &mut strings);

        let tmp = tempfile::tempdir().unwrap();
        let dir = SpillDir::new(tmp.path()).unwrap();
        let path = dir.path().to_path_buf();
        let mut p = Partitioner::new(&dir, 4, 1).unwrap();
        p.add(&block, &strings).unwrap();
        p.add(&block, &strings).unwrap();
        let pa = p.partition_of("a");
        let files = p.finish().unwrap();
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 6);
        let t = load(&files[pa]).unwrap();
        let a_rows: Vec<usize> = (0..t.rows).collect();
        assert!(a_rows.len() >= 4);
        let actor = |r| strings.resolve(t.columns[ev::ACTOR].sym(r).unwrap()).to_string();
        let row = (0..t.rows).find(|&r| actor(r) == "a" && t.columns[ev::TS].time(r) == Some(1)).unwrap();
        assert_eq!(t.columns[ev::LAT].num(row), Some(1.5));
        let tags = t.column_index("tags").unwrap();
        assert_eq!(strings.resolve(t.columns[tags].sym(row).unwrap()), "p|q");
        drop(dir);
        assert!(!path.exists(), "spill directory removed on drop");
    }

    /// A partition written by the partitioner, with the rows it holds.
    fn one_partition(dir: &SpillDir) -> (PartitionFile, Interner) {
        let text: String = (0..200)
            .map(|i| {
                format!("{{\"ts\":{i},\"actor\":\"a\",\"action\":\"like\",\"target\":\"x{i}\",\"tags\":[\"p\"]}}\n")
            })
            .collect();
        let mut b = TableBuilder::new(TableKind::Events);
        jsonl::parse_block(text.as_bytes(), 1, &mut b, &mut Vec::new());
        let mut strings = Interner::new();
        let mut block = Table::new(TableKind::Events);
        block.append(b, &mut strings);
        let mut p = Partitioner::new(dir, 1, 1 << 10).unwrap();
        for _ in 0..3 {
            p.add(&block, &strings).unwrap();
        }
        (p.finish().unwrap().remove(0), strings)
    }

    #[test]
    fn a_changed_spill_file_is_an_error_naming_it_never_other_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SpillDir::new(tmp.path()).unwrap();
        let (file, _strings) = one_partition(&dir);
        let rows = load(&file).unwrap();
        assert_eq!(rows.rows, 600);
        let rows = format!("{rows:?}");
        let clean = std::fs::read(&file.path).unwrap();
        assert!(clean.len() > 40, "several frames: {} bytes", clean.len());
        // A change either fails, naming the file, or reads the very rows
        // written (a flipped bit that no decoder reads, such as padding).
        let expect_error = |bytes: &[u8], what: &str| {
            std::fs::write(&file.path, bytes).unwrap();
            match load(&file) {
                Ok(t) => assert_eq!(format!("{t:?}"), rows, "{what}: other rows read from a changed file"),
                Err(e) => assert!(e.to_string().contains(&file.path.display().to_string()), "{what}: {e}"),
            }
        };
        for at in 0..clean.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bytes = clean.clone();
                bytes[at] ^= flip;
                expect_error(&bytes, &format!("byte {at} ^ {flip:#x}"));
            }
        }
        for len in 0..clean.len() {
            expect_error(&clean[..len], &format!("cut to {len} bytes"));
        }
        let mut longer = clean.clone();
        longer.extend_from_slice(&[0xff; 4]);
        expect_error(&longer, "four bytes appended");
    }

    #[test]
    fn spill_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SpillDir::new(tmp.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
