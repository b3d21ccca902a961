//! Overrides: `--set PATH=VALUE` laid over the rule and configuration
//! documents before they are validated, so that a parameter can be tried,
//! or swept (`changeling sweep`), without editing files.
//!
//! An override replaces (or adds) one key of one table of one parsed TOML
//! document; the document then goes through the ordinary validation, so
//! an out-of-range value gets the ordinary diagnostic. This module never
//! knows what a valid key or value is: that stays with the readers of
//! `config.rs`, `rule.rs` and the signals, and new keys or tables of
//! `changeling.toml` can be set as soon as they are read there.
//!
//! # Paths
//!
//! - `<rule id>.<signal kind>.<param>`: a parameter of the rule's first
//!   signal of that kind; `<kind>#2` the second one of that kind.
//! - `<rule id>.hit.<key>` and `<rule id>.events.<key>`.
//! - `<table>.<key>` of `changeling.toml`, for any table (`incident.gap`),
//!   deeper tables likewise (`a.b.key`). In an array of tables an element
//!   is selected by its `name` (`tier.high.min_score`) or by its position
//!   (`tier.#1.min_score`); the element must be written in the file.
//!
//! A path is a rule path when what comes before its last two parts is the
//! id of a rule (ids may hold dots); otherwise it is a path into
//! `changeling.toml`. A path that names no rule, no signal of the rule, or
//! no element of an array of tables is error E018, with a "did you mean"
//! and the valid choices. A key that the table does not have is added, and
//! its reader reports it as unknown (E002, with the keys it does have).
//!
//! # Values
//!
//! A value is TOML (`0.05`, `true`, `"6h"`, `["like", "repost"]`); a bare
//! word that is not TOML is taken as a string, so `6h` means `"6h"`.
//!
//! # How a diagnostic finds its setting
//!
//! Each override of a document is appended to the document's text as a
//! comment line, `# --set PATH=VALUE`, and the value (and any key or table
//! the override adds) gets its spans in that line. When loading is over,
//! [`Layer::finish`] moves diagnostics that point there to a source named
//! `--set` holding just `PATH=VALUE`, so the caret sits under the value the
//! user typed, with a note saying what it replaced; any other diagnostic of
//! a document loaded with overrides gets a note naming them.

use std::borrow::Cow;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::diag::{Code, Diagnostics, Source, did_you_mean, unknown_name_help};
use super::reader::type_name;

/// How an override's line starts when appended to a document's text.
const MARK: &str = "# --set ";

/// One `PATH=VALUE` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Where, e.g. `likes/lockstep.hit.weight` (see the module doc).
    pub path: String,
    /// The value as TOML text (a bare word as given is quoted: `6h` is
    /// `"6h"`).
    pub value: String,
}

impl Assignment {
    /// An assignment of `value` (as typed, see [`toml_value`]) to `path`.
    pub fn new(path: &str, value: &str) -> Result<Assignment, String> {
        let path = path.trim();
        check_path(path)?;
        Ok(Assignment { path: path.to_string(), value: toml_value(value)? })
    }

    /// `PATH=VALUE`, as diagnostics show it.
    pub fn text(&self) -> String {
        format!("{}={}", self.path, self.value)
    }
}

/// Overrides to lay over a rules directory, applied in order (a later one
/// of the same path wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The overrides.
    pub assignments: Vec<Assignment>,
}

