//! Outputs that are safe to open (issue 21, items 1 and 2): CSV cells from
//! the logs cannot run as spreadsheet formulas, and control and invisible
//! characters from the data or from rule files never reach a terminal (or
//! the HTML report) raw.
//!
//! The data is the story fixture with its accounts renamed to hostile ids:
//! `liu` (flagged high) to a formula, `ctl_search` (a benign account
//! flagged low) to an id holding an escape sequence and a zero-width space,
//! and the target `t-9721` to a `=HYPERLINK(...)` formula.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FORMULA_ACTOR: &str = "=cmd|' /C calc'!A0";
const FORMULA_TARGET: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";
/// An id with an escape sequence (erase the screen) and a zero-width space.
const CONTROL_ACTOR: &str = "ctl\u{1b}[2J_search\u{200b}";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_changeling"));
    c.env_remove("CHANGELING_RULES");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The story fixture with hostile ids, in `dir`.
fn hostile_story(dir: &Path) -> PathBuf {
    let data = dir.join("story");
    std::fs::create_dir_all(&data).unwrap();
    let json = |s: &str| serde_json::to_string(s).unwrap();
    for entry in std::fs::read_dir("tests/fixtures/story").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let t = std::fs::read_to_string(&path).unwrap();
        let t = t
            .replace("\"liu\"", &json(FORMULA_ACTOR))
            .replace("\"ctl_search\"", &json(CONTROL_ACTOR))
            .replace("\"t-9721\"", &json(FORMULA_TARGET));
        std::fs::write(data.join(path.file_name().unwrap()), t).unwrap();
    }
    data
}

/// No raw control (but the line break) or invisible character in `s`.
fn assert_no_raw_controls(what: &str, s: &str) {
    let bad: Vec<char> = s
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n') || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}')
        })
        .collect();
    assert!(bad.is_empty(), "{what}: raw {bad:?} in\n{s}");
}

#[test]
fn csv_cells_from_the_logs_cannot_run_as_formulas() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    for rows in ["incident", "hit"] {
        let out = tmp.path().join(format!("alerts-{rows}.csv"));
        let o = run(bin().args(["score", "-q", "--csv-rows", rows, "--data"]).arg(&data).arg("-o").arg(&out));
        assert!(o.status.success(), "{}", text(&o.stderr));
        let mut r = csv::ReaderBuilder::new().has_headers(true).from_path(&out).unwrap();
        let mut cells = Vec::new();
        for rec in r.records() {
            cells.extend(rec.unwrap().iter().map(str::to_string));
        }
        for c in &cells {
            let first = c.chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠')),
                "{rows}: a cell a spreadsheet runs as a formula: {c:?}"
            );
        }
        // The hostile values are there, neutralised, not dropped.
        assert!(cells.contains(&format!("'{FORMULA_ACTOR}")), "{rows}: the actor is missing: {cells:?}");
        if rows == "hit" {
            assert!(cells.contains(&format!("'{FORMULA_TARGET}")), "the target is missing");
        }
    }
    // JSON Lines keep the raw values.
    let o = run(bin().args(["score", "-q", "--data"]).arg(&data));
    assert!(o.status.success());
    let first: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(first.iter().any(|a| a["actor"] == FORMULA_ACTOR), "JSONL lost the raw actor");
    assert!(first.iter().any(|a| a["hits"].as_array().unwrap().iter().any(|h| h["target"] == FORMULA_TARGET)));
}

