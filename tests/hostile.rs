//! The hostile-input corpus (issue 12): datasets and arguments that a
//! nightly job over logs it does not control may meet. Each case states
//! the exit code, the records skipped per table and a fragment of the
//! message; it is built in a temporary directory (small, or generated),
//! over every table, format (JSONL, CSV, Parquet) and codec (plain, gzip,
//! zstd). Nothing may be lost silently, invented, hung or crashed on.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a file is compressed.
#[derive(Clone, Copy)]
enum Codec {
    Plain,
    Gz,
    Zst,
}

fn encode(codec: Codec, text: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Plain => text.to_vec(),
        Codec::Gz => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        Codec::Zst => zstd::encode_all(text, 1).unwrap(),
    }
}

fn suffix(codec: Codec) -> &'static str {
    match codec {
        Codec::Plain => "",
        Codec::Gz => ".gz",
        Codec::Zst => ".zst",
    }
}

/// Valid events: `n` likes by a few accounts, as JSONL lines.
fn events_jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"ts\": {}, \"actor\": \"a{}\", \"action\": \"like\", \"target\": \"t-{}\"}}\n",
                1_600_000_000_000i64 + i as i64 * 60_000,
                i % 7,
                i % 13
            )
        })
        .collect()
}

/// The same events as CSV with a header.
fn events_csv(n: usize) -> String {
    let mut s = String::from("ts,actor,action,target\n");
    for i in 0..n {
        s.push_str(&format!("{},a{},like,t-{}\n", 1_600_000_000_000i64 + i as i64 * 60_000, i % 7, i % 13));
    }
    s
}

/// A case: files of a dataset, arguments, and what must come out.
struct Case {
    name: &'static str,
    files: Vec<(String, Vec<u8>)>,
    /// Arguments after `--data DIR` (the command comes first).
    command: &'static [&'static str],
    extra: Vec<String>,
    code: i32,
    /// (table, records skipped), from the `--json` summary.
    skipped: Vec<(&'static str, u64)>,
    /// Events kept, from the `--json` summary.
    events: Option<u64>,
    message: &'static str,
}

impl Case {
    fn new(name: &'static str, code: i32, message: &'static str) -> Case {
        Case {
            name,
            files: Vec::new(),
            command: &["score", "--json"],
            extra: Vec::new(),
            code,
            skipped: Vec::new(),
            events: None,
            message,
        }
    }

    fn file(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Case {
        self.files.push((name.to_string(), bytes.into()));
        self
    }

    fn text(self, name: &str, codec: Codec, text: &str) -> Case {
        let name = format!("{name}{}", suffix(codec));
        let bytes = encode(codec, text.as_bytes());
        self.file(&name, bytes)
    }

    fn skipped(mut self, table: &'static str, n: u64) -> Case {
        self.skipped.push((table, n));
        self
    }

    fn events(mut self, n: u64) -> Case {
        self.events = Some(n);
        self
    }

    fn args(mut self, args: &[&str]) -> Case {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn command(mut self, command: &'static [&'static str]) -> Case {
        self.command = command;
        self
    }

    fn run(&self) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        for (name, bytes) in &self.files {
            let path = data.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let extra: Vec<String> = self.extra.iter().map(|a| a.replace("{data}", data.to_str().unwrap())).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_changeling"));
        cmd.args(self.command).arg("--data").arg(&data).args(&extra);
        let o = run_with_timeout(&mut cmd, 60);
        let err = String::from_utf8_lossy(&o.stderr);
        let name = self.name;
        assert_eq!(o.status.code(), Some(self.code), "{name}: exit code; stderr:\n{err}");
        assert!(err.contains(self.message), "{name}: expected `{}` in:\n{err}", self.message);
        assert!(!err.contains('\x1b'), "{name}: a raw escape character reached the terminal");
        if self.skipped.is_empty() && self.events.is_none() {
            return;
        }
        let json = &err[err.find('{').unwrap_or_else(|| panic!("{name}: no JSON summary in:\n{err}"))..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}:\n{err}"));
        for (table, n) in &self.skipped {
            assert_eq!(v["skipped"][table].as_u64(), Some(*n), "{name}: {table} skipped; {err}");
        }
        if let Some(n) = self.events {
            assert_eq!(v["events"].as_u64(), Some(n), "{name}: events kept");
        }
    }
}

fn run_with_timeout(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the binary runs");
    // Drained in threads so that a full pipe cannot block the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).unwrap();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).unwrap();
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("hung: no exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

fn parquet_events(rows: usize, null_actor_at: Option<usize>) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    let ts: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| 1_600_000_000_000 + i as i64 * 60_000)));
    let actor: ArrayRef = Arc::new(StringArray::from_iter(
        (0..rows).map(|i| if Some(i) == null_actor_at { None } else { Some(format!("a{}", i % 7)) }),
    ));
    let action: ArrayRef = Arc::new(StringArray::from_iter_values((0..rows).map(|_| "like")));
    let batch = RecordBatch::try_from_iter([("ts", ts), ("actor", actor), ("action", action)]).unwrap();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

