//! A daily state on disk: a directory of generations, each a complete
//! state, switched atomically (docs/state.md gives the format).
//!
//! ```text
//! STATE/
//!   CURRENT                  the current generation's name, e.g. "gen-000007"
//!   LOCK                     held by the run using the state (pid, host, start)
//!   gen-000007/
//!     manifest.json          version, watermark, keys, files with sizes and CRC32s
//!     accounts-000003.arrow  a layer of account entries (Arrow IPC file)
//!     accounts-000003.index.arrow   its blocks: partition, first and last key, CRC32
//!     accounts-000007.arrow  ...a later layer: the accounts that run changed
//!     items-*.arrow, profiles-*.arrow   (layers, as accounts)
//!     timers.arrow           accounts with something due or incidents open
//!     facts.arrow            population facts' partials (rows)
//!     indexes.arrow          item indexes' entries within reach
//! ```
//!
//! **Keyed tables** (accounts, items, profiles) are kept in layers: each
//! run writes one layer holding only the rows it changed (a row with a null
//! value deletes the key), sorted by (partition, key), in record batches of
//! at most [`BLOCK_ROWS`] rows that never span two partitions. A key is
//! read from the newest layer that has it, through the layer's index: only
//! the blocks that hold the keys asked for are read, so a run costs in
//! proportion to the accounts it touches, not to the state. When the layers
//! grow many, the newest large beside the rest, or the layers above the
//! oldest outweigh it, a run merges them into one (compaction), leaving out
//! rows not seen within the plan's reach: the old versions of keys never
//! take more room than the live ones.
//!
//! **Partitions** are those of the Spark job: `pmod(hash(key), P)` with
//! Spark's `hash` (Murmur3, seed 42; [`spark_hash`]), so a Spark task of
//! partition `p` reads the blocks of partition `p` alone.
//!
//! **Crash safety.** A run writes a new generation directory beside the
//! current one (unchanged layers hard-linked, every file synced), then
//! replaces `CURRENT` by renaming a new file over it: a kill at any point
//! leaves the previous generation current and whole; the next run removes
//! generations that are not current. A corrupt or truncated file is an
//! error naming it (each block and each small file has its CRC32 in the
//! index or the manifest), never a silent fresh start.
//!
//! **One run at a time.** `LOCK` is created exclusively; a second run finds
//! it and refuses, naming the holder. A lock left by a process that no
//! longer runs is reported as stale, and removed only by hand (or `changeling
//! state unlock`), never silently.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, FixedSizeBinaryArray, Int32Array, Int64Array,
    RecordBatch, StringArray, StringBuilder, UInt32Array,
};
use arrow::buffer::Buffer;
use arrow::datatypes::Int32Type;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type};
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::ipc::{Block, CompressionType, root_as_footer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Account, IndexRows, Kept, Keys, Source, State, Update};
use crate::data::TableKind;
use crate::facts::FactRow;
use crate::output::fault;
use crate::time::{Millis, format_rfc3339, parse_timestamp};

/// The format's name and version, in every manifest.
pub const FORMAT: &str = "changeling-state";
/// The version this build writes.
pub const VERSION: u32 = 5;
/// The oldest version this build reads: version 3 is version 4 without
/// partially merged layers (no `dead` partitions); before version 5, the
/// items' and profiles' rows repeated their key as `id` (such rows, in
/// layers kept or merged since, are read as they are).
pub const OLDEST_VERSION: u32 = 3;
/// Rows of a keyed table per record batch, at most: small, so that a run
/// touching few accounts reads few rows besides theirs.
pub const BLOCK_ROWS: usize = 32;
/// Layers holding a partition before a run is asked to merge it.
pub const MAX_LAYERS: usize = 8;
/// What a run may merge, as a multiple of the bytes it adds: each run
/// adds at most its own bytes of old versions and removes, merging
/// partitions whose old versions outweigh their live rows, more than it
/// adds; so the state stays within about twice its live content, and no
/// run pays for merging more than a few times its own size.
pub const MERGE_BUDGET: u64 = 4;

/// An error about a state directory, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A file is not what this build wrote: corrupt, truncated, or of
    /// another version.
    #[error("{}: {message} (the state is damaged: restore it from a copy, or rebuild it with `changeling state rebuild`)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another run holds the state.
    #[error("{}: the state is in use by another run ({holder}); wait for it to end", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// A lock of a process that no longer runs.
    #[error(
        "{}: a stale lock of a run that no longer runs ({holder}): it may have been killed mid-run (its state is \
         whole: runs switch generations atomically); if no run is using the state, remove the lock with \
         `changeling state unlock {}`",
        path.display(),
        dir.display()
    )]
    Stale {
        /// The lock file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
        /// Who held it.
        holder: String,
    },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_path_buf(), error }
}

fn corrupt(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt { path: path.to_path_buf(), message: message.into() }
}

/// Spark's `hash` of a string (Murmur3 x86 32-bit, seed 42, with Spark's
/// handling of the last bytes, one at a time), so that `pmod(hash, P)` is
/// the partition Spark's `repartition(P, col)` puts the key in.
pub fn spark_hash(key: &str) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix_k1 = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mix_h1 = |h: u32, k: u32| (h ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    let bytes = key.as_bytes();
    let aligned = bytes.len() - bytes.len() % 4;
    let mut h: u32 = 42;
    for chunk in bytes[..aligned].chunks_exact(4) {
        h = mix_h1(h, mix_k1(u32::from_le_bytes(chunk.try_into().expect("four bytes"))));
    }
    for &b in &bytes[aligned..] {
        // Spark reads each tail byte as a signed byte, widened.
        h = mix_h1(h, mix_k1(b as i8 as i32 as u32));
    }
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

/// The partition of `key` among `n`: Spark's `pmod(hash(key), n)`.
pub fn partition_of(key: &str, n: u32) -> u32 {
    spark_hash(key).rem_euclid(n as i32) as u32
}

/// A file of a generation, with its size and CRC32.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileSum {
    bytes: u64,
    crc32: u32,
}

/// One keyed table's layers, oldest first, and how many keys it holds
/// (as of its last compaction, plus what runs since added; approximate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Layers {
    layers: Vec<String>,
    rows: u64,
    /// Per layer, the partitions a later layer merged (ranges `[from,
    /// to)`): its blocks of them are superseded and never read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    dead: BTreeMap<String, Vec<[u32; 2]>>,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    generation: u64,
    written_by: String,
    watermark: Option<String>,
    partitions: u32,
    keys: KeysOut,
    tables: Vec<String>,
    accounts: Layers,
    items: Layers,
    profiles: Layers,
    files: BTreeMap<String, FileSum>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeysOut {
    states: Vec<(String, Vec<String>)>,
    facts: Vec<String>,
    indexes: Vec<String>,
}

impl From<&Keys> for KeysOut {
    fn from(k: &Keys) -> KeysOut {
        KeysOut { states: k.states.clone(), facts: k.facts.clone(), indexes: k.indexes.clone() }
    }
}

impl From<KeysOut> for Keys {
    fn from(k: KeysOut) -> Keys {
        Keys { states: k.states, facts: k.facts, indexes: k.indexes }
    }
}

/// The lock a run holds on a state directory, removed when dropped.
#[derive(Debug)]
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(dir: &Path) -> Result<Lock, StoreError> {
        let path = dir.join("LOCK");
        let holder = format!(
            "pid {} on {} started {}",
            std::process::id(),
            hostname(),
            format_rfc3339(crate::time::now_millis())
        );
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(holder.as_bytes()).and_then(|()| f.sync_all()).map_err(io_at(&path))?;
                Ok(Lock { path })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let held = fs::read_to_string(&path).unwrap_or_default();
                let pid = held.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
                let host = held.split_whitespace().nth(3).unwrap_or_default();
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) || host != hostname();
                let holder = held.trim().to_string();
                if alive {
                    Err(StoreError::Locked { path, holder })
                } else {
                    Err(StoreError::Stale { path, dir: dir.to_path_buf(), holder })
                }
            }
            Err(e) => Err(StoreError::Io { path, error: e }),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Removes a stale lock of `dir` (`changeling state unlock`): refuses when