/// Parses a `--set` argument, `PATH=V1,V2,...`: the path and each value
/// as TOML text. Commas inside brackets, braces or quotes do not split.
pub fn parse_set(arg: &str) -> Result<(String, Vec<String>), String> {
    let Some((path, values)) = arg.split_once('=') else {
        return Err(format!("`{arg}` is not PATH=VALUE[,VALUE...]"));
    };
    let path = path.trim();
    check_path(path)?;
    let values = split_values(values)
        .into_iter()
        .map(|v| toml_value(v).map_err(|e| format!("{path}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path.to_string(), values))
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty parameter path".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control() || *c == '=') {
        return Err(format!("parameter path `{path}` has {c:?} in it"));
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!("parameter path `{path}` has an empty part (two dots, or a dot at an end)"));
    }
    Ok(())
}

/// Splits on commas outside quotes, brackets and braces.
fn split_values(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0i32, None, false, 0);
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ',' if depth <= 0 => {
                    out.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    out.push(&text[start..]);
    out
}

/// One value as TOML text: itself when it parses as a TOML value, else,
/// when it is a bare word, that word as a TOML string (`6h` -> `"6h"`).
pub fn toml_value(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("empty value".into());
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(format!("value {t:?} must be on one line, without control characters"));
    }
    match DeValue::parse(t) {
        Ok(_) => Ok(t.to_string()),
        Err(e) if t.starts_with(['"', '\'', '[', '{']) => {
            Err(format!("`{t}` is not a TOML value: {}", e.message().trim()))
        }
        Err(_) => Ok(quote(t)),
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The parts of a path between dots, with their byte ranges in it.
fn parts(path: &str) -> Vec<(&str, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in path.split('.') {
        out.push((part, start..start + part.len()));
        start += part.len() + 1;
    }
    out
}

/// A path that names nothing: where in it, what, and help.
#[derive(Debug, PartialEq)]
struct Problem {
    span: Range<usize>,
    message: String,
    help: Vec<String>,
}

impl Problem {
    fn new(span: Range<usize>, message: String) -> Problem {
        Problem { span, message, help: Vec::new() }
    }
}

/// Which document a path goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The rule whose id is `path[..id_end]`.
    Rule { id_end: usize },
    /// `changeling.toml`.
    Config,
}

const PATH_FORMS: &str = "`<rule id>.<signal kind>.<parameter>`, `<rule id>.hit.<key>`, `<rule id>.events.<key>`, \
                          or `<table>.<key>` of changeling.toml";

/// Decides which document `path` goes into, given the rule ids.
fn classify(path: &str, ids: &[&str]) -> Result<Target, Problem> {
    let p = parts(path);
    let n = p.len();
    if n >= 3 {
        let id_end = p[n - 2].1.start - 1;
        let id = &path[..id_end];
        if ids.contains(&id) {
            return Ok(Target::Rule { id_end });
        }
        if id.contains('/') || did_you_mean(id, ids.iter().copied()).is_some() {
            let mut problem = Problem::new(0..id_end, format!("no rule has id `{id}`"));
            problem.help = unknown_name_help(id, ids);
            return Err(problem);
        }
    } else if n == 2 && (ids.contains(&p[0].0) || p[0].0.contains('/')) {
        let mut problem = Problem::new(0..path.len(), format!("`{path}` names a rule but not which part of it to set"));
        problem.help.push(format!("help: a parameter path is {PATH_FORMS}"));
        return Err(problem);
    }
    if n < 2 {
        let mut problem = Problem::new(0..path.len(), format!("`{path}` is not a parameter path"));
        problem.help.push(format!("help: a parameter path is {PATH_FORMS}"));
        return Err(problem);
    }
    Ok(Target::Config)
}

/// The `id` of a rule document, if it has a string one.
fn rule_id(text: &str) -> Option<String> {
    let (root, _) = DeTable::parse_recoverable(text);
    root.get_ref().get("id")?.get_ref().as_str().map(str::to_string)
}

/// What an override did to its document.
#[derive(Debug, PartialEq)]
enum Applied {
    /// Replaced the value at this span.
    Replaced(Range<usize>),
    /// Added a key the table did not have.
    Added,
}

/// The table `name` of `parent`, added (with `span`) when absent.
fn child_table<'t, 's>(
    parent: &'t mut DeTable<'s>,
    name: &str,
    span: Range<usize>,
) -> Result<&'t mut DeTable<'s>, &'static str> {
    if !parent.contains_key(name) {
        parent.insert(
            Spanned::new(span.clone(), Cow::Owned(name.to_string())),
            Spanned::new(span, DeValue::Table(DeTable::new())),
        );
    }
    match parent.get_mut(name).expect("present or just added").get_mut() {
        DeValue::Table(t) => Ok(t),
        other => Err(type_name(other)),
    }
}

/// Sets `key` of `table` to `value`.
fn set<'s>(table: &mut DeTable<'s>, key: &str, key_span: Range<usize>, value: Spanned<DeValue<'s>>) -> Applied {
    match table.get_mut(key) {
        Some(old) => {
            let span = old.span();
            *old = value;
            Applied::Replaced(span)
        }
        None => {
            table.insert(Spanned::new(key_span, Cow::Owned(key.to_string())), value);
            Applied::Added
        }
    }
}