/// The neutralised cells of CSV alerts read back as the raw values (issue
/// 20, item 9): a file of hit rows reads to the JSON Lines alerts, one of
/// incident rows to their incidents
/// and rule ids; `eval` gives the same answer on all three and `diff` sees
/// no change between the JSON Lines and the hit rows.
#[test]
fn neutralised_csv_cells_read_back_as_the_raw_values() {
    use changeling::alerts::read::{Need, read, read_for};
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    let jsonl = hostile_alerts(tmp.path(), &data);
    let (incident, hit) = (tmp.path().join("incident.csv"), tmp.path().join("hit.csv"));
    for (rows, out) in [("incident", &incident), ("hit", &hit)] {
        let o = run(bin().args(["score", "-q", "--csv-rows", rows, "--data"]).arg(&data).arg("-o").arg(out));
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let want = read(&jsonl).unwrap();
    assert!(want.iter().any(|a| a.actor == FORMULA_ACTOR), "the story lost its hostile actor");
    assert!(want.iter().flat_map(|a| &a.hits).any(|h| h.target.as_deref() == Some(FORMULA_TARGET)));
    // Hit rows: every field but the line.
    let got = read(&hit).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(!w.families.is_empty());
        assert_eq!(*g, changeling::alerts::read::ReadAlert { line: g.line, ..w.clone() });
    }
    // Incident rows: the incidents whole, and the rule ids of their hits.
    let got = read_for(&incident, Need::Rules).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.actor, g.start, g.end, g.score, &g.tier), (&w.actor, w.start, w.end, w.score, &w.tier));
        assert_eq!((&g.id, &g.status, g.final_after, &g.families), (&w.id, &w.status, w.final_after, &w.families));
        let mut rules: Vec<&str> = Vec::new();
        for h in &w.hits {
            if !rules.contains(&h.rule.as_str()) {
                rules.push(&h.rule);
            }
        }
        assert_eq!(g.hits.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>(), rules);
    }
    // `read` (what diff and report need) refuses incident rows, saying why.
    let e = read(&incident).unwrap_err().to_string();
    assert!(e.contains("incident.csv:1:") && e.contains("--csv-rows hit"), "{e}");
    // The commands.
    let eval = |alerts: &Path| {
        let o = run(bin().args(["eval", "--json", "--data"]).arg(&data).arg("--alerts").arg(alerts));
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout).replace(&alerts.display().to_string(), "ALERTS")
    };
    let e = eval(&jsonl);
    assert!(e.contains("\"read\": "), "{e}");
    assert_eq!(eval(&incident), e);
    assert_eq!(eval(&hit), e);
    let o = run(bin().args(["diff", "--json"]).arg(&jsonl).arg(&hit));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&d["diff"]["moved"], &d["diff"]["changed_within_tier"]),
        (&serde_json::json!([]), &serde_json::json!(0))
    );
    let page = tmp.path().join("r.html");
    let o = run(bin().args(["report", "--alerts"]).arg(&hit).arg("-o").arg(&page));
    assert!(o.status.success(), "{}", text(&o.stderr));
    for cmd in [&["diff"][..], &["report", "-o", "-", "--alerts"][..]] {
        let o = run(bin().args(cmd).arg(&incident).args(if cmd[0] == "diff" { vec![&hit] } else { vec![] }));
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("write the alerts with `--csv-rows hit`"), "{}", text(&o.stderr));
    }
}

/// The alerts of the hostile story as JSON Lines, in `dir`.
fn hostile_alerts(dir: &Path, data: &Path) -> PathBuf {
    let alerts = dir.join("alerts.jsonl");
    let o = run(bin().args(["score", "-q", "--data"]).arg(data).arg("-o").arg(&alerts));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(&alerts).unwrap().contains("\\u001b[2J_search\u{200b}"));
    alerts
}

#[test]
fn diff_and_eval_listings_escape_values_from_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    let alerts = hostile_alerts(tmp.path(), &data);
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let o = run(bin().arg("diff").arg(&empty).arg(&alerts));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("ctl\\x1b[2J_search\\u{200b}"), "the actor is not shown escaped:\n{out}");
    assert_no_raw_controls("diff", &out);

    let o = run(bin().args(["eval", "--list", "--tier", "low", "--data"]).arg(&data).arg("--alerts").arg(&alerts));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("ctl\\x1b[2J_search\\u{200b}"), "the actor is not shown escaped:\n{out}");
    assert_no_raw_controls("eval --list", &out);
}

#[test]
fn explain_and_the_report_make_invisible_characters_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    let o = run(bin().args(["explain", "--data"]).arg(&data).args(["--actor", CONTROL_ACTOR]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("_search\\u{200b}"), "{out}");
    assert_no_raw_controls("explain", &out);

    let alerts = hostile_alerts(tmp.path(), &data);
    let page = tmp.path().join("report.html");
    let o = run(bin().args(["report", "--alerts"]).arg(&alerts).arg("-o").arg(&page));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("_search\\u{200b}"), "the report does not show the zero-width space");
    assert!(
        !html.contains('\u{200b}') && !html.contains('\u{1b}'),
        "a raw invisible or control character in the report"
    );
}

/// A rules directory whose rule title and test case carry control and
/// invisible characters, with a case that fails.
fn hostile_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(rules.join("tests")).unwrap();
    let rule = std::fs::read_to_string("rules/likes/new-device.toml").unwrap().replace(
        "title = \"Likes from a device this account has never used\"",
        "title = \"Likes\\u001b]0;pwned\\u0007 from a new\\u200b device\"",
    );
    std::fs::write(rules.join("new-device.toml"), rule).unwrap();
    std::fs::write(
        rules.join("tests/new-device.toml"),
        r#"# A case that fails, named and with an actor to drive a terminal.
rule = "likes/new-device"

[[case]]
name = "a case\u001b[2J named to clear the screen"
[case.data]
events = '''
{"ts":"2020-01-02T12:00:00Z","actor":"a\u001b[31m\u200b","action":"like","target":"x0","device":"laptop"}
'''
[[case.expect]]
actor = "a\u001b[31m\u200b"
ts = "2020-01-02T12:00:00Z"
target = "x0"
"#,
    )
    .unwrap();
    rules
}