/// its process still runs.
pub fn unlock(dir: &Path) -> Result<bool, StoreError> {
    match Lock::take(dir) {
        Ok(lock) => {
            drop(lock);
            Ok(false)
        }
        Err(StoreError::Stale { path, .. }) => {
            fs::remove_file(&path).map_err(io_at(&path))?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// One block's entry in a layer's index.
#[derive(Debug)]
struct BlockEntry {
    partition: u32,
    first: String,
    last: String,
    crc32: u32,
    /// A Bloom filter of the block's keys ([`bloom_of`]).
    bloom: [u8; BLOOM_BYTES],
}

/// One layer of a keyed table, opened: its blocks and their index.
#[derive(Debug)]
struct Layer {
    path: PathBuf,
    file: File,
    schema: SchemaRef,
    version: arrow::ipc::MetadataVersion,
    blocks: Vec<Block>,
    index: Vec<BlockEntry>,
    /// Per partition, whether a later layer merged it (empty: none did).
    dead: Vec<bool>,
}

impl Layer {
    /// Whether its blocks of partition `p` are read.
    fn live(&self, p: u32) -> bool {
        !self.dead.get(p as usize).copied().unwrap_or(false)
    }

    /// The bytes of its live blocks in each of `partitions`.
    fn partition_bytes(&self, partitions: u32) -> Vec<u64> {
        let mut bytes = vec![0u64; partitions as usize];
        for (b, e) in self.blocks.iter().zip(&self.index) {
            if self.live(e.partition) {
                bytes[e.partition as usize] += b.metaDataLength() as u64 + b.bodyLength() as u64;
            }
        }
        bytes
    }

    fn open(
        dir: &Path,
        name: &str,
        sums: &BTreeMap<String, FileSum>,
        dead: Option<&Vec<[u32; 2]>>,
        partitions: u32,
    ) -> Result<Layer, StoreError> {
        let path = dir.join(format!("{name}.arrow"));
        let index_path = dir.join(format!("{name}.index.arrow"));
        let index_batches = read_small(&index_path, sums)?;
        let mut index = Vec::new();
        for b in &index_batches {
            let bad = |m: &str| corrupt(&index_path, m.to_string());
            let part = b.column(0).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("partition column"))?;
            let first = b.column(1).as_string_opt::<i32>().ok_or_else(|| bad("first key column"))?;
            let last = b.column(2).as_string_opt::<i32>().ok_or_else(|| bad("last key column"))?;
            let crc = b.column(3).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("crc column"))?;
            let bloom = b
                .column(4)
                .as_fixed_size_binary_opt()
                .filter(|a| a.value_length() as usize == BLOOM_BYTES)
                .ok_or_else(|| bad("bloom column"))?;
            for i in 0..b.num_rows() {
                index.push(BlockEntry {
                    partition: part.value(i),
                    first: first.value(i).to_string(),
                    last: last.value(i).to_string(),
                    crc32: crc.value(i),
                    bloom: bloom.value(i).try_into().expect("checked length"),
                });
            }
        }
        let file = File::open(&path).map_err(io_at(&path))?;
        let (schema, version, blocks) = footer(&path, &file)?;
        if blocks.len() != index.len() {
            return Err(corrupt(&path, format!("{} blocks, its index lists {}", blocks.len(), index.len())));
        }
        if let Some(e) = index.iter().find(|e| e.partition >= partitions) {
            return Err(corrupt(&index_path, format!("partition {} of {partitions}", e.partition)));
        }
        let mut dead_parts = Vec::new();
        if let Some(ranges) = dead {
            dead_parts = vec![false; partitions as usize];
            for &[from, to] in ranges {
                if from >= to || to > partitions {
                    let m = dir.join("manifest.json");
                    return Err(corrupt(&m, format!("{name}: dead partitions [{from}, {to}) of {partitions}")));
                }
                dead_parts[from as usize..to as usize].fill(true);
            }
        }
        Ok(Layer { path, file, schema, version, blocks, index, dead: dead_parts })
    }

    /// Block `k`, its CRC32 checked.
    fn block(&self, k: usize) -> Result<RecordBatch, StoreError> {
        let b = &self.blocks[k];
        let len = b.metaDataLength() as usize + b.bodyLength() as usize;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, b.offset() as u64).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(&self.path, format!("block {k} is cut short"))
            } else {
                StoreError::Io { path: self.path.clone(), error: e }
            }
        })?;
        if crc32fast::hash(&bytes) != self.index[k].crc32 {
            return Err(corrupt(&self.path, format!("block {k}: its bytes do not match their CRC32")));
        }
        let decoder = FileDecoder::new(self.schema.clone(), self.version);
        let buffer = Buffer::from_vec(bytes);
        let decoded = crate::data::parquet::decoding(|| {
            check_claims(&buffer, b.metaDataLength() as usize)
                .map_err(arrow::error::ArrowError::IpcError)
                .and_then(|()| decoder.read_record_batch(b, &buffer))
        })
        .map_err(|m| corrupt(&self.path, format!("block {k}: {m}")))?;
        match decoded {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => Err(corrupt(&self.path, format!("block {k} is empty"))),
            Err(e) => Err(corrupt(&self.path, format!("block {k}: {e}"))),
        }
    }

    /// The block that may hold `(partition, key)` whose hash is `hash`:
    /// the one whose key range covers it, if its Bloom filter does not
    /// rule it out.
    fn block_of(&self, partition: u32, key: &str, hash: u64) -> Option<usize> {
        if !self.live(partition) {
            return None;
        }
        let at = self.index.partition_point(|e| (e.partition, e.last.as_str()) < (partition, key));
        self.index
            .get(at)
            .filter(|e| e.partition == partition && e.first.as_str() <= key && bloom_has(&e.bloom, hash))
            .map(|_| at)
    }

    /// The blocks of partition `p` (none if a later layer merged it).
    fn blocks_of(&self, p: u32) -> std::ops::Range<usize> {
        if !self.live(p) {
            return 0..0;
        }
        self.index.partition_point(|e| e.partition < p)..self.index.partition_point(|e| e.partition <= p)
    }
}

/// The partitions marked in `dead` as ranges `[from, to)`, as the
/// manifest lists them.
fn ranges_of(dead: &[bool]) -> Vec<[u32; 2]> {
    let mut ranges: Vec<[u32; 2]> = Vec::new();
    for (p, _) in dead.iter().enumerate().filter(|(_, d)| **d) {
        match ranges.last_mut() {
            Some(r) if r[1] == p as u32 => r[1] += 1,
            _ => ranges.push([p as u32, p as u32 + 1]),
        }
    }
    ranges
}

/// Bytes of a block's Bloom filter: 16 bits a key at [`BLOCK_ROWS`] keys,
/// four probes, so that about one block in 400 is read for a key it does
/// not hold.
const BLOOM_BYTES: usize = 64;
const BLOOM_PROBES: u64 = 4;

/// A key's 64-bit hash for the Bloom filters: FNV-1a, then SplitMix64's
/// finalizer (docs/state.md).
fn key_hash(key: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The bits of a Bloom filter a hash sets: `h1 + i * h2` for each probe
/// `i`, with `h1` and `h2` the hash's low and high halves (`h2` odd).
fn bloom_bits(hash: u64) -> impl Iterator<Item = usize> {
    let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..BLOOM_PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % (BLOOM_BYTES as u64 * 8)) as usize)
}

fn bloom_of<'a>(keys: impl Iterator<Item = &'a str>) -> [u8; BLOOM_BYTES] {
    let mut bloom = [0u8; BLOOM_BYTES];
    for k in keys {
        for bit in bloom_bits(key_hash(k)) {
            bloom[bit / 8] |= 1 << (bit % 8);
        }
    }
    bloom
}

fn bloom_has(bloom: &[u8; BLOOM_BYTES], hash: u64) -> bool {
    bloom_bits(hash).all(|bit| bloom[bit / 8] & (1 << (bit % 8)) != 0)
}

/// The schema, metadata version and record batch blocks of an Arrow IPC
/// file.
fn footer(path: &Path, file: &File) -> Result<(SchemaRef, arrow::ipc::MetadataVersion, Vec<Block>), StoreError> {
    let size = file.metadata().map_err(io_at(path))?.len();
    if size < 16 {
        return Err(corrupt(path, "too short for an Arrow IPC file"));
    }
    let mut tail = [0u8; 10];
    file.read_exact_at(&mut tail, size - 10).map_err(io_at(path))?;
    let len = read_footer_length(tail).map_err(|e| corrupt(path, e.to_string()))?;
    if len as u64 + 10 > size {
        return Err(corrupt(path, "its footer is longer than the file"));
    }
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, size - 10 - len as u64).map_err(io_at(path))?;
    let parsed = crate::data::parquet::decoding(|| -> Result<_, String> {
        let footer = root_as_footer(&bytes).map_err(|e| e.to_string())?;
        let schema = footer.schema().ok_or("no schema")?;
        let schema = arrow::ipc::convert::try_fb_to_schema(schema).map_err(|e| e.to_string())?;
        let blocks: Vec<Block> = footer.recordBatches().map(|b| b.iter().copied().collect()).unwrap_or_default();
        Ok((Arc::new(schema), footer.version(), blocks))
    })
    .map_err(|m| corrupt(path, m))?;
    let parsed = parsed.map_err(|m| corrupt(path, format!("its footer: {m}")))?;
    // Each block within the file, so that reading it cannot overflow.
    for (k, b) in parsed.2.iter().enumerate() {
        let end = u64::try_from(b.offset()).ok().and_then(|at| {
            let meta = u64::try_from(b.metaDataLength()).ok()?;
            at.checked_add(meta)?.checked_add(u64::try_from(b.bodyLength()).ok()?)
        });
        if end.is_none_or(|end| end > size) {
            return Err(corrupt(path, format!("its footer places block {k} outside the file")));
        }
    }
    Ok(parsed)
}

/// The most a compressed Arrow buffer may claim to expand to: 2^16 times
/// its compressed bytes (zstd's runs reach a few thousand times; not
/// measured beyond that), and 4 GiB at most. The Arrow reader reserves
/// what a buffer claims before it decompresses, and a claim the system
/// cannot reserve aborts the process, which no `catch_unwind` stops.
const MAX_INFLATE: u64 = 1 << 16;
const MAX_BUFFER: u64 = 1 << 32;

