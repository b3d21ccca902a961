//! Rules from several sources, stacked: the rules compiled into the binary
//! and any number of directories (or single rule files), later ones
//! replacing earlier rules by id.
//!
//! A team runs the shipped rules plus its own with `--rules builtin
//! --rules team-rules/`: a rule of `team-rules/` whose id is a shipped
//! rule's replaces it, the others are added. The engine configuration
//! (`changeling.toml`: tiers, lists, macros) is the last layer's that has
//! one, so a layer of a few rules keeps the shipped tiers and lists. Every
//! rule is then validated against that configuration, as one set: ids must
//! be unique within a layer (E011) and `after_hit` references resolve
//! across layers.
//!
//! Which layers: the `--rules` arguments when given, else the
//! `CHANGELING_RULES` environment variable (a list like `PATH`), else the
//! built-in rules. [`check`] turns a layer that does not exist into an
//! error that says what to pass instead. Each layer's `tests/` directory
//! holds test cases for its rules ([`crate::ruletest`]); loading leaves
//! them out.
//!
//! **Overlays.** A layer may also be an overlay file: a TOML file with an
//! `[overlay]` table of parameter paths and values, as `--set` takes them
//! (docs/rules.md, "Parameter paths"), which `changeling fit` writes:
//!
//! ```toml
//! [overlay]
//! "likes/lockstep.hit.weight" = 0.7
//! "score.caps.content" = 0.45
//! "tier.high.min_score" = 0.93
//! "score.calibration.raw" = [0.05, 0.4, 0.9]
//! "score.calibration.calibrated" = [0.002, 0.1, 0.98]
//! ```
//!
//! An overlay holds no rules: its settings are laid over the documents of
//! the stacked rule layers, wherever it stands among them, in the order the
//! overlays are given and before any `--set`; they are validated as
//! `--set` overrides are ([`super::overrides`]), and their diagnostics
//! point at the `--set` they amount to. Each value is written on one line.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;

use super::diag::{self, Code, Diagnostics, Source};
use super::{Assignment, CONFIG_FILE, Overrides, RuleSet, TESTS_DIR, embedded};

/// The table that makes a TOML file an overlay (see the module doc).
pub const OVERLAY_TABLE: &str = "overlay";

/// The environment variable naming rule layers when `--rules` is not
/// given: paths separated as in `PATH` (`:` on Unix), `builtin` for the
/// built-in rules.
pub const ENV: &str = "CHANGELING_RULES";

/// One source of rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleLayer {
    /// The rules compiled into the binary (written `builtin`).
    Builtin,
    /// A rules directory (its `changeling.toml` and rule files), or one
    /// rule file (with the `changeling.toml` of the nearest enclosing
    /// directory that has one).
    Path(PathBuf),
}

impl RuleLayer {
    /// A layer as users write it: `builtin`, or a path.
    pub fn from_arg(arg: &OsStr) -> RuleLayer {
        if arg == embedded::BUILTIN { RuleLayer::Builtin } else { RuleLayer::Path(PathBuf::from(arg)) }
    }

    /// The layer as users write it.
    pub fn name(&self) -> String {
        match self {
            RuleLayer::Builtin => embedded::BUILTIN.to_string(),
            RuleLayer::Path(p) => p.display().to_string(),
        }
    }
}

/// The layers of a run: `args` when there are any, else those of the
/// environment variable's value `env` (split like `PATH`), else the
/// built-in rules.
pub fn resolve(args: &[RuleLayer], env: Option<OsString>) -> Vec<RuleLayer> {
    if !args.is_empty() {
        return args.to_vec();
    }
    let from_env: Vec<RuleLayer> = env
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .map(|p| RuleLayer::from_arg(p.as_os_str()))
        .collect();
    if from_env.is_empty() { vec![RuleLayer::Builtin] } else { from_env }
}

/// The names of `layers`, for messages: `builtin + team-rules`.
pub fn describe(layers: &[RuleLayer]) -> String {
    layers.iter().map(RuleLayer::name).collect::<Vec<_>>().join(" + ")
}

/// A rule layer that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The path does not exist.
    #[error(
        "rules `{}`{}: no such file or directory; pass --rules DIR with a directory holding changeling.toml and rule \
         files (or one rule file), `--rules builtin` for the rules built into changeling, or leave --rules out to use \
         them; `changeling rules export DIR` writes them out for editing",
        path.display(),
        if *from_env { format!(" (from {ENV})") } else { String::new() }
    )]
    Missing {
        /// The path given.
        path: PathBuf,
        /// Whether it came from the environment variable.
        from_env: bool,
    },
}

/// Checks that every path layer exists. `from_env` says where the layers
/// came from, for the message.
pub fn check(layers: &[RuleLayer], from_env: bool) -> Result<(), LayerError> {
    for l in layers {
        if let RuleLayer::Path(p) = l
            && !p.exists()
        {
            return Err(LayerError::Missing { path: p.clone(), from_env });
        }
    }
    Ok(())
}