#[test]
fn test_check_and_rules_list_escape_what_rule_files_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = hostile_rules(tmp.path());

    let o = run(bin().arg("test").arg(&rules));
    assert_eq!(o.status.code(), Some(1), "{}\n{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("a case\\x1b[2J named"), "{out}");
    assert_no_raw_controls("test", &out);

    let o = run(bin().args(["rules", "list"]).arg(&rules));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("Likes\\x1b]0;pwned\\x07 from a new\\u{200b} device"), "{out}");
    assert_no_raw_controls("rules list", &out);

    let o = run(bin().arg("explain-plan").arg(&rules));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("Likes\\x1b]0;pwned\\x07 from a new\\u{200b} device"), "{out}");
    assert_no_raw_controls("explain-plan", &out);

    // A raw escape and a zero-width space in a rule file: the echoed line
    // shows them escaped, with the caret under the escaped text.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.toml"), "id = \"x/y\"\ntitle = \"t\"\n# \u{1b}[2J\nti\u{200b}tle = 3\n").unwrap();
    let o = run(bin().arg("check").arg(&bad));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_no_raw_controls("check", &err);
    assert!(err.contains("ti\\u{200b}tle = 3") || err.contains("# \\x1b[2J"), "{err}");
}

/// Runs `cmd` with its stdout on a terminal (util-linux `script`); `None`
/// when `script` is not installed.
fn on_a_terminal(cmd: &str) -> Option<String> {
    let o = Command::new("script").args(["-qec", cmd, "/dev/null"]).output().ok()?;
    assert!(o.status.success(), "{}", text(&o.stderr));
    Some(text(&o.stdout))
}

#[test]
fn alerts_on_a_terminal_are_escaped_and_the_same_in_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    let exe = env!("CARGO_BIN_EXE_changeling");
    let d = data.display();
    let Some(csv) = on_a_terminal(&format!("{exe} score -q --format csv --data {d}")) else {
        assert!(std::env::var_os("CI").is_none(), "`script` (util-linux) is needed under CI");
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    };
    assert!(csv.contains("ctl\\x1b[2J_search\\u{200b}"), "{csv}");
    assert_no_raw_controls("score --format csv on a terminal", &csv.replace('\r', ""));
    let jsonl = on_a_terminal(&format!("{exe} score -q --data {d}")).unwrap();
    assert!(jsonl.contains("ctl\\u001b[2J_search\\u200b"), "{jsonl}");
    assert_no_raw_controls("score on a terminal", &jsonl.replace('\r', ""));
    // The same values as in a file.
    let file = run(bin().args(["score", "-q", "--data"]).arg(&data));
    let parse = |s: &str| -> Vec<serde_json::Value> {
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l.trim_end_matches('\r')).unwrap())
            .collect()
    };
    assert_eq!(parse(&jsonl), parse(&text(&file.stdout)));
}

/// JSON printed for a person on a terminal (`--json` of `rules list`,
/// `eval`, `diff`, and of `score`'s summary on stderr) escapes control and
/// invisible characters as JSON escapes, the same values as in a pipe.
#[test]
fn json_on_a_terminal_is_escaped_and_the_same_in_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_story(tmp.path());
    let alerts = hostile_alerts(tmp.path(), &data);
    let rules = hostile_rules(tmp.path());
    let exe = env!("CARGO_BIN_EXE_changeling");
    let (d, a, r) = (data.display(), alerts.display(), rules.display());
    let hidden = tmp.path().join("st\u{200b}ory");
    std::fs::create_dir(&hidden).unwrap();
    std::fs::copy(data.join("events.jsonl"), hidden.join("events.jsonl")).unwrap();
    let commands = [
        (format!("rules list --json {r}"), "Likes\\u001b]0;pwned\\u0007 from a new\\u200b device"),
        (format!("eval --json --list --tier low --data {d} --alerts {a}"), "ctl\\u001b[2J_search\\u200b"),
        (format!("diff --json {a} {a} --data {d}"), "\"diff\""),
        // The summary holds counts, rule ids and the dataset's path.
        (format!("score --json --data {} -o /dev/null --format jsonl 2>&1", hidden.display()), "st\\u200bory"),
    ];
    for (args, want) in commands {
        let Some(shown) = on_a_terminal(&format!("{exe} {args}")) else {
            assert!(std::env::var_os("CI").is_none(), "`script` (util-linux) is needed under CI");
            eprintln!("skipped: no `script` to give the command a terminal");
            return;
        };
        // What comes before the JSON is score's progress bars on stderr.
        let shown = shown.replace('\r', "");
        let from = ["{\n", "[\n"].iter().filter_map(|p| shown.find(p)).min().unwrap_or(0);
        let shown = &shown[from..];
        assert!(shown.contains(want), "{args}: {want} not in\n{shown}");
        assert_no_raw_controls(&args, shown);
        let piped =
            Command::new("sh").arg("-c").arg(format!("{exe} {args}")).env_remove("CHANGELING_RULES").output().unwrap();
        // The same values, but the run's times.
        let value = |s: &str| {
            let mut v = serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|e| panic!("{args}: {e}\n{s}"));
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.ends_with("_secs"));
            }
            v
        };
        assert_eq!(value(shown), value(&text(&piped.stdout)), "{args}");
    }
}