/// Checks that no compressed buffer of the IPC message `block` (its
/// metadata, `meta` bytes, then its body) claims more bytes uncompressed
/// than [`MAX_INFLATE`] and [`MAX_BUFFER`] allow: the uncompressed length
/// is the first eight bytes of each buffer, read by Arrow as written.
fn check_claims(block: &[u8], meta: usize) -> Result<(), String> {
    let Some(head) = block.get(..meta) else { return Err("a block longer than the file".into()) };
    let start = if head.get(..4) == Some(&[0xff; 4]) { 8 } else { 4 };
    let message = arrow::ipc::root_as_message(head.get(start..).unwrap_or_default()).map_err(|e| e.to_string())?;
    let batch = match message.header_as_record_batch() {
        Some(b) => b,
        None => match message.header_as_dictionary_batch().and_then(|d| d.data()) {
            Some(b) => b,
            None => return Ok(()),
        },
    };
    if batch.compression().is_none() {
        return Ok(());
    }
    let body = &block[meta..];
    for buf in batch.buffers().iter().flatten() {
        let (Ok(at), Ok(len)) = (usize::try_from(buf.offset()), usize::try_from(buf.length())) else {
            return Err("a buffer of negative offset or length".into());
        };
        let Some(bytes) = body.get(at..at.saturating_add(len)) else { continue };
        let Some(claim) = bytes.get(..8) else { continue };
        let claim = i64::from_le_bytes(claim.try_into().expect("eight bytes"));
        if claim > 0 && (claim as u64 > MAX_BUFFER || claim as u64 > (len as u64).saturating_mul(MAX_INFLATE)) {
            return Err(format!("a compressed buffer of {len} bytes claims {claim} bytes uncompressed"));
        }
    }
    Ok(())
}

/// [`check_claims`] for every block of the IPC file `bytes`.
fn check_file_claims(bytes: &[u8]) -> Result<(), String> {
    let Some(tail) = bytes.len().checked_sub(10).and_then(|at| bytes.get(at..)) else { return Ok(()) };
    let len = read_footer_length(tail.try_into().expect("ten bytes")).map_err(|e| e.to_string())?;
    let Some(footer) = bytes.len().checked_sub(10 + len).map(|at| &bytes[at..bytes.len() - 10]) else {
        return Ok(());
    };
    let footer = root_as_footer(footer).map_err(|e| e.to_string())?;
    let blocks = footer.recordBatches().into_iter().flatten().chain(footer.dictionaries().into_iter().flatten());
    for b in blocks {
        let (Ok(at), Ok(meta), Ok(body)) =
            (usize::try_from(b.offset()), usize::try_from(b.metaDataLength()), usize::try_from(b.bodyLength()))
        else {
            return Err("a block of negative offset or length".into());
        };
        // A block past the end is refused here: the reader would allocate
        // its claimed size before finding the bytes missing.
        let Some(block) = bytes.get(at..at.saturating_add(meta).saturating_add(body)) else {
            return Err(format!("a block of {} bytes at {at} lies outside the file", meta.saturating_add(body)));
        };
        check_claims(block, meta)?;
    }
    Ok(())
}

/// Reads a small file of the generation whole, its size and CRC32 checked
/// against the manifest.
fn read_small(path: &Path, sums: &BTreeMap<String, FileSum>) -> Result<Vec<RecordBatch>, StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let sum = sums.get(name).ok_or_else(|| corrupt(path, "not listed in the manifest"))?;
    let bytes = fs::read(path).map_err(io_at(path))?;
    if bytes.len() as u64 != sum.bytes {
        return Err(corrupt(path, format!("{} bytes, the manifest says {}", bytes.len(), sum.bytes)));
    }
    if crc32fast::hash(&bytes) != sum.crc32 {
        return Err(corrupt(path, "its bytes do not match the manifest's CRC32"));
    }
    let read = crate::data::parquet::decoding(|| -> Result<Vec<RecordBatch>, String> {
        check_file_claims(&bytes)?;
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
        reader.map(|b| b.map_err(|e| e.to_string())).collect()
    })
    .map_err(|m| corrupt(path, m))?;
    read.map_err(|m| corrupt(path, m))
}

/// Compression of the keyed tables' layers: none, as an account's state
/// is compressed by itself ([`super::codec`]), so that a run decompresses
/// only the accounts it asks for, each on the thread that resumes it (the
/// layers' buffers compressed, zstd's or LZ4's set-up per buffer cost more
/// than the reading of a block).
const LAYER_COMPRESSION: Option<CompressionType> = None;

/// A writer that sums each run of bytes a `write` call gives it, so that
/// the blocks of an Arrow IPC file are summed as they are written instead
/// of read back.
struct Summing<W> {
    inner: W,
    runs: Runs,
}

/// The runs of bytes written: per run, its offset, length and CRC32 state.
#[derive(Default)]
struct Runs(Vec<(u64, u64, crc32fast::Hasher)>);

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&buf[..n]);
        let at = self.runs.0.last().map_or(0, |r| r.0 + r.1);
        self.runs.0.push((at, n as u64, h));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Runs {
    /// The CRC32 of bytes `[from, from + len)`, if they are whole runs.
    fn crc32(&self, from: u64, len: u64) -> Option<u32> {
        let first = self.0.partition_point(|r| r.0 < from);
        let mut h = crc32fast::Hasher::new();
        let mut at = from;
        for (offset, n, run) in &self.0[first..] {
            if at == from + len {
                break;
            }
            if *offset != at || at + n > from + len {
                return None;
            }
            h.combine(run);
            at += n;
        }
        (at == from + len).then(|| h.finalize())
    }
}

/// An Arrow IPC file being written.
type IpcFile = FileWriter<Summing<io::BufWriter<File>>>;

/// An Arrow IPC file writer of `schema` on `file`, buffers compressed with
/// `compression`.
fn ipc_writer(
    path: &Path,
    file: File,
    schema: &SchemaRef,
    compression: Option<CompressionType>,
) -> Result<IpcFile, StoreError> {
    let options =
        IpcWriteOptions::default().try_with_compression(compression).map_err(|e| corrupt(path, e.to_string()))?;
    let sink = Summing { inner: io::BufWriter::new(file), runs: Runs::default() };
    FileWriter::try_new_with_options(sink, schema, options)
        .map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })
}

/// Ends an Arrow IPC file: its footer written, the file synced; returns
/// its blocks' CRC32s, in order ([`block_sums`]).
fn finish_arrow(path: &Path, w: IpcFile) -> Result<Vec<u32>, StoreError> {
    let runs = finish_ipc(path, w)?;
    Ok(block_sums(path, &runs)?.into_iter().map(|(crc, _)| crc).collect())
}

/// Ends an Arrow IPC file: its footer written, the file synced; returns
/// the runs its bytes were written in.
fn finish_ipc(path: &Path, mut w: IpcFile) -> Result<Runs, StoreError> {
    let io_error =
        |e: arrow::error::ArrowError| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) };
    w.finish().map_err(io_error)?;
    let Summing { inner, runs } = w.into_inner().map_err(io_error)?;
    let file = inner.into_inner().map_err(|e| StoreError::Io { path: path.to_path_buf(), error: e.into_error() })?;
    file.sync_all().map_err(io_at(path))?;
    Ok(runs)
}

/// The CRC32 of each block of the IPC file at `path`, as its footer places
/// them, from the `runs` it was written in; with whether it was summed
/// from them (a block not written as whole runs is read back).
fn block_sums(path: &Path, runs: &Runs) -> Result<Vec<(u32, bool)>, StoreError> {
    let file = File::open(path).map_err(io_at(path))?;
    let (_, _, blocks) = footer(path, &file)?;
    let mut bytes = Vec::new();
    blocks
        .iter()
        .map(|b| {
            let len = b.metaDataLength() as u64 + b.bodyLength() as u64;
            if let Some(crc) = runs.crc32(b.offset() as u64, len) {
                return Ok((crc, true));
            }
            bytes.resize(len as usize, 0);
            file.read_exact_at(&mut bytes, b.offset() as u64).map_err(io_at(path))?;
            Ok((crc32fast::hash(&bytes), false))
        })
        .collect()
}

/// Writes `batches` as an Arrow IPC file at `path` (zstd-compressed
/// buffers), synced; returns its blocks' CRC32s, in order.
fn write_arrow(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u32>, StoreError> {
    let file = File::create(path).map_err(io_at(path))?;
    let mut w = ipc_writer(path, file, schema, Some(CompressionType::ZSTD))?;
    for b in batches {
        w.write(b).map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })?;
    }
    finish_arrow(path, w)
}

/// The size and CRC32 of a file just written.
fn sum_of(path: &Path) -> Result<FileSum, StoreError> {
    let bytes = fs::read(path).map_err(io_at(path))?;
    Ok(FileSum { bytes: bytes.len() as u64, crc32: crc32fast::hash(&bytes) })
}

