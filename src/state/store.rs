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
//! grow many, or the newest large beside the rest, a run merges them into
//! one (compaction), leaving out rows not seen within the plan's reach.
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
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, Int32Array, Int64Array, RecordBatch,
    StringArray, StringBuilder, UInt32Array,
};
use arrow::buffer::Buffer;
use arrow::datatypes::Int32Type;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type};
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::ipc::{Block, CompressionType, root_as_footer};
use serde::{Deserialize, Serialize};

use super::{Account, IndexRows, Kept, Keys, Source, State, Update};
use crate::data::TableKind;
use crate::facts::FactRow;
use crate::output::fault;
use crate::time::{Millis, format_rfc3339, parse_timestamp};

/// The format's name and version, in every manifest.
pub const FORMAT: &str = "changeling-state";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// Rows of a keyed table per record batch, at most: small, so that a run
/// touching few accounts reads few rows besides theirs.
pub const BLOCK_ROWS: usize = 32;
/// Layers of a keyed table before a run merges them.
pub const MAX_LAYERS: usize = 8;

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

/// One layer of a keyed table, opened: its blocks and their index.
#[derive(Debug)]
struct Layer {
    path: PathBuf,
    file: File,
    schema: SchemaRef,
    version: arrow::ipc::MetadataVersion,
    blocks: Vec<Block>,
    /// Per block: (partition, first key, last key, CRC32 of its bytes).
    index: Vec<(u32, String, String, u32)>,
}

impl Layer {
    fn open(dir: &Path, name: &str, sums: &BTreeMap<String, FileSum>) -> Result<Layer, StoreError> {
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
            for i in 0..b.num_rows() {
                index.push((part.value(i), first.value(i).to_string(), last.value(i).to_string(), crc.value(i)));
            }
        }
        let file = File::open(&path).map_err(io_at(&path))?;
        let (schema, version, blocks) = footer(&path, &file)?;
        if blocks.len() != index.len() {
            return Err(corrupt(&path, format!("{} blocks, its index lists {}", blocks.len(), index.len())));
        }
        Ok(Layer { path, file, schema, version, blocks, index })
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
        if crc32fast::hash(&bytes) != self.index[k].3 {
            return Err(corrupt(&self.path, format!("block {k}: its bytes do not match their CRC32")));
        }
        let decoder = FileDecoder::new(self.schema.clone(), self.version);
        let buffer = Buffer::from_vec(bytes);
        let decoded = crate::data::parquet::decoding(|| decoder.read_record_batch(b, &buffer))
            .map_err(|m| corrupt(&self.path, format!("block {k}: {m}")))?;
        match decoded {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => Err(corrupt(&self.path, format!("block {k} is empty"))),
            Err(e) => Err(corrupt(&self.path, format!("block {k}: {e}"))),
        }
    }

    /// The blocks that may hold `(partition, key)`.
    fn block_of(&self, partition: u32, key: &str) -> Option<usize> {
        let at = self.index.partition_point(|(p, _, last, _)| (*p, last.as_str()) < (partition, key));
        self.index.get(at).filter(|(p, first, _, _)| *p == partition && first.as_str() <= key).map(|_| at)
    }
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
    parsed.map_err(|m| corrupt(path, format!("its footer: {m}")))
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
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
        reader.map(|b| b.map_err(|e| e.to_string())).collect()
    })
    .map_err(|m| corrupt(path, m))?;
    read.map_err(|m| corrupt(path, m))
}

/// Writes `batches` as an Arrow IPC file at `path` (zstd-compressed
/// buffers), synced; returns its blocks' CRC32s, in order.
fn write_arrow(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u32>, StoreError> {
    let file = File::create(path).map_err(io_at(path))?;
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::ZSTD))
        .map_err(|e| corrupt(path, e.to_string()))?;
    let mut w = FileWriter::try_new_with_options(io::BufWriter::new(file), schema, options)
        .map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })?;
    for b in batches {
        w.write(b).map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })?;
    }
    w.finish().map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })?;
    let file = w.into_inner().map_err(|e| StoreError::Io { path: path.to_path_buf(), error: io::Error::other(e) })?;
    let file = file.into_inner().map_err(|e| StoreError::Io { path: path.to_path_buf(), error: e.into_error() })?;
    file.sync_all().map_err(io_at(path))?;
    drop(file);
    let file = File::open(path).map_err(io_at(path))?;
    let (_, _, blocks) = footer(path, &file)?;
    blocks
        .iter()
        .map(|b| {
            let mut bytes = vec![0u8; b.metaDataLength() as usize + b.bodyLength() as usize];
            file.read_exact_at(&mut bytes, b.offset() as u64).map_err(io_at(path))?;
            Ok(crc32fast::hash(&bytes))
        })
        .collect()
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

