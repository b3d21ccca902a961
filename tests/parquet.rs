//! Parquet in and out. Each table of the contract is written twice into a
//! temporary directory, as JSONL and as Parquet with the column types
//! Spark, DuckDB and pyarrow write (TIMESTAMP of several units and zones,
//! integer ids, dictionary strings, lists), and must read to the same
//! content, with the same bad records skipped at the same row numbers.
//! Alerts written as Parquet must read back to the JSONL alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array, Int64Array,
    ListBuilder, RecordBatch, StringArray, StringBuilder, StringViewArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Int8Type, Int32Type, TimestampMillisecondType};
use changeling::data::read::read_table;
use changeling::data::table::{Column, Table};
use changeling::data::{DataError, Dataset, Projection, ReadOptions, ReadProgress, TableKind, TableReport, source};
use changeling::intern::Interner;
use changeling::time::{format_rfc3339, parse_rfc3339};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

/// Epoch milliseconds of an RFC 3339 time.
fn ms(t: &str) -> i64 {
    parse_rfc3339(t).expect("a valid time")
}

fn write_parquet(path: &Path, batch: &RecordBatch, rows_per_group: Option<usize>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(rows_per_group).build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("a valid batch")
}

fn string_lists(rows: &[Option<&[Option<&str>]>]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in rows {
        match row {
            Some(items) => {
                for item in *items {
                    b.values().append_option(*item);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// One table as JSON Lines and as a record batch holding the same records.
struct Twin {
    kind: TableKind,
    jsonl: &'static str,
    parquet: RecordBatch,
}

fn twins() -> Vec<Twin> {
    let t0 = ms("2020-09-09T14:03:00Z");
    vec![
        Twin {
            kind: TableKind::Events,
            // Row 2 has no actor and row 4 an empty one: both skipped.
            jsonl: concat!(
                r#"{"ts":"2020-09-09T14:03:00.123Z","actor":"liu","action":"like","target":905,"lat":51.5,"mood":"happy","tags":["a","b"],"n":7,"ok":true}"#,
                "\n",
                r#"{"ts":1599660180000,"actor":null,"action":"like","target":906}"#,
                "\n",
                r#"{"ts":"2020-09-09T14:05:00Z","actor":"ana","action":"unlike"}"#,
                "\n",
                r#"{"ts":"2020-09-09T14:06:00Z","actor":"","action":"like"}"#,
                "\n",
                r#"{"ts":"2020-09-09T14:07:00Z","actor":"liu","action":"repost","target":907,"tags":[],"n":-1,"ok":false}"#,
                "\n",
                r#"{"ts":"1970-01-01T00:00:00Z","actor":"old","action":"like","target":1,"lat":-0.25}"#,
                "\n",
            ),
            parquet: batch(vec![
                (
                    "ts",
                    // TIMESTAMP(ns) without a time zone: UTC.
                    Arc::new(TimestampNanosecondArray::from(vec![
                        t0 * 1_000_000 + 123_456_789,
                        1_599_660_180_000 * 1_000_000,
                        ms("2020-09-09T14:05:00Z") * 1_000_000,
                        ms("2020-09-09T14:06:00Z") * 1_000_000,
                        ms("2020-09-09T14:07:00Z") * 1_000_000,
                        // The earliest time accepted, floored from 0.999999 ms.
                        999_999,
                    ])),
                ),
                (
                    "actor",
                    Arc::new(StringArray::from(vec![
                        Some("liu"),
                        None,
                        Some("ana"),
                        Some(""),
                        Some("liu"),
                        Some("old"),
                    ])),
                ),
                (
                    "action",
                    Arc::new(
                        ["like", "like", "unlike", "like", "repost", "like"]
                            .into_iter()
                            .collect::<DictionaryArray<Int32Type>>(),
                    ),
                ),
                ("target", Arc::new(Int64Array::from(vec![Some(905), Some(906), None, None, Some(907), Some(1)]))),
                ("lat", Arc::new(Float64Array::from(vec![Some(51.5), None, None, None, None, Some(-0.25)]))),
                ("mood", Arc::new(StringArray::from(vec![Some("happy"), None, None, None, None, None]))),
                ("tags", string_lists(&[Some(&[Some("a"), Some("b")]), None, None, None, Some(&[]), None])),
                ("n", Arc::new(Int32Array::from(vec![Some(7), None, None, None, Some(-1), None]))),
                ("ok", Arc::new(BooleanArray::from(vec![Some(true), None, None, None, Some(false), None]))),
            ]),
        },
        Twin {
            kind: TableKind::Items,
            // Row 4 has no id.
            jsonl: concat!(
                r#"{"id":1,"author":"acct-77","created_at":"2020-09-09T16:03:00+02:00","labels":["adult","",null],"lang":"en","text":"hello|world"}"#,
                "\n",
                r#"{"id":2,"author":"acct-78","labels":["politics/cn-critical","state-media"],"lang":"zh"}"#,
                "\n",
                r#"{"id":3,"author":"acct-77","lang":"en"}"#,
                "\n",
                r#"{"author":"acct-79"}"#,
                "\n",
            ),
            parquet: batch(vec![
                ("id", Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), None]))),
                ("author", Arc::new(StringArray::from(vec!["acct-77", "acct-78", "acct-77", "acct-79"]))),
                (
                    "created_at",
                    // TIMESTAMP(s) in a +02:00 zone: the instant is stored in UTC.
                    Arc::new(
                        TimestampSecondArray::from(vec![Some(t0 / 1000), None, None, None]).with_timezone("+02:00"),
                    ),
                ),
                (
                    "labels",
                    string_lists(&[
                        Some(&[Some("adult"), Some(""), None]),
                        Some(&[Some("politics/cn-critical"), Some("state-media")]),
                        None,
                        None,
                    ]),
                ),
                (
                    "lang",
                    Arc::new(
                        [Some("en"), Some("zh"), Some("en"), None].into_iter().collect::<DictionaryArray<Int8Type>>(),
                    ),
                ),
                ("text", Arc::new(StringArray::from(vec![Some("hello|world"), None, None, None]))),
            ]),
        },
        Twin {
            kind: TableKind::Follows,
            jsonl: concat!(
                r#"{"follower":"liu","followee":77,"since":1599000000000}"#,
                "\n",
                r#"{"follower":"liu","followee":78}"#,
                "\n",
            ),
            parquet: batch(vec![
                ("follower", Arc::new(StringArray::from(vec!["liu", "liu"]))),
                ("followee", Arc::new(Int32Array::from(vec![77, 78]))),
                (
                    "since",
                    // Integer epoch milliseconds.
                    Arc::new(Int64Array::from(vec![Some(1_599_000_000_000), None])),
                ),
            ]),
        },
        Twin {
            kind: TableKind::Accounts,
            jsonl: concat!(
                r#"{"id":"liu","created_at":"2012-03-01T08:00:00.250Z","handle":"@liu","labels":"diplomat|verified","verified":true}"#,
                "\n",
                r#"{"id":"ana","handle":"@ana","verified":false}"#,
                "\n",
            ),
            parquet: batch(vec![
                ("id", Arc::new(StringArray::from(vec!["liu", "ana"]))),
                (
                    "created_at",
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![Some(ms("2012-03-01T08:00:00.250Z") * 1000 + 999), None])
                            .with_timezone("UTC"),
                    ),
                ),
                ("handle", Arc::new(StringViewArray::from(vec!["@liu", "@ana"]))),
                (
                    "labels",
                    // A plain string column split on `|`, as in CSV.
                    Arc::new(StringArray::from(vec![Some("diplomat|verified"), None])),
                ),
                ("verified", Arc::new(BooleanArray::from(vec![true, false]))),
            ]),
        },
        Twin {
            kind: TableKind::Impressions,
            jsonl: concat!(
                r#"{"actor":"liu","item":1,"ts":"2020-09-09T13:00:00Z","surface":"home"}"#,
                "\n",
                r#"{"actor":"liu","item":2,"ts":"2020-09-09T13:01:00Z"}"#,
                "\n",
            ),
            parquet: batch(vec![
                ("actor", Arc::new(StringArray::from(vec!["liu", "liu"]))),
                ("item", Arc::new(Int64Array::from(vec![1, 2]))),
                (
                    "ts",
                    Arc::new(TimestampMillisecondArray::from(vec![
                        ms("2020-09-09T13:00:00Z"),
                        ms("2020-09-09T13:01:00Z"),
                    ])),
                ),
                ("surface", Arc::new([Some("home"), None].into_iter().collect::<DictionaryArray<Int32Type>>())),
            ]),
        },
        Twin {
            kind: TableKind::Labels,
            // Row 2 has a label outside the contract, row 3 a broken time.
            jsonl: concat!(
                r#"{"actor":"liu","label":"compromised","start":"2020-09-09T13:58:00Z","end":1599696000000,"style":"stealth"}"#,
                "\n",
                r#"{"actor":"ana","label":"maybe"}"#,
                "\n",
                r#"{"actor":"bob","label":"benign","start":"yesterday"}"#,
                "\n",
                r#"{"actor":"ctl","label":"benign"}"#,
                "\n",
            ),
            parquet: batch(vec![
                ("actor", Arc::new(StringArray::from(vec!["liu", "ana", "bob", "ctl"]))),
                ("label", Arc::new(StringArray::from(vec!["compromised", "maybe", "benign", "benign"]))),
                (
                    "start",
                    // RFC 3339 strings.
                    Arc::new(StringArray::from(vec![Some("2020-09-09T13:58:00Z"), None, Some("yesterday"), None])),
                ),
                (
                    "end",
                    // DATE: days since the epoch.
                    Arc::new(Date32Array::from(vec![
                        Some((1_599_696_000_000_i64 / 86_400_000) as i32),
                        None,
                        None,
                        None,
                    ])),
                ),
                ("style", Arc::new(StringArray::from(vec![Some("stealth"), None, None, None]))),
            ]),
        },
    ]
}