/// A keyed table's schema: the key, its partition, and the table's values.
fn keyed_schema(kind: Keyed) -> SchemaRef {
    let mut fields = vec![Field::new("key", DataType::Utf8, false), Field::new("partition", DataType::UInt32, false)];
    match kind {
        Keyed::Accounts => fields.extend([
            Field::new("due", DataType::Int64, true),
            Field::new("acted", DataType::Boolean, false),
            Field::new("open", DataType::Boolean, false),
            // Null: the account is gone from the state.
            Field::new("state", DataType::Binary, true),
        ]),
        Keyed::Items | Keyed::Profiles => {
            fields.extend([Field::new("seen", DataType::Int64, false), Field::new("row", DataType::Utf8, true)])
        }
    }
    Arc::new(Schema::new(fields))
}

/// The keyed tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keyed {
    Accounts,
    Items,
    Profiles,
}

impl Keyed {
    fn name(self) -> &'static str {
        match self {
            Keyed::Accounts => "accounts",
            Keyed::Items => "items",
            Keyed::Profiles => "profiles",
        }
    }
}

/// A value of a keyed table (`None` deletes the key).
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Account(Option<Account>),
    Kept(Option<Kept>),
}

/// A row of a keyed table to write: its partition, key and value.
type Row = (u32, String, Value);

/// A run's new rows of a keyed table, sorted by (partition, key) and cut
/// into blocks of at most [`BLOCK_ROWS`] rows within one partition. Each
/// block is made a record batch only when it is written, a few partitions
/// at a time, and its rows are freed then: the rows and their batches are
/// never all in memory at once.
struct NewRows {
    kind: Keyed,
    schema: SchemaRef,
    rows: Vec<Row>,
    /// Per block: its partition and its rows.
    blocks: Vec<(u32, std::ops::Range<usize>)>,
}

impl NewRows {
    fn new(kind: Keyed, rows: Vec<(String, Value)>, partitions: u32) -> NewRows {
        let mut rows: Vec<Row> = rows.into_par_iter().map(|(k, v)| (partition_of(&k, partitions), k, v)).collect();
        // Keys are unique: an unstable sort gives the one order.
        rows.par_sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut blocks = Vec::new();
        let mut at = 0;
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            for chunk in group.chunks(BLOCK_ROWS) {
                blocks.push((chunk[0].0, at..at + chunk.len()));
                at += chunk.len();
            }
        }
        NewRows { kind, schema: keyed_schema(kind), rows, blocks }
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The blocks of partition `p`, as record batches.
    fn batches_of(&self, p: u32) -> impl Iterator<Item = RecordBatch> + '_ {
        let lo = self.blocks.partition_point(|(q, _)| *q < p);
        let hi = self.blocks.partition_point(|(q, _)| *q <= p);
        self.blocks[lo..hi].iter().map(|(_, r)| block_batch(self.kind, &self.schema, &self.rows[r.clone()]))
    }

    /// Frees the rows of partitions `from..to`, written.
    fn release(&mut self, from: u32, to: u32) {
        let lo = self.rows.partition_point(|r| r.0 < from);
        let hi = self.rows.partition_point(|r| r.0 < to);
        for r in &mut self.rows[lo..hi] {
            r.1 = String::new();
            r.2 = Value::Kept(None);
        }
    }
}

/// One block of rows as a record batch of `schema`.
fn block_batch(kind: Keyed, schema: &SchemaRef, block: &[Row]) -> RecordBatch {
    let mut key = StringBuilder::new();
    let part: UInt32Array = block.iter().map(|r| r.0).collect();
    for r in block {
        key.append_value(&r.1);
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(key.finish()), Arc::new(part)];
    match kind {
        Keyed::Accounts => {
            fn a(r: &Row) -> Option<&Account> {
                match &r.2 {
                    Value::Account(a) => a.as_ref(),
                    Value::Kept(_) => unreachable!("an accounts layer holds accounts"),
                }
            }
            let due: Int64Array = block.iter().map(|r| a(r).and_then(|a| a.due)).collect();
            let acted: BooleanArray = block.iter().map(|r| Some(a(r).is_some_and(|a| a.acted))).collect();
            let open: BooleanArray = block.iter().map(|r| Some(a(r).is_some_and(|a| a.open))).collect();
            let mut state = BinaryBuilder::new();
            for r in block {
                match a(r) {
                    Some(a) => state.append_value(&a.payload),
                    None => state.append_null(),
                }
            }
            columns.extend([Arc::new(due) as ArrayRef, Arc::new(acted), Arc::new(open), Arc::new(state.finish())]);
        }
        Keyed::Items | Keyed::Profiles => {
            fn k(r: &Row) -> Option<&Kept> {
                match &r.2 {
                    Value::Kept(k) => k.as_ref(),
                    Value::Account(_) => unreachable!("an items layer holds rows"),
                }
            }
            let seen: Int64Array = block.iter().map(|r| Some(k(r).map_or(0, |k| k.seen))).collect();
            let mut row = StringBuilder::new();
            for r in block {
                row.append_option(k(r).map(|k| k.json.as_str()));
            }
            columns.extend([Arc::new(seen) as ArrayRef, Arc::new(row.finish())]);
        }
    }
    RecordBatch::try_new(schema.clone(), columns).expect("columns of the schema")
}

/// A block's columns, their types checked.
struct Columns<'a> {
    key: &'a StringArray,
    /// Accounts: due, acted, open, state.
    due: Option<&'a Int64Array>,
    acted: Option<&'a BooleanArray>,
    open: Option<&'a BooleanArray>,
    state: Option<&'a BinaryArray>,
    /// Items and profiles: seen, row.
    seen: Option<&'a Int64Array>,
    row: Option<&'a StringArray>,
}

