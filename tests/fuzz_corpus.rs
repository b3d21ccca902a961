//! Replays the fuzz targets' saved inputs under stable `cargo test`: the
//! seeds (`fuzz/seeds/<target>/`) and every input a fuzzer found failing
//! (`fuzz/regressions/<target>/`, kept after the fix). The bodies are the
//! fuzz targets' own (`fuzz/src/bodies.rs`); `fuzz/run.sh` runs the
//! fuzzers themselves (nightly).

#[path = "../fuzz/src/bodies.rs"]
mod bodies;

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
fn replay(target: &str, body: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no saved inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable input");
            panic::catch_unwind(AssertUnwindSafe(|| body(&data))).is_err()
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
