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
