//! Command-line commands. Each command is a function from its arguments to
//! an exit code; errors go up as `anyhow` and are printed by `main`.

mod check;
mod eval;
mod progress;
mod score;
mod sweep;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// changeling: account-compromise heuristics over bulk activity logs.
///
/// Reads a dataset (see the data contract in README.md), runs the TOML
/// rules of a rules directory over every account, and writes explained,
/// ranked incidents as JSON Lines.
#[derive(Debug, Parser)]
#[command(name = "changeling", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score every account of a dataset and write alerts (JSON Lines).
    Score(score::ScoreArgs),
    /// Measure alerts, or the rules scored in memory, against datasets'
    /// ground-truth labels.
    Eval(eval::EvalArgs),
    /// Measure a grid of rule and engine parameters against datasets'
    /// labels, each dataset read once: a table of settings and its Pareto
    /// front.
    Sweep(sweep::SweepArgs),
    /// Validate rules: report every error at file:line:col.
    Check {
        /// Rules directory or one rule file.
        #[arg(default_value = "rules")]
        rules: PathBuf,
    },
    /// Print the compiled plan: rules, signals with all parameters, shared
    /// states, columns read.
    ExplainPlan {
        /// Rules directory or one rule file.
        #[arg(default_value = "rules")]
        rules: PathBuf,
    },
    /// Generate a synthetic dataset with planted compromise episodes.
    Synth(synth::SynthArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Score(args) => score::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Check { rules } => check::check(&rules),
        Command::ExplainPlan { rules } => check::explain_plan(&rules),
        Command::Synth(args) => synth::run(args),
    }
}

/// Whether an error is a closed stdout (`changeling score | head`), which
/// is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// A worker pool of `threads` threads (default: one per core).
pub fn pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    anyhow::Context::context(pool.build(), "starting worker threads")
}

/// Loads and compiles rules, printing diagnostics to stderr. `None` when
/// the rules have errors (already printed).
pub fn load_plan(rules: &std::path::Path, quiet: bool) -> Option<changeling::plan::Plan> {
    let (set, diags) = changeling::rules::load(rules);
    if !diags.items.is_empty() && (!quiet || diags.has_errors()) {
        eprint!("{}", diags.render());
    }
    set.map(|s| changeling::plan::Plan::compile(&s))
}