/// One broken record among valid ones, in every table, format and codec.
#[test]
fn one_bad_record_is_skipped_and_counted_in_every_table_format_and_codec() {
    let codecs = [Codec::Plain, Codec::Gz, Codec::Zst];
    for codec in codecs {
        let mut broken = events_jsonl(50);
        broken.insert_str(0, "{\"ts\": 1600000000000, \"actor\": \n");
        Case::new("events jsonl", 0, "").text("events.jsonl", codec, &broken).skipped("events", 1).events(50).run();
        let mut csv = events_csv(50);
        csv.push_str("1600000000000,a1\n");
        Case::new("events csv", 0, "").text("events.csv", codec, &csv).skipped("events", 1).events(50).run();
        let base = events_jsonl(20);
        let tables: [(&str, &str, &str); 4] = [
            ("items", "{\"id\": \"t-1\", \"author\": \"u1\"}\n{\"id\": \"t-2\"}\n", "id,author\nt-1,u1\nt-2,\n"),
            (
                "follows",
                "{\"follower\": \"a1\", \"followee\": \"a2\"}\n{\"follower\": \"a1\"}\n",
                "follower,followee\na1,a2\na1,\n",
            ),
            ("accounts", "{\"id\": \"a1\"}\n{\"handle\": \"x\"}\n", "id,handle\na1,x\n,y\n"),
            (
                "impressions",
                "{\"actor\": \"a1\", \"item\": \"t-1\", \"ts\": 1600000000000}\n{\"actor\": \"a1\", \"item\": \"t-1\"}\n",
                "actor,item,ts\na1,t-1,1600000000000\na1,t-1,\n",
            ),
        ];
        for (table, jsonl, csv) in tables {
            Case::new("side table jsonl", 0, "")
                .file("events.jsonl", base.clone())
                .text(&format!("{table}.jsonl"), codec, jsonl)
                .skipped(table, 1)
                .run();
            Case::new("side table csv", 0, "")
                .file("events.jsonl", base.clone())
                .text(&format!("{table}.csv"), codec, csv)
                .skipped(table, 1)
                .run();
        }
    }
    Case::new("events parquet", 0, "").file("events.parquet", parquet_events(30, Some(3))).skipped("events", 1).run();
    // Labels are read by eval only.
    Case::new("labels", 0, "")
        .command(&["eval", "-q"])
        .file("events.jsonl", events_jsonl(20))
        .file("labels.jsonl", "{\"actor\": \"a1\", \"label\": \"compromised\"}\n{\"label\": \"benign\"}\n")
        .run();
}

#[test]
fn unreadable_files_stop_the_run_naming_them() {
    Case::new("parquet garbage", 2, "events.parquet").file("events.parquet", b"PAR1 not parquet PAR1".to_vec()).run();
    Case::new("gzip garbage", 2, "events.jsonl.gz").file("events.jsonl.gz", b"\x1f\x8bnot gzip".to_vec()).run();
    Case::new("zstd cut short", 2, "events.csv.zst")
        .file("events.csv.zst", encode(Codec::Zst, events_csv(1000).as_bytes())[..200].to_vec())
        .run();
    Case::new("bz2 table", 2, "compression `.bz2` is not supported").file("events.jsonl.bz2", "x").run();
    Case::new("labels bz2", 2, "compression `.bz2` is not supported")
        .command(&["eval", "-q"])
        .file("events.jsonl", events_jsonl(5))
        .file("labels.jsonl.bz2", "x")
        .run();
    Case::new("csv empty header", 2, "empty header row").file("events.csv", ",,\n1,2,3\n").run();
    Case::new("csv header never closed", 2, "unreadable header row").file("events.csv", "ts,\"actor\n1,2\n").run();
}