/// Writes both forms of every table: `dir/jsonl/` and `dir/parquet/`.
fn write_twins(dir: &Path) {
    std::fs::create_dir_all(dir.join("jsonl")).unwrap();
    for t in twins() {
        std::fs::write(dir.join("jsonl").join(format!("{}.jsonl", t.kind)), t.jsonl).unwrap();
        write_parquet(&dir.join("parquet").join(format!("{}.parquet", t.kind)), &t.parquet, None);
    }
}

/// A column's value at `row` as text, if present.
fn cell(column: &Column, row: usize, strings: &Interner) -> Option<String> {
    match column {
        Column::Time(_) => column.time(row).map(|t| t.to_string()),
        Column::Sym(_) => column.sym(row).map(|s| strings.resolve(s).to_string()),
        Column::Num(_) => column.num(row).map(|x| x.to_string()),
        Column::Text(_) => column.text(row).map(str::to_string),
        Column::List { .. } => {
            let items = column.list(row);
            (!items.is_empty()).then(|| {
                let names: Vec<&str> = items.iter().map(|&s| strings.resolve(s)).collect();
                format!("[{}]", names.join(", "))
            })
        }
    }
}

type Rows = Vec<BTreeMap<String, String>>;

/// Every row of a table as field name -> value text, absent fields left out.
fn rows(table: &Table, strings: &Interner) -> Rows {
    (0..table.rows)
        .map(|r| {
            table
                .names
                .iter()
                .zip(&table.columns)
                .filter_map(|(name, c)| Some((name.clone(), cell(c, r, strings)?)))
                .collect()
        })
        .collect()
}

