//! The JSONL reader's phases, one thread, in bytes and in records per
//! second: cutting a file into blocks of whole lines, parsing the blocks
//! into table builders (`jsonl::parse_block`, the path `changeling score`
//! takes, with and without the rules' projection), and merging the
//! builders into one table and interner; and, apart, the JSON parsers
//! alone (serde_json, sonic-rs, simd-json) cutting the same lines, the
//! comparison that chose serde_json (see src/data/jsonl.rs).
//!
//! The input is `events.jsonl` of a `changeling synth` dataset (20,000
//! accounts over 10 days, about 300 k events; scale with
//! CHANGELING_BENCH_ACCOUNTS), generated once into a temp directory outside
//! the timed loops. Run with `cargo bench --bench jsonl`.

use std::path::Path;
use std::sync::Arc;

use changeling::data::ReadOptions;
use changeling::data::jsonl;
use changeling::data::schema::TableKind;
use changeling::data::source::BlockReader;
use changeling::data::table::{Table, TableBuilder};
use changeling::intern::Interner;
use changeling::plan::Plan;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};

fn accounts() -> u32 {
    std::env::var("CHANGELING_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// `text` cut into the blocks a read parses (whole lines, 4 MiB each).
fn blocks(text: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let mut cutter = BlockReader::new(text, ReadOptions::default().block_bytes, false);
    let mut out = Vec::new();
    while let Some(block) = cutter.next_block().unwrap() {
        assert!(block.bad.is_empty());
        out.push((block.bytes, block.first_line));
    }
    out
}

/// Parses every block into its own builder, as a read does.
fn parse_all(blocks: &[(Vec<u8>, u64)], keep: &Option<Arc<std::collections::BTreeSet<String>>>) -> Vec<TableBuilder> {
    blocks
        .iter()
        .map(|(bytes, first)| {
            let mut builder = TableBuilder::with_projection(TableKind::Events, keep.clone());
            let mut bad = Vec::new();
            jsonl::parse_block(bytes, *first, &mut builder, &mut bad);
            assert!(bad.is_empty(), "{bad:?}");
            builder
        })
        .collect()
}

/// Each line's keys and values cut out as raw JSON text, the work every
/// parser below does and the reader builds on: serde_json's `RawValue`,
/// sonic-rs's `LazyValue`. Returns the number of fields.
mod cut {
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    pub struct Fields<V>(pub std::marker::PhantomData<V>);

    impl<'de, V: serde::Deserialize<'de>> DeserializeSeed<'de> for Fields<V> {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for Fields<V> {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while map.next_key::<&'de str>()?.is_some() {
                let _: V = map.next_value()?;
                n += 1;
            }
            Ok(n)
        }
    }

    pub fn serde_json(line: &str) -> usize {
        let mut de = serde_json::Deserializer::from_str(line);
        let n = Fields::<&serde_json::value::RawValue>(Default::default()).deserialize(&mut de).unwrap();
        de.end().unwrap();
        n
    }

    pub fn sonic_rs(line: &str) -> usize {
        let mut de = sonic_rs::Deserializer::from_str(line);
        let n = Fields::<sonic_rs::LazyValue>(Default::default()).deserialize(&mut de).unwrap();
        de.end().unwrap();
        n
    }

    /// simd-json has no raw text of a value (numbers are parsed, their text
    /// lost), so this is only its tape of the line, on a copy (it unescapes
    /// in place).
    pub fn simd_json(line: &str, copy: &mut Vec<u8>, buffers: &mut simd_json::Buffers) -> usize {
        copy.clear();
        copy.extend_from_slice(line.as_bytes());
        simd_json::to_tape_with_buffers(copy, buffers).unwrap().0.len()
    }

    /// Checked syntax only, nothing kept: serde_json's floor.
    pub fn serde_json_ignored(line: &str) -> usize {
        let _: IgnoredAny = serde_json::from_str(line).unwrap();
        1
    }
}

fn lines(blocks: &[(Vec<u8>, u64)]) -> impl Iterator<Item = &str> {
    blocks.iter().flat_map(|(b, _)| std::str::from_utf8(b).unwrap().lines())
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jsonl");
    let cfg = changeling::synth::SynthConfig { accounts: accounts(), days: 10, ..Default::default() };
    changeling::synth::generate(&cfg, &dir).unwrap();
    let text = std::fs::read(dir.join("events.jsonl")).unwrap();
    let records = memchr::memchr_iter(b'\n', &text).count() as u64;
    let blocks = blocks(&text);

    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    let projection = Plan::compile(&set).projection();
    let keep = projection.tables.get(&TableKind::Events).map(|k| Arc::new(k.clone()));
    assert_eq!(parse_all(&blocks, &keep).iter().map(TableBuilder::rows).sum::<usize>() as u64, records);

    // Each phase twice: in bytes and in records per second.
    let phases = |g: &mut BenchmarkGroup<'_, WallTime>| {
        g.sample_size(10);
        g.bench_function("cut_blocks", |b| {
            b.iter(|| {
                let mut cutter = BlockReader::new(&text[..], ReadOptions::default().block_bytes, false);
                let mut bytes = 0;
                while let Some(block) = cutter.next_block().unwrap() {
                    bytes += block.bytes.len();
                }
                assert_eq!(bytes, text.len());
            })
        });
        g.bench_function("parse_block/projected", |b| b.iter(|| parse_all(&blocks, &keep)));
        g.bench_function("parse_block/all_fields", |b| b.iter(|| parse_all(&blocks, &None)));
        g.bench_function("merge", |b| {
            b.iter_batched(
                || parse_all(&blocks, &keep),
                |builders| {
                    let mut strings = Interner::new();
                    let mut table = Table::new(TableKind::Events);
                    for builder in builders {
                        table.append(builder, &mut strings);
                    }
                    (table, strings)
                },
                criterion::BatchSize::LargeInput,
            )
        });
    };
    // The parsers alone, each line cut into keys and raw values (no table).
    let mut g = c.benchmark_group("jsonl_cut_fields");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("serde_json_ignored", |b| b.iter(|| lines(&blocks).map(cut::serde_json_ignored).sum::<usize>()));
    g.bench_function("serde_json", |b| b.iter(|| lines(&blocks).map(cut::serde_json).sum::<usize>()));
    g.bench_function("sonic_rs", |b| b.iter(|| lines(&blocks).map(cut::sonic_rs).sum::<usize>()));
    g.bench_function("simd_json_tape", |b| {
        let (mut copy, mut buffers) = (Vec::new(), simd_json::Buffers::new(4096));
        b.iter(|| lines(&blocks).map(|l| cut::simd_json(l, &mut copy, &mut buffers)).sum::<usize>())
    });
    g.finish();

    let mut g = c.benchmark_group("jsonl_bytes");
    g.throughput(Throughput::Bytes(text.len() as u64));
    phases(&mut g);
    g.finish();
    let mut g = c.benchmark_group("jsonl_records");
    g.throughput(Throughput::Elements(records));
    phases(&mut g);
    g.finish();
}

criterion_group!(jsonl_benches, benches);
criterion_main!(jsonl_benches);