impl<'a> Columns<'a> {
    fn of(path: &Path, kind: Keyed, b: &'a RecordBatch) -> Result<Columns<'a>, StoreError> {
        let bad = |m: &str| corrupt(path, format!("a block's {m} column is not as written"));
        let key = b.column_by_name("key").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad("key"))?;
        let mut c = Columns { key, due: None, acted: None, open: None, state: None, seen: None, row: None };
        match kind {
            Keyed::Accounts => {
                c.due = Some(
                    b.column_by_name("due")
                        .and_then(|c| c.as_primitive_opt::<Int64Type>())
                        .ok_or_else(|| bad("due"))?,
                );
                c.acted = Some(b.column_by_name("acted").and_then(|c| c.as_boolean_opt()).ok_or_else(|| bad("acted"))?);
                c.open = Some(b.column_by_name("open").and_then(|c| c.as_boolean_opt()).ok_or_else(|| bad("open"))?);
                c.state =
                    Some(b.column_by_name("state").and_then(|c| c.as_binary_opt::<i32>()).ok_or_else(|| bad("state"))?);
            }
            Keyed::Items | Keyed::Profiles => {
                c.seen = Some(
                    b.column_by_name("seen")
                        .and_then(|c| c.as_primitive_opt::<Int64Type>())
                        .ok_or_else(|| bad("seen"))?,
                );
                c.row = Some(b.column_by_name("row").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad("row"))?);
            }
        }
        Ok(c)
    }

    /// The row holding `key`, by binary search (a block's keys are sorted).
    fn find(&self, key: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.key.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key.value(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The value of row `i`.
    fn value(&self, i: usize) -> Value {
        match (self.state, self.row) {
            (Some(state), _) => {
                let (due, acted, open) = (self.due.expect("accounts"), self.acted.expect("a"), self.open.expect("a"));
                Value::Account(state.is_valid(i).then(|| Account {
                    due: due.is_valid(i).then(|| due.value(i)),
                    acted: acted.value(i),
                    open: open.value(i),
                    payload: state.value(i).to_vec(),
                }))
            }
            (None, Some(row)) => {
                let seen = self.seen.expect("rows");
                Value::Kept(row.is_valid(i).then(|| Kept { seen: seen.value(i), json: row.value(i).to_string() }))
            }
            (None, None) => unreachable!("checked in Columns::of"),
        }
    }

    /// Whether row `i` is kept by a compaction: a present account, or a
    /// row seen since `since`.
    fn live(&self, i: usize, since: Millis) -> bool {
        match (self.state, self.row) {
            (Some(state), _) => state.is_valid(i),
            (_, Some(row)) => row.is_valid(i) && self.seen.expect("rows").value(i) >= since,
            (None, None) => false,
        }
    }
}

/// Writes a layer of a keyed table block by block, then its index.
struct LayerWriter {
    path: PathBuf,
    index_path: PathBuf,
    name: String,
    writer: IpcFile,
    /// Per block: partition, first and last key, Bloom filter.
    index: Vec<(u32, String, String, [u8; BLOOM_BYTES])>,
}

impl LayerWriter {
    fn create(dir: &Path, name: &str, kind: Keyed) -> Result<LayerWriter, StoreError> {
        let path = dir.join(format!("{name}.arrow"));
        let file = File::create(&path).map_err(io_at(&path))?;
        let writer = ipc_writer(&path, file, &keyed_schema(kind), LAYER_COMPRESSION)?;
        Ok(LayerWriter {
            index_path: dir.join(format!("{name}.index.arrow")),
            name: name.to_string(),
            path,
            writer,
            index: Vec::new(),
        })
    }

    /// Appends a block of partition `p` (rows sorted by key).
    fn push(&mut self, p: u32, block: &RecordBatch) -> Result<(), StoreError> {
        let key = block.column(0).as_string::<i32>();
        let n = key.len();
        self.index.push((p, key.value(0).to_string(), key.value(n - 1).to_string(), bloom_of(key.iter().flatten())));
        self.writer.write(block).map_err(|e| StoreError::Io { path: self.path.clone(), error: io::Error::other(e) })
    }

    /// Ends the layer: its file synced, its blocks' CRC32s in its index,
    /// the index written and summed in `sums`.
    fn finish(self, sums: &mut BTreeMap<String, FileSum>) -> Result<(), StoreError> {
        let crcs = finish_arrow(&self.path, self.writer)?;
        let index_schema = Arc::new(Schema::new(vec![
            Field::new("partition", DataType::UInt32, false),
            Field::new("first", DataType::Utf8, false),
            Field::new("last", DataType::Utf8, false),
            Field::new("crc32", DataType::UInt32, false),
            Field::new("bloom", DataType::FixedSizeBinary(BLOOM_BYTES as i32), false),
        ]));
        let bloom = FixedSizeBinaryArray::try_from_iter(self.index.iter().map(|i| i.3))
            .map_err(|e| corrupt(&self.index_path, e.to_string()))?;
        let index_batch = RecordBatch::try_new(
            index_schema.clone(),
            vec![
                Arc::new(self.index.iter().map(|i| i.0).collect::<UInt32Array>()),
                Arc::new(self.index.iter().map(|i| Some(i.1.as_str())).collect::<StringArray>()),
                Arc::new(self.index.iter().map(|i| Some(i.2.as_str())).collect::<StringArray>()),
                Arc::new(crcs.into_iter().collect::<UInt32Array>()),
                Arc::new(bloom),
            ],
        )
        .map_err(|e| corrupt(&self.index_path, e.to_string()))?;
        write_arrow(&self.index_path, &index_schema, &[index_batch])?;
        sums.insert(format!("{}.index.arrow", self.name), sum_of(&self.index_path)?);
        Ok(())
    }
}

/// Partitions merged at a time, in parallel: a merge's memory is about
/// this many partitions' share of the table.
const MERGE_PARTITIONS: u32 = 8;

/// What writing a run's layer did.
struct Written {
    /// Rows written.
    rows: u64,
    /// Rows of the merged partitions (the older layers' and the new ones)
    /// left out: old versions, deleted accounts, rows out of reach.
    removed: u64,
}

/// Writes a run's layer of a keyed table: the `new` blocks
/// ([`NewRows`]) and, in each partition `merge` marks, the rows of
/// every layer that holds it live too: each key's newest value, deleted
/// accounts and rows not seen since `since` left out (those partitions of
/// the older layers are then dead). Streams partition by partition.
#[allow(clippy::too_many_arguments)]
fn write_run_layer(
    dir: &Path,
    name: &str,
    kind: Keyed,
    partitions: u32,
    layers: &[Layer],
    new: &mut NewRows,
    merge: &[bool],
    since: Millis,
    sums: &mut BTreeMap<String, FileSum>,
) -> Result<Written, StoreError> {
    let path = dir.join(format!("{name}.arrow"));
    let mut w = LayerWriter::create(dir, name, kind)?;
    let mut out = Written { rows: 0, removed: 0 };
    let parts: Vec<u32> = (0..partitions).collect();
    for group in parts.chunks(MERGE_PARTITIONS as usize) {
        let blocks: Vec<Result<(Vec<RecordBatch>, u64), StoreError>> = group
            .par_iter()
            .map(|&p| {
                let new = new.batches_of(p);
                if !merge[p as usize] {
                    return Ok((new.collect(), 0));
                }
                // The partition's blocks, oldest layer first, the new rows last.
                let mut sources: Vec<(&Path, RecordBatch)> = Vec::new();
                for layer in layers {
                    for k in layer.blocks_of(p) {
                        sources.push((&layer.path, layer.block(k)?));
                    }
                }
                sources.extend(new.map(|b| (path.as_path(), b)));
                let cols: Vec<Columns<'_>> =
                    sources.iter().map(|(path, b)| Columns::of(path, kind, b)).collect::<Result<_, _>>()?;
                // Every (source, row), by key and newest first; the first of
                // each key kept if live.
                let mut at: Vec<(usize, usize)> =
                    cols.iter().enumerate().flat_map(|(s, c)| (0..c.key.len()).map(move |i| (s, i))).collect();
                let read = at.len() as u64;
                at.sort_by(|a, b| cols[a.0].key.value(a.1).cmp(cols[b.0].key.value(b.1)).then(b.0.cmp(&a.0)));
                at.dedup_by(|b, a| cols[a.0].key.value(a.1) == cols[b.0].key.value(b.1));
                at.retain(|&(s, i)| cols[s].live(i, since));
                let removed = read - at.len() as u64;
                let batches: Vec<&RecordBatch> = sources.iter().map(|(_, b)| b).collect();
                let merged = at
                    .chunks(BLOCK_ROWS)
                    .map(|chunk| {
                        arrow::compute::interleave_record_batch(&batches, chunk)
                            .map_err(|e| corrupt(&path, e.to_string()))
                    })
                    .collect::<Result<_, _>>()?;
                Ok((merged, removed))
            })
            .collect();
        for (&p, written) in group.iter().zip(blocks) {
            let (blocks, removed) = written?;
            out.removed += removed;
            for b in blocks {
                out.rows += b.num_rows() as u64;
                w.push(p, &b)?;
            }
        }
        new.release(group[0], group[group.len() - 1] + 1);
    }
    w.finish(sums)?;
    Ok(out)
}

/// The partitions a run merges, given the table's live `layers` and the
/// run's `new` blocks: those held by more than [`MAX_LAYERS`] layers, or
/// whose rows above their oldest layer (the new ones included) outweigh
/// it, most layers and then most outweighed first, as many as
/// [`MERGE_BUDGET`] times the run's bytes pay for (at least one).
/// Deterministic: it depends on the layers' bytes only.
fn partitions_to_merge(layers: &[Layer], new: &NewRows, rows: u64, partitions: u32) -> Vec<bool> {
    let n = partitions as usize;
    let mut merge = vec![false; n];
    if layers.is_empty() || new.is_empty() {
        return merge;
    }
    // Per partition: layers holding it, bytes of the oldest, bytes above.
    let (mut count, mut base, mut upper) = (vec![0usize; n], vec![0u64; n], vec![0u64; n]);
    let mut oldest = vec![0usize; n];
    for (l, layer) in layers.iter().enumerate() {
        for (p, b) in layer.partition_bytes(partitions).into_iter().enumerate().filter(|(_, b)| *b > 0) {
            if count[p] == 0 {
                base[p] = b;
                oldest[p] = l;
            } else {
                upper[p] += b;
            }
            count[p] += 1;
        }
    }
    // The new rows' bytes, at the table's bytes a row.
    let total: u64 = base.iter().chain(&upper).sum();
    let mut new_rows = vec![0u64; n];
    for (p, r) in &new.blocks {
        new_rows[*p as usize] += r.len() as u64;
    }
    let per_row = total as f64 / rows.max(1) as f64;
    let added: Vec<u64> = new_rows.iter().map(|&r| (r as f64 * per_row) as u64).collect();
    let mut needy: Vec<usize> =
        (0..n).filter(|&p| count[p] > 0 && (count[p] + 1 > MAX_LAYERS || upper[p] + added[p] > base[p])).collect();
    // Most layers first, then those whose oldest layer is oldest (so that
    // old layers are soon merged away whole, their files removed), then
    // the most outweighed (above / oldest, compared exactly), then by
    // partition.
    needy.sort_by(|&a, &b| {
        let (wa, wb) = (upper[a] as u128 + added[a] as u128, upper[b] as u128 + added[b] as u128);
        (count[b].min(MAX_LAYERS + 1).cmp(&count[a].min(MAX_LAYERS + 1)))
            .then(oldest[a].cmp(&oldest[b]))
            .then((wb * base[a].max(1) as u128).cmp(&(wa * base[b].max(1) as u128)))
            .then(a.cmp(&b))
    });
    let budget = MERGE_BUDGET.saturating_mul(added.iter().sum());
    let mut spent = 0u64;
    for p in needy {
        let cost = base[p] + upper[p];
        if spent == 0 || spent + cost <= budget {
            merge[p] = true;
            spent += cost;
        }
    }
    merge
}

/// Reads the value of each of `keys` (any order) from `layers` (newest
/// wins); absent keys are left out. Each layer is asked only for the keys
/// not found in a newer one, and of each block only the rows asked for are
/// decoded; blocks are read in parallel.
fn lookup(
    layers: &[Layer],
    kind: Keyed,
    keys: &BTreeSet<String>,
    partitions: u32,
) -> Result<BTreeMap<String, Value>, StoreError> {
    let mut pending: Vec<(u32, &str, u64)> =
        keys.iter().map(|k| (partition_of(k, partitions), k.as_str(), key_hash(k))).collect();
    pending.sort_unstable();
    let mut found: Vec<(&str, Value)> = Vec::new();
    for layer in layers.iter().rev() {
        if pending.is_empty() {
            break;
        }
        // The blocks to read, and the keys asked of each (blocks come in
        // order, as the keys are sorted as the blocks).
        let mut wanted: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, (p, k, h)) in pending.iter().enumerate() {
            if let Some(b) = layer.block_of(*p, k, *h) {
                match wanted.last_mut() {
                    Some((last, ks)) if *last == b => ks.push(i),
                    _ => wanted.push((b, vec![i])),
                }
            }
        }
        let read: Vec<Result<Vec<(usize, Value)>, StoreError>> = wanted
            .par_iter()
            .map(|(b, ks)| {
                let batch = layer.block(*b)?;
                let cols = Columns::of(&layer.path, kind, &batch)?;
                Ok(ks.iter().filter_map(|&i| cols.find(pending[i].1).map(|r| (i, cols.value(r)))).collect())
            })
            .collect();
        let mut hit = vec![false; pending.len()];
        for r in read {
            for (i, value) in r? {
                hit[i] = true;
                found.push((pending[i].1, value));
            }
        }
        let mut i = 0;
        pending.retain(|_| {
            i += 1;
            !hit[i - 1]
        });
    }
    // Each key found once: sorted, the map is built in bulk.
    found.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
    Ok(found.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A state directory opened for a run: its current generation (or none,
/// for a new state), locked.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    manifest: Option<Manifest>,
    accounts: Vec<Layer>,
    items: Vec<Layer>,
    profiles: Vec<Layer>,
    _lock: Lock,
}

/// What a run read of a state: everything but the keyed tables' rows,
/// which it asks for by key ([`Store::accounts`], ...).
#[derive(Debug)]
pub struct Opened {
    /// The state without its keyed rows.
    pub state: State,
    /// Accounts with something due (due time) or incidents open, by id.
    pub timers: BTreeMap<String, (Option<Millis>, bool)>,
}

impl Store {
    /// Opens (and locks) the state in `dir`; a directory that does not
    /// exist, or has no generation yet, is a new, empty state.
    pub fn open(dir: &Path) -> Result<(Store, Opened), StoreError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock = Lock::take(dir)?;
        let current = dir.join("CURRENT");
        let name = match fs::read_to_string(&current) {
            Ok(n) => Some(n.trim().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::Io { path: current, error: e }),
        };
        // Generations a killed run left half-written.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with("gen-") && Some(&n) != name.as_ref() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let Some(name) = name else {
            let store = Store {
                dir: dir.to_path_buf(),
                manifest: None,
                accounts: vec![],
                items: vec![],
                profiles: vec![],
                _lock: lock,
            };
            return Ok((store, Opened { state: State::default(), timers: BTreeMap::new() }));
        };
        let gen_dir = dir.join(&name);
        let mpath = gen_dir.join("manifest.json");
        let text = fs::read_to_string(&mpath).map_err(io_at(&mpath))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| corrupt(&mpath, e.to_string()))?;
        if m.format != FORMAT {
            return Err(corrupt(&mpath, format!("format {:?}, not {FORMAT:?}", m.format)));
        }
        if !(OLDEST_VERSION..=VERSION).contains(&m.version) {
            return Err(corrupt(
                &mpath,
                format!("version {} (this build reads {OLDEST_VERSION} to {VERSION})", m.version),
            ));
        }
        if m.partitions == 0 {
            return Err(corrupt(&mpath, "no partitions"));
        }
        let open = |l: &Layers| -> Result<Vec<Layer>, StoreError> {
            if let Some(n) = l.dead.keys().find(|n| !l.layers.contains(n)) {
                return Err(corrupt(&mpath, format!("dead partitions of {n}, not one of its layers")));
            }
            l.layers.iter().map(|n| Layer::open(&gen_dir, n, &m.files, l.dead.get(n), m.partitions)).collect()
        };
        let (accounts, items, profiles) = (open(&m.accounts)?, open(&m.items)?, open(&m.profiles)?);
        let mut state = State {
            watermark: m
                .watermark
                .as_deref()
                .map(|t| parse_timestamp(t).ok_or_else(|| corrupt(&mpath, "watermark")))
                .transpose()?,
            keys: m.keys.clone().into(),
            tables: m.tables.iter().filter_map(|t| TableKind::ALL.into_iter().find(|k| k.name() == t)).collect(),
            ..State::default()
        };
        state.facts = read_facts(&gen_dir.join("facts.arrow"), &m.files, state.keys.facts.len())?;
        state.indexes = read_indexes(&gen_dir.join("indexes.arrow"), &m.files, state.keys.indexes.len())?;
        state.impressions = read_impressions(&gen_dir.join("impressions.arrow"), &m.files)?;
        let timers = read_timers(&gen_dir.join("timers.arrow"), &m.files)?;
        let store = Store { dir: dir.to_path_buf(), manifest: Some(m), accounts, items, profiles, _lock: lock };
        Ok((store, Opened { state, timers }))
    }

    /// The entries of `ids`, for those the state has.
    pub fn accounts(&self, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Account>, StoreError> {
        let n = self.manifest.as_ref().map_or(1, |m| m.partitions);
        Ok(lookup(&self.accounts, Keyed::Accounts, ids, n)?
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Account(a) => a.map(|a| (k, a)),
                Value::Kept(_) => None,
            })
            .collect())
    }

    /// The items (or, with `profiles`, accounts metadata) rows of `ids`.
    pub fn kept(&self, profiles: bool, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Kept>, StoreError> {
        let n = self.manifest.as_ref().map_or(1, |m| m.partitions);
        let (layers, kind) = if profiles { (&self.profiles, Keyed::Profiles) } else { (&self.items, Keyed::Items) };
        Ok(lookup(layers, kind, ids, n)?
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Kept(x) => x.map(|x| (k, x)),
                Value::Account(_) => None,
            })
            .collect())
    }
}