#[test]
fn part_directories_read_or_refuse_every_file() {
    let part = events_jsonl(10);
    Case::new("markers ignored", 0, "")
        .file("events/part-0.jsonl", part.clone())
        .file("events/_SUCCESS", "")
        .file("events/.part-0.jsonl.crc", "x")
        .file("events/part-1.csv.gz", encode(Codec::Gz, events_csv(5).replace(",like,", ",unlike,").as_bytes()))
        .events(15)
        .skipped("events", 0)
        .run();
    for (name, message) in [
        ("events/part-1.jsonl.bz2", "not a data file of a known format"),
        ("events/part-1.json.snappy", "not a data file of a known format"),
        ("events/part-1.csv.lz4", "not a data file of a known format"),
        ("events/part-1.txt", "not a data file of a known format"),
        ("events/day=2020-09-09/part-0.jsonl", "partitioned tables are not supported"),
        ("items/region=eu/part-0.jsonl", "partitioned tables are not supported"),
    ] {
        Case::new("refused part", 2, message).file("events/part-0.jsonl", part.clone()).file(name, "x").run();
    }
    // Symbolic links: dangling, looping.
    for (target, message) in [("gone.jsonl", "dangling"), ("part-1.jsonl", "looping")] {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("events");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("part-0.jsonl"), &part).unwrap();
        std::os::unix::fs::symlink(t.join(target), t.join("part-1.jsonl")).unwrap();
        let o = run_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_changeling")).args(["score", "-q", "--data"]).arg(dir.path()),
            60,
        );
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains(message), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn a_csv_part_without_a_header_row_is_refused_naming_it() {
    // Before: its first record was read as the header and lost uncounted.
    let with = events_csv(6);
    let without: String = with.lines().skip(1).map(|l| format!("{l}\n")).collect();
    for codec in [Codec::Plain, Codec::Gz] {
        Case::new("header-less part", 2, "part-1.csv")
            .text("events/part-0.csv", codec, &with)
            .text("events/part-1.csv", codec, &without)
            .run();
        Case::new("header-less part", 2, "the header row has no column `ts`, `actor`, `action`")
            .text("events/part-0.csv", codec, &with)
            .text("events/part-1.csv", codec, &without)
            .run();
        // A header naming only some of the required columns.
        Case::new("header without actor", 2, "the header row has no column `actor` (every events record needs it)")
            .text("events.csv", codec, "ts,who,action\n1600000000000,a,like\n")
            .run();
    }
    // Items need `id` and `author`.
    Case::new("items without a header", 2, "no column `id`, `author`")
        .text("events.csv", Codec::Plain, &with)
        .text("items.csv", Codec::Plain, "t-1,a1\nt-2,a2\n")
        .run();
}

#[test]
fn csv_quotes_lose_one_record_and_invent_none() {
    // An unterminated quote on line 3 of 100,000 rows used to read as 11
    // events and 0 skipped.
    let mut csv = events_csv(100_000);
    let at = csv.match_indices('\n').nth(2).unwrap().0 + 1;
    csv.insert_str(at, "1600000000000,a1,like,\"t-open\n");
    Case::new("unterminated quote", 0, "")
        .text("events.csv", Codec::Zst, &csv)
        .skipped("events", 1)
        .events(100_000)
        .run();
    // The same at the end of the file.
    let mut csv = events_csv(1000);
    csv.push_str("1600000000000,a1,like,\"never closed");
    Case::new("unterminated quote at the end", 0, "")
        .text("events.csv", Codec::Plain, &csv)
        .skipped("events", 1)
        .events(1000)
        .run();
    // A stray quote inside an unquoted cell, then a quoted cell over two
    // lines whose second line looks like a record: no password_change.
    let mut csv = String::from("ts,actor,action,target,text\n1600000000000,li\"u,like,t-1,\n");
    for i in 0..5000 {
        csv.push_str(&format!("{},a{},like,t-{},plain\n", 1_600_000_060_000i64 + i * 1000, i % 7, i % 13));
    }
    csv.push_str("1600009000000,liu,post,t-9,\"first line\n1600009000001,liu,password_change,x,y\"\n");
    Case::new("stray quote", 0, "")
        .text("events.csv", Codec::Gz, &csv)
        .args(&["--out", "/dev/null", "--format", "jsonl"])
        .skipped("events", 0)
        .events(5002)
        .run();
    // Longer than --max-record-bytes: skipped, counted, named.
    let mut jsonl = events_jsonl(100);
    jsonl.push_str(&format!("{{\"ts\": 1600000000000, \"actor\": \"a1\", \"action\": \"{}\"}}\n", "x".repeat(5000)));
    Case::new("long line", 0, "")
        .text("events.jsonl", Codec::Zst, &jsonl)
        .args(&["--max-record-bytes", "1KiB"])
        .skipped("events", 1)
        .events(100)
        .run();
}

