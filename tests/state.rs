//! A daily state from the command line: `synth --daily` days scored one
//! after the other fold to the run over all of them; one run at a time (a
//! lock, a stale lock reported); a kill at any step of writing the state
//! leaves the previous one whole; a damaged file is an error naming it;
//! rules that keep other states are refused, rules that only score
//! differently are not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_changeling"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small population with its days.
fn population(dir: &Path) -> Vec<PathBuf> {
    let o = run(bin()
        .args(["synth", "--quiet", "--accounts", "600", "--days", "6", "--seed", "9", "--impressions"])
        .args(["--compromise-rate", "0.05", "--daily", "--out"])
        .arg(dir.join("pop")));
    assert!(o.status.success(), "synth: {}", stderr(&o));
    let mut days: Vec<PathBuf> = std::fs::read_dir(dir.join("pop/daily")).unwrap().map(|e| e.unwrap().path()).collect();
    days.sort();
    assert_eq!(days.len(), 6);
    days
}

/// Scores one day against `state`; returns the alerts written.
fn day(data: &Path, state: &Path, extra: &[&str]) -> Output {
    run(bin()
        .args(["score", "--quiet", "--format", "jsonl", "-o", "-", "--data"])
        .arg(data)
        .arg("--state")
        .arg(state)
        .args(extra))
}

fn fold(into: &mut BTreeMap<String, Value>, out: &Output) {
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if v.as_object_mut().unwrap().remove("status").unwrap() == "withdrawn" {
            into.remove(&id);
        } else {
            into.insert(id, v);
        }
    }
}

fn one_shot(data: &Path) -> BTreeMap<String, Value> {
    let o = run(bin().args(["score", "--quiet", "--format", "jsonl", "-o", "-", "--data"]).arg(data));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut all = BTreeMap::new();
    fold(&mut all, &o);
    all
}

#[test]
fn synth_days_scored_one_after_the_other_fold_to_the_run_over_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let days = population(dir.path());
    let state = dir.path().join("state");
    let mut folded = BTreeMap::new();
    for d in &days {
        let o = day(d, &state, &[]);
        assert!(o.status.success(), "{}: {}", d.display(), stderr(&o));
        fold(&mut folded, &o);
    }
    let want = one_shot(&dir.path().join("pop"));
    assert!(!want.is_empty());
    assert_eq!(folded.len(), want.len());
    assert!(folded == want, "the fold of the daily changes differs from the run over all the days");
    // `--emit open` writes every incident not yet final, each as the fold
    // has it; the next batch of nothing new changes nothing.
    let again = day(&days[5], &state, &["--emit", "open"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let mut open = BTreeMap::new();
    fold(&mut open, &again);
    assert!(!open.is_empty() && open.iter().all(|(k, v)| folded.get(k) == Some(v)));
    let info = run(bin().args(["state", "info"]).arg(&state));
    assert!(info.status.success() && stderr(&info).contains("watermark 2024-01-06"), "{}", stderr(&info));
}

#[test]
fn a_state_in_use_is_refused_and_a_stale_lock_reported_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let days = population(dir.path());
    let state = dir.path().join("state");
    assert!(day(&days[0], &state, &[]).status.success());
    // Held by a live process (this test's).
    let lock = state.join("LOCK");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    std::fs::write(&lock, format!("pid {} on {} started now", std::process::id(), host.trim())).unwrap();
    let o = day(&days[1], &state, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another run"), "{}", stderr(&o));
    // Left by a process that is gone: reported, kept until removed.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, format!("pid {dead} on {} started then", host.trim())).unwrap();
    let o = day(&days[1], &state, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("stale lock") && stderr(&o).contains("state unlock"), "{}", stderr(&o));
    assert!(lock.exists(), "a stale lock is not removed silently");
    let o = run(bin().args(["state", "unlock"]).arg(&state));
    assert!(o.status.success() && stderr(&o).contains("removed a stale lock"), "{}", stderr(&o));
    assert!(day(&days[1], &state, &[]).status.success());
}

/// A copy of directory `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_kill_at_any_step_of_writing_the_state_leaves_the_previous_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let days = population(dir.path());
    let base = dir.path().join("base");
    for d in &days[..3] {
        assert!(day(d, &base, &[]).status.success());
    }
    let reference = day(
        &days[3],
        &{
            let r = dir.path().join("reference");
            copy_dir(&base, &r);
            r
        },
        &[],
    );
    assert!(reference.status.success());
    for step in ["layers", "files", "manifest", "switch", "cleanup"] {
        let s = dir.path().join(format!("killed-{step}"));
        copy_dir(&base, &s);
        let killed = run(bin()
            .args(["score", "--quiet", "--format", "jsonl", "-o", "-", "--data"])
            .arg(&days[3])
            .arg("--state")
            .arg(&s)
            .env("CHANGELING_FAULT_STATE_KILL_AT", step));
        assert!(!killed.status.success(), "{step}: the run was to be killed");
        // The killed run's lock stays behind, stale; once removed, the state
        // is whole: the batch scored again gives what it gives from an
        // untouched state (or, killed after the switch, the next state is
        // already in place: the batch's events are late then).
        assert!(run(bin().args(["state", "unlock"]).arg(&s)).status.success(), "{step}: unlock");
        let again = day(&days[3], &s, &[]);
        assert!(again.status.success(), "{step}: {}", stderr(&again));
        if step == "cleanup" {
            assert!(again.stdout.is_empty(), "{step}: the state had switched: nothing new");
        } else {
            assert_eq!(again.stdout, reference.stdout, "{step}: the batch again after the kill");
        }
        let next = day(&days[4], &s, &[]);
        assert!(next.status.success(), "{step}: the day after: {}", stderr(&next));
    }
}

