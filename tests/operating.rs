//! Operating changeling every day (issue 20), end to end through the
//! binary: datasets not overwritten by accident, outputs named as users
//! name them, messages that do not leak temporary directories.

use std::path::Path;
use std::process::{Command, Output};

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> Output {
    let o = changeling(args);
    assert!(o.status.success(), "changeling {args:?}: {}", stderr(&o));
    o
}

/// A tiny synthetic population in `dir`.
fn synth(dir: &Path, seed: &str, more: &[&str]) -> Output {
    let out = dir.to_str().unwrap();
    let mut args = vec!["synth", "--accounts", "100", "--days", "2", "--seed", seed, "--out", out, "--quiet"];
    args.extend(more);
    changeling(&args)
}

#[test]
fn synth_refuses_to_write_over_a_dataset_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = tmp.path().join("pop");
    let first = synth(&pop, "1", &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let events = pop.join("events.jsonl");
    let before = std::fs::read(&events).unwrap();

    let again = synth(&pop, "2", &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(err.contains("already holds a dataset") && err.contains("events.jsonl"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&events).unwrap(), before, "the first dataset was changed");

    let forced = synth(&pop, "2", &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(&events).unwrap(), before, "--force wrote nothing");

    // A directory that exists without a dataset is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "mine").unwrap();
    let o = synth(&empty, "1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn dev_null_needs_no_format() {
    let o = ok(&["score", "--data", "tests/fixtures/story", "-o", "/dev/null", "--quiet"]);
    assert!(o.stdout.is_empty());
    ok(&["score", "--data", "tests/fixtures/story", "-o", "/dev/null", "--format", "parquet", "--quiet"]);
}

#[test]
fn a_format_the_extension_contradicts_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.csv");
    let o =
        changeling(&["score", "--data", "tests/fixtures/story", "--format", "parquet", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("names a .csv file but --format is parquet"), "{err}");
    assert!(!out.exists(), "a file was written");
    // The same format, or an extension that names none, is fine.
    ok(&["score", "--data", "tests/fixtures/story", "--format", "csv", "-o", out.to_str().unwrap(), "--quiet"]);
    let txt = tmp.path().join("x.txt");
    ok(&["score", "--data", "tests/fixtures/story", "--format", "jsonl", "-o", txt.to_str().unwrap(), "--quiet"]);
}

#[test]
fn messages_about_the_demo_do_not_name_its_temporary_directory() {
    let o = changeling(&["explain", "--actor", "nobody-at-all"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("the built-in demo dataset"), "{err}");
    assert!(!err.contains("changeling-demo"), "{err}");
}

/// A copy of the story fixture in `dir` with every time (`ts`, `since`,
/// `created_at`, `start`, `end`) as a JSON number of epoch `per_second`ths
/// of a second: seconds for 1, microseconds for 1,000,000.
fn story_in_numbers(dir: &Path, per_second: i128) {
    std::fs::create_dir_all(dir).unwrap();
    for table in ["events", "items", "follows", "accounts", "labels"] {
        let text = std::fs::read_to_string(format!("tests/fixtures/story/{table}.jsonl")).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
            for k in ["ts", "since", "created_at", "start", "end"] {
                if let Some(t) = v.get(k).and_then(|t| t.as_str()) {
                    let ms = i128::from(changeling::time::parse_timestamp(t).unwrap());
                    let n = ms * per_second / 1000;
                    v.insert(k.into(), serde_json::Value::Number(serde_json::Number::from_i128(n).unwrap()));
                }
            }
            out.push_str(&serde_json::to_string(&v).unwrap());
            out.push('\n');
        }
        std::fs::write(dir.join(format!("{table}.jsonl")), out).unwrap();
    }
}

#[test]
fn epoch_seconds_are_an_error_naming_time_unit_and_read_right_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let secs = tmp.path().join("story-s");
    story_in_numbers(&secs, 1);
    let secs = secs.to_str().unwrap();
    let o = changeling(&["score", "--data", secs]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("look like epoch seconds") && err.contains("--time-unit s"), "{err}");
    assert!(err.contains("1970-01-"), "the message shows the times as read: {err}");
    assert!(o.stdout.is_empty(), "alerts written");

    // Told the unit, the alerts are the RFC 3339 fixture's, byte for byte.
    let want = ok(&["score", "--data", "tests/fixtures/story", "--quiet"]).stdout;
    assert!(!want.is_empty());
    assert!(ok(&["score", "--data", secs, "--time-unit", "s", "--quiet"]).stdout == want);
    let us = tmp.path().join("story-us");
    story_in_numbers(&us, 1_000_000);
    assert!(ok(&["score", "--data", us.to_str().unwrap(), "--time-unit", "us", "--quiet"]).stdout == want);

    // The other commands that read data take it too.
    let o = changeling(&["explain", "--data", secs, "--actor", "liu"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text =
        String::from_utf8(ok(&["explain", "--data", secs, "--actor", "liu", "--time-unit", "s"]).stdout).unwrap();
    assert!(text.contains("2020-09-09T13:58:00Z"), "{text}");
    let o = changeling(&["eval", "--data", secs]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ok(&["eval", "--data", secs, "--time-unit", "s"]);
}

#[test]
fn the_summary_shows_each_tables_time_span() {
    let o = ok(&["score", "--data", "tests/fixtures/story", "--json", "-o", "/dev/null"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let span = &v["time_span"];
    assert_eq!(span["events"]["first"], "2019-09-01T08:41:00Z", "{span}");
    assert!(span["events"]["last"].as_str().unwrap().starts_with("2020-"), "{span}");
    assert_eq!(span["follows"]["first"], "2018-06-01T00:00:00Z", "{span}");
    let o = ok(&["score", "--data", "tests/fixtures/story", "-o", "/dev/null"]);
    let err = stderr(&o);
    assert!(err.contains("\n  times      follows  2018-06-01T00:00:00Z .. 2019-01-01T00:00:00Z\n"), "{err}");
    assert!(err.contains("\n             events   2019-09-01T08:41:00Z .. 2020-09-10T17:36:00Z\n"), "{err}");
}

#[test]
fn parquet_integer_times_take_the_unit_too() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let secs: Vec<i64> = (0..20).map(|i| 1_599_660_000 + i * 60).collect();
    let batch = RecordBatch::try_from_iter([
        ("ts", Arc::new(Int64Array::from(secs)) as arrow::array::ArrayRef),
        ("actor", Arc::new(StringArray::from(vec!["a"; 20]))),
        ("action", Arc::new(StringArray::from(vec!["login"; 20]))),
    ])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(dir.join("events.parquet")).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let d = dir.to_str().unwrap();
    let o = changeling(&["score", "--data", d, "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("events.parquet: the events times run from 1970-01-19T"), "{}", stderr(&o));
    let o = ok(&["score", "--data", d, "-o", "/dev/null", "--time-unit", "s", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["time_span"]["events"]["first"], "2020-09-09T14:00:00Z");
    let o = changeling(&["score", "--data", d, "--time-unit", "minutes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give s, ms, us or ns"), "{}", stderr(&o));
}

/// The story's alerts (JSON Lines) with `args` added to the score command.
fn story_alerts(args: &[&str]) -> Vec<serde_json::Value> {
    let o = ok(&[&["score", "--data", "tests/fixtures/story", "--quiet"], args].concat());
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn hits_of<'a>(alerts: &'a [serde_json::Value], actor: &str) -> Vec<&'a serde_json::Value> {
    alerts.iter().filter(|a| a["actor"] == actor).flat_map(|a| a["hits"].as_array().unwrap()).collect()
}

#[test]
fn exceptions_suppress_hits_count_them_and_show_in_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cleared.toml");
    std::fs::write(
        &file,
        "# liu's likes were reviewed\n[[exception]]\nactor = \"liu\"\nrules = [\"likes/*\"]\nreason = \"cleared after \
         review, case 881\"\nexpires = \"2100-01-01\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let all = story_alerts(&[]);
    let before = hits_of(&all, "liu");
    assert!(before.iter().any(|h| h["rule"].as_str().unwrap().starts_with("likes/")), "liu has like hits");
    let kept = story_alerts(&["--exceptions", f]);
    let after = hits_of(&kept, "liu");
    assert!(after.iter().all(|h| !h["rule"].as_str().unwrap().starts_with("likes/")), "{after:?}");
    let suppressed = before.len() - after.len();
    // The other accounts' alerts are untouched.
    let others = |a: &[serde_json::Value]| a.iter().filter(|x| x["actor"] != "liu").cloned().collect::<Vec<_>>();
    assert_eq!(others(&all), others(&kept));

    // Counted per exception, in --json and in the text summary.
    let o = ok(&["score", "--data", "tests/fixtures/story", "--exceptions", f, "--json", "-o", "/dev/null"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let ex = &v["exceptions"][0];
    assert_eq!(ex["exception"], format!("{f}:2"));
    assert_eq!(ex["on"], "actor liu");
    assert_eq!(ex["reason"], "cleared after review, case 881");
    // Hits are counted before grouping: at least those the alerts lost.
    assert!(ex["hits"].as_u64().unwrap() >= suppressed as u64, "{ex}");
    let o = ok(&["score", "--data", "tests/fixtures/story", "--exceptions", f, "-o", "/dev/null"]);
    assert!(stderr(&o).contains("hits suppressed by 1 exceptions"), "{}", stderr(&o));

    // From the environment too.
    let o = Command::new(env!("CARGO_BIN_EXE_changeling"))
        .args(["score", "--data", "tests/fixtures/story", "--quiet"])
        .env("CHANGELING_EXCEPTIONS", f)
        .output()
        .unwrap();
    let env: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(env, kept);

    // explain says which hits an exception keeps out.
    let o = ok(&["explain", "--data", "tests/fixtures/story", "--actor", "liu", "--exceptions", f]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(&format!("suppressed by {f}:2 (actor liu): cleared after review, case 881")), "{text}");
}

#[test]
fn exceptions_by_device_and_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let all = story_alerts(&[]);
    // The intruder's browser: every hit on its events goes.
    let dev = tmp.path().join("device.toml");
    std::fs::write(&dev, "[[exception]]\ndevice = \"unknown-browser\"\nreason = \"a test device\"\n").unwrap();
    let kept = story_alerts(&["--exceptions", dev.to_str().unwrap()]);
    assert!(hits_of(&kept, "liu").len() < hits_of(&all, "liu").len());
    // An exception that expired before the data covers none of it, and warns.
    let old = tmp.path().join("old.toml");
    std::fs::write(&old, "[[exception]]\nactor = \"liu\"\nreason = \"old\"\nexpires = \"2020-01-01\"\n").unwrap();
    let o = ok(&["score", "--data", "tests/fixtures/story", "--exceptions", old.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(stderr(&o).contains("W105") && stderr(&o).contains("expired on 2020-01-01"), "{}", stderr(&o));
    assert_eq!(story_alerts(&["--exceptions", old.to_str().unwrap()]), all);
}

#[test]
fn a_malformed_exceptions_file_is_an_error_at_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[exception]]\nactor = \"liu\"\nreason = \"r\"\nrule = [\"likes/*\"]\n").unwrap();
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--exceptions", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("E002") && err.contains("bad.toml:4:1") && err.contains("did you mean `rules`"), "{err}");
    assert!(o.stdout.is_empty());
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(&unknown, "[[exception]]\nactor = \"liu\"\nrules = [\"likes/lockstp\"]\nreason = \"r\"\n").unwrap();
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--exceptions", unknown.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("matches no rule id and no tag; did you mean `likes/lockstep`?"), "{}", stderr(&o));
}

#[test]
fn explain_takes_many_accounts_and_gives_json() {
    let story = ["explain", "--data", "tests/fixtures/story"];
    let one = |a: &str| String::from_utf8(ok(&[&story[..], &["--actor", a]].concat()).stdout).unwrap();
    let (liu, tap) = (one("liu"), one("ctl_tap"));
    let body = |t: &str| t.split_once('\n').unwrap().1.to_string();
    let both = String::from_utf8(ok(&[&story[..], &["--actor", "liu", "--actor", "ctl_tap"]].concat()).stdout).unwrap();
    assert_eq!(both, format!("{}{}\n{}", liu.lines().next().unwrap().to_string() + "\n", body(&liu), body(&tap)));
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("accounts.txt");
    std::fs::write(&list, "# to look at\nliu\nctl_tap  # a look-alike\nliu\n").unwrap();
    let from_file = ok(&[&story[..], &["--actors", list.to_str().unwrap()]].concat()).stdout;
    assert_eq!(String::from_utf8(from_file).unwrap(), both);

    // JSON: one object a line, incidents exactly as score writes them.
    let o = ok(&[&story[..], &["--actor", "liu", "--actor", "ctl_tap", "--json"]].concat());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["actor"], "liu");
    let alerts = story_alerts(&[]);
    let liu_alerts: Vec<&serde_json::Value> = alerts.iter().filter(|a| a["actor"] == "liu").collect();
    assert_eq!(lines[0]["incidents"].as_array().unwrap().iter().collect::<Vec<_>>(), liu_alerts);
    let events: Vec<&serde_json::Value> =
        lines[0]["timeline"].as_array().unwrap().iter().filter(|e| e.get("ts").is_some()).collect();
    let hit = events
        .iter()
        .flat_map(|e| e["rules"].as_array().unwrap())
        .find(|r| r["rule"] == "likes/unexposed-off-pattern" && r["verdict"] == "hit")
        .expect("a hit of likes/unexposed-off-pattern");
    assert!(hit["strength"].as_f64().unwrap() > 0.0 && hit["why"].is_string());
    assert!(
        hit["signals"].as_array().unwrap().iter().any(|s| s["signal"] == "feed_exposure" && s["decision"] == "fired")
    );

    // A window: only its events.
    let o =
        ok(&[&story[..], &["--actor", "liu", "--json", "--around", "2020-09-09T14:01:00Z", "--window", "3m"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let times: Vec<&str> = v["timeline"].as_array().unwrap().iter().filter_map(|e| e["ts"].as_str()).collect();
    assert!(!times.is_empty());
    assert!(times.iter().all(|t| ("2020-09-09T13:58:00Z"..="2020-09-09T14:04:00Z").contains(t)), "{times:?}");

    // Every account is checked first.
    let o = changeling(&[&story[..], &["--actor", "liu", "--actor", "nobody1", "--actor", "nobody2"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("2 accounts have no events (nobody1, nobody2)"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn test_mutate_lists_the_mutations_no_case_catches() {
    let o = changeling(&["test", "--mutate"]);
    // The shipped rules still have known ones (tests/rule_tests.rs).
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("changeling test --mutate: "), "{text}");
    assert!(text.contains("likes/lockstep.lockstep.max_scan = 2000 -> 2500: NOT CAUGHT"), "{text}");
    assert!(!text.contains("likes/removed-suspicious-like.unlike_latency.min"), "{text}");
    let verbose = String::from_utf8(changeling(&["test", "--mutate", "-v"]).stdout).unwrap();
    assert!(
        verbose.contains("likes/removed-suspicious-like.unlike_latency.min = 10m -> \"12m30s\": caught"),
        "{verbose}"
    );
}

#[test]
fn explain_pivots_mark_the_co_acting_accounts_that_are_flagged() {
    let text = String::from_utf8(ok(&["explain", "--actor", "u1086"]).stdout).unwrap();
    assert!(text.contains("  u1188  3 items: t1293-29-0, t1293-29-1, t1293-29-2  [flagged high]"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&ok(&["explain", "--actor", "u1086", "--json"]).stdout).unwrap();
    let accounts = v["pivots"][0]["accounts"].as_array().unwrap();
    assert!(accounts.iter().any(|a| a["flagged"] == "high"), "{accounts:?}");
    // The flag is the account's own highest tier, as score writes it.
    let alerts = String::from_utf8(ok(&["score", "--quiet"]).stdout).unwrap();
    for a in accounts {
        let actor = a["actor"].as_str().unwrap();
        let flagged = alerts.lines().any(|l| l.starts_with(&format!("{{\"actor\":\"{actor}\",")));
        assert_eq!(a["flagged"].is_string(), flagged, "{actor}");
    }
}

#[test]
fn lockstep_incidents_of_several_accounts_are_one_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("alerts.jsonl");
    // Without --campaigns, no campaign: alerts as before.
    assert!(!String::from_utf8(ok(&["score", "--quiet"]).stdout).unwrap().contains("\"campaign\":\"c-"));
    let o = ok(&["score", "-o", out.to_str().unwrap(), "--json", "--threads", "1", "--campaigns"]);
    let summary: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let alerts: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let campaign_of = |actor: &str| {
        alerts.iter().find(|a| a["actor"] == actor && a["campaign"].is_string()).map(|a| a["campaign"].clone())
    };
    let c = campaign_of("u1086").expect("u1086 is in a campaign");
    assert!(c.as_str().unwrap().starts_with("c-"), "{c}");
    assert_eq!(campaign_of("u1188"), Some(c.clone()));
    let campaigns = summary["campaigns"].as_array().unwrap();
    let this = campaigns.iter().find(|x| x["id"] == c).unwrap();
    let members: Vec<&str> = this["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(members.len() >= 10 && members.contains(&"u1086") && members.contains(&"u1188"), "{members:?}");
    // Every alert naming it is of a member, and every member has one.
    let named: std::collections::BTreeSet<&str> =
        alerts.iter().filter(|a| a["campaign"] == c).map(|a| a["actor"].as_str().unwrap()).collect();
    assert_eq!(named.into_iter().collect::<Vec<_>>(), members);
    // The same bytes for any thread count.
    let three = tmp.path().join("three.jsonl");
    ok(&["score", "-o", three.to_str().unwrap(), "--threads", "3", "--quiet", "--campaigns"]);
    assert_eq!(std::fs::read_to_string(&three).unwrap(), text);
    // And a campaigns section in the report.
    let page = tmp.path().join("r.html");
    ok(&["report", "--alerts", out.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"campaigns\"") && html.contains(c.as_str().unwrap()), "no campaigns section");
    // CSV alerts name it too, in each row of a member's incident.
    let csv = tmp.path().join("alerts.csv");
    ok(&["score", "-o", csv.to_str().unwrap(), "--quiet", "--campaigns"]);
    let mut rows = csv::Reader::from_path(&csv).unwrap();
    let at = rows.headers().unwrap().iter().position(|h| h == "campaign").unwrap();
    let named: std::collections::BTreeSet<String> = rows
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r.get(at) == c.as_str())
        .map(|r| r.get(0).unwrap().to_string())
        .collect();
    assert_eq!(named.iter().map(String::as_str).collect::<Vec<_>>(), members);
}

#[test]
fn explain_campaign_explains_every_member() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("alerts.jsonl");
    ok(&["score", "-o", out.to_str().unwrap(), "--campaigns", "--quiet"]);
    let text = std::fs::read_to_string(&out).unwrap();
    let line = text.lines().find(|l| l.starts_with("{\"actor\":\"u1086\",") && l.contains("\"campaign\":")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let id = v["campaign"].as_str().unwrap();
    let o = ok(&["explain", "--campaign", id, "--json"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actors: Vec<&str> = lines.iter().map(|l| l["actor"].as_str().unwrap()).collect();
    assert!(actors.contains(&"u1086") && actors.contains(&"u1188") && actors.len() >= 10, "{actors:?}");
    let text = String::from_utf8(ok(&["explain", "--campaign", id]).stdout).unwrap();
    assert!(text.lines().nth(1).unwrap().starts_with(&format!("campaign {id}: ")), "{text}");
    let o = changeling(&["explain", "--campaign", "c-nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("no campaign `c-nope` in the built-in demo dataset (its campaigns: {id})")),
        "{}",
        stderr(&o)
    );
}
