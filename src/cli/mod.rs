//! Command-line commands. Each command is a function from its arguments to
//! an exit code; errors go up as `anyhow` and are printed by `main`.

mod check;
mod diff;
mod eval;
mod explain;
mod fit;
mod progress;
mod report;
mod rules;
mod score;
mod state;
mod sweep;
mod synth;
mod test;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use changeling::alerts::RuleInfo;
use changeling::plan::Plan;
use changeling::rules::RuleSet;
use changeling::rules::layers::{self, RuleLayer};
use clap::{Parser, Subcommand};

/// changeling: account-compromise heuristics over bulk activity logs.
///
/// Reads a dataset (the data contract is in docs/data.md), runs the TOML
/// rules (built in, or `--rules DIR`; docs/rules.md) over every account,
/// and writes explained, ranked incidents as JSON Lines, CSV or Parquet.
#[derive(Debug, Parser)]
#[command(name = "changeling", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score every account of a dataset and write alerts (JSON Lines, CSV
    /// or Parquet), with a per-rule summary on stderr.
    Score(Box<score::ScoreArgs>),
    /// One account's timeline: every rule's decision on each event, hits,
    /// near misses, and the accounts to pivot to.
    Explain(explain::ExplainArgs),
    /// Measure alerts, or the rules scored in memory, against datasets'
    /// ground-truth labels.
    Eval(eval::EvalArgs),
    /// Compare two alert files, or two rule sets on one dataset: accounts
    /// whose tier moved and the hits that explain it.
    Diff(diff::DiffArgs),
    /// Write alerts as one self-contained HTML page with plots.
    Report(report::ReportArgs),
    /// Measure a grid of rule and engine parameters against datasets'
    /// labels, each dataset read once: a table of settings and its Pareto
    /// front.
    Sweep(sweep::SweepArgs),
    /// Fit rule weights, family caps, calibrated scores and tier thresholds
    /// to labelled datasets, with held-out figures; write a rules overlay.
    Fit(fit::FitArgs),
    /// Run the rules' test cases (each rules directory's tests/) against
    /// the rule files.
    Test(test::TestArgs),
    /// Validate rules: report every error at file:line:col.
    Check {
        /// Rules: directories, rule files, or `builtin` (the default);
        /// later ones replace earlier rules with the same id.
        #[arg(value_name = "RULES")]
        rules: Vec<PathBuf>,
    },
    /// Print the compiled plan: rules, signals with all parameters, shared
    /// states, columns read.
    ExplainPlan {
        /// Rules: directories, rule files, or `builtin` (the default);
        /// later ones replace earlier rules with the same id.
        #[arg(value_name = "RULES")]
        rules: Vec<PathBuf>,
    },
    /// List or export rules (the built-in ones by default).
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Generate a synthetic dataset with planted compromise episodes.
    Synth(synth::SynthArgs),
    /// Daily states (`score --state`): rebuild one from history, show one,
    /// remove a stale lock.
    #[command(subcommand)]
    State(state::StateCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Score(args) => score::run(*args),
        Command::Explain(args) => explain::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Report(args) => report::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Test(args) => test::run(args),
        Command::Check { rules } => check::check(&rule_layers(&rules)?),
        Command::ExplainPlan { rules } => check::explain_plan(&rule_layers(&rules)?),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Synth(args) => synth::run(args),
        Command::State(cmd) => state::run(cmd),
    }
}

/// Whether an error is a closed stdout (`changeling score | head`), which
/// is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Handles SIGINT, SIGTERM and SIGHUP for every command: removes the spill
/// directories and unfinished output files (see `changeling::output`), then
/// exits with 128 + the signal's number (130, 143, 129).
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            changeling::output::remove_all_on_signal();
            std::process::exit(128 + signal);
        }
    });
}

/// A `--time-unit` value: `s`, `ms`, `us` or `ns`.
pub fn parse_time_unit(s: &str) -> Result<changeling::time::TimeUnit, String> {
    changeling::time::TimeUnit::parse(s)
        .ok_or_else(|| format!("`{s}` is not a time unit: give s, ms, us or ns (the unit of the data's numeric times)"))
}

/// Writes `text` to stderr; an error (a closed pipe) goes up instead of
/// panicking as `eprint!` does.
pub fn to_stderr(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    e.write_all(text.as_bytes())?;
    e.flush()
}

/// An error when writing `out` would overwrite the input file `input`
/// (the same path, or a link to it).
pub fn check_not_same_file(out: &std::path::Path, input: &std::path::Path) -> anyhow::Result<()> {
    let (Ok(o), Ok(i)) = (std::fs::canonicalize(out), std::fs::canonicalize(input)) else { return Ok(()) };
    #[cfg(unix)]
    let same_inode = {
        use std::os::unix::fs::MetadataExt;
        matches!((std::fs::metadata(&o), std::fs::metadata(&i)), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
    };
    #[cfg(not(unix))]
    let same_inode = false;
    anyhow::ensure!(o != i && !same_inode, "refusing to write {}: it is the input {}", out.display(), input.display());
    Ok(())
}

/// Most worker threads per core: more only adds threads that wait (10,000
/// threads took minutes to start and to give each its scratch space).
pub const THREADS_PER_CORE: usize = 4;

/// A worker pool of `threads` threads (default: one per core), at most
/// [`THREADS_PER_CORE`] per core: more is cut down, with a note.
pub fn pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cap = cores * THREADS_PER_CORE;
        let n = if n > cap {
            to_stderr(&format!(
                "note: --threads {n} is more than {THREADS_PER_CORE} per core; using {cap} ({cores} cores)\n"
            ))?;
            cap
        } else {
            n
        };
        pool = pool.num_threads(n);
    }
    anyhow::Context::context(pool.build(), "starting worker threads")
}