fn read(dir: &Path, kind: TableKind, opts: &ReadOptions) -> Result<(Rows, TableReport), DataError> {
    let files = source::locate(dir, kind)?.expect("the table is there");
    let mut strings = Interner::new();
    let (table, report) = read_table(kind, &files, &mut strings, opts, &ReadProgress::default())?;
    Ok((rows(&table, &strings), report))
}

/// Skipped records as (number, reason), without the file and unit.
fn skipped(report: &TableReport) -> Vec<(u64, String)> {
    report.samples.iter().map(|s| (s.record, s.message.clone())).collect()
}

/// Read options for data whose times start in 1970 (these tests' small
/// epoch numbers), told so: see `ReadOptions::time_unit`.
fn told() -> ReadOptions {
    ReadOptions { time_unit: Some(changeling::time::TimeUnit::Ms), ..ReadOptions::default() }
}
#[test]
fn every_table_reads_as_its_jsonl_twin() {
    let dir = tempfile::tempdir().unwrap();
    write_twins(dir.path());
    let opts = told();
    for kind in TableKind::ALL {
        let (want, want_report) = read(&dir.path().join("jsonl"), kind, &opts).unwrap();
        let (got, got_report) = read(&dir.path().join("parquet"), kind, &opts).unwrap();
        assert_eq!(got, want, "{kind}");
        assert_eq!(got_report.records, want_report.records, "{kind}");
        assert_eq!(got_report.skipped, want_report.skipped, "{kind}");
        assert_eq!(skipped(&got_report), skipped(&want_report), "{kind}");
        assert!(got_report.samples.iter().all(|s| s.unit == "row"));
        assert!(got_report.bytes > 0);
    }
    // A few values spelled out, so equality with JSONL is not all we check.
    let (events, report) = read(&dir.path().join("parquet"), TableKind::Events, &opts).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["ts"], (ms("2020-09-09T14:03:00Z") + 123).to_string());
    assert_eq!(events[0]["target"], "905");
    assert_eq!(events[0]["tags"], "a|b");
    assert_eq!(events[0]["n"], "7");
    assert_eq!(events[0]["ok"], "true");
    assert_eq!(events[3]["ts"], "0");
    assert_eq!(
        skipped(&report),
        [(2, "missing required field `actor`".to_string()), (4, "missing required field `actor`".to_string()),]
    );
    let (items, _) = read(&dir.path().join("parquet"), TableKind::Items, &opts).unwrap();
    assert_eq!(items[0]["id"], "1");
    assert_eq!(items[0]["labels"], "[adult]");
    assert_eq!(items[0]["created_at"], ms("2020-09-09T14:03:00Z").to_string());
    let (labels, report) = read(&dir.path().join("parquet"), TableKind::Labels, &opts).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(report.samples[0].record, 2);
    assert!(report.samples[1].message.starts_with("field `start`: `yesterday`"));
}