/// Writes one layer of a keyed table: `rows` (key, value), sorted here by
/// (partition, key), in blocks of at most [`BLOCK_ROWS`] rows within one
/// partition; and its index.
fn write_layer(
    dir: &Path,
    name: &str,
    kind: Keyed,
    partitions: u32,
    rows: Vec<(String, Value)>,
    sums: &mut BTreeMap<String, FileSum>,
) -> Result<(), StoreError> {
    let mut rows: Vec<(u32, String, Value)> =
        rows.into_iter().map(|(k, v)| (partition_of(&k, partitions), k, v)).collect();
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let schema = keyed_schema(kind);
    let mut batches = Vec::new();
    let mut index = Vec::new();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        for block in group.chunks(BLOCK_ROWS) {
            let mut key = StringBuilder::new();
            let part: UInt32Array = block.iter().map(|r| r.0).collect();
            for r in block {
                key.append_value(&r.1);
            }
            let mut columns: Vec<ArrayRef> = vec![Arc::new(key.finish()), Arc::new(part)];
            match kind {
                Keyed::Accounts => {
                    let a = |r: &(u32, String, Value)| match &r.2 {
                        Value::Account(a) => a.clone(),
                        Value::Kept(_) => unreachable!("an accounts layer holds accounts"),
                    };
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
                    columns.extend([
                        Arc::new(due) as ArrayRef,
                        Arc::new(acted),
                        Arc::new(open),
                        Arc::new(state.finish()),
                    ]);
                }
                Keyed::Items | Keyed::Profiles => {
                    let k = |r: &(u32, String, Value)| match &r.2 {
                        Value::Kept(k) => k.clone(),
                        Value::Account(_) => unreachable!("an items layer holds rows"),
                    };
                    let seen: Int64Array = block.iter().map(|r| Some(k(r).map_or(0, |k| k.seen))).collect();
                    let mut row = StringBuilder::new();
                    for r in block {
                        row.append_option(k(r).map(|k| k.json));
                    }
                    columns.extend([Arc::new(seen) as ArrayRef, Arc::new(row.finish())]);
                }
            }
            batches.push(
                RecordBatch::try_new(schema.clone(), columns).map_err(|e| corrupt(&dir.join(name), e.to_string()))?,
            );
            index.push((block[0].0, block[0].1.clone(), block[block.len() - 1].1.clone()));
        }
    }
    let path = dir.join(format!("{name}.arrow"));
    let crcs = write_arrow(&path, &schema, &batches)?;
    let index_schema = Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("first", DataType::Utf8, false),
        Field::new("last", DataType::Utf8, false),
        Field::new("crc32", DataType::UInt32, false),
    ]));
    let index_batch = RecordBatch::try_new(
        index_schema.clone(),
        vec![
            Arc::new(index.iter().map(|i| i.0).collect::<UInt32Array>()),
            Arc::new(index.iter().map(|i| Some(i.1.as_str())).collect::<StringArray>()),
            Arc::new(index.iter().map(|i| Some(i.2.as_str())).collect::<StringArray>()),
            Arc::new(crcs.into_iter().collect::<UInt32Array>()),
        ],
    )
    .map_err(|e| corrupt(&path, e.to_string()))?;
    let index_path = dir.join(format!("{name}.index.arrow"));
    write_arrow(&index_path, &index_schema, &[index_batch])?;
    sums.insert(format!("{name}.index.arrow"), sum_of(&index_path)?);
    Ok(())
}

/// Reads the value of each of `keys` (any order) from `layers` (newest
/// wins); absent keys are left out.
fn lookup(
    layers: &[Layer],
    kind: Keyed,
    keys: &BTreeSet<String>,
    partitions: u32,
) -> Result<BTreeMap<String, Value>, StoreError> {
    let mut found: BTreeMap<String, Value> = BTreeMap::new();
    for layer in layers.iter().rev() {
        // The blocks to read, and the keys in each.
        let mut wanted: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for k in keys.iter().filter(|k| !found.contains_key(*k)) {
            if let Some(b) = layer.block_of(partition_of(k, partitions), k) {
                wanted.entry(b).or_default().push(k);
            }
        }
        for (b, ks) in wanted {
            let batch = layer.block(b)?;
            for (key, value) in rows_of(&layer.path, kind, &batch)? {
                if ks.binary_search(&key.as_str()).is_ok() {
                    found.insert(key, value);
                }
            }
        }
    }
    Ok(found)
}