/// Shifts `range` by `by`.
fn at(range: &Range<usize>, by: usize) -> Range<usize> {
    range.start + by..range.end + by
}

/// Applies a rule path to a rule document. `offset` is where the path
/// starts in the document's text.
fn apply_rule<'s>(
    root: &mut DeTable<'s>,
    path: &str,
    id_end: usize,
    offset: usize,
    value: Spanned<DeValue<'s>>,
) -> Result<Applied, Problem> {
    let p = parts(path);
    let n = p.len();
    let id = &path[..id_end];
    let (part, part_span) = p[n - 2].clone();
    let (key, key_span) = p[n - 1].clone();
    let table = match part {
        "hit" | "events" => child_table(root, part, at(&part_span, offset)).map_err(|found| {
            Problem::new(part_span.clone(), format!("`{part}` of rule `{id}` is {found}, not a table"))
        })?,
        _ => {
            let (kind, nth) = match part.split_once('#') {
                Some((kind, n)) => match n.parse::<usize>() {
                    Ok(nth) if nth >= 1 => (kind, nth),
                    _ => {
                        let mut problem = Problem::new(part_span.clone(), format!("`#{n}` does not number a signal"));
                        problem.help.push(format!("help: `{kind}#2` is the rule's second signal of kind `{kind}`"));
                        return Err(problem);
                    }
                },
                None => (part, 1),
            };
            let kind_span = part_span.start..part_span.start + kind.len();
            let signals: &mut [Spanned<DeValue<'s>>] = match root.get_mut("signal").map(Spanned::get_mut) {
                Some(DeValue::Array(items)) => items,
                _ => &mut [],
            };
            let kind_of = |s: &Spanned<DeValue<'_>>| match s.get_ref() {
                DeValue::Table(t) => t.get("kind").and_then(|k| k.get_ref().as_str().map(str::to_string)),
                _ => None,
            };
            let mut choices: Vec<String> = signals.iter().filter_map(kind_of).collect();
            let matching: Vec<usize> =
                (0..signals.len()).filter(|&i| kind_of(&signals[i]).as_deref() == Some(kind)).collect();
            if matching.is_empty() {
                choices.dedup();
                choices.extend(["hit".to_string(), "events".to_string()]);
                let choices: Vec<&str> = choices.iter().map(String::as_str).collect();
                let mut problem = Problem::new(kind_span, format!("rule `{id}` has no signal of kind `{kind}`"));
                problem.help = unknown_name_help(kind, &choices);
                return Err(problem);
            }
            let Some(&i) = matching.get(nth - 1) else {
                let have = matching.len();
                return Err(Problem::new(
                    part_span,
                    format!(
                        "rule `{id}` has {have} signal{} of kind `{kind}`, so no #{nth}",
                        if have == 1 { "" } else { "s" }
                    ),
                ));
            };
            match signals[i].get_mut() {
                DeValue::Table(t) => t,
                _ => unreachable!("a signal with a kind is a table"),
            }
        }
    };
    Ok(set(table, key, at(&key_span, offset), value))
}

/// Applies a path to `changeling.toml`. `offset` is where the path starts
/// in the document's text.
fn apply_config<'s>(
    root: &mut DeTable<'s>,
    path: &str,
    offset: usize,
    value: Spanned<DeValue<'s>>,
) -> Result<Applied, Problem> {
    let p = parts(path);
    let (key, key_span) = p[p.len() - 1].clone();
    let table = config_table(root, path, &p[..p.len() - 1], offset)?;
    Ok(set(table, key, at(&key_span, offset), value))
}