/// A way to damage a file.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn a_damaged_state_file_is_an_error_naming_it_never_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let days = population(dir.path());
    let base = dir.path().join("base");
    for d in &days[..2] {
        assert!(day(d, &base, &[]).status.success());
    }
    let current = std::fs::read_to_string(base.join("CURRENT")).unwrap().trim().to_string();
    let gen_files: Vec<String> = std::fs::read_dir(base.join(&current))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let layer = gen_files.iter().find(|f| f.starts_with("accounts-") && !f.contains("index")).unwrap().clone();
    let damages: Vec<(String, Damage)> = vec![
        (
            layer.clone(),
            Box::new(|p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                let at = b.len() / 3;
                b[at] ^= 0x40;
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            layer.clone(),
            Box::new(|p: &Path| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        (
            // The footer has no sum of its own: its first block given a
            // negative body length.
            layer.clone(),
            Box::new(|p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                let n = b.len();
                let len = i32::from_le_bytes(b[n - 10..n - 6].try_into().unwrap()) as usize;
                let footer = arrow::ipc::root_as_footer(&b[n - 10 - len..n - 10]).unwrap();
                let at = footer.recordBatches().unwrap().bytes().as_ptr() as usize - b.as_ptr() as usize;
                b[at + 16..at + 24].copy_from_slice(&(-1i64).to_le_bytes());
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "facts.arrow".to_string(),
            Box::new(|p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                let at = b.len() / 2;
                b[at] ^= 1;
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "manifest.json".to_string(),
            Box::new(|p: &Path| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 10]).unwrap();
            }),
        ),
    ];
    for (k, (file, damage)) in damages.iter().enumerate() {
        let s = dir.path().join(format!("damaged-{k}"));
        copy_dir(&base, &s);
        damage(&s.join(&current).join(file));
        let o = day(&days[2], &s, &[]);
        assert_eq!(o.status.code(), Some(2), "{file} damaged ({k}): {}", stderr(&o));
        assert!(stderr(&o).contains(file.as_str()), "{file} damaged ({k}): the error names it: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{file} damaged ({k}): nothing written");
    }
}

#[test]
fn rules_that_keep_other_states_are_refused_and_scoring_changes_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let days = population(dir.path());
    let state = dir.path().join("state");
    assert!(day(&days[0], &state, &[]).status.success());
    let rules = dir.path().join("rules");
    assert!(run(bin().args(["rules", "export"]).arg(&rules)).status.success());
    let rule = rules.join("likes/unexposed-off-pattern.toml");
    let text = std::fs::read_to_string(&rule).unwrap();
    // A weight: scoring only.
    std::fs::write(&rule, text.replace("weight = 1.0", "weight = 0.9")).unwrap();
    let o = day(&days[1], &state, &["--rules", rules.to_str().unwrap()]);
    assert!(o.status.success(), "a weight change is accepted: {}", stderr(&o));
    // The baseline's window: what the state keeps per account.
    std::fs::write(&rule, text.replace("min_history = 3", "min_history = 4")).unwrap();
    let o = day(&days[2], &state, &["--rules", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("likes/unexposed-off-pattern:off_pattern") && e.contains("state rebuild"),
        "the error names the signal and the way out: {e}"
    );
    // Rebuilt from history with the new rules, the state takes them.
    let o = run(bin()
        .args(["state", "rebuild", "--quiet", "--data"])
        .arg(&days[0])
        .arg("--state")
        .arg(&state)
        .args(["--rules", rules.to_str().unwrap()]));
    assert!(o.status.success(), "rebuild: {}", stderr(&o));
    let o = day(&days[1], &state, &["--rules", rules.to_str().unwrap()]);
    assert!(o.status.success(), "after the rebuild: {}", stderr(&o));
}
