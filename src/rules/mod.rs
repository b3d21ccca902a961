//! Rules: loading and validating `rules/` into a [`RuleSet`].
//!
//! Stage one of the pipeline. A rules directory holds `changeling.toml` (the
//! [`Config`]: incident grouping, tiers, shared lists and macros) and any
//! number of rule files (`*.toml`, in subdirectories too, read in path
//! order). Loading reads every file, reports *every* problem of every file
//! as a [`Diagnostic`](diag::Diagnostic) at `file:line:col`, and yields a
//! rule set only when there is no error. It never looks at data.
//! [`load_with`] lays `--set` overrides over the documents first
//! ([`overrides`]). A rules directory's `tests/` holds test cases for its
//! rules ([`crate::ruletest`]), not rules. [`layers`] stacks several rule
//! sources (the rules compiled into the binary, [`embedded`], and
//! directories), later ones replacing earlier rules by id.

pub mod config;
pub mod diag;
pub mod embedded;
pub mod filter;
pub mod layers;
pub mod overrides;
pub mod reader;
pub mod rule;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{Config, Tier};
pub use diag::{Code, Diagnostic, Diagnostics, Source};
pub use overrides::{Assignment, Overrides};
pub use rule::{Effect, Rule, Severity, When};

use overrides::Layer;
use reader::Ctx;

/// The config file's name inside a rules directory.
pub const CONFIG_FILE: &str = "changeling.toml";

/// The directory of a rules directory that holds test cases, not rules.
pub const TESTS_DIR: &str = "tests";

/// A validated set of rules with their configuration.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// Incident grouping, tiers, lists, macros.
    pub config: Config,
    /// Rules, ordered by id.
    pub rules: Vec<Rule>,
}

/// Loads rules from a directory (its `changeling.toml` and every other
/// `*.toml` below it) or from one rule file (with the `changeling.toml` of
/// the nearest enclosing directory that has one).
///
/// Returns the rule set, when there are no errors, and every diagnostic.
pub fn load(path: &Path) -> (Option<RuleSet>, Diagnostics) {
    load_with(path, &Overrides::default())
}

/// [`load`] with `overrides` laid over the documents before they are
/// validated (see [`overrides`]).
pub fn load_with(path: &Path, overrides: &Overrides) -> (Option<RuleSet>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let (config_path, rule_paths) = match discover(path, &mut diags) {
        Ok(found) => found,
        Err(e) => {
            let src = Source::new(diag::display_path(path), "");
            diags.push(Code::Unreadable, &src, 0..0, format!("cannot read rules: {e}"));
            return (None, diags);
        }
    };
    let config = config_path.and_then(|p| read_source(&p, &mut diags));
    let sources: Vec<Arc<Source>> = rule_paths.iter().filter_map(|p| read_source(p, &mut diags)).collect();
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(path) };
    load_sources(config, sources, diag::display_path(&dir.join(CONFIG_FILE)), overrides, diags)
}

/// Loads rules from TOML text held in memory (tests and rule test cases):
/// one config text (may be empty) and named rule texts.
pub fn load_texts(config: &str, rules: &[(&str, &str)]) -> (Option<RuleSet>, Diagnostics) {
    let config = Source::new(CONFIG_FILE, config);
    let sources = rules.iter().map(|(name, text)| Source::new(*name, *text)).collect();
    load_sources(Some(config), sources, CONFIG_FILE.into(), &Overrides::default(), Diagnostics::default())
}

/// Validates read sources, with `overrides` laid over them; `config_path`
/// names `changeling.toml` when `config` is absent.
pub(crate) fn load_sources(
    config: Option<Arc<Source>>,
    sources: Vec<Arc<Source>>,
    config_path: PathBuf,
    overrides: &Overrides,
    mut diags: Diagnostics,
) -> (Option<RuleSet>, Diagnostics) {
    let mut layer = Layer::new(overrides, config.as_ref(), &sources, config_path, &mut diags);
    let config = match layer.config_source(config.as_ref()) {
        Some(src) => load_config(&src, &mut layer, &mut diags),
        None => Config::default(),
    };
    let mut rules = Vec::new();
    // The ids of rule files that declare one but have errors: a reference
    // to them is not "no rule has id" (their own errors say what is wrong).
    let mut unloaded = Vec::new();
    for src in &sources {
        let src = layer.source(src);
        match load_rule(&src, &mut layer, &config, &mut diags) {
            Some(rule) => rules.push(rule),
            None => unloaded.extend(layers::declared_id(&src)),
        }
    }
    check_unique_ids(&rules, &mut diags);
    check_references(&rules, &unloaded, &mut diags);
    rules.sort_by(|a, b| a.id.value.cmp(&b.id.value));
    layer.finish(&mut diags);
    if diags.has_errors() {
        return (None, diags);
    }
    (Some(RuleSet { config, rules }), diags)
}