/// Walks `parts` down from `table`: tables by name (added when absent),
/// arrays of tables by an element's `name` or `#N`.
fn config_table<'t, 's>(
    table: &'t mut DeTable<'s>,
    path: &str,
    parts: &[(&str, Range<usize>)],
    offset: usize,
) -> Result<&'t mut DeTable<'s>, Problem> {
    let Some(((name, span), rest)) = parts.split_first() else {
        return Ok(table);
    };
    let prefix = &path[..span.end];
    if !table.contains_key(*name) {
        child_table(table, name, at(span, offset)).expect("a new table");
    }
    let child = table.get_mut(*name).expect("present or just added").get_mut();
    let found = type_name(child);
    let array_of_tables = match &*child {
        DeValue::Array(items) => !items.is_empty() && items.iter().all(|i| i.get_ref().is_table()),
        _ => false,
    };
    match child {
        DeValue::Table(t) => config_table(t, path, rest, offset),
        DeValue::Array(items) if array_of_tables => {
            let items: &mut [Spanned<DeValue<'s>>] = items;
            let names: Vec<String> = items
                .iter()
                .filter_map(|i| match i.get_ref() {
                    DeValue::Table(t) => t.get("name").and_then(|n| n.get_ref().as_str().map(str::to_string)),
                    _ => None,
                })
                .collect();
            let Some(((sel, sel_span), rest)) = rest.split_first() else {
                let example = names.first().cloned().unwrap_or_else(|| "#1".into());
                let mut problem = Problem::new(
                    span.clone(),
                    format!("`{prefix}` is an array of tables: name one of them before the key"),
                );
                problem
                    .help
                    .push(format!("help: select an element by its `name` or position: `{prefix}.{example}.<key>`"));
                return Err(problem);
            };
            let index = match sel.strip_prefix('#') {
                Some(n) => n.parse::<usize>().ok().filter(|&n| n >= 1 && n <= items.len()).map(|n| n - 1),
                None => items.iter().position(|i| match i.get_ref() {
                    DeValue::Table(t) => t.get("name").and_then(|n| n.get_ref().as_str()) == Some(*sel),
                    _ => false,
                }),
            };
            let Some(index) = index else {
                let message = match sel.strip_prefix('#') {
                    Some(_) => format!("`{prefix}` has {} elements: there is no {sel}", items.len()),
                    None => format!("no [[{prefix}]] has name = \"{sel}\""),
                };
                let mut problem = Problem::new(sel_span.clone(), message);
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                problem.help = unknown_name_help(sel, &names);
                return Err(problem);
            };
            match items[index].get_mut() {
                DeValue::Table(t) => config_table(t, path, rest, offset),
                _ => unreachable!("every element is a table"),
            }
        }
        _ => Err(Problem::new(span.clone(), format!("`{prefix}` is {found}, not a table"))),
    }
}

/// A value parsed out of a document's text at `start`, with its spans
/// (relative to the parsed slice) moved to the document's.
fn shifted<'s>(v: Spanned<DeValue<'s>>, by: usize) -> Spanned<DeValue<'s>> {
    let span = at(&v.span(), by);
    let value = match v.into_inner() {
        DeValue::Array(items) => {
            let mut out = DeArray::new();
            for item in items {
                out.push(shifted(item, by));
            }
            DeValue::Array(out)
        }
        DeValue::Table(t) => {
            let mut out = DeTable::new();
            for (k, v) in t {
                out.insert(Spanned::new(at(&k.span(), by), k.into_inner()), shifted(v, by));
            }
            DeValue::Table(out)
        }
        other => other,
    };
    Spanned::new(span, value)
}

/// One override of one document.
#[derive(Debug)]
struct Edit {
    /// Index of the assignment.
    k: usize,
    /// Where its `PATH=VALUE` starts in the document's text.
    start: usize,
    target: Target,
    /// What it did, in words, once applied.
    note: Option<String>,
}

/// A document with overrides: its text with their lines appended.
#[derive(Debug)]
struct Overlaid {
    original: Arc<Source>,
    combined: Arc<Source>,
    /// Where the appended lines begin.
    base: usize,
    edits: Vec<Edit>,
}

/// The overrides of one load, laid over its documents.
#[derive(Debug, Default)]
pub(super) struct Layer {
    assignments: Vec<Assignment>,
    /// Per assignment, the source diagnostics about it point into:
    /// `--set` holding `PATH=VALUE`.
    lines: Vec<Arc<Source>>,
    files: Vec<Overlaid>,
    /// Index into `files` of `changeling.toml`, when overridden.
    config: Option<usize>,
}