#[test]
fn a_parquet_dataset_opens_like_its_jsonl_twin() {
    let dir = tempfile::tempdir().unwrap();
    write_twins(dir.path());
    let opts = told();
    let want = Dataset::open(&dir.path().join("jsonl"), &opts).unwrap();
    let got = Dataset::open(&dir.path().join("parquet"), &opts).unwrap();
    let events = |d: &Dataset| -> Rows {
        let e = &d.events;
        let mut table = rows(&e.table, &d.strings);
        for (i, row) in table.iter_mut().enumerate() {
            row.insert("ts".into(), e.ts(i).to_string());
            row.insert("actor".into(), d.strings.resolve(e.actor(i)).into());
            row.insert("action".into(), d.strings.resolve(e.action(i)).into());
        }
        table
    };
    assert_eq!(events(&got), events(&want));
    assert_eq!(events(&got).len(), 4);
    assert_eq!(rows(&got.items.table, &got.strings), rows(&want.items.table, &want.strings));
    assert_eq!(rows(&got.accounts.table, &got.strings), rows(&want.accounts.table, &want.strings));
    let (gl, wl) = (got.labels.as_ref().unwrap(), want.labels.as_ref().unwrap());
    assert_eq!(rows(&gl.table, &got.strings), rows(&wl.table, &want.strings));
    assert_eq!(gl.rows.len(), 2);
    assert_eq!(got.follows.as_ref().unwrap().len(), want.follows.as_ref().unwrap().len());
    assert_eq!(got.impressions.as_ref().unwrap().len(), want.impressions.as_ref().unwrap().len());
    assert_eq!(got.report.skipped(), want.report.skipped());
    assert_eq!(got.report.skipped(), 2 + 1 + 2);
}

