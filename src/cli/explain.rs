//! `changeling explain`: one account's timeline with every rule's decision
//! (see `changeling::explain`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use changeling::data::{Dataset, ReadOptions};
use changeling::explain::{self, Options};
use changeling::time::Millis;

/// Arguments of `changeling explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Dataset directory (default: the demo dataset built into changeling).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The account to explain.
    #[arg(long)]
    actor: String,
    /// Show every event within --window of this time, each with every
    /// rule's decision (RFC 3339, a date, or epoch milliseconds). Without
    /// it, the whole history is shown, events without a hit or a near
    /// miss counted, not listed.
    #[arg(long, value_name = "TIME", value_parser = super::score::parse_time)]
    around: Option<Millis>,
    /// Half-width of the window around --around.
    #[arg(long, default_value = "2h", value_parser = super::eval::parse_slack)]
    window: Millis,
    /// Show every event with every decision, not only hits and near misses.
    #[arg(long)]
    all: bool,
    /// Rules, as for `score` (default: builtin).
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// At most this many accounts to pivot to per lockstep rule.
    #[arg(long, default_value_t = 20)]
    pivots: usize,
    /// Worker threads for reading (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let layers = super::rule_layers(&args.rules)?;
    let Some(rules) = super::load_rules(&layers, true) else { return Ok(ExitCode::from(2)) };
    let (dir, _demo, name) = super::data_dir(args.data.as_ref())?;
    let pool = super::pool(args.threads)?;
    let data = pool
        .install(|| Dataset::open(&dir, &ReadOptions::default()))
        .with_context(|| format!("reading dataset {name}"))?;
    let opts = Options { around: args.around, window: args.window, all: args.all, max_pivots: args.pivots };
    let x = explain::explain(&rules.plan, &data, &args.actor, &opts).map_err(|e| match e {
        // Named as the user knows the dataset: the demo's temporary
        // directory means nothing to them.
        explain::ExplainError::NoSuchAccount { actor, suggestion, .. } => anyhow::anyhow!(
            "account `{actor}` has no events in {name}{}",
            suggestion.map_or(String::new(), |s| format!(" (did you mean `{s}`?)"))
        ),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "changeling explain: {name} with the rules in {}", rules.name)?;
    // Values from the data, made safe for a terminal.
    out.write_all(changeling::terminal::for_terminal(&explain::render(&x, &rules.plan)).as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