impl Layer {
    /// Decides which document each override goes into (reporting paths
    /// that name no rule as E018) and prepares the documents' texts.
    /// `config_path` names `changeling.toml` when there is no such file.
    pub(super) fn new(
        overrides: &Overrides,
        config: Option<&Arc<Source>>,
        rules: &[Arc<Source>],
        config_path: PathBuf,
        diags: &mut Diagnostics,
    ) -> Layer {
        if overrides.assignments.is_empty() {
            return Layer::default();
        }
        let assignments = overrides.assignments.clone();
        let lines: Vec<Arc<Source>> = assignments.iter().map(|a| Source::new("--set", a.text())).collect();
        let ids: Vec<Option<String>> = rules.iter().map(|s| rule_id(&s.text)).collect();
        let mut known: Vec<&str> = ids.iter().flatten().map(String::as_str).collect();
        known.sort_unstable();
        known.dedup();
        // (file: None for the config, Some(i) for rule i; assignment; target)
        let mut wanted: Vec<(Option<usize>, usize, Target)> = Vec::new();
        for (k, a) in assignments.iter().enumerate() {
            match classify(&a.path, &known) {
                Err(p) => diags.push(Code::BadOverride, &lines[k], p.span, p.message).help = p.help,
                Ok(Target::Config) => wanted.push((None, k, Target::Config)),
                Ok(t @ Target::Rule { id_end }) => {
                    for (i, id) in ids.iter().enumerate() {
                        if id.as_deref() == Some(&a.path[..id_end]) {
                            wanted.push((Some(i), k, t));
                        }
                    }
                }
            }
        }
        let mut layer = Layer { assignments, lines, files: Vec::new(), config: None };
        let mut files: Vec<Option<usize>> = wanted.iter().map(|w| w.0).collect();
        files.sort_unstable();
        files.dedup();
        for file in files {
            let original = match file {
                Some(i) => rules[i].clone(),
                None => config.cloned().unwrap_or_else(|| Source::new(config_path.clone(), "")),
            };
            let mut text = original.text.clone();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            let base = text.len();
            let mut edits = Vec::new();
            for &(_, k, target) in wanted.iter().filter(|w| w.0 == file) {
                text.push_str(MARK);
                edits.push(Edit { k, start: text.len(), target, note: None });
                text.push_str(&layer.lines[k].text);
                text.push('\n');
            }
            let combined = Source::new(original.path.clone(), text);
            if file.is_none() {
                layer.config = Some(layer.files.len());
            }
            layer.files.push(Overlaid { original, combined, base, edits });
        }
        layer
    }

    /// The source to load `changeling.toml` from: `config`, or, when it is
    /// overridden, its text with the overrides (even when there is no
    /// such file).
    pub(super) fn config_source(&self, config: Option<&Arc<Source>>) -> Option<Arc<Source>> {
        match self.config {
            Some(i) => Some(self.files[i].combined.clone()),
            None => config.cloned(),
        }
    }

    /// The source to load a rule file from: `src`, or its text with the
    /// overrides of its rule.
    pub(super) fn source(&self, src: &Arc<Source>) -> Arc<Source> {
        match self.files.iter().find(|f| Arc::ptr_eq(&f.original, src)) {
            Some(f) => f.combined.clone(),
            None => src.clone(),
        }
    }