/// The config file and the rule files of a rules directory (not its
/// `tests/`), or of one rule file. A directory link that leads to a
/// directory already read is not followed, with a warning (W104).
pub(crate) fn discover(path: &Path, diags: &mut Diagnostics) -> std::io::Result<(Option<PathBuf>, Vec<PathBuf>)> {
    if path.is_file() {
        let mut dir = path.parent();
        while let Some(d) = dir {
            let c = d.join(CONFIG_FILE);
            if c.is_file() {
                return Ok((Some(c), vec![path.to_path_buf()]));
            }
            dir = d.parent();
        }
        return Ok((None, vec![path.to_path_buf()]));
    }
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("not a file or directory"));
    }
    let tests = path.join(TESTS_DIR);
    let mut files = Vec::new();
    walk_toml(path, Some(&tests), &mut files, diags)?;
    files.sort();
    let config = path.join(CONFIG_FILE);
    let has_config = config.is_file();
    files.retain(|f| f != &config);
    Ok((has_config.then_some(config), files))
}

/// The `.toml` files under `dir` (not under `skip`, nor hidden), each
/// directory read once: a symbolic link to a directory already read (a
/// loop back to an ancestor, or a second way to one) is not followed, and
/// is a warning (W104) naming the link and where it leads. Without this a
/// loop was walked until the system's limit on path length, 40 levels.
pub(crate) fn walk_toml(
    dir: &Path,
    skip: Option<&Path>,
    out: &mut Vec<PathBuf>,
    diags: &mut Diagnostics,
) -> std::io::Result<()> {
    let mut seen = std::collections::HashSet::new();
    seen.insert(std::fs::canonicalize(dir)?);
    walk(dir, skip, out, &mut seen, diags)
}

fn walk(
    dir: &Path,
    skip: Option<&Path>,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
    diags: &mut Diagnostics,
) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for p in entries {
        if skip.is_some_and(|s| p == s) {
            continue;
        }
        if p.is_dir() {
            let real = std::fs::canonicalize(&p)?;
            if !seen.insert(real.clone()) {
                let src = Source::new(diag::display_path(&p), "");
                diags.push(
                    Code::DirectoryLoop,
                    &src,
                    0..0,
                    format!("a link to {}, which is already read: not followed", diag::display_path(&real).display()),
                );
                continue;
            }
            walk(&p, skip, out, seen, diags)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads one file as a source; an unreadable one is E014.
pub(crate) fn read_source(path: &Path, diags: &mut Diagnostics) -> Option<Arc<Source>> {
    let shown = diag::display_path(path);
    match std::fs::read_to_string(path) {
        Ok(text) => Some(Source::new(shown, text)),
        Err(e) => {
            diags.push(Code::Unreadable, &Source::new(shown, ""), 0..0, format!("cannot read file: {e}"));
            None
        }
    }
}

/// Parses TOML, reporting syntax errors; returns the root table when the
/// parser could recover enough to read on.
pub(crate) fn parse<'s>(src: &'s Arc<Source>, diags: &mut Diagnostics) -> Option<toml::Spanned<toml::de::DeTable<'s>>> {
    let (root, errors) = toml::de::DeTable::parse_recoverable(&src.text);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        diags.push(Code::Syntax, src, span, format!("invalid TOML: {msg}"));
    }
    // After a syntax error the tree may be partial: keep reading it so the
    // user sees the other errors too, but its conclusions are not used.
    Some(root)
}

fn load_config(src: &Arc<Source>, layer: &mut Layer, diags: &mut Diagnostics) -> Config {
    match parse(src, diags) {
        Some(mut root) => {
            layer.apply(src, root.get_mut(), diags);
            Config::read(root.get_ref(), root.span(), src, diags)
        }
        None => Config::default(),
    }
}

fn load_rule(src: &Arc<Source>, layer: &mut Layer, config: &Config, diags: &mut Diagnostics) -> Option<Rule> {
    let mut root = parse(src, diags)?;
    layer.apply(src, root.get_mut(), diags);
    let mut ctx = Ctx { source: src, diags, lists: &config.lists };
    Rule::read(root.get_ref(), root.span(), &mut ctx, config)
}

/// Every rule id a signal refers to must exist.
fn check_references(rules: &[Rule], unloaded: &[String], diags: &mut Diagnostics) {
    let ids: Vec<&str> = rules.iter().map(|r| r.id.value.as_str()).collect();
    for r in rules {
        for s in &r.signals {
            for id in s.def.needs().rules {
                if !ids.contains(&id.value.as_str()) && !unloaded.contains(&id.value) {
                    let help = diag::unknown_name_help(&id.value, &ids);
                    diags
                        .push(Code::UnknownRule, &r.source, id.span.clone(), format!("no rule has id `{}`", id.value))
                        .help = help;
                }
            }
        }
    }
}

fn check_unique_ids(rules: &[Rule], diags: &mut Diagnostics) {
    let mut seen: std::collections::HashMap<&str, &Rule> = std::collections::HashMap::new();
    for r in rules {
        if let Some(first) = seen.get(r.id.value.as_str()) {
            let at = first.source.location(first.id.span.start);
            diags
                .push(
                    Code::DuplicateId,
                    &r.source,
                    r.id.span.clone(),
                    format!("rule id `{}` is already used", r.id.value),
                )
                .help
                .push(format!("note: first defined at {at}"));
        } else {
            seen.insert(&r.id.value, r);
        }
    }
}
