//! `changeling diff`: two alert files, or two rule sets scored on one
//! dataset, compared (see `changeling::diff`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use changeling::alerts::read::{self, ReadAlert};
use changeling::alerts::{self, Context as AlertContext};
use changeling::data::{Dataset, ReadOptions};
use changeling::diff;
use changeling::eval::{self, Truth};
use changeling::rules::layers::RuleLayer;
use changeling::run::{self, RunOptions, RunProgress};
use changeling::time::{Millis, TimeUnit};

/// Arguments of `changeling diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The old side: an alerts file (JSON Lines, .parquet or .csv of hit rows), or rules (a
    /// directory, a rule file, or `builtin`) to score --data with.
    old: PathBuf,
    /// The new side, likewise.
    new: PathBuf,
    /// Dataset: scored with each side that is rules, and its labels (if
    /// any) tell true from false positives.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Rules whose tiers order alert files (default: builtin); with a
    /// rules side, its own tiers.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// How far a labelled compromise window is widened on each side.
    #[arg(long, default_value = "1h", value_parser = super::eval::parse_slack)]
    slack: Millis,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// At most this many hit lines per account and kind in the text.
    #[arg(long, default_value_t = 12)]
    max_hits: usize,
    /// Print the diff as one JSON object.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// One side: its alerts and, when it is rules, their tiers.
struct Side {
    alerts: Vec<ReadAlert>,
    tiers: Option<Vec<String>>,
    name: String,
}

/// Whether `p` names rules rather than an alerts file.
fn is_rules(p: &Path) -> bool {
    p.as_os_str() == changeling::rules::embedded::BUILTIN || p.is_dir() || p.extension().is_some_and(|e| e == "toml")
}

fn side(p: &Path, data: Option<&Path>, time_unit: Option<TimeUnit>) -> anyhow::Result<Side> {
    if !is_rules(p) {
        anyhow::ensure!(
            p.exists(),
            "{}: no such file; give an alerts file (JSON Lines, .parquet or .csv), or rules (a directory, a rule file or \
             `builtin`) with --data",
            p.display()
        );
        let alerts = read::read(p)?;
        return Ok(Side { alerts, tiers: None, name: p.display().to_string() });
    }
    let Some(data) = data else {
        anyhow::bail!("{} is rules: give --data DIR to score them on", p.display());
    };
    let layers = super::rule_layers(&[p.to_path_buf()])?;
    let Some(rules) = super::load_rules(&layers, true) else {
        anyhow::bail!("the rules in {} do not load (see above)", p.display());
    };
    let opts = RunOptions {
        read: ReadOptions { projection: Some(rules.plan.projection()), time_unit, ..ReadOptions::default() },
        memory: run::default_memory(),
        tmp: std::env::temp_dir(),
        force_partitions: None,
        force_split_before_scoring: false,
    };
    let out = run::run(data, &rules.plan, &opts, &RunProgress::default())
        .with_context(|| format!("scoring {} with {}", data.display(), p.display()))?;
    let mut bytes = Vec::new();
    let cx = AlertContext::new(&rules.plan, &rules.info, &out.strings);
    out.incidents.for_each_chunk(|chunk| alerts::write_jsonl(&mut bytes, &chunk, cx).map(drop))?;
    let alerts = read::parse_jsonl(Path::new("<scored>"), bytes.as_slice())?;
    let tiers = rules.plan.config.tiers.iter().map(|t| t.name.clone()).collect();
    let name = match &layers[..] {
        [RuleLayer::Builtin] => "the built-in rules".to_string(),
        _ => format!("the rules in {}", p.display()),
    };
    Ok(Side { alerts, tiers: Some(tiers), name })
}

/// Runs the command.
pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let pool = super::pool(args.threads)?;
    let (old, new) = pool.install(|| -> anyhow::Result<(Side, Side)> {
        let (data, unit) = (args.data.as_deref(), args.time_unit);
        Ok((side(&args.old, data, unit)?, side(&args.new, data, unit)?))
    })?;
    let tiers = match (&old.tiers, &new.tiers) {
        (Some(t), _) | (None, Some(t)) => t.clone(),
        (None, None) => {
            let layers = super::rule_layers(&args.rules)?;
            match changeling::rules::layers::load(&layers, &Default::default()) {
                (Some(set), _) => set.config.tiers.iter().map(|t| t.name.clone()).collect(),
                (None, _) => {
                    let mut both = old.alerts.clone();
                    both.extend(new.alerts.iter().cloned());
                    read::tiers_of(&both)
                }
            }
        }
    };
    // An alert of a tier the rules do not have would count as no alert:
    // refused, as `eval` does.
    for (side, path) in [(&old, &args.old), (&new, &args.new)] {
        if let Some(a) = side.alerts.iter().find(|a| !tiers.contains(&a.tier)) {
            return Err(eval::EvalError::UnknownAlertTier {
                path: path.clone(),
                line: a.line,
                tier: a.tier.clone(),
                tiers: tiers.clone(),
            }
            .into());
        }
    }
    let truth = match &args.data {
        Some(d) => {
            let opts = ReadOptions {
                projection: Some(eval::projection()),
                time_unit: args.time_unit,
                ..ReadOptions::default()
            };
            let data =
                pool.install(|| Dataset::open(d, &opts)).with_context(|| format!("reading dataset {}", d.display()))?;
            data.labels.is_some().then(|| Truth::from_dataset(&data)).transpose()?
        }
        None => None,
    };
    let labels = truth.as_ref().map(|t| diff::Labels { truth: t, slack: args.slack });
    let d = diff::diff(&old.alerts, &new.alerts, &tiers, labels.as_ref());
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&serde_json::json!({
            "old": old.name, "new": new.name, "diff": d,
        }))?;
        s.push('\n');
        changeling::terminal::json_for(&s, std::io::IsTerminal::is_terminal(&std::io::stdout())).into_owned()
    } else {
        changeling::terminal::for_terminal(&diff::render(&d, &old.name, &new.name, args.max_hits)).into_owned()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
