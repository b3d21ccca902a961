//! The case corpus: `tests/cases/**/*.toml`, each a rule, a tiny dataset
//! and the exact hits it must produce. Every case runs through the
//! one-thread reference and the parallel scorer, which must agree.
//!
//! Case format:
//!
//! ```toml
//! # Must trigger: ...            (a comment saying what the case is for)
//! config = """..."""             # optional changeling.toml text
//! rule = """..."""               # one rule file's text
//! extra_rules = ["""..."""]      # optional: rules it refers to
//!
//! [data]                         # JSONL text per table
//! events = """..."""
//! items = """..."""
//!
//! [[data.repeat]]                # generated rows: `{n}` is 0..count
//! table = "events"               # default events
//! count = 30
//! template = '{"actor":"a","action":"like","target":"i{n}"}'
//! start = "2020-01-01T00:00:00Z" # events: ts = start + n * every
//! every = "1h"
//!
//! [[expect]]                     # exactly these hits, in time order
//! rule = "t/x"                   # required here (a case may have several rules)
//! ts = "2020-01-02T00:00:00Z"
//! actor = "a"                    # optional
//! target = "i9"
//! why = ["label 'adult'"]        # substrings of the hit's why
//! strength = [0.5, 1.0]          # inclusive range (optional)
//! effect = "for"                 # optional
//! ```

use std::path::{Path, PathBuf};

use changeling::data::{Dataset, TableKind};
use changeling::plan::Plan;
use changeling::ruletest::{Data, Expect, check_hits};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    config: String,
    rule: String,
    /// More rules, for rules that refer to other rules.
    #[serde(default)]
    extra_rules: Vec<String>,
    data: Data,
    /// Matched by the rule tests' own matcher (`ruletest::check_hits`).
    #[serde(default)]
    expect: Vec<Expect>,
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if !text.starts_with('#') {
        return Err("a case starts with a comment saying what it must trigger".into());
    }
    let case: Case = toml::from_str(&text).map_err(|e| format!("bad case file: {e}"))?;
    let names: Vec<String> = (0..case.extra_rules.len()).map(|i| format!("extra-{i}.toml")).collect();
    let mut texts = vec![("rule.toml", case.rule.as_str())];
    texts.extend(names.iter().map(String::as_str).zip(case.extra_rules.iter().map(String::as_str)));
    let (set, diags) = changeling::rules::load_texts(&case.config, &texts);
    let set = set.ok_or_else(|| format!("rule does not load:\n{}", diags.render()))?;
    let plan = Plan::compile(&set);
    let texts = case.data.tables().map_err(|e| format!("{}: {e}", path.display()))?;
    let refs: Vec<(TableKind, &str)> = texts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data = Dataset::from_jsonl(&refs, true).map_err(|e| format!("bad case data: {e}"))?;
    check_hits(&plan, &data, None, &case.expect)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn case_corpus() {
    let mut files = Vec::new();
    collect(Path::new("tests/cases"), &mut files);
    files.sort();
    assert!(files.len() >= 10, "the corpus has {} cases", files.len());
    let failures: Vec<String> =
        files.iter().filter_map(|f| run_case(f).err().map(|e| format!("{}: {e}", f.display()))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), files.len(), failures.join("\n\n"));
}