#[test]
fn a_null_actor_is_fatal_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    write_twins(dir.path());
    // Only events: the other tables (read before events) have bad rows too.
    for entry in std::fs::read_dir(dir.path().join("parquet")).unwrap() {
        let p = entry.unwrap().path();
        if !p.ends_with("events.parquet") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let opts = ReadOptions { strict: true, ..ReadOptions::default() };
    match Dataset::open(&dir.path().join("parquet"), &opts) {
        Err(DataError::Strict { record }) => {
            assert_eq!(record.unit, "row");
            assert_eq!(record.record, 2);
            assert!(record.file.ends_with("events.parquet"));
            assert_eq!(record.message, "missing required field `actor`");
            assert!(record.to_string().ends_with("events.parquet: row 2: missing required field `actor`"), "{record}");
        }
        other => panic!("expected a strict error, got {other:?}"),
    }
}

#[test]
fn a_projection_skips_columns_but_never_required_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_twins(dir.path());
    let opts = ReadOptions {
        projection: Some(Projection {
            tables: BTreeMap::from([(TableKind::Events, BTreeSet::from(["target".to_string(), "tags".to_string()]))]),
        }),
        ..told()
    };
    let (events, _) = read(&dir.path().join("parquet"), TableKind::Events, &opts).unwrap();
    assert_eq!(events.len(), 4);
    let names: BTreeSet<&str> = events.iter().flat_map(|r| r.keys()).map(|k| k.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["ts", "actor", "action", "target", "tags"]));
    // Tables the projection does not list are read whole.
    let (items, _) = read(&dir.path().join("parquet"), TableKind::Items, &opts).unwrap();
    assert!(items[0].contains_key("text"));
}

#[test]
fn a_column_of_the_wrong_type_is_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let actor = StructArray::from(vec![(
        Arc::new(Field::new("id", DataType::Int64, false)),
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )]);
    write_parquet(
        &dir.path().join("events.parquet"),
        &batch(vec![
            ("ts", Arc::new(Int64Array::from(vec![1000]))),
            ("actor", Arc::new(actor)),
            ("action", Arc::new(StringArray::from(vec!["like"]))),
        ]),
        None,
    );
    let err = Dataset::open(dir.path(), &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadFile { .. }), "{msg}");
    assert!(msg.contains("events.parquet"), "{msg}");
    assert!(msg.contains("column `actor`"), "{msg}");
    assert!(msg.contains("Struct"), "{msg}");

    std::fs::write(dir.path().join("events.parquet"), b"PAR1 not really").unwrap();
    let msg = Dataset::open(dir.path(), &ReadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("not a readable Parquet file"), "{msg}");
}

/// Events with a bad row in a late row group: `n` rows, `actor` null in
/// row `bad` (1-based).
fn many_events(n: usize, bad: usize) -> RecordBatch {
    let actors: Vec<Option<String>> = (1..=n).map(|i| (i != bad).then(|| format!("a{}", i % 17))).collect();
    batch(vec![
        ("ts", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 1000)))),
        ("actor", Arc::new(StringArray::from(actors))),
        (
            "action",
            Arc::new((0..n).map(|i| ["like", "unlike", "repost"][i % 3]).collect::<DictionaryArray<Int32Type>>()),
        ),
        ("target", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 101)))),
    ])
}