impl Source for (Store, Opened) {
    fn head(&self) -> &State {
        &self.1.state
    }

    fn timers(&self) -> Vec<(String, Option<Millis>, bool)> {
        self.1.timers.iter().map(|(k, &(due, open))| (k.clone(), due, open)).collect()
    }

    fn accounts(&self, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Account>, StoreError> {
        self.0.accounts(ids)
    }

    fn kept(&self, profiles: bool, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Kept>, StoreError> {
        self.0.kept(profiles, ids)
    }
}

/// Partitions of a new state: one per Spark task a batch job is likely to
/// run, with blocks small enough that one is a cheap read.
pub const PARTITIONS: u32 = 64;

/// What committing a run wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// The new generation.
    pub generation: u64,
    /// Bytes of its files.
    pub bytes: u64,
    /// Accounts it holds (approximate between compactions).
    pub accounts: u64,
    /// Whether a keyed table was merged into one layer.
    pub compacted: bool,
}

impl Store {
    /// Writes the state `opened` holds with `update` applied as a new
    /// generation, and makes it current; then removes the previous one.
    pub fn commit(self, opened: Opened, update: Update, keys: &Keys) -> Result<Committed, StoreError> {
        self.write(opened, update, keys, false)
    }

    /// Writes `update` as the whole of a new generation, nothing of the
    /// previous one kept (`changeling state rebuild`), and makes it
    /// current.
    pub fn replace(self, update: Update, keys: &Keys) -> Result<Committed, StoreError> {
        let opened = Opened { state: State::default(), timers: BTreeMap::new() };
        self.write(opened, update, keys, true)
    }

