//! Replays the fuzz targets' saved inputs under stable `cargo test`: the
//! seeds (`fuzz/seeds/<target>/`) and every input a fuzzer found failing
//! (`fuzz/regressions/<target>/`, kept after the fix). The bodies are the
//! fuzz targets' own (`fuzz/src/bodies.rs`); `fuzz/run.sh` runs the
//! fuzzers themselves (nightly).

#[path = "../fuzz/src/bodies.rs"]
mod bodies;

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use changeling::data::TableKind;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["seeds", "regressions"]
        .iter()
        .filter_map(|set| std::fs::read_dir(root.join(set).join(target)).ok())
        .flatten()
        .map(|e| e.expect("a readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` on every saved input of `target`; fails naming each input
/// that panics.
fn replay<R>(target: &str, body: fn(&[u8]) -> R) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no saved inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable input");
            panic::catch_unwind(AssertUnwindSafe(|| {
                body(&data);
            }))
            .is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: {} of {} inputs fail:\n{}", failed.len(), files.len(), failed.join("\n"));
}

#[test]
fn rules_corpus() {
    replay("rules", bodies::rules);
}

#[test]
fn jsonl_corpus() {
    replay("jsonl", bodies::jsonl);
}

#[test]
fn csv_corpus() {
    replay("csv", bodies::csv);
}

#[test]
fn parquet_corpus() {
    replay("parquet", bodies::parquet);
}

#[test]
fn block_cutter_corpus() {
    replay("block_cutter", bodies::block_cutter);
}

#[test]
fn spill_decoder_corpus() {
    replay("spill_decoder", bodies::spill_decoder);
}

#[test]
fn alerts_corpus() {
    replay("alerts", bodies::alerts);
}

#[test]
fn exceptions_corpus() {
    replay("exceptions", bodies::exceptions);
}

#[test]
fn arrow_corpus() {
    replay("arrow", bodies::arrow);
}

/// The hand-written seeds of the exceptions and Arrow targets reach the
/// run (the inputs a fuzzer kept, named by their SHA-1, need not): every
/// Arrow seed reads and is scored, and so is every exceptions seed but
/// the two with an error (a misspelt key, a rule that does not exist).
#[test]
fn exceptions_and_arrow_seeds_reach_the_run() {
    let written = |target: &str| -> Vec<PathBuf> {
        inputs(target)
            .into_iter()
            .filter(|p| p.parent().is_some_and(|d| d.ends_with(format!("seeds/{target}"))))
            .filter(|p| {
                let name = p.file_name().expect("a name").to_string_lossy();
                name.len() != 40 || !name.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .collect()
    };
    let arrow = written("arrow");
    assert!(arrow.len() >= 10, "{} Arrow seeds", arrow.len());
    for path in &arrow {
        let seed = std::fs::read(path).expect("a seed");
        assert_eq!(bodies::arrow(&seed), bodies::Reach::Ran, "{}", path.display());
    }
    let mut refused = Vec::new();
    for path in written("exceptions") {
        let seed = std::fs::read(&path).expect("a seed");
        if bodies::exceptions(&seed) != bodies::Reach::Ran {
            refused.push(path.file_name().expect("a name").to_string_lossy().into_owned());
        }
    }
    assert_eq!(refused, ["misspelt-key.toml", "unknown-rule.toml"]);
}

/// The Arrow target's seeds: each Parquet seed's table as an Arrow IPC
/// stream (after the same first byte; one stream for a table stored
/// twice), and its events also with their
/// text columns as large strings, string views and dictionaries, as
/// pandas and polars hand them over. Rewrite them with
/// `CHANGELING_WRITE_SEEDS=1 cargo test --test fuzz_corpus`.
#[test]
fn arrow_seeds_are_todays_format() {
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let stream = |pick: u8, schema: &arrow::datatypes::SchemaRef, batches: &[arrow::array::RecordBatch]| {
        let mut out = vec![pick];
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).expect("a stream");
        for b in batches {
            w.write(b).expect("writing a batch");
        }
        w.finish().expect("a stream");
        drop(w);
        out
    };
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    let mut parquet: Vec<PathBuf> = std::fs::read_dir(root.join("parquet"))
        .expect("the Parquet seeds")
        .map(|e| e.expect("an entry").path())
        .collect();
    parquet.sort();
    for path in parquet {
        let bytes = std::fs::read(&path).expect("a Parquet seed");
        let tmp = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(tmp.path(), &bytes[1..]).expect("a temporary file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(tmp.path()).expect("opens"))
            .expect("a Parquet seed reads")
            .build()
            .expect("a Parquet seed reads");
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("a Parquet seed reads");
        let name = path.file_stem().expect("a name").to_string_lossy().into_owned();
        let seed = stream(bytes[0], &schema, &batches);
        // The same table compressed otherwise: the same stream.
        if !want.iter().any(|(_, b)| *b == seed) {
            want.push((name.clone(), seed));
        }
        if name != "events" {
            continue;
        }
        for (tag, to) in [
            ("large", DataType::LargeUtf8),
            ("view", DataType::Utf8View),
            ("dict", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))),
        ] {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| {
                    if f.data_type() == &DataType::Utf8 {
                        f.as_ref().clone().with_data_type(to.clone())
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            let cast_schema = std::sync::Arc::new(Schema::new(fields));
            let cast: Vec<_> = batches
                .iter()
                .map(|b| {
                    let columns = b
                        .columns()
                        .iter()
                        .zip(cast_schema.fields())
                        .map(|(c, f)| arrow::compute::cast(c, f.data_type()).expect("a cast"))
                        .collect();
                    arrow::array::RecordBatch::try_new(cast_schema.clone(), columns).expect("a batch")
                })
                .collect();
            want.push((format!("events.{tag}"), stream(bytes[0], &cast_schema, &cast)));
        }
    }
    let dir = root.join("arrow");
    if std::env::var_os("CHANGELING_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).expect("a seed directory");
        for (name, bytes) in &want {
            std::fs::write(dir.join(name), bytes).expect("writing a seed");
        }
    }
    for (name, bytes) in &want {
        let path = dir.join(name);
        assert!(
            std::fs::read(&path).unwrap_or_default() == *bytes,
            "{} is not today's Parquet seed as Arrow; rewrite with CHANGELING_WRITE_SEEDS=1",
            path.display()
        );
    }
}

/// The spill decoder's seeds are frames of today's encoder (rewrite them
/// with `CHANGELING_WRITE_SEEDS=1 cargo test --test fuzz_corpus`).
#[test]
fn spill_seeds_are_todays_format() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for kind in [TableKind::Events, TableKind::Items, TableKind::Follows, TableKind::Accounts] {
        let text = std::fs::read(root.join(format!("jsonl/{kind}-00"))).expect("the JSONL seed");
        let want = bodies::spill_seed(kind, std::str::from_utf8(&text[1..]).expect("UTF-8 seed"));
        let path = root.join(format!("spill_decoder/{kind}"));
        if std::env::var_os("CHANGELING_WRITE_SEEDS").is_some() {
            std::fs::write(&path, &want).expect("writing a seed");
        }
        let have = std::fs::read(&path).unwrap_or_default();
        assert!(have == want, "{} is not today's spill format; rewrite with CHANGELING_WRITE_SEEDS=1", path.display());
    }
}

/// A few hundred mutations of the CSV alert seeds (bytes flipped,
/// inserted, removed; the file cut) through the alerts target's body, on
/// stable: the CSV reader is new, and a fuzzer is not always at hand. The
/// mutations are drawn from a fixed seed, so the run is the same each time;
/// how many still read as alerts is counted, so that the loop is seen to
/// reach past the parser.
#[test]
fn mutated_csv_alerts_keep_the_alerts_body() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/alerts");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    const BYTES: &[u8] = b"\",'=\r\n|-x0";
    let (mut read, mut tried) = (0, 0);
    for seed in ["small-hostile-hit.csv", "story-incident.csv"] {
        let original = std::fs::read(root.join(seed)).expect("a CSV seed");
        for _ in 0..150 {
            let mut data = original.clone();
            for _ in 0..1 + next(4) {
                let at = 1 + next(data.len() - 1);
                match next(4) {
                    0 => data[at] = BYTES[next(BYTES.len())],
                    1 => data.insert(at, BYTES[next(BYTES.len())]),
                    2 if data.len() > 2 => drop(data.remove(at)),
                    _ => data.truncate(at.max(2)),
                }
            }
            tried += 1;
            if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| bodies::alerts(&data))) {
                panic!("{seed} mutated to {:?}: {e:?}", String::from_utf8_lossy(&data));
            }
            let path = std::env::temp_dir().join(format!("changeling-mutated-{}.csv", std::process::id()));
            std::fs::write(&path, &data[1..]).expect("a temporary file");
            let need = if data[0] % 4 == 3 {
                changeling::alerts::read::Need::Rules
            } else {
                changeling::alerts::read::Need::Hits
            };
            read += usize::from(changeling::alerts::read::read_for(&path, need).is_ok());
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!("{read} of {tried} mutated CSV alert files read as alerts");
    assert!(
        read >= tried / 10,
        "only {read} of {tried} mutated files read as alerts: the mutations stop at the parser"
    );
}

#[test]
fn state_payload_corpus() {
    replay("state_payload", bodies::state_payload);
}

#[test]
fn state_files_corpus() {
    replay("state_files", bodies::state_files);
}

/// The daily-state targets' seeds are today's state (rewrite them with
/// `CHANGELING_WRITE_SEEDS=1 cargo test --test fuzz_corpus`): payloads of
/// the accounts of a small population, and the files of its state.
#[test]
fn state_seeds_are_todays_format() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (target, seeds) in
        [("state_payload", bodies::state_payload_seeds()), ("state_files", bodies::state_files_seeds())]
    {
        let dir = root.join(target);
        if std::env::var_os("CHANGELING_WRITE_SEEDS").is_some() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a seed directory");
            for (name, bytes) in &seeds {
                std::fs::write(dir.join(name), bytes).expect("writing a seed");
            }
        }
        let mut have: Vec<String> = std::fs::read_dir(&dir)
            .map(|es| es.map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        have.sort();
        let mut want: Vec<String> = seeds.iter().map(|(n, _)| n.clone()).collect();
        want.sort();
        assert_eq!(have, want, "{target}: seeds of another state; rewrite with CHANGELING_WRITE_SEEDS=1");
        for (name, bytes) in &seeds {
            let path = dir.join(name);
            assert!(
                std::fs::read(&path).unwrap_or_default() == *bytes,
                "{} is not today's state; rewrite with CHANGELING_WRITE_SEEDS=1",
                path.display()
            );
        }
    }
}