#[test]
fn part_files_and_row_groups_read_in_order_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    write_parquet(&events.join("part-00000.parquet"), &many_events(100, 0), Some(7));
    write_parquet(&events.join("part-00001.parquet"), &many_events(250, 203), Some(9));
    std::fs::write(events.join("_SUCCESS"), b"").unwrap();

    // Blocks of at least 10 rows: row groups are read in parallel, a few
    // at a time, and merged in order.
    let read_with = |threads: usize, block_rows: u64| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let opts = ReadOptions { block_rows, ..told() };
        pool.install(|| read(dir.path(), TableKind::Events, &opts)).unwrap()
    };
    let (one, report) = read_with(1, 10);
    assert_eq!(report.files, 2);
    assert_eq!(one.len(), 349);
    assert_eq!(skipped(&report), [(203, "missing required field `actor`".to_string())]);
    assert!(report.samples[0].file.ends_with("part-00001.parquet"));
    // File order, then row order.
    assert_eq!(one[99]["target"], "99");
    assert_eq!(one[100]["target"], "0");
    assert_eq!(one[100 + 202]["ts"], (203 * 1000).to_string());
    for (threads, block_rows) in [(4, 10), (3, 1), (2, 1 << 20)] {
        let (other, other_report) = read_with(threads, block_rows);
        assert_eq!(one, other, "{threads} threads, blocks of {block_rows} rows");
        assert_eq!(skipped(&other_report), skipped(&report));
    }
}

#[test]
fn a_dictionary_shared_by_many_batches_reads_right() {
    // More rows than one decoded batch holds, in one row group, so batches
    // share the dictionary.
    let dir = tempfile::tempdir().unwrap();
    let n = 70_000;
    let path = dir.path().join("events.parquet");
    write_parquet(&path, &many_events(n, n), None);
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 1);
    assert!(matches!(reader.schema().field_with_name("action").unwrap().data_type(), DataType::Dictionary(..)));
    let data = Dataset::open(dir.path(), &told()).unwrap();
    assert_eq!(data.events.len(), n - 1);
    assert_eq!(data.report.skipped(), 1);
    let mut likes = 0;
    for i in 0..data.events.len() {
        let t = data.events.ts(i) / 1000;
        let action = data.strings.resolve(data.events.action(i));
        assert_eq!(action, ["like", "unlike", "repost"][(t % 3) as usize]);
        likes += usize::from(action == "like");
        assert_eq!(data.strings.resolve(data.events.actor(i)), format!("a{}", (t + 1) % 17));
    }
    assert_eq!(likes, (n - 1).div_ceil(3));
}

/// The alerts of the story fixture, as the JSONL writer gives them.
fn story_alerts() -> (Vec<Value>, tempfile::TempDir, Vec<u8>) {
    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("rules load:\n{}", diags.render()));
    let plan = changeling::plan::Plan::compile(&set);
    let info = changeling::alerts::RuleInfo::of_set(&set);
    let data = Dataset::open(Path::new("tests/fixtures/story"), &ReadOptions::default()).unwrap();
    let cx = changeling::alerts::Context::new(&plan, &info, &data.strings);
    let accounts = changeling::score::Scorer::new(&plan, &data).run();
    let mut jsonl = Vec::new();
    let n = changeling::alerts::write_jsonl(&mut jsonl, &accounts, cx).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.parquet");
    assert_eq!(changeling::alerts::write_parquet(&path, &accounts, cx).unwrap(), n);
    let first = std::fs::read(&path).unwrap();
    changeling::alerts::write_parquet(&path, &accounts, cx).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first, "same alerts, same bytes");
    let values = String::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (values, dir, first)
}

fn utc_times(a: &dyn Array) -> Vec<Value> {
    assert_eq!(a.data_type(), &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())));
    a.as_primitive::<TimestampMillisecondType>().values().iter().map(|&t| json!(format_rfc3339(t))).collect()
}

