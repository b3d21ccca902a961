//! The same dataset in every text form of the contract (JSONL, CSV; plain,
//! gzip, zstd; one file or a directory of part files; epoch-millisecond
//! timestamps instead of RFC 3339; numeric ids) gives byte-identical alerts.

use std::io::Write;
use std::path::Path;
use std::process::Command;

const STORY: &str = "tests/fixtures/story";
const TABLES: [&str; 5] = ["events", "items", "follows", "accounts", "labels"];

fn alerts(dir: &Path) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_changeling"))
        .args(["score", "--quiet", "--data"])
        .arg(dir)
        .output()
        .expect("the binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!o.stdout.is_empty());
    o.stdout
}

fn rows(table: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(Path::new(STORY).join(format!("{table}.jsonl"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write_csv(path: &Path, rows: &[serde_json::Map<String, serde_json::Value>]) {
    let mut columns: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
    columns.sort();
    columns.dedup();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(&columns).unwrap();
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match r.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("|"),
                Some(v) => v.to_string(),
            })
            .collect();
        w.write_record(&cells).unwrap();
    }
    w.flush().unwrap();
}

fn jsonl(rows: &[serde_json::Map<String, serde_json::Value>]) -> String {
    rows.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect()
}

#[test]
fn every_text_format_gives_the_same_alerts() {
    let expected = alerts(Path::new(STORY));
    let tmp = tempfile::tempdir().unwrap();

    // CSV, one file per table.
    let csv_dir = tmp.path().join("csv");
    std::fs::create_dir(&csv_dir).unwrap();
    for t in TABLES {
        write_csv(&csv_dir.join(format!("{t}.csv")), &rows(t));
    }
    assert!(alerts(&csv_dir) == expected, "CSV differs");

    // gzip and zstd JSONL.
    let gz = tmp.path().join("gz");
    let zst = tmp.path().join("zst");
    std::fs::create_dir(&gz).unwrap();
    std::fs::create_dir(&zst).unwrap();
    for t in TABLES {
        let text = jsonl(&rows(t));
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(gz.join(format!("{t}.jsonl.gz"))).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
        std::fs::write(zst.join(format!("{t}.jsonl.zst")), zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    }
    assert!(alerts(&gz) == expected, "gzip differs");
    assert!(alerts(&zst) == expected, "zstd differs");

    // Part files as Spark writes them (with _SUCCESS and .crc files beside),
    // epoch-millisecond timestamps, mixed compression.
    let parts = tmp.path().join("parts");
    std::fs::create_dir_all(parts.join("events")).unwrap();
    let mut events = rows("events");
    for (i, r) in events.iter_mut().enumerate() {
        if i % 2 == 0 {
            let ts = changeling::time::parse_rfc3339(r["ts"].as_str().unwrap()).unwrap();
            r.insert("ts".into(), ts.into());
        }
    }
    for (k, chunk) in events.chunks(7000).enumerate() {
        let text = jsonl(chunk);
        if k % 2 == 0 {
            std::fs::write(parts.join(format!("events/part-{k:05}.json")), text).unwrap();
        } else {
            std::fs::write(
                parts.join(format!("events/part-{k:05}.json.zst")),
                zstd::encode_all(text.as_bytes(), 1).unwrap(),
            )
            .unwrap();
        }
    }
    std::fs::write(parts.join("events/_SUCCESS"), "").unwrap();
    std::fs::write(parts.join("events/.part-00000.json.crc"), "junk").unwrap();
    for t in &TABLES[1..] {
        std::fs::write(parts.join(format!("{t}.jsonl")), jsonl(&rows(t))).unwrap();
    }
    assert!(alerts(&parts) == expected, "part files differ");
}

#[test]
fn a_table_given_twice_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("events.jsonl"), r#"{"ts":0,"actor":"a","action":"like"}"#).unwrap();
    std::fs::write(tmp.path().join("events.csv"), "ts,actor,action\n0,a,like\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_changeling")).args(["score", "--data"]).arg(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("given more than once"));
}
