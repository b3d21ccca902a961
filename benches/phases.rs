//! One benchmark per phase of a run, each reporting events per second:
//! reading a dataset from JSONL, CSV and Parquet (every table, as
//! `changeling score` reads it: `Dataset::open` takes the same path, with
//! the rules' projection), compiling the rules, scoring; and, in bytes per
//! second, cutting a CSV file into blocks of whole records (the quote
//! machine every CSV byte goes through before it is parsed).
//!
//! Inputs are generated once, outside the timed loops, with `changeling
//! synth` (20,000 accounts over 10 days, about 300 k events) into a temp
//! directory; the Parquet copy of every table is written with arrow
//! (timestamps as TIMESTAMP, lists as lists, dictionary encoding where the
//! writer chooses it, as Spark and DuckDB write them). Run with `cargo
//! bench --bench phases`; scale with CHANGELING_BENCH_ACCOUNTS.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use changeling::data::source::BlockReader;
use changeling::data::{Dataset, ReadOptions};
use changeling::plan::Plan;
use changeling::score::Scorer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn accounts() -> u32 {
    std::env::var("CHANGELING_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// Fields written as TIMESTAMP columns.
const TIMES: &[&str] = &["ts", "since", "created_at", "start", "end"];

/// Writes `table.jsonl` of `from` as `table.parquet` in `to`: a column per
/// key, typed by its first non-null value (strings, numbers, lists of
/// strings), timestamps as TIMESTAMP(ms).
fn jsonl_to_parquet(from: &Path, to: &Path, table: &str) {
    let file = std::fs::File::open(from.join(format!("{table}.jsonl"))).unwrap();
    let rows: Vec<serde_json::Map<String, Value>> =
        std::io::BufReader::new(file).lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    let mut kinds: BTreeMap<String, Value> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for row in &rows {
        for (k, v) in row {
            if !v.is_null() && !kinds.contains_key(k) {
                kinds.insert(k.clone(), v.clone());
                order.push(k.clone());
            }
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in &order {
        let cell = |row: &serde_json::Map<String, Value>| row.get(name).filter(|v| !v.is_null()).cloned();
        if TIMES.contains(&name.as_str()) {
            let t = rows.iter().map(|r| cell(r).and_then(|v| changeling::time::parse_timestamp(v.as_str()?)));
            fields.push(Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), true));
            columns.push(Arc::new(TimestampMillisecondArray::from(t.collect::<Vec<_>>())));
            continue;
        }
        match &kinds[name] {
            Value::Number(_) => {
                fields.push(Field::new(name, DataType::Float64, true));
                let x = rows.iter().map(|r| cell(r).and_then(|v| v.as_f64()));
                columns.push(Arc::new(Float64Array::from(x.collect::<Vec<_>>())));
            }
            Value::Array(_) => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for r in &rows {
                    match cell(r) {
                        Some(Value::Array(items)) => {
                            items.iter().for_each(|i| b.values().append_value(i.as_str().unwrap_or_default()));
                            b.append(true);
                        }
                        _ => b.append(false),
                    }
                }
                let list = b.finish();
                fields.push(Field::new(name, list.data_type().clone(), true));
                columns.push(Arc::new(list));
            }
            _ => {
                let text = |v: Value| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.push(Field::new(name, DataType::Utf8, true));
                let s = rows.iter().map(|r| cell(r).map(text));
                columns.push(Arc::new(StringArray::from(s.collect::<Vec<_>>())));
            }
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let file = std::fs::File::create(to.join(format!("{table}.parquet"))).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("jsonl");
    let cfg = changeling::synth::SynthConfig { accounts: accounts(), days: 10, ..Default::default() };
    changeling::synth::generate(&cfg, &jsonl).unwrap();

    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    let plan = Plan::compile(&set);
    // The columns the rules read, as `changeling score` reads them.
    let opts = ReadOptions { projection: Some(plan.projection()), ..ReadOptions::default() };
    let data = Dataset::open(&jsonl, &opts).unwrap();
    let events = data.events.len() as u64;

    let csv = tmp.path().join("csv");
    let csv_cfg = changeling::synth::SynthConfig { format: changeling::synth::Format::Csv, ..cfg.clone() };
    changeling::synth::generate(&csv_cfg, &csv).unwrap();
    assert_eq!(Dataset::open(&csv, &opts).unwrap().events.len() as u64, events);

    let pq = tmp.path().join("parquet");
    std::fs::create_dir(&pq).unwrap();
    for t in ["events", "items", "follows", "accounts", "labels"] {
        jsonl_to_parquet(&jsonl, &pq, t);
    }
    assert_eq!(Dataset::open(&pq, &opts).unwrap().events.len() as u64, events);

    let mut g = c.benchmark_group("phases");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    g.bench_function("read_jsonl", |b| b.iter(|| Dataset::open(&jsonl, &opts).unwrap()));
    g.bench_function("read_csv", |b| b.iter(|| Dataset::open(&csv, &opts).unwrap()));
    g.bench_function("read_parquet", |b| b.iter(|| Dataset::open(&pq, &opts).unwrap()));
    g.bench_function("score", |b| b.iter(|| Scorer::new(&plan, &data).run()));
    g.finish();

    let text = std::fs::read(csv.join("events.csv")).unwrap();
    let mut g = c.benchmark_group("csv");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("cut_blocks", |b| {
        b.iter(|| {
            let mut cutter = BlockReader::new(&text[..], ReadOptions::default().block_bytes, true);
            let mut bytes = 0;
            while let Some(block) = cutter.next_block().unwrap() {
                bytes += block.bytes.len();
            }
            assert_eq!(bytes, text.len());
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compile");
    g.throughput(Throughput::Elements(set.rules.len() as u64));
    g.bench_function("load_and_compile_rules", |b| {
        b.iter(|| {
            let (set, _) = changeling::rules::load(Path::new("rules"));
            Plan::compile(&set.unwrap())
        })
    });
    g.finish();
}

criterion_group!(phases, benches);
criterion_main!(phases);
