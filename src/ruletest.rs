//! Rule tests: cases that live beside the rules and run against the real
//! rule files.
//!
//! A rules directory's `tests/` holds one or more case files per rule
//! (the shipped ones mirror the rule's path: `rules/tests/likes/lockstep.toml`
//! tests `likes/lockstep`). Every case runs its tiny dataset through the
//! *whole* rule set being tested (its real configuration and every rule, as
//! `changeling score` would run them) and checks the hits of the rule under
//! test, so that editing a rule file (a threshold, a filter, a weight of
//! evidence) is checked by its cases. `changeling test` runs them; `cargo
//! test` runs the shipped ones (`tests/rule_tests.rs`).
//!
//! A case file:
//!
//! ```toml
//! # What these cases are for (a case file starts with a comment).
//! rule = "likes/lockstep"          # the rule under test: only its hits are checked
//!
//! [[case]]                         # a positive case: it expects hits
//! name = "five accounts in step on two posts"
//! [case.data]                      # JSONL text per table of the data contract
//! events = '''
//! {"ts":"2020-01-01T00:00:00Z","actor":"a","action":"like","target":"p1"}
//! '''
//! [[case.data.repeat]]             # generated rows: `{n}` is 0..count
//! table = "events"                 # default events
//! count = 30
//! template = '{"actor":"a","action":"like","target":"i{n}"}'
//! start = "2020-01-01T00:00:00Z"   # events: ts = start + n * every
//! every = "1h"
//! [[case.exception]]               # optional: exceptions in force (as in an exceptions file)
//! device = "d-test"
//! reason = "a test device"
//! [[case.expect]]                  # exactly these hits of the rule, in time order
//! ts = "2020-01-01T00:00:00Z"
//! rule = "likes/lockstep"          # optional (the rule under test)
//! actor = "a"                      # optional
//! target = "p1"                    # optional
//! why = ["5 other accounts"]       # substrings of the hit's why
//! strength = [0.49, 0.51]          # inclusive range (optional)
//! effect = "for"                   # optional
//!
//! [[case]]                         # a benign case: no `expect`, so no hit at all
//! name = "four accounts are a friend group"
//! [case.data]
//! events = '''...'''
//!
//! [[broken]]                       # a broken variant of a rule file, and its diagnostics
//! name = "a misspelled kind"
//! text = '''
//! id = "likes/lockstep"
//! ...
//! '''
//! [[broken.expect]]                # exactly these errors (warnings only when listed)
//! code = "E005"
//! line = 9                         # optional
//! message = "unknown signal kind"  # a substring, optional
//! ```
//!
//! Cases are matched by [`check_hits`], which the signal case corpus
//! (`tests/cases.rs`) uses too: one matcher, and both check that the
//! parallel scorer agrees with the one-thread reference.
//!
//! A broken variant is loaded as one more rule file on top of the rules
//! under test (replacing the rule with its id), so it sees their lists and
//! macros. [`Suite::coverage`] lists the rules without a positive or a
//! benign case.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::data::{Dataset, TableKind};
use crate::plan::Plan;
use crate::rules::layers::{self, LayerFiles, RuleLayer};
use crate::rules::{Diagnostics, Overrides, RuleSet, Source};
use crate::score::{Hit, Scorer};
use crate::time::{format_rfc3339, parse_duration, parse_rfc3339};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    rule: String,
    #[serde(default)]
    case: Vec<Case>,
    #[serde(default)]
    broken: Vec<Broken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Why the case is what it is, for readers of the case file.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    data: Data,
    #[serde(default)]
    expect: Vec<Expect>,
    /// Exceptions in force for the case (`[[case.exception]]`, as in an
    /// exceptions file): the expected hits are those they leave.
    #[serde(default)]
    exception: Vec<toml::Value>,
}

/// A case's `data`: JSONL text per table, and `[[data.repeat]]` rows made
/// from a template. Rule cases and the signal case corpus
/// (`tests/cases/`) write data this way.
#[derive(Deserialize)]
pub struct Data {
    #[serde(flatten)]
    tables: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    #[serde(default = "events")]
    table: String,
    count: u64,
    template: String,
    start: Option<String>,
    every: Option<String>,
}

fn events() -> String {
    "events".into()
}