/// The rule layers of `args` (each a path or `builtin`), else of
/// `CHANGELING_RULES`, else the built-in rules; an error naming what to
/// pass when a path does not exist.
pub fn rule_layers(args: &[PathBuf]) -> anyhow::Result<Vec<RuleLayer>> {
    let given: Vec<RuleLayer> = args.iter().map(|a| RuleLayer::from_arg(a.as_os_str())).collect();
    let env: Option<OsString> = std::env::var_os(layers::ENV).filter(|v| !v.is_empty());
    let from_env = given.is_empty() && env.is_some();
    let resolved = layers::resolve(&given, env);
    layers::check(&resolved, from_env)?;
    Ok(resolved)
}

/// How the rule layers of `args` are named in messages (`builtin`,
/// `builtin + team`), without checking that they exist.
pub fn layers_name(args: &[PathBuf]) -> String {
    let given: Vec<RuleLayer> = args.iter().map(|a| RuleLayer::from_arg(a.as_os_str())).collect();
    layers::describe(&layers::resolve(&given, std::env::var_os(layers::ENV).filter(|v| !v.is_empty())))
}

/// Rules loaded and compiled.
pub struct Loaded {
    /// The validated rules.
    pub set: RuleSet,
    /// Compiled.
    pub plan: Plan,
    /// Each rule's title, severity, tags and version, by plan index.
    pub info: Vec<RuleInfo>,
    /// The layers, as users write them (`builtin + team`).
    pub name: String,
}

/// Loads and compiles rules, printing diagnostics to stderr (warnings only
/// unless `quiet`). `None` when the rules have errors (already printed).
pub fn load_rules(layers: &[RuleLayer], quiet: bool) -> Option<Loaded> {
    let (set, diags) = layers::load(layers, &changeling::rules::Overrides::default());
    if !diags.items.is_empty() && (!quiet || diags.has_errors()) {
        to_stderr(&changeling::terminal::for_terminal(&diags.render())).ok()?;
    }
    let set = set?;
    if set.rules.is_empty() {
        let _ = to_stderr(&format!(
            "error: no rules in {}: nothing would be scored; pass --rules with a directory of rule files (or \
             `builtin`)\n",
            layers::describe(layers)
        ));
        return None;
    }
    let plan = Plan::compile(&set);
    let info = RuleInfo::of_set(&set);
    Some(Loaded { set, plan, info, name: layers::describe(layers) })
}

/// Applies the exceptions of `args` (else of `CHANGELING_EXCEPTIONS`) to
/// the loaded rules, printing their diagnostics to stderr (warnings, such
/// as an expired exception, unless `quiet`). `None` when they have errors
/// (already printed).
pub fn with_exceptions(mut rules: Loaded, args: &[PathBuf], quiet: bool) -> anyhow::Result<Option<Loaded>> {
    use changeling::exceptions::{self, GivenError};
    let show =
        |diags: &changeling::rules::diag::Diagnostics| to_stderr(&changeling::terminal::for_terminal(&diags.render()));
    match exceptions::given(args, "--exceptions", &rules.info, changeling::time::now_millis()) {
        Ok(None) => Ok(Some(rules)),
        Ok(Some((bound, diags))) => {
            if !diags.items.is_empty() && !quiet {
                show(&diags)?;
            }
            rules.plan = rules.plan.with_exceptions(bound);
            Ok(Some(rules))
        }
        Err(GivenError::Invalid(diags)) => {
            show(&diags)?;
            Ok(None)
        }
        Err(GivenError::Missing(m) | GivenError::Unbound(m)) => Err(anyhow::Error::msg(m)),
    }
}

/// The dataset directory: `data`, or the built-in demo dataset written to
/// a temporary directory (kept alive by the returned guard).
pub fn data_dir(data: Option<&PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>, String)> {
    match data {
        Some(d) => Ok((d.clone(), None, d.display().to_string())),
        None => {
            // Named with the process id, so that a later run can remove
            // the copy a killed run left (SIGKILL runs no handler).
            let prefix = format!("changeling-demo-{}-", std::process::id());
            let tmp = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .map_err(|e| anyhow::anyhow!("creating a directory for the demo dataset: {e}"))?;
            changeling::spill::remove_left_by_dead_processes(&std::env::temp_dir(), "changeling-demo-", tmp.path());
            changeling::rules::embedded::write_demo(tmp.path())
                .map_err(|e| anyhow::anyhow!("writing the demo dataset: {e}"))?;
            Ok((tmp.path().to_path_buf(), Some(tmp), "the built-in demo dataset".into()))
        }
    }
}