fn strs(a: &dyn Array) -> Vec<Value> {
    a.as_string::<i32>().iter().map(|s| s.map_or(Value::Null, |s| json!(s))).collect()
}

#[test]
fn parquet_alerts_read_back_as_the_jsonl_alerts() {
    let (want, dir, bytes) = story_alerts();
    assert!(!want.is_empty());
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(File::open(dir.path().join("alerts.parquet")).unwrap()).unwrap();
    let created_by = reader.metadata().file_metadata().created_by().map(str::to_string);
    assert_eq!(created_by.as_deref(), Some(concat!("changeling ", env!("CARGO_PKG_VERSION"))));
    assert!(bytes.starts_with(b"PAR1"));
    let mut got = Vec::new();
    for b in reader.build().unwrap() {
        let b = b.unwrap();
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let (actor, start, end, tier) =
            (strs(&col("actor")), utc_times(&col("start")), utc_times(&col("end")), strs(&col("tier")));
        let (id, status, final_after) = (strs(&col("id")), strs(&col("status")), utc_times(&col("final_after")));
        let score = col("score");
        let families = col("families");
        let families = families.as_list::<i32>();
        let hits = col("hits");
        let hits = hits.as_list::<i32>();
        for i in 0..b.num_rows() {
            let f = families.value(i);
            let f = f.as_struct();
            let names = strs(f.column_by_name("family").unwrap());
            let evidence =
                f.column_by_name("evidence").unwrap().as_primitive::<arrow::datatypes::Float64Type>().clone();
            let mut family_map = serde_json::Map::new();
            for (j, name) in names.iter().enumerate() {
                family_map.insert(name.as_str().unwrap().to_string(), json!(evidence.value(j)));
            }
            let h = hits.value(i);
            let h = h.as_struct();
            let hcol = |name: &str| h.column_by_name(name).unwrap().clone();
            let (rule, ts, action, target, why, effect) = (
                strs(&hcol("rule")),
                utc_times(&hcol("ts")),
                strs(&hcol("action")),
                strs(&hcol("target")),
                strs(&hcol("why")),
                strs(&hcol("effect")),
            );
            let strength = hcol("strength");
            let signals = hcol("signals");
            let signals = signals.as_list::<i32>();
            let (title, severity) = (strs(&hcol("title")), strs(&hcol("severity")));
            let tags = hcol("tags");
            let tags = tags.as_list::<i32>();
            let version = hcol("version");
            let version = version.as_primitive::<arrow::datatypes::Int64Type>();
            let hits: Vec<Value> = (0..h.len())
                .map(|j| {
                    let mut v = json!({
                        "rule": rule[j], "ts": ts[j], "action": action[j],
                        "strength": strength.as_primitive::<arrow::datatypes::Float64Type>().value(j),
                        "why": why[j], "effect": effect[j],
                        "signals": strs(&signals.value(j)),
                        "title": title[j], "severity": severity[j],
                        "tags": strs(&tags.value(j)), "version": version.value(j),
                    });
                    if !target[j].is_null() {
                        v["target"] = target[j].clone();
                    }
                    v
                })
                .collect();
            got.push(json!({
                "actor": actor[i], "start": start[i], "end": end[i],
                "score": score.as_primitive::<arrow::datatypes::Float64Type>().value(i),
                "tier": tier[i], "id": id[i], "status": status[i], "final_after": final_after[i],
                "families": family_map, "hits": hits,
            }));
        }
    }
    assert_eq!(got, want);
}