#[test]
fn runs_that_read_nothing_or_score_nothing_fail() {
    Case::new("every record skipped", 2, "50 of 50 events records skipped")
        .file("events.jsonl", "{broken\n".repeat(50))
        .run();
    let mut mostly_bad = "{broken\n".repeat(30);
    mostly_bad.push_str(&events_jsonl(10));
    Case::new("share over the limit", 2, "30 of 40 events records skipped (75.0%)")
        .file("events.jsonl", mostly_bad.clone())
        .args(&["--max-skipped-share", "0.5"])
        .run();
    Case::new("share under the limit", 0, "")
        .file("events.jsonl", mostly_bad)
        .args(&["--max-skipped-share", "0.8"])
        .skipped("events", 30)
        .run();
    Case::new("a side table all bad", 2, "items records skipped")
        .file("events.jsonl", events_jsonl(10))
        .file("items.csv", "id,author\n,\n,\n")
        .run();
    let rules = tempfile::tempdir().unwrap();
    let empty: &'static str = Box::leak(rules.path().to_str().unwrap().to_string().into_boxed_str());
    Case::new("no rules", 2, "no rules").file("events.jsonl", events_jsonl(10)).args(&["--rules", empty]).run();
}

#[test]
fn bad_arguments_are_refused_with_what_to_pass() {
    Case::new("memory 0", 2, "pass 1MiB or more").file("events.jsonl", events_jsonl(5)).args(&["--memory", "0"]).run();
    Case::new("threads 10000", 0, "using").file("events.jsonl", events_jsonl(5)).args(&["--threads", "10000"]).run();
    Case::new("skipped share over 1", 2, "between 0 and 1")
        .file("events.jsonl", events_jsonl(5))
        .args(&["--max-skipped-share", "2"])
        .run();
}

#[test]
fn outputs_never_overwrite_inputs() {
    for (out, message) in [
        ("{data}/events.jsonl", "it is the input file"),
        ("{data}/./events.jsonl", "it is the input file"),
        ("{data}/follows.jsonl", "it would be read as a table"),
        ("{data}/items/part-9.csv", "it would be read as a table"),
        ("{data}", "it is the directory"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let events = events_jsonl(10);
        std::fs::write(data.join("events.jsonl"), &events).unwrap();
        let out = out.replace("{data}", data.to_str().unwrap());
        let o = run_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_changeling"))
                .args(["score", "-q", "--format", "jsonl", "--data"])
                .arg(&data)
                .args(["--out", &out]),
            60,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{out}: {err}");
        assert!(err.contains(message), "{out}: {err}");
        assert_eq!(std::fs::read_to_string(data.join("events.jsonl")).unwrap(), events, "{out}: input changed");
        assert!(!data.join("follows.jsonl").exists());
    }
    // Links to an input, symbolic and hard, and report over its alerts.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let events = events_jsonl(10);
    std::fs::write(data.join("events.jsonl"), &events).unwrap();
    std::os::unix::fs::symlink(data.join("events.jsonl"), dir.path().join("sym.jsonl")).unwrap();
    std::fs::hard_link(data.join("events.jsonl"), dir.path().join("hard.jsonl")).unwrap();
    for link in ["sym.jsonl", "hard.jsonl"] {
        let o = run_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_changeling"))
                .args(["score", "-q", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(dir.path().join(link)),
            60,
        );
        assert_eq!(o.status.code(), Some(2), "{link}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to write"), "{link}");
    }
    assert_eq!(std::fs::read_to_string(data.join("events.jsonl")).unwrap(), events);
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, "").unwrap();
    let o = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_changeling"))
            .args(["report", "--alerts"])
            .arg(&alerts)
            .arg("--out")
            .arg(&alerts),
        60,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to write"));
}

#[test]
fn log_values_reach_the_terminal_escaped_and_shortened() {
    let evil = format!("\x1b]0;owned\x07\x1b[2J{}", "y".repeat(5000));
    let mut jsonl = events_jsonl(10);
    jsonl.push_str(&format!(
        "{{\"ts\": \"{}\", \"actor\": \"a1\", \"action\": \"like\"}}\n",
        evil.replace('\x1b', "\\u001b").replace('\x07', "\\u0007")
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), jsonl).unwrap();
    for strict in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_changeling"));
        cmd.args(["score", "--out", "/dev/null", "--format", "jsonl", "--data"]).arg(dir.path());
        if strict {
            cmd.arg("--strict");
        }
        let o = run_with_timeout(&mut cmd, 60);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains('\x1b') && !err.contains('\x07'), "strict {strict}: raw control characters: {err:?}");
        assert!(err.lines().all(|l| l.chars().count() < 1100), "strict {strict}: a line not shortened");
    }
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    // stderr and stdout closed before anything is written.
    let csv = &["score", "--format", "csv"][..];
    for (args, on_stdout) in
        [(&["check"][..], false), (&["rules", "list"][..], true), (&["score"][..], true), (csv, true)]
    {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_changeling"));
        cmd.args(args);
        if on_stdout {
            cmd.stdout(writer).stderr(Stdio::null());
        } else {
            cmd.stderr(writer).stdout(Stdio::null());
        }
        let mut child = cmd.spawn().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: a closed pipe ends quietly with 0");
    }
}