    /// Applies the overrides of the document `src` (as returned by
    /// [`Layer::source`] or [`Layer::config_source`]) to its parsed root.
    pub(super) fn apply<'s>(&mut self, src: &'s Arc<Source>, root: &mut DeTable<'s>, diags: &mut Diagnostics) {
        let Some(file) = self.files.iter_mut().find(|f| Arc::ptr_eq(&f.combined, src)) else {
            return;
        };
        let text: &'s str = &src.text;
        for edit in &mut file.edits {
            let a = &self.assignments[edit.k];
            let line = &self.lines[edit.k];
            let value_start = edit.start + a.path.len() + 1;
            let value = match DeValue::parse(&text[value_start..value_start + a.value.len()]) {
                Ok(v) => shifted(v, value_start),
                Err(e) => {
                    // Assignments hold TOML values; this is a bug.
                    let span = a.path.len() + 1..line.text.len();
                    diags.push(Code::BadOverride, line, span, format!("not a TOML value: {}", e.message().trim()));
                    continue;
                }
            };
            let applied = match edit.target {
                Target::Rule { id_end } => apply_rule(root, &a.path, id_end, edit.start, value),
                Target::Config => apply_config(root, &a.path, edit.start, value),
            };
            let key = a.path.rsplit('.').next().unwrap_or_default();
            let shown = file.original.path.display();
            edit.note = match applied {
                Ok(Applied::Replaced(old)) => Some(format!(
                    "note: --set replaces `{key} = {}` at {}",
                    &file.original.text[old.clone()],
                    file.original.location(old.start)
                )),
                Ok(Applied::Added) => Some(format!("note: --set adds `{key}`, which {shown} does not set")),
                Err(p) => {
                    diags.push(Code::BadOverride, line, p.span, p.message).help = p.help;
                    None
                }
            };
        }
    }

    /// Points diagnostics about an override's value or key at the `--set`
    /// text it came from, and notes on the others of an overridden
    /// document which overrides it was loaded with.
    pub(super) fn finish(&self, diags: &mut Diagnostics) {
        for d in &mut diags.items {
            let Some(file) = self.files.iter().find(|f| Arc::ptr_eq(&f.combined, &d.source)) else {
                continue;
            };
            if d.span.start < file.base {
                d.source = file.original.clone();
                let sets: Vec<String> = file.edits.iter().map(|e| self.lines[e.k].text.clone()).collect();
                d.help.push(format!(
                    "note: {} was loaded with --set {}",
                    file.original.path.display(),
                    sets.join(" --set ")
                ));
                continue;
            }
            let Some(edit) = file.edits.iter().rev().find(|e| e.start <= d.span.start) else {
                continue;
            };
            let line = &self.lines[edit.k];
            let len = line.text.len();
            let start = (d.span.start - edit.start).min(len);
            let end = d.span.end.saturating_sub(edit.start).clamp(start, len);
            d.source = line.clone();
            d.span = start..end;
            if let Some(note) = &edit.note {
                d.help.push(note.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;
    use crate::signals::SignalDef;

    const CONFIG: &str = r#"
[incident]
gap = "6h"

[[tier]]
name = "high"
min_score = 0.8

[[tier]]
name = "low"
min_score = 0.2
"#;

    const RULE: &str = r#"id = "likes/odd"
title = "Odd likes"

[events]
actions = ["like"]

[[signal]]
kind = "off_pattern"
max_probability = 0.05

[[signal]]
kind = "off_pattern"
features = ["author"]

[hit]
weight = 0.5
"#;

    const OTHER: &str = "id = \"v1.2/plain\"\ntitle = \"No signals\"\n";

    fn load(sets: &[(&str, &str)]) -> (Option<RuleSet>, Diagnostics) {
        let overrides = Overrides {
            assignments: sets.iter().map(|(p, v)| Assignment::new(p, v).expect("a valid assignment")).collect(),
        };
        super::super::load_sources(
            Some(Source::new("rules/changeling.toml", CONFIG)),
            vec![Source::new("rules/odd.toml", RULE), Source::new("rules/plain.toml", OTHER)],
            "rules/changeling.toml".into(),
            &overrides,
            Diagnostics::default(),
        )
    }

    fn loaded(sets: &[(&str, &str)]) -> RuleSet {
        let (set, diags) = load(sets);
        set.unwrap_or_else(|| panic!("{}", diags.render()))
    }

    fn errors(sets: &[(&str, &str)]) -> String {
        let (set, diags) = load(sets);
        assert!(set.is_none(), "loaded despite {sets:?}");
        diags.render()
    }

    fn max_probability(set: &RuleSet, signal: usize) -> f64 {
        match &set.rules[0].signals[signal].def {
            SignalDef::OffPattern(d) => d.key.max_probability.0,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_toml_or_bare_strings() {
        assert_eq!(toml_value("0.05"), Ok("0.05".into()));
        assert_eq!(toml_value(" 12 "), Ok("12".into()));
        assert_eq!(toml_value("true"), Ok("true".into()));
        assert_eq!(toml_value("\"6h\""), Ok("\"6h\"".into()));
        assert_eq!(toml_value("6h"), Ok("\"6h\"".into()));
        assert_eq!(toml_value("high"), Ok("\"high\"".into()));
        assert_eq!(toml_value("[\"like\", \"repost\"]"), Ok("[\"like\", \"repost\"]".into()));
        assert_eq!(toml_value("a\"b"), Ok("\"a\\\"b\"".into()));
        assert!(toml_value("").is_err());
        assert!(toml_value("[1, ").unwrap_err().contains("not a TOML value"));
        assert!(toml_value("\"open").is_err());
    }

    #[test]
    fn set_arguments_split_on_top_level_commas() {
        assert_eq!(
            parse_set("a.b.c=0.01,0.02, 0.05"),
            Ok(("a.b.c".into(), vec!["0.01".into(), "0.02".into(), "0.05".into()]))
        );
        assert_eq!(
            parse_set("incident.gap=3h,6h"),
            Ok(("incident.gap".into(), vec!["\"3h\"".into(), "\"6h\"".into()]))
        );
        assert_eq!(
            parse_set("r.events.actions=[\"like\",\"repost\"],[\"like\"]"),
            Ok(("r.events.actions".into(), vec!["[\"like\",\"repost\"]".into(), "[\"like\"]".into()]))
        );
        assert_eq!(parse_set("x.y=\"a,b\",c"), Ok(("x.y".into(), vec!["\"a,b\"".into(), "\"c\"".into()])));
        assert!(parse_set("x.y").unwrap_err().contains("PATH=VALUE"));
        assert!(parse_set("x..y=1").unwrap_err().contains("empty part"));
        assert!(parse_set("x.y=1,,2").unwrap_err().contains("x.y: empty value"));
    }

    #[test]
    fn paths_go_to_rules_by_id_and_otherwise_to_the_config() {
        let ids = ["likes/odd", "v1.2/plain"];
        assert_eq!(classify("likes/odd.off_pattern.max_probability", &ids), Ok(Target::Rule { id_end: 9 }));
        assert_eq!(classify("likes/odd.hit.weight", &ids), Ok(Target::Rule { id_end: 9 }));
        // Ids may hold dots.
        assert_eq!(classify("v1.2/plain.hit.weight", &ids), Ok(Target::Rule { id_end: 10 }));
        assert_eq!(classify("incident.gap", &ids), Ok(Target::Config));
        assert_eq!(classify("tier.high.min_score", &ids), Ok(Target::Config));
        let e = classify("likes/od.hit.weight", &ids).unwrap_err();
        assert_eq!((e.span, e.message.as_str()), (0..8, "no rule has id `likes/od`"));
        assert!(e.help[0].contains("did you mean `likes/odd`?"), "{:?}", e.help);
        assert!(classify("likes/odd.weight", &ids).unwrap_err().message.contains("names a rule but not which part"));
        assert!(classify("gap", &ids).unwrap_err().message.contains("not a parameter path"));
    }

    #[test]
    fn a_signal_parameter_is_replaced_in_the_right_signal() {
        let base = loaded(&[]);
        assert_eq!(max_probability(&base, 0), 0.05);
        let set = loaded(&[("likes/odd.off_pattern.max_probability", "0.01")]);
        assert_eq!(max_probability(&set, 0), 0.01);
        assert_eq!(max_probability(&set, 1), max_probability(&base, 1));
        // `#2`: the second signal of the kind, which did not set it.
        let set = loaded(&[("likes/odd.off_pattern#2.max_probability", "0.001")]);
        assert_eq!((max_probability(&set, 0), max_probability(&set, 1)), (0.05, 0.001));
    }

    #[test]
    fn hit_events_and_config_keys_are_set_or_added() {
        let set = loaded(&[
            ("likes/odd.hit.weight", "0.9"),
            ("likes/odd.hit.when", "any"),
            ("likes/odd.events.actions", "[\"like\", \"repost\"]"),
            ("v1.2/plain.hit.weight", "0.3"),
            ("incident.gap", "3h"),
            ("tier.low.min_score", "0.3"),
            ("tier.#1.name", "top"),
        ]);
        let odd = &set.rules[0];
        assert_eq!((odd.weight, odd.when), (0.9, crate::rules::When::Any));
        let actions: Vec<&str> = odd.actions.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(actions, ["like", "repost"]);
        assert_eq!(set.rules[1].weight, 0.3);
        assert_eq!(set.config.incident_gap, 3 * crate::time::HOUR);
        let tiers: Vec<(&str, f64)> = set.config.tiers.iter().map(|t| (t.name.as_str(), t.min_score)).collect();
        assert_eq!(tiers, [("top", 0.8), ("low", 0.3)]);
    }

    #[test]
    fn a_config_table_absent_from_the_file_is_added() {
        let overrides = Overrides { assignments: vec![Assignment::new("incident.gap", "2h").unwrap()] };
        let (set, diags) = super::super::load_sources(
            None,
            vec![Source::new("rules/plain.toml", OTHER)],
            "rules/changeling.toml".into(),
            &overrides,
            Diagnostics::default(),
        );
        let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
        assert_eq!(set.config.incident_gap, 2 * crate::time::HOUR);
        assert_eq!(set.config.tiers.len(), 3, "the default tiers stay");
    }

    #[test]
    fn an_out_of_range_value_gets_the_ordinary_diagnostic_at_the_setting() {
        let text = errors(&[("likes/odd.off_pattern.max_probability", "1.5")]);
        assert!(text.contains("error[E006]"), "{text}");
        assert!(text.contains("--> --set:1:"), "{text}");
        assert!(text.contains("1 | likes/odd.off_pattern.max_probability=1.5\n"), "{text}");
        assert!(text.contains("^^^\n"), "{text}");
        assert!(text.contains("note: --set replaces `max_probability = 0.05` at rules/odd.toml:9:19"), "{text}");
        // A bad duration, unquoted.
        let text = errors(&[("incident.gap", "soon")]);
        assert!(text.contains("error[E007]") && text.contains("incident.gap=\"soon\""), "{text}");
    }

    #[test]
    fn an_unknown_key_is_reported_with_the_keys_there_are() {
        let text = errors(&[("likes/odd.off_pattern.max_probabilty", "0.01")]);
        assert!(text.contains("error[E002]: unknown key `max_probabilty`"), "{text}");
        assert!(text.contains("did you mean `max_probability`?"), "{text}");
        assert!(text.contains("--> --set:1:23"), "{text}");
        let text = errors(&[("incident.gpa", "3h")]);
        assert!(text.contains("unknown key `gpa` in [incident]") && text.contains("did you mean `gap`?"), "{text}");
    }

    #[test]
    fn paths_naming_nothing_are_e018_with_choices() {
        let text = errors(&[("likes/odd.of_pattern.max_probability", "0.01")]);
        assert!(text.contains("error[E018]: rule `likes/odd` has no signal of kind `of_pattern`"), "{text}");
        assert!(text.contains("did you mean `off_pattern`?"), "{text}");
        assert!(text.contains("expected one of `off_pattern`, `hit`, `events`"), "{text}");
        let text = errors(&[("likes/odd.off_pattern#3.max_probability", "0.01")]);
        assert!(text.contains("has 2 signals of kind `off_pattern`, so no #3"), "{text}");
        let text = errors(&[("tier.hihg.min_score", "0.9")]);
        assert!(text.contains("no [[tier]] has name = \"hihg\""), "{text}");
        assert!(text.contains("did you mean `high`?"), "{text}");
        let text = errors(&[("tier.min_score", "0.9")]);
        assert!(text.contains("`tier` is an array of tables"), "{text}");
        let text = errors(&[("incident.gap.x", "1")]);
        assert!(text.contains("`incident.gap` is a string, not a table"), "{text}");
        let text = errors(&[("likes/odd.hit.weight", "2")]);
        assert!(text.contains("`weight` is 2, but must be between 0 and 1"), "{text}");
    }

    #[test]
    fn other_errors_of_an_overridden_file_name_the_override() {
        // Tiers out of order: the error is at the second tier, in the file.
        let text = errors(&[("tier.high.min_score", "0.1")]);
        assert!(text.contains("error[E012]"), "{text}");
        assert!(text.contains("--> rules/changeling.toml:"), "{text}");
        assert!(text.contains("note: rules/changeling.toml was loaded with --set tier.high.min_score=0.1"), "{text}");
    }

    #[test]
    fn without_overrides_sources_are_untouched() {
        let (set, diags) = load(&[]);
        assert!(set.is_some() && diags.items.is_empty(), "{}", diags.render());
        assert_eq!(set.unwrap().rules[0].source.text, RULE);
    }
}
