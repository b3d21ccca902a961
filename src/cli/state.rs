//! `changeling state`: build a daily state from history, show one, or
//! remove a stale lock.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use changeling::data::ReadOptions;
use changeling::run::RunProgress;
use changeling::run::daily::{self, Emit};
use changeling::state::store::{self, Store};
use changeling::state::{Keys, State};

/// The `state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Build a state from raw history: every event of --data scored from
    /// nothing, as one run over all of it; the state's previous content,
    /// if any, is replaced (its directory keeps its lock and atomic
    /// switch). Needed when rules change what they keep per account.
    Rebuild {
        /// The history (a dataset directory).
        #[arg(long)]
        data: PathBuf,
        /// The state directory (made if missing).
        #[arg(long)]
        state: PathBuf,
        /// Rules, as for `score` (default: $CHANGELING_RULES, else `builtin`).
        #[arg(long, value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Stop at the first bad data record instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// No summary on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show a state: its generation, watermark, accounts, size and the
    /// rules' states it keeps.
    Info {
        /// The state directory.
        dir: PathBuf,
    },
    /// Remove the lock a killed run left (refused while its process runs).
    Unlock {
        /// The state directory.
        dir: PathBuf,
    },
}

/// Runs a `state` subcommand.
pub fn run(cmd: StateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StateCommand::Rebuild { data, state, rules, strict, quiet } => {
            let layers = super::rule_layers(&rules)?;
            let Some(rules) = super::load_rules(&layers, quiet) else { return Ok(ExitCode::from(2)) };
            let plan = &rules.plan;
            let (store, _) = Store::open(&state)?;
            let read = ReadOptions { strict, projection: Some(plan.projection()), ..ReadOptions::default() };
            let empty = State::new(plan);
            let (out, update) = daily::run(&data, plan, &empty, &read, Emit::Changes, &RunProgress::default())
                .context("scoring the history")?;
            let committed = store
                .replace(update, &Keys::of(plan))
                .with_context(|| format!("writing the state in {}", state.display()))?;
            if !quiet {
                super::to_stderr(&format!(
                    "changeling state rebuild: {} events of {} with {}; {} at watermark {}, generation {}: {} \
                     accounts, {:.1} MiB\n",
                    out.events,
                    data.display(),
                    rules.name,
                    state.display(),
                    out.watermark.1.map_or("-".into(), changeling::time::format_rfc3339),
                    committed.generation,
                    committed.accounts,
                    committed.bytes as f64 / (1u64 << 20) as f64
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Info { dir } => {
            anyhow::ensure!(dir.join("CURRENT").exists(), "{}: not a state directory (no CURRENT file)", dir.display());
            let (_store, opened) = Store::open(&dir)?;
            let s = &opened.state;
            let text = format!(
                "{}: watermark {}\n  per-account states kept: {}\n{}  population facts: {}\n  item indexes: {}\n  \
                 accounts with something due or incidents open: {}\n",
                dir.display(),
                s.watermark.map_or("-".into(), changeling::time::format_rfc3339),
                s.keys.states.len(),
                s.keys.states.iter().map(|(k, users)| format!("    {} ({k})\n", users.join(", "))).collect::<String>(),
                s.keys.facts.len(),
                s.keys.indexes.join("; "),
                opened.timers.len()
            );
            super::to_stderr(&changeling::terminal::for_terminal(&text))?;
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Unlock { dir } => {
            if store::unlock(&dir)? {
                super::to_stderr(&format!("{}: removed a stale lock\n", dir.display()))?;
            } else {
                super::to_stderr(&format!("{}: no lock held\n", dir.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