/// One expected hit, as a case writes it (`[[case.expect]]` in rule test
/// cases, `[[expect]]` in the signal case corpus of `tests/cases/`): both
/// are matched by [`check_hits`].
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The rule that hits: required when the case has several rules.
    rule: Option<String>,
    ts: String,
    actor: Option<String>,
    target: Option<String>,
    #[serde(default)]
    why: Vec<String>,
    strength: Option<[f64; 2]>,
    effect: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Broken {
    name: String,
    text: String,
    #[serde(default)]
    expect: Vec<ExpectDiag>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ExpectDiag {
    code: String,
    line: Option<usize>,
    message: Option<String>,
}

/// What a case is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseKind {
    /// It expects hits of the rule.
    Positive,
    /// It expects no hit of the rule.
    Benign,
    /// A broken rule file and its diagnostics.
    Diagnostics,
}

impl CaseKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            CaseKind::Positive => "positive",
            CaseKind::Benign => "benign",
            CaseKind::Diagnostics => "diagnostics",
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case file, as shown.
    pub file: PathBuf,
    /// The rule under test.
    pub rule: String,
    /// The case's name.
    pub name: String,
    /// What it is.
    pub kind: CaseKind,
    /// `Err` with what went wrong, when it failed.
    pub outcome: Result<(), String>,
    /// Seconds it took.
    pub secs: f64,
}

impl CaseResult {
    /// `likes/lockstep: five accounts in step` — how failures name a case.
    pub fn title(&self) -> String {
        format!("{}: {}", self.rule, self.name)
    }
}