/// The rows of a block of a keyed table.
fn rows_of(path: &Path, kind: Keyed, b: &RecordBatch) -> Result<Vec<(String, Value)>, StoreError> {
    let bad = |m: &str| corrupt(path, format!("a block's {m} column is not as written"));
    let key = b.column_by_name("key").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad("key"))?;
    let mut out = Vec::with_capacity(b.num_rows());
    match kind {
        Keyed::Accounts => {
            let due =
                b.column_by_name("due").and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| bad("due"))?;
            let acted = b.column_by_name("acted").and_then(|c| c.as_boolean_opt()).ok_or_else(|| bad("acted"))?;
            let open = b.column_by_name("open").and_then(|c| c.as_boolean_opt()).ok_or_else(|| bad("open"))?;
            let state: &BinaryArray =
                b.column_by_name("state").and_then(|c| c.as_binary_opt::<i32>()).ok_or_else(|| bad("state"))?;
            for i in 0..b.num_rows() {
                let account = state.is_valid(i).then(|| Account {
                    due: due.is_valid(i).then(|| due.value(i)),
                    acted: acted.value(i),
                    open: open.value(i),
                    payload: state.value(i).to_vec(),
                });
                out.push((key.value(i).to_string(), Value::Account(account)));
            }
        }
        Keyed::Items | Keyed::Profiles => {
            let seen =
                b.column_by_name("seen").and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| bad("seen"))?;
            let row = b.column_by_name("row").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad("row"))?;
            for i in 0..b.num_rows() {
                let kept = row.is_valid(i).then(|| Kept { seen: seen.value(i), json: row.value(i).to_string() });
                out.push((key.value(i).to_string(), Value::Kept(kept)));
            }
        }
    }
    Ok(out)
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
        if m.version != VERSION {
            return Err(corrupt(&mpath, format!("version {} (this build reads {VERSION})", m.version)));
        }
        let open = |l: &Layers| -> Result<Vec<Layer>, StoreError> {
            l.layers.iter().map(|n| Layer::open(&gen_dir, n, &m.files)).collect()
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
        let old = self.manifest.clone();
        let mut table = |kind: Keyed, rows: Vec<(String, Value)>, layers: &[Layer], was: Option<&Layers>| {
            let mut out = was.cloned().unwrap_or_default();
            let new_rows = rows.len() as u64;
            let merge = !layers.is_empty() && (layers.len() + 1 > MAX_LAYERS || new_rows * 2 > out.rows);
            if merge {
                // Every key's newest value, gone ones and rows unseen within
                // reach left out.
                let mut all: BTreeMap<String, Value> = BTreeMap::new();
                for layer in layers {
                    for k in 0..layer.blocks.len() {
                        for (key, value) in rows_of(&layer.path, kind, &layer.block(k)?)? {
                            all.insert(key, value);
                        }
                    }
                }
                all.extend(rows);
                all.retain(|_, v| match v {
                    Value::Account(a) => a.is_some(),
                    Value::Kept(k) => k.as_ref().is_some_and(|k| k.seen >= since),
                });
                let layer = format!("{}-{generation:06}", kind.name());
                out = Layers { layers: vec![layer.clone()], rows: all.len() as u64 };
                write_layer(&gen_dir, &layer, kind, partitions, all.into_iter().collect(), &mut files)?;
                compacted = true;
                return Ok::<Layers, StoreError>(out);
            }
            for l in &out.layers {
                for file in [format!("{l}.arrow"), format!("{l}.index.arrow")] {
                    let from = old_dir.as_ref().expect("layers come from a generation").join(&file);
                    let to = gen_dir.join(&file);
                    if fs::hard_link(&from, &to).is_err() {
                        fs::copy(&from, &to).map_err(io_at(&to))?;
                    }
                }
                let index = format!("{l}.index.arrow");
                if let Some(sum) = old.as_ref().and_then(|m| m.files.get(&index)) {
                    files.insert(index, sum.clone());
                }
            }
            if new_rows > 0 {
                let layer = format!("{}-{generation:06}", kind.name());
                write_layer(&gen_dir, &layer, kind, partitions, rows, &mut files)?;
                out.layers.push(layer);
                // Accounts are counted exactly (the run knows which are new
                // or gone); items and profiles as rows written.
                out.rows = match kind {
                    Keyed::Accounts => out.rows.saturating_add_signed(accounts_added),
                    _ => out.rows + new_rows,
                };
            }
            Ok(out)
        };
        let accounts_layers =
            table(Keyed::Accounts, accounts.clone(), &self.accounts, old.as_ref().map(|m| &m.accounts))?;
        let items_layers = table(Keyed::Items, items, &self.items, old.as_ref().map(|m| &m.items))?;
        let profiles_layers = table(Keyed::Profiles, profiles, &self.profiles, old.as_ref().map(|m| &m.profiles))?;
        fault::state_step("layers");

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
        write_small(&gen_dir, "timers.arrow", timers_batch(&timers), &mut files)?;
        write_small(&gen_dir, "facts.arrow", facts_batch(&update.facts), &mut files)?;
        write_small(&gen_dir, "indexes.arrow", indexes_batch(&update.indexes), &mut files)?;
        write_small(&gen_dir, "impressions.arrow", impressions_batch(&update.impressions), &mut files)?;
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
