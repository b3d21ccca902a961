//! One benchmark per phase of a run, each reporting events per second:
//! reading JSONL, reading Parquet, compiling the rules, scoring.
//!
//! Inputs are generated once, outside the timed loops, with `changeling
//! synth` (20,000 accounts over 10 days, about 300 k events) into a temp
//! directory; the Parquet copy of the events is written with arrow. Run with
//! `cargo bench --bench phases`; scale with CHANGELING_BENCH_ACCOUNTS.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use changeling::data::schema::{EVENTS, ev};
use changeling::data::{Dataset, ReadOptions};
use changeling::plan::Plan;
use changeling::score::Scorer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn accounts() -> u32 {
    std::env::var("CHANGELING_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// Writes the events of `data` as one Parquet file in `dir`.
fn write_parquet_events(data: &Dataset, dir: &Path) {
    let e = &data.events;
    let s = &data.strings;
    let n = e.len();
    let mut fields = vec![Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false)];
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(TimestampMillisecondArray::from((0..n).map(|i| e.ts(i)).collect::<Vec<_>>()))];
    for (c, f) in EVENTS.iter().enumerate().skip(1).take(ev::ASN) {
        fields.push(Field::new(f.name, DataType::Utf8, true));
        columns
            .push(Arc::new(StringArray::from((0..n).map(|i| e.sym(c, i).map(|x| s.resolve(x))).collect::<Vec<_>>())));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let file = std::fs::File::create(dir.join("events.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("jsonl");
    let cfg = changeling::synth::SynthConfig { accounts: accounts(), days: 10, ..Default::default() };
    changeling::synth::generate(&cfg, &jsonl).unwrap();
    let opts = ReadOptions::default();
    let data = Dataset::open(&jsonl, &opts).unwrap();
    let events = data.events.len() as u64;

    // A Parquet twin: the same side tables (as JSONL), events as Parquet.
    let pq = tmp.path().join("parquet");
    std::fs::create_dir(&pq).unwrap();
    for t in ["items", "follows", "accounts", "labels"] {
        std::fs::copy(jsonl.join(format!("{t}.jsonl")), pq.join(format!("{t}.jsonl"))).unwrap();
    }
    write_parquet_events(&data, &pq);

    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    let plan = Plan::compile(&set);

    let mut g = c.benchmark_group("phases");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    g.bench_function("read_jsonl", |b| b.iter(|| Dataset::open(&jsonl, &opts).unwrap()));
    let projected = ReadOptions { projection: Some(plan.projection()), ..ReadOptions::default() };
    g.bench_function("read_parquet", |b| b.iter(|| Dataset::open(&pq, &projected).unwrap()));
    g.bench_function("score", |b| b.iter(|| Scorer::new(&plan, &data).run()));
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