#[test]
fn score_writes_parquet_when_out_ends_in_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "3"] {
        let path = dir.path().join(format!("alerts-{threads}.PARQUET"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_changeling"))
            .args(["score", "--data", "tests/fixtures/story", "--quiet"])
            .args(["--threads", threads, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty());
        outputs.push(std::fs::read(&path).unwrap());
    }
    assert!(outputs[0].starts_with(b"PAR1") && outputs[0].ends_with(b"PAR1"));
    assert_eq!(outputs[0], outputs[1], "same bytes for any thread count");
    let (_, _, from_library) = story_alerts();
    assert_eq!(outputs[0], from_library);
}

#[test]
fn unread_fields_are_checked_and_times_out_of_range_are_bad_rows() {
    // Must skip rows 2 (a `ts` of i64::MAX seconds), 3 (`lat`, a text
    // column, is no number) and 4 (the extra time column `seen` is before
    // 1970), whether or not the projection reads `lat` and `seen`.
    let dir = tempfile::tempdir().unwrap();
    let t = ms("2020-09-09T14:00:00Z") / 1000;
    let b = batch(vec![
        ("ts", Arc::new(TimestampSecondArray::from(vec![t, i64::MAX, t, t])) as ArrayRef),
        ("actor", Arc::new(StringArray::from(vec!["a", "b", "c", "d"]))),
        ("action", Arc::new(StringArray::from(vec!["like"; 4]))),
        ("lat", Arc::new(StringArray::from(vec![Some("1.5"), None, Some("north"), Some("2")]))),
        ("lon", Arc::new(Float64Array::from(vec![1.0, 2.0, f64::NAN, 4.0]))),
        ("seen", Arc::new(TimestampNanosecondArray::from(vec![1, 2, 3, -1]))),
    ]);
    write_parquet(&dir.path().join("events.parquet"), &b, None);
    let narrow = ReadOptions {
        projection: Some(Projection {
            tables: BTreeMap::from([(TableKind::Events, BTreeSet::from(["target".to_string()]))]),
        }),
        ..ReadOptions::default()
    };
    let (all, all_report) = read(dir.path(), TableKind::Events, &ReadOptions::default()).unwrap();
    let (few, few_report) = read(dir.path(), TableKind::Events, &narrow).unwrap();
    assert_eq!(skipped(&all_report), skipped(&few_report));
    let bad = skipped(&all_report);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert_eq!(bad[0].0, 2);
    assert!(bad[0].1.starts_with("field `ts`: timestamp 9223372036854775807 is outside 1970"), "{bad:?}");
    assert_eq!(bad[1], (3, "field `lat`: `north` is not a number".to_string()));
    // An extra time column is checked like any time: a time before 1970
    // cannot be written as RFC 3339 text of the contract.
    assert_eq!(bad[2].0, 4);
    assert!(bad[2].1.starts_with("field `seen`: timestamp -1 is outside 1970"), "{bad:?}");
    assert_eq!((all.len(), few.len()), (1, 1));
    assert!(!few[0].contains_key("lat"));
}

/// A data page whose bytes changed on disk is an error naming the file
/// when the writer stored page checksums (pyarrow's `write_page_checksum`,
/// parquet-mr's default), never rows that were not written. The fixture
/// holds six events, plain-encoded and uncompressed, so the first
/// timestamps' bytes sit in the `ts` data page.
#[test]
fn a_changed_data_page_with_a_checksum_is_a_bad_file() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parquet-crc/events.parquet");
    let clean = std::fs::read(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.parquet"), &clean).unwrap();
    let data = Dataset::open(dir.path(), &ReadOptions::default()).expect("the clean fixture reads");
    assert_eq!(data.events.len(), 6);

    // The second time: neither the minimum nor the maximum, so only in
    // the page's data, not in the statistics of its header.
    let second_ts = (1_709_287_200_000i64 + 60_000).to_le_bytes();
    let at = clean.windows(8).position(|w| w == second_ts).expect("the second timestamp in the data page");
    let mut flipped = clean.clone();
    flipped[at + 5] ^= 0x40;
    std::fs::write(dir.path().join("events.parquet"), &flipped).unwrap();
    match Dataset::open(dir.path(), &ReadOptions::default()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("events.parquet") && msg.contains("CRC"), "{msg}");
        }
        Ok(d) => panic!("a changed page was read: {} events", d.events.len()),
    }
}
