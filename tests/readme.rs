//! The README's commands, run (issue 20, item 8): every `console` block of
//! README.md is run in order, each `$ ` line as a shell command from the
//! repository's root with `changeling` the binary under test and `/tmp/`
//! a scratch directory, and its output (stdout and stderr, as a terminal
//! shows them) must be what the block shows. A line `...` stands for any
//! number of lines, `...` inside a line for any text, and times and rates
//! (`0.33 s`, `253 k events/s`) for any value. A block after a
//! `<!-- readme-test: skip ... -->` comment is not run (the comment says
//! why), so the next drift of a shown output fails here.

use std::path::Path;
use std::process::Command;

/// One command of a block and the output it shows.
struct Step {
    command: String,
    shown: Vec<String>,
    line: usize,
}

/// The steps of every console block not marked skip, in order.
fn steps(readme: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut skip = false;
    let mut lines = readme.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        if line.trim_start().starts_with("<!-- readme-test: skip") {
            skip = true;
            continue;
        }
        if line.trim() != "```console" {
            continue;
        }
        let mut block: Vec<(usize, String)> = Vec::new();
        for (n, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            block.push((n + 1, l.to_string()));
        }
        if std::mem::take(&mut skip) {
            continue;
        }
        let mut i = 0;
        while i < block.len() {
            let (n, l) = &block[i];
            let Some(cmd) = l.strip_prefix("$ ") else {
                i += 1;
                continue;
            };
            let mut command = cmd.to_string();
            while command.ends_with('\\') && i + 1 < block.len() {
                command.pop();
                i += 1;
                command.push_str(block[i].1.trim_start());
            }
            let mut shown = Vec::new();
            i += 1;
            while i < block.len() && !block[i].1.starts_with("$ ") {
                shown.push(block[i].1.clone());
                i += 1;
            }
            out.push(Step { command, shown, line: *n });
        }
    }
    out
}

/// Times and rates masked, trailing blanks dropped.
fn normal(line: &str) -> String {
    let mut out = String::new();
    let words: Vec<&str> = line.trim_end().split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let number = |w: &str| {
            let w = w.trim_start_matches('(');
            !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        };
        let masked =
            if number(w) && (next == "s" || next == "s)" || next.starts_with("s,") || next == "k" || next == "M") {
                if w.starts_with('(') { "(N" } else { "N" }
            } else {
                w
            };
        if i > 0 {
            out.push(' ');
        }
        out.push_str(masked);
    }
    out.replace("N k events/s", "N events/s").replace("N M events/s", "N events/s")
}

/// Whether `shown` (with its `...`) matches `got`.
fn matches(shown: &[String], got: &[String]) -> bool {
    let Some((first, rest)) = shown.split_first() else { return got.is_empty() };
    if first.trim() == "..." {
        return (0..=got.len()).any(|k| matches(rest, &got[k..]));
    }
    match got.split_first() {
        Some((g, more)) => line_matches(first, g) && matches(rest, more),
        None => false,
    }
}

/// One shown line against one output line; `...` inside it is any text.
fn line_matches(shown: &str, got: &str) -> bool {
    let parts: Vec<&str> = shown.split("...").collect();
    if parts.len() == 1 {
        return shown == got;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !got.starts_with(first) || !got.ends_with(last) || got.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_readme_commands_give_the_output_it_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let steps = steps(&readme);
    assert!(steps.len() >= 10, "only {} README commands found", steps.len());
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_changeling"), bin.join("changeling")).unwrap();
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_text = format!("{}/", tmp.display());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut failures = Vec::new();
    for s in &steps {
        let command = s.command.replace("/tmp/", &tmp_text);
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("{command} 2>&1"))
            .current_dir(root)
            .env("PATH", &path)
            .env_remove("CHANGELING_RULES")
            .env_remove("CHANGELING_EXCEPTIONS")
            .output()
            .expect("sh runs");
        let text = String::from_utf8_lossy(&o.stdout).replace(&tmp_text, "/tmp/");
        let got: Vec<String> = text.lines().map(normal).collect();
        let shown: Vec<String> = s.shown.iter().map(|l| normal(l)).collect();
        if !matches(&shown, &got) {
            failures.push(format!(
                "README.md:{}: `{}` (exit {:?}) shows\n{}\nbut gives\n{}",
                s.line,
                s.command,
                o.status.code(),
                s.shown.join("\n"),
                text.trim_end()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} README commands drifted:\n\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

#[test]
fn shown_output_matches_with_wildcards_and_masked_times() {
    let shown: Vec<String> = ["a", "...", "read 1 events in 0.33 s (253 k events/s)", "x ... z"].map(normal).to_vec();
    let got: Vec<String> = ["a", "b", "c", "read 1 events in 1.20 s (1.1 M events/s)", "x y z"].map(normal).to_vec();
    assert!(matches(&shown, &got));
    assert!(!matches(&shown, &got[..4]));
    let other: Vec<String> = ["a", "read 2 events in 1.20 s (1.1 M events/s)", "x y z"].map(normal).to_vec();
    assert!(!matches(&shown, &other), "a count is not masked");
}