/// `n` mutations of `target`'s seeds, drawn from a fixed seed so that the
/// run is the same each time: each flips bits, sets or inserts bytes, cuts
/// the input or splices in a piece of another seed (its first byte, which
/// picks what the input is, mutated too, now and then). Fails naming the
/// first mutation that panics (its input left in the temporary
/// directory, as is the input of a mutation that aborts); returns how far
/// each got.
fn mutated<R>(target: &str, n: usize, body: fn(&[u8]) -> R) -> Vec<R> {
    let seeds: Vec<Vec<u8>> = inputs(target)
        .iter()
        .filter(|p| p.parent().and_then(|d| d.parent()).is_some_and(|d| d.ends_with("seeds")))
        .map(|p| std::fs::read(p).expect("a seed"))
        .filter(|s| s.len() > 1)
        .collect();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    const BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'0', b'9'];
    let mut out = Vec::with_capacity(n);
    let last = std::env::temp_dir().join(format!("changeling-{target}-mutated-{}", std::process::id()));
    for k in 0..n {
        let from = next(seeds.len());
        let mut data = seeds[from].clone();
        for _ in 0..1 + next(3) {
            let at = 1 + next(data.len() - 1);
            match next(6) {
                0 => data[at] ^= 1 << next(8),
                1 => data[at] = BYTES[next(BYTES.len())],
                2 => data.insert(at, BYTES[next(BYTES.len())]),
                3 => data.truncate(at.max(2)),
                4 => {
                    let other = &seeds[next(seeds.len())];
                    let start = next(other.len());
                    let piece = &other[start..(start + 1 + next(64)).min(other.len())];
                    let end = (at + next(64)).min(data.len());
                    data.splice(at..end, piece.iter().copied());
                }
                _ => data[0] ^= 1 << next(8),
            }
        }
        // Saved before it runs: an abort (an allocation that fails) is
        // not a panic, and leaves the input behind.
        std::fs::write(&last, &data).expect("saving the input");
        match panic::catch_unwind(AssertUnwindSafe(|| body(&data))) {
            Ok(r) => out.push(r),
            Err(e) => panic!("{target}: mutation {k} of seed {from} panics ({e:?}); input saved as {}", last.display()),
        }
    }
    let _ = std::fs::remove_file(&last);
    out
}

