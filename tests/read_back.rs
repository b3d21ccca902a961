//! Alerts read back by `eval`, `diff` and `report` (issue 21, items 3 and
//! 4; issue 20, item 9): the same alerts give the same answers in any format; an alert
//! repeated whole, or of a tier the rules do not have, is refused rather
//! than counted as something else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling"))
        .args(args)
        .env_remove("CHANGELING_RULES")
        .output()
        .expect("the binary runs")
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const STORY: &str = "tests/fixtures/story";

/// The story's alerts in `dir`, as `name` (its extension picks the format).
fn story_alerts(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let o = run(args!["score", "-q", "--data", STORY, "-o", &out]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    out
}

#[test]
fn the_report_of_parquet_or_csv_alerts_is_the_report_of_the_same_jsonl_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = story_alerts(tmp.path(), "alerts.jsonl");
    let parquet = story_alerts(tmp.path(), "alerts.parquet");
    // CSV of hit rows reads back whole too (issue 20, item 9).
    let csv = tmp.path().join("alerts.csv");
    let o = run(args!["score", "-q", "--data", STORY, "--csv-rows", "hit", "-o", &csv]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The story's high incident has three families, written out of name
    // order (content, cleanup, context): the order is part of what is read.
    assert!(std::fs::read_to_string(&jsonl).unwrap().contains(r#""families":{"content":"#));
    let mut pages = Vec::new();
    for (alerts, page) in [(&jsonl, "a.html"), (&parquet, "b.html"), (&csv, "c.html")] {
        let out = tmp.path().join(page);
        let o = run(args!["report", "--alerts", alerts, "--data", STORY, "-o", &out]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let html = std::fs::read_to_string(&out).unwrap();
        // The page names its alerts file: the same name for both.
        pages.push(html.replace(&alerts.display().to_string(), "ALERTS"));
    }
    assert!(pages[0].contains("cleanup"), "the report does not show the families");
    for (other, name) in [(&pages[1], "Parquet"), (&pages[2], "CSV")] {
        if pages[0] != *other {
            let at = pages[0].bytes().zip(other.bytes()).position(|(a, b)| a != b).unwrap_or(0);
            let from = pages[0].floor_char_boundary(at.saturating_sub(200));
            panic!(
                "the reports differ at byte {at}:\nJSONL: {}\n{name}: {}",
                &pages[0][from..pages[0].floor_char_boundary(at + 200)],
                &other[from..other.floor_char_boundary(at + 200)]
            );
        }
    }
}

#[test]
fn an_alert_repeated_whole_is_refused_by_eval_diff_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = story_alerts(tmp.path(), "alerts.jsonl");
    let text_of = std::fs::read_to_string(&jsonl).unwrap();
    let lines = text_of.lines().count();
    assert!(lines >= 2);
    let twice = tmp.path().join("twice.jsonl");
    std::fs::write(&twice, format!("{text_of}{text_of}")).unwrap();
    let message = format!("twice.jsonl:{}: repeats the alert of line 1", lines + 1);
    for o in [
        run(args!["eval", "--data", STORY, "--alerts", &twice]),
        run(args!["diff", &jsonl, &twice]),
        run(args!["report", "--alerts", &twice, "-o", &tmp.path().join("r.html")]),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
        assert!(text(&o.stderr).contains(&message), "{}", text(&o.stderr));
    }
    // The same alert twice in Parquet: a row repeated.
    let parquet = tmp.path().join("twice.parquet");
    let o = run(args!["score", "-q", "--data", STORY, "-o", &tmp.path().join("once.parquet")]);
    assert!(o.status.success());
    write_parquet_twice(&tmp.path().join("once.parquet"), &parquet);
    let o = run(args!["eval", "--data", STORY, "--alerts", &parquet]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("repeats the alert of row 1"), "{}", text(&o.stderr));
    // Once is fine.
    let o = run(args!["eval", "--data", STORY, "--alerts", &jsonl]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// Writes the rows of the Parquet file `from` twice into `to`.
fn write_parquet_twice(from: &Path, to: &Path) {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(from).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
    let mut w = ArrowWriter::try_new(std::fs::File::create(to).unwrap(), schema, None).unwrap();
    for b in batches.iter().chain(batches.iter()) {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn diff_refuses_alerts_of_a_tier_the_rules_do_not_have() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = story_alerts(tmp.path(), "alerts.jsonl");
    let renamed = tmp.path().join("renamed.jsonl");
    let t = std::fs::read_to_string(&jsonl).unwrap().replace(r#""tier":"high""#, r#""tier":"critical""#);
    assert!(t.contains("critical"));
    std::fs::write(&renamed, t).unwrap();
    for (old, new) in [(&jsonl, &renamed), (&renamed, &jsonl)] {
        let o = run(args!["diff", old, new]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(err.contains("renamed.jsonl:") && err.contains("tier `critical` is not a tier of the rules"), "{err}");
    }
    // Scored rules on one side, the renamed file on the other.
    let o = run(args!["diff", "builtin", &renamed, "--data", STORY]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("tier `critical` is not a tier of the rules"), "{}", text(&o.stderr));
}