    fn write(mut self, opened: Opened, update: Update, keys: &Keys, replace: bool) -> Result<Committed, StoreError> {
        let generation = self.manifest.as_ref().map_or(1, |m| m.generation + 1);
        if replace {
            if let Some(m) = &mut self.manifest {
                m.accounts = Layers::default();
                m.items = Layers::default();
                m.profiles = Layers::default();
            }
            (self.accounts, self.items, self.profiles) = (Vec::new(), Vec::new(), Vec::new());
        }
        let partitions = self.manifest.as_ref().map_or(PARTITIONS, |m| m.partitions);
        let name = format!("gen-{generation:06}");
        let gen_dir = self.dir.join(&name);
        if gen_dir.exists() {
            fs::remove_dir_all(&gen_dir).map_err(io_at(&gen_dir))?;
        }
        fs::create_dir(&gen_dir).map_err(io_at(&gen_dir))?;
        let old_dir = self.manifest.as_ref().map(|m| self.dir.join(format!("gen-{:06}", m.generation)));
        let mut files: BTreeMap<String, FileSum> = BTreeMap::new();
        let mut compacted = false;

        // Keyed tables: the old layers linked, a new layer of the rows the
        // run changed; merged into one when they grow many.
        let since = update.since;
        let accounts_added = update.accounts_added;
        let accounts: Vec<(String, Value)> = update.accounts.into_iter().map(|(k, a)| (k, Value::Account(a))).collect();
        let items: Vec<(String, Value)> = update.items.into_iter().map(|(k, v)| (k, Value::Kept(Some(v)))).collect();
        let profiles: Vec<(String, Value)> =
            update.profiles.into_iter().map(|(k, v)| (k, Value::Kept(Some(v)))).collect();
        // Timers: the old ones, those of the accounts resumed replaced.
        let mut timers = opened.timers;
        for (k, v) in &accounts {
            timers.remove(k);
            if let Value::Account(Some(a)) = v
                && (a.due.is_some() || a.open)
            {
                timers.insert(k.clone(), (a.due, a.open));
            }
        }
        let old = self.manifest.clone();
        // One keyed table's layers and the sums of the files it wrote: the
        // run's layer, with the partitions it merges, and the older layers
        // still live in some partition, linked.
        let table = |kind: Keyed, rows: Vec<(String, Value)>, layers: &[Layer], was: Option<&Layers>| {
            let mut files = BTreeMap::new();
            let was = was.cloned().unwrap_or_default();
            let new_rows = rows.len() as u64;
            let mut new = NewRows::new(kind, rows, partitions);
            let merge = partitions_to_merge(layers, &new, was.rows, partitions);
            let merged = merge.iter().any(|&m| m);
            let mut out = Layers::default();
            for (layer, name) in layers.iter().zip(&was.layers) {
                let dead: Vec<bool> =
                    (0..partitions).map(|p| merge[p as usize] || layer.blocks_of(p).is_empty()).collect();
                if dead.iter().all(|&d| d) {
                    continue;
                }
                for file in [format!("{name}.arrow"), format!("{name}.index.arrow")] {
                    let from = old_dir.as_ref().expect("layers come from a generation").join(&file);
                    let to = gen_dir.join(&file);
                    if fs::hard_link(&from, &to).is_err() {
                        fs::copy(&from, &to).map_err(io_at(&to))?;
                    }
                }
                let index = format!("{name}.index.arrow");
                if let Some(sum) = old.as_ref().and_then(|m| m.files.get(&index)) {
                    files.insert(index, sum.clone());
                }
                let ranges = ranges_of(&dead);
                if !ranges.is_empty() {
                    out.dead.insert(name.clone(), ranges);
                }
                out.layers.push(name.clone());
            }
            let mut written = None;
            if !new.is_empty() || merged {
                let name = format!("{}-{generation:06}", kind.name());
                let w =
                    write_run_layer(&gen_dir, &name, kind, partitions, layers, &mut new, &merge, since, &mut files)?;
                written = Some(w);
                out.layers.push(name);
            }
            // Accounts are counted exactly (the run knows which are new or
            // gone), but for a merge of every partition, which counts them;
            // items and profiles as the rows the layers hold.
            out.rows = match written {
                Some(w) if out.layers.len() == 1 && merged => w.rows,
                _ if kind == Keyed::Accounts => was.rows.saturating_add_signed(accounts_added),
                Some(w) => (was.rows + new_rows).saturating_sub(w.removed),
                None => was.rows,
            };
            Ok::<_, StoreError>((out, files, merged))
        };
        // The accounts' layer beside the rest: each file is written by one
        // thread, in its own order, so the bytes do not depend on which
        // finishes first.
        let small = |name: &str, batch: RecordBatch| {
            let mut files = BTreeMap::new();
            write_small(&gen_dir, name, batch, &mut files).map(|()| files)
        };
        let (accounts_done, rest) = rayon::join(
            || table(Keyed::Accounts, accounts, &self.accounts, old.as_ref().map(|m| &m.accounts)),
            || {
                let items = table(Keyed::Items, items, &self.items, old.as_ref().map(|m| &m.items))?;
                let profiles = table(Keyed::Profiles, profiles, &self.profiles, old.as_ref().map(|m| &m.profiles))?;
                let mut smalls = small("timers.arrow", timers_batch(&timers))?;
                smalls.append(&mut small("facts.arrow", facts_batch(&update.facts))?);
                smalls.append(&mut small("indexes.arrow", indexes_batch(&update.indexes))?);
                smalls.append(&mut small("impressions.arrow", impressions_batch(&update.impressions))?);
                Ok::<_, StoreError>((items, profiles, smalls))
            },
        );
        let (accounts_layers, mut f, c) = accounts_done?;
        let ((items_layers, mut fi, ci), (profiles_layers, mut fp, cp), mut smalls) = rest?;
        files.append(&mut f);
        files.append(&mut fi);
        files.append(&mut fp);
        files.append(&mut smalls);
        compacted |= c || ci || cp;
        fault::state_step("layers");
        fault::state_step("files");

        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            generation,
            written_by: concat!("changeling ", env!("CARGO_PKG_VERSION")).into(),
            watermark: update.watermark.map(format_rfc3339),
            partitions,
            keys: keys.into(),
            tables: update.tables.iter().map(|t| t.name().to_string()).collect(),
            accounts: accounts_layers,
            items: items_layers,
            profiles: profiles_layers,
            files,
        };
        let mpath = gen_dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| corrupt(&mpath, e.to_string()))?;
        write_synced(&mpath, text.as_bytes())?;
        sync_dir(&gen_dir)?;
        fault::state_step("manifest");
        // The switch: CURRENT replaced by a rename, atomically.
        let tmp = self.dir.join("CURRENT.tmp");
        write_synced(&tmp, format!("{name}\n").as_bytes())?;
        fault::state_step("switch");
        fs::rename(&tmp, self.dir.join("CURRENT")).map_err(io_at(&tmp))?;
        sync_dir(&self.dir)?;
        fault::state_step("cleanup");
        if let Some(old) = old_dir {
            let _ = fs::remove_dir_all(old);
        }
        let bytes = dir_bytes(&gen_dir);
        Ok(Committed { generation, bytes, accounts: manifest.accounts.rows, compacted })
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(io_at(path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_at(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |es| es.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

/// Writes a small file of the generation and records its sum.
fn write_small(
    dir: &Path,
    name: &str,
    batch: RecordBatch,
    files: &mut BTreeMap<String, FileSum>,
) -> Result<(), StoreError> {
    let path = dir.join(name);
    write_arrow(&path, &batch.schema(), &[batch])?;
    files.insert(name.to_string(), sum_of(&path)?);
    Ok(())
}

fn timers_batch(timers: &BTreeMap<String, (Option<Millis>, bool)>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("due", DataType::Int64, true),
        Field::new("open", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(timers.keys().map(|k| Some(k.as_str())).collect::<StringArray>()),
            Arc::new(timers.values().map(|v| v.0).collect::<Int64Array>()),
            Arc::new(timers.values().map(|v| Some(v.1)).collect::<BooleanArray>()),
        ],
    )
    .expect("columns of the schema")
}

fn read_timers(
    path: &Path,
    sums: &BTreeMap<String, FileSum>,
) -> Result<BTreeMap<String, (Option<Millis>, bool)>, StoreError> {
    let mut out = BTreeMap::new();
    for b in read_small(path, sums)? {
        let bad = |m: &str| corrupt(path, format!("its {m} column is not as written"));
        let key = b.column(0).as_string_opt::<i32>().ok_or_else(|| bad("key"))?;
        let due = b.column(1).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("due"))?;
        let open = b.column(2).as_boolean_opt().ok_or_else(|| bad("open"))?;
        for i in 0..b.num_rows() {
            out.insert(key.value(i).to_string(), (due.is_valid(i).then(|| due.value(i)), open.value(i)));
        }
    }
    Ok(out)
}

fn facts_batch(facts: &[Vec<FactRow>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("slot", DataType::Int32, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("day", DataType::Int64, true),
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, true),
    ]));
    let rows: Vec<(i32, &FactRow)> =
        facts.iter().enumerate().flat_map(|(s, r)| r.iter().map(move |r| (s as i32, r))).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int32Array>()),
            Arc::new(rows.iter().map(|r| r.1.key.as_deref()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.1.day).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| Some(r.1.a)).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| r.1.b).collect::<Int64Array>()),
        ],
    )
    .expect("columns of the schema")
}

fn read_facts(path: &Path, sums: &BTreeMap<String, FileSum>, slots: usize) -> Result<Vec<Vec<FactRow>>, StoreError> {
    let mut out = vec![Vec::new(); slots];
    for b in read_small(path, sums)? {
        let bad = |m: &str| corrupt(path, format!("its {m} column is not as written"));
        let slot = b.column(0).as_primitive_opt::<Int32Type>().ok_or_else(|| bad("slot"))?;
        let key = b.column(1).as_string_opt::<i32>().ok_or_else(|| bad("key"))?;
        let day = b.column(2).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("day"))?;
        let a = b.column(3).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("a"))?;
        let bb = b.column(4).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("b"))?;
        for i in 0..b.num_rows() {
            let s = usize::try_from(slot.value(i)).ok().filter(|&s| s < slots).ok_or_else(|| bad("slot"))?;
            out[s].push(FactRow {
                key: key.is_valid(i).then(|| key.value(i).to_string()),
                day: day.is_valid(i).then(|| day.value(i)),
                a: a.value(i),
                b: bb.is_valid(i).then(|| bb.value(i)),
            });
        }
    }
    Ok(out)
}

fn indexes_batch(indexes: &[IndexRows]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("slot", DataType::Int32, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("actor", DataType::Utf8, false),
    ]));
    let rows: Vec<(i32, &(String, Millis, String))> =
        indexes.iter().enumerate().flat_map(|(s, r)| r.iter().map(move |r| (s as i32, r))).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int32Array>()),
            Arc::new(rows.iter().map(|r| Some(r.1.0.as_str())).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| Some(r.1.1)).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| Some(r.1.2.as_str())).collect::<StringArray>()),
        ],
    )
    .expect("columns of the schema")
}