/// The results of every case of every case file.
#[derive(Clone, Debug, Default)]
pub struct Suite {
    /// Per case, in file order.
    pub results: Vec<CaseResult>,
    /// Case files that could not be read or name no rule of the set, with
    /// why.
    pub file_errors: Vec<(PathBuf, String)>,
    /// Rules of the set without a positive or a benign case, with which is
    /// missing.
    pub coverage: Vec<(String, &'static str)>,
    /// The warnings of loading the rules and their case files (a link to a
    /// directory already read, say), for the caller to show.
    pub warnings: Diagnostics,
}

impl Suite {
    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_ok()).count()
    }

    /// Cases failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether everything passed and every case file was read.
    pub fn ok(&self) -> bool {
        self.failed() == 0 && self.file_errors.is_empty()
    }

    /// The results as JUnit XML: one `testsuite` per case file, one
    /// `testcase` per case (`classname` the rule, `name` the case); a case
    /// file that cannot be read is a `testcase` with an `error`.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total: f64 = self.results.iter().map(|r| r.secs).sum();
        let _ = writeln!(
            out,
            "<testsuites name=\"changeling rule tests\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{total:.3}\">",
            self.results.len() + self.file_errors.len(),
            self.failed(),
            self.file_errors.len()
        );
        let mut files: Vec<&PathBuf> = Vec::new();
        for r in &self.results {
            if !files.contains(&&r.file) {
                files.push(&r.file);
            }
        }
        for file in files {
            let cases: Vec<&CaseResult> = self.results.iter().filter(|r| &r.file == file).collect();
            let failures = cases.iter().filter(|r| r.outcome.is_err()).count();
            let time: f64 = cases.iter().map(|r| r.secs).sum();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">",
                xml(&file.display().to_string()),
                cases.len()
            );
            for c in cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml(&c.rule),
                    xml(&format!("{} ({})", c.name, c.kind.name())),
                    c.secs
                );
                match &c.outcome {
                    Ok(()) => out.push_str("/>\n"),
                    Err(e) => {
                        let first = e.lines().next().unwrap_or("");
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                            xml(first),
                            xml(e)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        for (file, e) in &self.file_errors {
            let name = xml(&file.display().to_string());
            let _ = writeln!(
                out,
                "  <testsuite name=\"{name}\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0\">\n    <testcase classname=\"{name}\" name=\"case file\" time=\"0\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n  </testsuite>",
                xml(e.lines().next().unwrap_or("")),
                xml(e)
            );
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text escaped for XML attributes and content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow (C0 controls, U+FFFE,
            // U+FFFF) would make the file not well-formed: shown escaped.
            c if ((c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}') => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn table_kind(name: &str) -> Result<TableKind, String> {
    TableKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
        let names: Vec<&str> = TableKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown table `{name}` (tables: {})", names.join(", "))
    })
}

impl Data {
    /// The tables as JSONL text.
    pub fn tables(&self) -> Result<BTreeMap<TableKind, String>, String> {
        tables(self)
    }
}

/// The most rows the `repeat`s of one case may generate, together. A case
/// is a few hundred events at most; the shipped ones generate up to a few
/// thousand.
pub const MAX_REPEAT_ROWS: u64 = 100_000;

/// A case's tables as JSONL text.
fn tables(data: &Data) -> Result<BTreeMap<TableKind, String>, String> {
    let mut out: BTreeMap<TableKind, String> = BTreeMap::new();
    let mut rows: u64 = 0;
    for (name, value) in &data.tables {
        if name == "repeat" {
            let repeats: Vec<Repeat> = value.clone().try_into().map_err(|e| format!("[[case.data.repeat]]: {e}"))?;
            for r in repeats {
                rows = rows.saturating_add(r.count);
                if rows > MAX_REPEAT_ROWS {
                    return Err(format!(
                        "repeat.count {}: the repeats of a case may generate at most {MAX_REPEAT_ROWS} rows together",
                        r.count
                    ));
                }
                let text = out.entry(table_kind(&r.table)?).or_default();
                let start = r
                    .start
                    .as_deref()
                    .map(|s| parse_rfc3339(s).ok_or_else(|| format!("repeat.start `{s}` is not RFC 3339")))
                    .transpose()?;
                let every = r.every.as_deref().map(parse_duration).transpose()?;
                for n in 0..r.count {
                    let row = r.template.replace("{n}", &n.to_string());
                    let mut row: serde_json::Value =
                        serde_json::from_str(&row).map_err(|e| format!("repeat.template is not JSON: {e}"))?;
                    if let (Some(s), Some(e)) = (start, every) {
                        let t = i128::from(s) + i128::from(n) * i128::from(e);
                        let t = crate::time::check_time(t)
                            .map_err(|why| format!("repeat: the time of row {n} is {why}"))?;
                        row["ts"] = format_rfc3339(t).into();
                    }
                    text.push_str(&row.to_string());
                    text.push('\n');
                }
            }
        } else {
            let text = value.as_str().ok_or_else(|| format!("case.data.{name} must be JSONL text"))?;
            out.entry(table_kind(name)?).or_default().push_str(text);
        }
    }
    Ok(out)
}

fn run_case(plan: &Plan, set: &RuleSet, rule: usize, case: &Case) -> Result<(), String> {
    let texts = tables(&case.data)?;
    let refs: Vec<(TableKind, &str)> = texts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data = Dataset::from_jsonl(&refs, true).map_err(|e| format!("bad case data: {e}"))?;
    if case.exception.is_empty() {
        return check_hits(plan, &data, Some(rule), &case.expect);
    }
    // Read as an exceptions file is, with its diagnostics.
    #[derive(serde::Serialize)]
    struct File<'a> {
        exception: &'a [toml::Value],
    }
    let text = toml::to_string(&File { exception: &case.exception }).map_err(|e| e.to_string())?;
    let src = Source::new(format!("<exceptions of case {:?}>", case.name), text);
    let mut diags = Diagnostics::default();
    // No clock: a case gives the same result on any day.
    let read = crate::exceptions::read(&src, crate::time::MIN_TIME, &mut diags);
    if diags.has_errors() {
        return Err(format!("bad case exceptions:\n{}", diags.render()));
    }
    let bound = crate::exceptions::Bound::new(read, &crate::alerts::RuleInfo::of_set(set))?;
    let plan = plan.clone().with_exceptions(bound);
    check_hits(&plan, &data, Some(rule), &case.expect)
}

/// The one matcher of the rule test cases and the signal case corpus
/// (`tests/cases.rs`). Scores `data` with the whole `plan` on one thread,
/// checks that the parallel scorer writes the same incidents, and matches
/// the hits (of the rule `only`, or of every rule), in order of time, then
/// event, then rule, against `expect`: exactly as many hits, and each with
/// the expected time, rule, actor and target (when given), every `why`
/// substring, a strength in the inclusive range and the effect (when
/// given). Without `only`, each expected hit must name its rule. The error
/// says what differs and lists every hit.
pub fn check_hits(plan: &Plan, data: &Dataset, only: Option<usize>, expect: &[Expect]) -> Result<(), String> {
    let scorer = Scorer::new(plan, data);
    let mut hits: Vec<Hit> = Vec::new();
    {
        let mut scratch = scorer.scratch();
        for span in &data.events.accounts {
            let mut account = scorer.account_hits(span, &mut scratch);
            // What exceptions leave, as scoring does.
            if let Some(x) = &plan.exceptions {
                x.retain::<()>(&mut account, None, data);
            }
            hits.extend(account.into_iter().filter(|h| only.is_none_or(|r| h.rule as usize == r)));
        }
    }
    hits.sort_by_key(|h| (h.ts, h.event, h.rule));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().map_err(|e| e.to_string())?;
    let (seq, par) = pool.install(|| (scorer.run_sequential(), scorer.run()));
    if seq != par {
        return Err("the parallel scorer's incidents differ from the one-thread reference's".into());
    }
    let s = &data.strings;
    let show = |h: &Hit| {
        format!(
            "{} {} {} {} strength {} {}: {}",
            plan.rules[h.rule as usize].id,
            s.resolve(data.events.actor(h.event as usize)),
            format_rfc3339(h.ts),
            h.target.map_or("-", |t| s.resolve(t)),
            h.strength,
            h.effect.name(),
            h.why
        )
    };
    let all: String = hits.iter().map(|h| format!("\n    {}", show(h))).collect();
    let of = if only.is_some() { " of the rule" } else { "" };
    if hits.len() != expect.len() {
        let got = if hits.is_empty() { " none".to_string() } else { all };
        return Err(format!("expected {} hit(s){of}, got {}:{got}", expect.len(), hits.len()));
    }
    for (i, (h, e)) in hits.iter().zip(expect).enumerate() {
        let mut problems = Vec::new();
        match (&e.rule, only) {
            (Some(rule), _) if plan.rules[h.rule as usize].id != *rule => problems.push(format!("rule is not {rule}")),
            (None, None) => problems.push("the expected hit names no `rule` (the case has several)".into()),
            _ => {}
        }
        match parse_rfc3339(&e.ts) {
            Some(ts) if ts == h.ts => {}
            Some(_) => problems.push(format!("ts is not {}", e.ts)),
            None => problems.push(format!("expected ts `{}` is not RFC 3339", e.ts)),
        }
        if let Some(actor) = &e.actor
            && s.resolve(data.events.actor(h.event as usize)) != actor
        {
            problems.push(format!("actor is not {actor}"));
        }
        if e.target.is_some() && h.target.map(|t| s.resolve(t)) != e.target.as_deref() {
            problems.push(format!("target is not {}", e.target.as_deref().unwrap_or("-")));
        }
        for w in &e.why {
            if !h.why.contains(w.as_str()) {
                problems.push(format!("why lacks {w:?}"));
            }
        }
        if let Some([lo, hi]) = e.strength
            && !(lo..=hi).contains(&h.strength)
        {
            problems.push(format!("strength {} is not in [{lo}, {hi}]", h.strength));
        }
        if let Some(effect) = &e.effect
            && h.effect.name() != effect
        {
            problems.push(format!("effect is not {effect}"));
        }
        if !problems.is_empty() {
            return Err(format!("hit {} of {}: {}; the hits{of}:{all}", i + 1, hits.len(), problems.join(", ")));
        }
    }
    Ok(())
}

fn run_broken(layers: &[LayerFiles], file: &std::path::Path, b: &Broken) -> Result<(), String> {
    let name = file.with_extension("broken.toml");
    let src = Source::new(name, b.text.clone());
    let mut stacked = layers.to_vec();
    stacked.push(LayerFiles {
        layer: RuleLayer::Path(file.to_path_buf()),
        config: None,
        rules: vec![src],
        tests: Vec::new(),
        config_path: PathBuf::from(crate::rules::CONFIG_FILE),
        overlay: None,
    });
    // The text as written: `--set` overrides are for the rules' cases.
    let (_, diags) = layers::stack(&stacked, &Overrides::default(), Diagnostics::default());
    let got: Vec<String> = diags.sorted().iter().map(|d| d.to_string()).collect();
    let listing = if got.is_empty() { " none".to_string() } else { got.iter().map(|g| format!("\n    {g}")).collect() };
    let mut problems = Vec::new();
    let mut matched = vec![false; diags.items.len()];
    let sorted = diags.sorted();
    for e in &b.expect {
        let found = sorted.iter().enumerate().find(|(i, d)| {
            !matched[*i]
                && d.code.as_str() == e.code
                && e.line.is_none_or(|l| d.source.line_col(d.span.start).0 == l)
                && e.message.as_ref().is_none_or(|m| d.message.contains(m.as_str()))
        });
        match found {
            Some((i, _)) => matched[i] = true,
            None => problems.push(format!(
                "no {}{}{}",
                e.code,
                e.line.map_or(String::new(), |l| format!(" at line {l}")),
                e.message.as_ref().map_or(String::new(), |m| format!(" saying {m:?}"))
            )),
        }
    }
    for (i, d) in sorted.iter().enumerate() {
        if !matched[i] && d.is_error() {
            problems.push(format!("unexpected {d}"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{}; diagnostics:{listing}", problems.join("; "))) }
}

/// Runs the case files of `layers` (each layer's `tests/`) against the rule
/// set they stack to, `set` (broken variants are loaded as written, on the
/// layers without overrides).
pub fn run(layers: &[LayerFiles], set: &RuleSet) -> Suite {
    run_cases(layers, set, None)
}

/// [`run`], or with `only`, the data cases of that rule alone (no broken
/// variants, no coverage).
fn run_cases(layers: &[LayerFiles], set: &RuleSet, only: Option<&str>) -> Suite {
    let plan = Plan::compile(set);
    let mut suite = Suite::default();
    let files: Vec<&Arc<Source>> = layers.iter().flat_map(|l| &l.tests).collect();
    let mut kinds: BTreeMap<&str, (bool, bool)> =
        set.rules.iter().map(|r| (r.id.value.as_str(), (false, false))).collect();
    for src in files {
        let path = src.path.clone();
        if !src.text.starts_with('#') {
            suite.file_errors.push((path, "a case file starts with a comment saying what its cases are for".into()));
            continue;
        }
        let cases: CaseFile = match toml::from_str(&src.text) {
            Ok(c) => c,
            Err(e) => {
                suite.file_errors.push((path, format!("not a case file: {e}")));
                continue;
            }
        };
        if only.is_some_and(|r| r != cases.rule) {
            continue;
        }
        let Some(rule) = plan.rules.iter().position(|r| r.id == cases.rule) else {
            let ids: Vec<&str> = plan.rules.iter().map(|r| r.id.as_str()).collect();
            let help = crate::rules::diag::did_you_mean(&cases.rule, ids.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
            suite.file_errors.push((path, format!("no rule `{}` in the rules under test{help}", cases.rule)));
            continue;
        };
        for case in &cases.case {
            let t0 = Instant::now();
            let outcome = run_case(&plan, set, rule, case);
            let kind = if case.expect.is_empty() { CaseKind::Benign } else { CaseKind::Positive };
            if let Some(k) = kinds.get_mut(cases.rule.as_str()) {
                match kind {
                    CaseKind::Positive => k.0 = true,
                    _ => k.1 = true,
                }
            }
            suite.results.push(CaseResult {
                file: path.clone(),
                rule: cases.rule.clone(),
                name: case.name.clone(),
                kind,
                outcome,
                secs: t0.elapsed().as_secs_f64(),
            });
        }
        for b in cases.broken.iter().filter(|_| only.is_none()) {
            let t0 = Instant::now();
            let outcome = run_broken(layers, &path, b);
            suite.results.push(CaseResult {
                file: path.clone(),
                rule: cases.rule.clone(),
                name: b.name.clone(),
                kind: CaseKind::Diagnostics,
                outcome,
                secs: t0.elapsed().as_secs_f64(),
            });
        }
    }
    for (rule, (positive, benign)) in kinds.into_iter().filter(|_| only.is_none()) {
        if !positive {
            suite.coverage.push((rule.to_string(), "positive"));
        }
        if !benign {
            suite.coverage.push((rule.to_string(), "benign"));
        }
    }
    suite
}

/// Reads `layers`, stacks them with `overrides` and runs their cases.
/// `Err` with the rules' diagnostics when they do not load.
pub fn run_layers(layers: &[RuleLayer], overrides: &Overrides) -> Result<Suite, Diagnostics> {
    let mut diags = Diagnostics::default();
    let files: Vec<LayerFiles> = layers.iter().map(|l| layers::read(l, &mut diags)).collect();
    let (set, diags) = layers::stack(&files, overrides, diags);
    match set {
        Some(set) => Ok(Suite { warnings: diags, ..run(&files, &set) }),
        None => Err(diags),
    }
}

/// One mutation of a rule: a numeric or duration parameter of one of its
/// signals moved, and whether a case of the rule noticed.
#[derive(Clone, Debug)]
pub struct Mutation {
    /// The parameter, as `--set` names it (`likes/lockstep.lockstep.window`).
    pub path: String,
    /// Its value in the rules.
    pub from: String,
    /// The value tried.
    pub to: String,
    /// Whether a case of the rule failed with it; `None` when the value
    /// is out of the parameter's range (the rules do not load with it),
    /// which is no mutation.
    pub caught: Option<bool>,
}

/// The values a parameter is moved to: a number by -25 % and +25 % (an
/// integer to the nearest other integer when that rounds back to itself),
/// a duration likewise, in whole milliseconds. Lists, strings and booleans
/// have none.
pub fn mutants(value: &str) -> Vec<String> {
    let v = value.trim();
    if v.starts_with(['[', '"']) || v == "true" || v == "false" {
        return Vec::new();
    }
    if let Ok(x) = v.parse::<f64>() {
        if !x.is_finite() || x == 0.0 {
            return Vec::new();
        }
        let integer = !v.contains(['.', 'e', 'E']);
        let out: Vec<String> = if integer {
            let n = x as i64;
            let near = |f: f64| -> i64 { (x * f).round() as i64 };
            let (lo, hi) = (near(0.75), near(1.25));
            vec![if lo == n { n - 1 } else { lo }, if hi == n { n + 1 } else { hi }]
                .into_iter()
                .map(|m| m.to_string())
                .collect()
        } else {
            // Four significant digits: 0.0375, not 0.037500000000000006.
            let round = |m: f64| {
                let p = 10f64.powi(3 - m.abs().log10().floor() as i32);
                (m * p).round() / p
            };
            [0.75, 1.25].iter().map(|f| format!("{}", round(x * f))).collect()
        };
        return out;
    }
    match parse_duration(v) {
        Ok(d) if d > 0 => [3 * d / 4, 5 * d / 4]
            .into_iter()
            .filter(|m| *m != d && *m > 0)
            .map(|m| format!("\"{}\"", crate::time::compact_duration(m)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every mutation of the signal parameters of the rules of `layers`,
/// each run against the cases of its rule: the ones no case catches are
/// thresholds the cases do not pin. A parameter of a rule with two signals
/// of one kind is not mutated (`--set` cannot name it).
pub fn mutate(layers: &[RuleLayer]) -> Result<Vec<Mutation>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let files: Vec<LayerFiles> = layers.iter().map(|l| layers::read(l, &mut diags)).collect();
    let (set, diags) = layers::stack(&files, &Overrides::default(), diags);
    let Some(set) = set else { return Err(diags) };
    let mut out = Vec::new();
    for rule in &set.rules {
        let kinds: Vec<&str> = rule.signals.iter().map(|s| s.def.kind()).collect();
        for s in &rule.signals {
            let kind = s.def.kind();
            if kinds.iter().filter(|k| **k == kind).count() > 1 {
                continue;
            }
            for (name, value) in s.def.describe() {
                for to in mutants(value) {
                    let path = format!("{}.{kind}.{name}", rule.id.value);
                    let overrides = Overrides {
                        assignments: vec![crate::rules::Assignment { path: path.clone(), value: to.clone() }],
                    };
                    let (mutated, _) = layers::stack(&files, &overrides, Diagnostics::default());
                    let caught = mutated.map(|m| {
                        let suite = run_cases(&files, &m, Some(&rule.id.value));
                        suite.failed() > 0
                    });
                    out.push(Mutation { path, from: value.clone(), to, caught });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_move_numbers_and_durations_a_quarter_either_way() {
        assert_eq!(mutants("10"), ["8", "13"]);
        assert_eq!(mutants("2"), ["1", "3"]);
        assert_eq!(mutants("0.05"), ["0.0375", "0.0625"]);
        assert_eq!(mutants("1e-6"), ["0.00000075", "0.00000125"]);
        assert_eq!(mutants("10m"), ["\"7m30s\"", "\"12m30s\""]);
        assert!(mutants("[\"device\"]").is_empty() && mutants("true").is_empty() && mutants("0").is_empty());
    }

    #[test]
    fn junit_escapes_and_counts() {
        let suite = Suite {
            results: vec![
                CaseResult {
                    file: "t/a.toml".into(),
                    rule: "r/a".into(),
                    name: "ok <case>".into(),
                    kind: CaseKind::Positive,
                    outcome: Ok(()),
                    secs: 0.001,
                },
                CaseResult {
                    file: "t/a.toml".into(),
                    rule: "r/a".into(),
                    name: "bad".into(),
                    kind: CaseKind::Benign,
                    outcome: Err("expected 0 hit(s) & got 1".into()),
                    secs: 0.002,
                },
            ],
            file_errors: vec![],
            coverage: vec![],
            warnings: Default::default(),
        };
        let x = suite.junit();
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{x}");
        assert!(x.contains("name=\"ok &lt;case&gt; (positive)\""), "{x}");
        assert!(x.contains("<failure message=\"expected 0 hit(s) &amp; got 1\">"), "{x}");
    }
}