/// The files of one layer, read.
#[derive(Clone, Debug)]
pub struct LayerFiles {
    /// Where they came from.
    pub layer: RuleLayer,
    /// Its `changeling.toml`, if it has one.
    pub config: Option<Arc<Source>>,
    /// Its rule files, in path order.
    pub rules: Vec<Arc<Source>>,
    /// Its test case files (`tests/**/*.toml`), in path order.
    pub tests: Vec<Arc<Source>>,
    /// Where its `changeling.toml` is or would be (for `--set` notes).
    pub config_path: PathBuf,
    /// When the layer is an overlay file: the file (it has no rules).
    pub overlay: Option<Arc<Source>>,
}

/// Whether `src` is an overlay: a TOML document with an `[overlay]` table
/// and no rule `id`.
pub fn is_overlay(src: &Source) -> bool {
    let (root, _) = toml::de::DeTable::parse_recoverable(&src.text);
    let root = root.get_ref();
    root.contains_key(OVERLAY_TABLE) && !root.contains_key("id")
}

/// The settings of an overlay file, as overrides in file order; problems
/// (not a table, a value over several lines, a path `--set` would refuse)
/// go in `diags` at the file's line and column.
pub fn overlay_assignments(src: &Arc<Source>, diags: &mut Diagnostics) -> Vec<Assignment> {
    let Some(root) = super::parse(src, diags) else { return Vec::new() };
    let mut out = Vec::new();
    for (key, value) in root.get_ref().iter() {
        if key.get_ref() != OVERLAY_TABLE {
            diags
                .push(Code::UnknownKey, src, key.span(), format!("unknown key `{}` in an overlay", key.get_ref()))
                .help
                .push(format!("help: an overlay holds one table, [{OVERLAY_TABLE}], of parameter paths and values"));
            continue;
        }
        let toml::de::DeValue::Table(table) = value.get_ref() else {
            diags.push(Code::WrongType, src, value.span(), format!("`{OVERLAY_TABLE}` must be a table"));
            continue;
        };
        for (path, v) in table.iter() {
            let text = &src.text[v.span()];
            if text.contains('\n') {
                diags.push(Code::BadOverride, src, v.span(), "an overlay's value must be written on one line");
                continue;
            }
            match Assignment::new(path.get_ref(), text) {
                Ok(a) => out.push(a),
                Err(e) => {
                    diags.push(Code::BadOverride, src, path.span(), e);
                }
            }
        }
    }
    out
}

/// Reads the files of one layer; unreadable ones are E014 in `diags`.
pub fn read(layer: &RuleLayer, diags: &mut Diagnostics) -> LayerFiles {
    match layer {
        RuleLayer::Builtin => {
            let mut files = LayerFiles {
                layer: layer.clone(),
                config: None,
                rules: Vec::new(),
                tests: Vec::new(),
                config_path: embedded::display_path(CONFIG_FILE),
                overlay: None,
            };
            for (path, text) in embedded::rule_files() {
                let src = Source::new(embedded::display_path(path), text);
                if path == CONFIG_FILE {
                    files.config = Some(src);
                } else if path.starts_with(&format!("{TESTS_DIR}/")) {
                    files.tests.push(src);
                } else if path.ends_with(".toml") {
                    files.rules.push(src);
                }
            }
            files
        }
        RuleLayer::Path(path) => {
            let dir = if path.is_dir() { path.clone() } else { path.parent().unwrap_or(path).to_path_buf() };
            let mut files = LayerFiles {
                layer: layer.clone(),
                config: None,
                rules: Vec::new(),
                tests: Vec::new(),
                config_path: diag::display_path(&dir.join(CONFIG_FILE)),
                overlay: None,
            };
            if path.is_file()
                && let Some(src) = super::read_source(path, diags)
                && is_overlay(&src)
            {
                files.overlay = Some(src);
                return files;
            }
            match super::discover(path, diags) {
                Ok((config, rules)) => {
                    files.config = config.and_then(|p| super::read_source(&p, diags));
                    files.rules = rules.iter().filter_map(|p| super::read_source(p, diags)).collect();
                }
                Err(e) => {
                    let src = Source::new(diag::display_path(path), "");
                    diags.push(Code::Unreadable, &src, 0..0, format!("cannot read rules: {e}"));
                }
            }
            if path.is_dir() {
                let mut tests = Vec::new();
                let dir = path.join(TESTS_DIR);
                if dir.is_dir()
                    && let Err(e) = super::walk_toml(&dir, None, &mut tests, diags)
                {
                    let src = Source::new(diag::display_path(&dir), "");
                    diags.push(Code::Unreadable, &src, 0..0, format!("cannot read rule tests: {e}"));
                }
                tests.sort();
                files.tests = tests.iter().filter_map(|p| super::read_source(p, diags)).collect();
            }
            files
        }
    }
}