fn read_indexes(path: &Path, sums: &BTreeMap<String, FileSum>, slots: usize) -> Result<Vec<IndexRows>, StoreError> {
    let mut out = vec![Vec::new(); slots];
    for b in read_small(path, sums)? {
        let bad = |m: &str| corrupt(path, format!("its {m} column is not as written"));
        let slot = b.column(0).as_primitive_opt::<Int32Type>().ok_or_else(|| bad("slot"))?;
        let item = b.column(1).as_string_opt::<i32>().ok_or_else(|| bad("item"))?;
        let ts = b.column(2).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("ts"))?;
        let actor = b.column(3).as_string_opt::<i32>().ok_or_else(|| bad("actor"))?;
        for i in 0..b.num_rows() {
            let s = usize::try_from(slot.value(i)).ok().filter(|&s| s < slots).ok_or_else(|| bad("slot"))?;
            out[s].push((item.value(i).to_string(), ts.value(i), actor.value(i).to_string()));
        }
    }
    Ok(out)
}

fn impressions_batch(impressions: &BTreeMap<String, Vec<(String, Millis)>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("actor", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let rows: Vec<(&str, &str, Millis)> =
        impressions.iter().flat_map(|(a, l)| l.iter().map(move |(i, t)| (a.as_str(), i.as_str(), *t))).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| Some(r.2)).collect::<Int64Array>()),
        ],
    )
    .expect("columns of the schema")
}

fn read_impressions(
    path: &Path,
    sums: &BTreeMap<String, FileSum>,
) -> Result<BTreeMap<String, Vec<(String, Millis)>>, StoreError> {
    let mut out: BTreeMap<String, Vec<(String, Millis)>> = BTreeMap::new();
    for b in read_small(path, sums)? {
        let bad = |m: &str| corrupt(path, format!("its {m} column is not as written"));
        let actor = b.column(0).as_string_opt::<i32>().ok_or_else(|| bad("actor"))?;
        let item = b.column(1).as_string_opt::<i32>().ok_or_else(|| bad("item"))?;
        let ts = b.column(2).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("ts"))?;
        for i in 0..b.num_rows() {
            out.entry(actor.value(i).to_string()).or_default().push((item.value(i).to_string(), ts.value(i)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file whose footer places a block of 8 GiB outside the file
    /// (found by the state_files fuzz target) is refused before the reader
    /// allocates for it.
    #[test]
    fn a_block_outside_the_file_is_refused() {
        let input =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/state_files/timers-block-claims-8-gib");
        let bytes = fs::read(input).unwrap();
        let e = check_file_claims(&bytes[1..]).unwrap_err();
        assert!(e.contains("outside the file"), "{e}");
    }

    /// The blocks' CRC32s summed as they are written are those of their
    /// bytes read back, for compressed and uncompressed files.
    #[test]
    fn blocks_are_summed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(String, Value)> = (0..500)
            .map(|i| {
                let a =
                    Account { due: Some(i), acted: i % 2 == 0, open: false, payload: vec![i as u8; i as usize % 90] };
                (format!("k{i}"), Value::Account(Some(a)))
            })
            .collect();
        let new = NewRows::new(Keyed::Accounts, rows, 8);
        let blocks: Vec<(u32, RecordBatch)> = (0..8).flat_map(|p| new.batches_of(p).map(move |b| (p, b))).collect();
        for (name, compression) in [("plain", None), ("zstd", Some(CompressionType::ZSTD))] {
            let path = dir.path().join(format!("{name}.arrow"));
            let mut w =
                ipc_writer(&path, File::create(&path).unwrap(), &keyed_schema(Keyed::Accounts), compression).unwrap();
            for (_, b) in &blocks {
                w.write(b).unwrap();
            }
            let sums = block_sums(&path, &finish_ipc(&path, w).unwrap()).unwrap();
            let file = File::open(&path).unwrap();
            let (_, _, found) = footer(&path, &file).unwrap();
            let read: Vec<u32> = found
                .iter()
                .map(|b| {
                    let mut bytes = vec![0u8; b.metaDataLength() as usize + b.bodyLength() as usize];
                    file.read_exact_at(&mut bytes, b.offset() as u64).unwrap();
                    crc32fast::hash(&bytes)
                })
                .collect();
            assert_eq!(sums.len(), blocks.len());
            assert_eq!(sums.iter().map(|s| s.0).collect::<Vec<_>>(), read, "{name}");
            assert!(sums.iter().all(|s| s.1), "{name}: blocks read back");
        }
    }

    /// Spark's `hash` and `pmod(hash, 64)` of strings of each tail length
    /// and of non-ASCII text, as PySpark 4.1 gives them (`SELECT hash('a'),
    /// pmod(hash('a'), 64)`).
    #[test]
    fn the_partition_is_sparks() {
        let spark = [
            ("a", 1_485_273_170, 18),
            ("", 142_593_372, 28),
            ("abcd", -396_302_900, 12),
            ("u123", -1_231_066_385, 47),
            ("liu", 1_739_923_427, 35),
            ("\u{e9}t\u{e9}", -149_728_428, 20),
            ("u16518", 1_904_470_101, 21),
            ("hello world!", -294_328_854, 42),
        ];
        for (s, hash, part) in spark {
            assert_eq!((spark_hash(s), partition_of(s, 64)), (hash, part), "hash({s:?})");
        }
    }
}

#[cfg(test)]
mod compaction {
    use super::*;
    use crate::state::{Account, Keys, Update};

    /// The bytes of the current generation's account layers, oldest first.
    fn layer_bytes(dir: &Path) -> Vec<u64> {
        let current = fs::read_to_string(dir.join("CURRENT")).unwrap();
        let mut layers: Vec<(String, u64)> = fs::read_dir(dir.join(current.trim()))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().to_string(), e.metadata().unwrap().len()))
            .filter(|(n, _)| n.starts_with("accounts-") && !n.ends_with(".index.arrow"))
            .collect();
        layers.sort();
        layers.into_iter().map(|(_, b)| b).collect()
    }

    fn day(dir: &Path, accounts: impl Iterator<Item = usize>, payload: usize, added: i64) {
        let (store, opened) = Store::open(dir).unwrap();
        let mut update = Update::default();
        for i in accounts {
            let a = Account { due: None, acted: true, open: false, payload: vec![7; payload] };
            update.accounts.insert(format!("a{i:05}"), Some(a));
        }
        update.accounts_added = added;
        store.commit(opened, update, &Keys::default()).unwrap();
    }

    /// Sixty days that each change 150 of 2,000 accounts: the layers never
    /// hold more than three times the live rows (about twice once the
    /// first merges are done; a state that never merged would hold seven
    /// times), and a day writes no more than its budget's
    /// worth of merged partitions besides its own rows (a state that merged
    /// every partition at once would write them all).
    #[test]
    fn old_versions_stay_bounded_and_every_run_merges_a_share() {
        let dir = tempfile::tempdir().unwrap();
        day(dir.path(), 0..2000, 800, 2000);
        let live = layer_bytes(dir.path())[0];
        let (mut most, mut merged) = (0u64, 0);
        for d in 0..60 {
            day(dir.path(), (0..150).map(|i| (d * 150 + i) % 2000), 800, 0);
            let bytes = layer_bytes(dir.path());
            let total: u64 = bytes.iter().sum();
            let written = *bytes.last().unwrap();
            most = most.max(total);
            merged += usize::from(written > live / 10);
            assert!(written < live / 2, "day {d} wrote {written} bytes of {live} live: {bytes:?}");
        }
        assert!(most <= live * 3, "the layers held {most} bytes of {live} live");
        assert!(merged > 0, "no day merged");
    }

    /// A run that merges one partition, where it deletes an account: the
    /// older layers' rows of that partition are not read any more (the
    /// account does not come back from them), those of the others are.
    #[test]
    fn a_merged_partition_hides_the_older_layers() {
        let dir = tempfile::tempdir().unwrap();
        day(dir.path(), 0..2000, 100, 2000);
        let key = |i: usize| format!("a{i:05}");
        let p = partition_of(&key(5), PARTITIONS);
        let (store, opened) = Store::open(dir.path()).unwrap();
        let mut update = Update::default();
        for i in (0..2000).filter(|&i| partition_of(&key(i), PARTITIONS) == p) {
            let a = Account { due: None, acted: true, open: false, payload: vec![8; 400] };
            update.accounts.insert(key(i), (i != 5).then_some(a));
        }
        update.accounts_added = -1;
        store.commit(opened, update, &Keys::default()).unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let m = store.manifest.as_ref().unwrap();
        assert_eq!(m.accounts.layers.len(), 2, "{:?}", m.accounts);
        assert_eq!(m.accounts.dead.get(&m.accounts.layers[0]), Some(&vec![[p, p + 1]]), "{:?}", m.accounts);
        let other = (0..2000).find(|&i| partition_of(&key(i), PARTITIONS) != p).unwrap();
        let ids: BTreeSet<String> = [key(5), key(other)].into();
        let found = store.accounts(&ids).unwrap();
        assert!(!found.contains_key(&key(5)), "the deleted account came back");
        assert_eq!(found[&key(other)].payload, vec![7; 100]);
        assert_eq!(m.accounts.rows, 1999);
    }
}