fn tally(reached: &[bodies::Reach]) -> BTreeMap<bodies::Reach, usize> {
    let mut t = BTreeMap::new();
    for r in reached {
        *t.entry(*r).or_insert(0) += 1;
    }
    t
}

/// A few hundred mutations of the account payload seeds through the
/// state_payload target's body, on stable, so that CI exercises it
/// without a fuzzer: some of them must still resume the account (the loop
/// reaches past the codec), others fail with an error.
#[test]
fn mutated_account_payloads_keep_the_state_payload_body() {
    let reached = mutated("state_payload", 300, bodies::state_payload);
    let t = tally(&reached);
    eprintln!("state_payload: {t:?}");
    assert!(t.get(&bodies::Reach::Ran).is_some_and(|&n| n >= 10), "too few mutations resumed: {t:?}");
    assert!(t.get(&bodies::Reach::RunFailed).is_some_and(|&n| n >= 10), "too few mutations refused: {t:?}");
}

/// A few hundred mutations of the state files through the state_files
/// target's body: a state opened with one damaged file runs the next
/// batch or fails with an error, never panics; some must reach the run.
#[test]
fn mutated_state_files_keep_the_state_files_body() {
    let reached = mutated("state_files", 300, bodies::state_files);
    let t = tally(&reached);
    eprintln!("state_files: {t:?}");
    assert!(t.get(&bodies::Reach::Ran).is_some_and(|&n| n >= 10), "too few mutations ran: {t:?}");
    assert!(t.get(&bodies::Reach::Refused).is_some_and(|&n| n >= 10), "too few mutations refused: {t:?}");
}

/// Every seed of the daily-state targets is a whole state (resealed or
/// not): each resumes its account, or runs the batch on its state, so
/// that the mutations start from inputs that reach the run.
#[test]
fn state_seeds_reach_the_run() {
    for (name, seed) in bodies::state_payload_seeds() {
        assert_eq!(bodies::state_payload(&seed), bodies::Reach::Ran, "state_payload seed {name}");
    }
    for (name, seed) in bodies::state_files_seeds() {
        assert_eq!(bodies::state_files(&seed), bodies::Reach::Ran, "state_files seed {name}");
    }
}