/// The id a rule file declares, if it parses far enough to tell.
pub(crate) fn declared_id(src: &Source) -> Option<String> {
    let (root, _) = toml::de::DeTable::parse_recoverable(&src.text);
    match root.get_ref().get("id")?.get_ref() {
        toml::de::DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Stacks read layers into one rule set, with the overlays' settings and
/// then `overrides` laid over the documents: the last configuration, and
/// every rule file except those whose id a later layer declares again.
/// Diagnostics of reading go in `diags` first.
pub fn stack(layers: &[LayerFiles], overrides: &Overrides, mut diags: Diagnostics) -> (Option<RuleSet>, Diagnostics) {
    let mut all = Overrides::default();
    for l in layers {
        if let Some(src) = &l.overlay {
            all.assignments.extend(overlay_assignments(src, &mut diags));
        }
    }
    let overrides = if all.assignments.is_empty() {
        overrides
    } else {
        all.assignments.extend(overrides.assignments.iter().cloned());
        &all
    };
    let config = layers.iter().rev().find_map(|l| l.config.clone());
    let config_path = layers
        .iter()
        .rev()
        .find(|l| l.config.is_some())
        .or(layers.last())
        .map_or_else(|| PathBuf::from(CONFIG_FILE), |l| l.config_path.clone());
    let ids: Vec<Vec<Option<String>>> =
        layers.iter().map(|l| l.rules.iter().map(|s| declared_id(s)).collect()).collect();
    let mut sources = Vec::new();
    for (li, layer) in layers.iter().enumerate() {
        for (ri, src) in layer.rules.iter().enumerate() {
            let replaced =
                ids[li][ri].as_ref().is_some_and(|id| ids[li + 1..].iter().flatten().any(|x| x.as_ref() == Some(id)));
            if !replaced {
                sources.push(src.clone());
            }
        }
    }
    super::load_sources(config, sources, config_path, overrides, diags)
}

/// Reads and stacks `layers` (see [`stack`]).
pub fn load(layers: &[RuleLayer], overrides: &Overrides) -> (Option<RuleSet>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let files: Vec<LayerFiles> = layers.iter().map(|l| read(l, &mut diags)).collect();
    stack(&files, overrides, diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn later_layers_replace_rules_by_id_and_keep_the_last_config() {
        let dir = tempfile::tempdir().unwrap();
        let team = dir.path();
        std::fs::write(
            team.join("lockstep.toml"),
            "id = \"likes/lockstep\"\ntitle = \"team lockstep\"\n[events]\nactions = [\"like\"]\n[[signal]]\nkind = \"lockstep\"\nmin_accounts = 9\n",
        )
        .unwrap();
        std::fs::write(
            team.join("extra.toml"),
            "id = \"team/logins\"\ntitle = \"logins\"\n[events]\nactions = [\"login\"]\n",
        )
        .unwrap();
        let layers = [RuleLayer::Builtin, RuleLayer::Path(team.to_path_buf())];
        let (set, diags) = load(&layers, &Overrides::default());
        let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
        let (builtin, _) = load(&[RuleLayer::Builtin], &Overrides::default());
        let builtin = builtin.unwrap();
        assert_eq!(set.rules.len(), builtin.rules.len() + 1);
        let lockstep = set.rules.iter().find(|r| r.id.value == "likes/lockstep").unwrap();
        assert_eq!(lockstep.title, "team lockstep");
        // The team layer has no changeling.toml: the shipped tiers stay.
        assert_eq!(set.config.tiers, builtin.config.tiers);
        assert!(set.config.lists.contains_key("navigation_surfaces"));
    }

    #[test]
    fn layers_come_from_arguments_then_the_environment_then_builtin() {
        assert_eq!(resolve(&[], None), [RuleLayer::Builtin]);
        let env = std::env::join_paths(["builtin", "/x/team"]).unwrap();
        assert_eq!(resolve(&[], Some(env.clone())), [RuleLayer::Builtin, RuleLayer::Path("/x/team".into())]);
        let args = [RuleLayer::Path("mine".into())];
        assert_eq!(resolve(&args, Some(env)), args);
    }

    #[test]
    fn a_missing_layer_says_what_to_pass() {
        let e = check(&[RuleLayer::Path("no/such/rules".into())], false).unwrap_err().to_string();
        assert!(e.starts_with("rules `no/such/rules`: no such file or directory; pass --rules DIR"), "{e}");
        assert!(e.contains("changeling rules export"), "{e}");
        let e = check(&[RuleLayer::Path("gone".into())], true).unwrap_err().to_string();
        assert!(e.contains("(from CHANGELING_RULES)"), "{e}");
    }

    #[test]
    fn the_builtin_layer_reads_its_tests_apart() {
        let mut diags = Diagnostics::default();
        let files = read(&RuleLayer::Builtin, &mut diags);
        assert!(diags.items.is_empty());
        assert!(files.config.is_some());
        assert!(!files.tests.is_empty());
        assert!(files.rules.iter().all(|r| !r.path.starts_with("<builtin>/tests")));
        assert_eq!(files.rules[0].path, Path::new("<builtin>/account/impossible-travel.toml"));
    }
}
