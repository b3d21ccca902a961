//! `changeling fit`: fit rule weights, family caps, a calibration map and
//! tier thresholds to labelled datasets, write them as a rules overlay, and
//! print the train and held-out figures side by side. The method is in the
//! library's `changeling::fit` module doc.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use changeling::data::ReadProgress;
use changeling::eval;
use changeling::fit::{self, FitOptions, Fitted, Prepared};
use changeling::plan::Plan;
use changeling::rules::layers::{self, RuleLayer};
use changeling::terminal::table;
use changeling::time::{Millis, TimeUnit};
use changeling::tune::{self, Loaded, Summary};
use serde::Serialize;

use super::eval::{count_share, num, parse_slack};
use super::progress::{Progress, Unit};

/// Arguments of `changeling fit`.
#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// Labelled dataset directory to fit on (its `labels` table is the
    /// ground truth); repeatable.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Where to write the overlay: `changeling score --rules builtin
    /// --rules FILE` applies it (the same layers as --rules here, then it).
    #[arg(long, short)]
    out: PathBuf,
    /// Rules to fit (their hits are found once; their weights, caps and
    /// tiers are the starting point): as for `score`, default `builtin`.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Target precision of a tier, `TIER=P` (repeatable, or
    /// comma-separated): its `min_score` becomes the lowest calibrated score
    /// at which the training accounts flagged at that tier or higher were
    /// compromised in at least P of cases. Default: high=0.95,
    /// medium=0.5, low=0.2. A tier not named keeps its min_score.
    #[arg(long, value_name = "TIER=P", value_delimiter = ',')]
    precision: Vec<String>,
    /// Folds by account for the held-out figures (at least 2).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pull of the weights and caps toward the rules' own: the penalty per
    /// unit of squared distance, against the mean log-loss per candidate
    /// incident (0: none).
    #[arg(long, default_value_t = fit::L2)]
    l2: f64,
    /// How far a labelled compromise window is widened on each side.
    #[arg(long, default_value = "1h", value_parser = parse_slack)]
    slack: Millis,
    /// The unit of the data's numeric times: s, ms, us or ns.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// Print the figures as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bars on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// The JSON output.
#[derive(Serialize)]
struct Output<'a> {
    overlay: String,
    rules: String,
    folds: usize,
    seed: u64,
    candidates: usize,
    compromises: usize,
    datasets: Vec<DatasetOut<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct DatasetOut<'a> {
    dataset: &'a str,
    train: Summary,
    held_out: Summary,
    held_out_report: &'a eval::Report,
}

fn targets(args: &FitArgs) -> anyhow::Result<Vec<(String, f64)>> {
    if args.precision.is_empty() {
        return Ok(FitOptions::default().targets);
    }
    args.precision
        .iter()
        .map(|p| {
            let (tier, x) = p.split_once('=').with_context(|| format!("--precision `{p}` is not TIER=P"))?;
            let x: f64 = x.trim().parse().with_context(|| format!("--precision `{p}`: P is not a number"))?;
            anyhow::ensure!(x > 0.0 && x <= 1.0, "--precision `{p}`: P must be above 0 and at most 1");
            Ok((tier.trim().to_string(), x))
        })
        .collect()
}

/// Runs the command.
pub fn run(args: FitArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.folds >= 2, "--folds must be at least 2");
    anyhow::ensure!(args.l2 >= 0.0 && args.l2.is_finite(), "--l2 must be a number, 0 or more");
    let options =
        FitOptions { folds: args.folds, seed: args.seed, targets: targets(&args)?, slack: args.slack, l2: args.l2 };
    let layers = super::rule_layers(&args.rules)?;
    let Some(rules) = super::load_rules(&layers, args.quiet) else { return Ok(ExitCode::from(2)) };
    for (tier, _) in &options.targets {
        anyhow::ensure!(
            rules.plan.config.tiers.iter().any(|t| &t.name == tier),
            "--precision names tier `{tier}`, which the rules do not have (they have {})",
            rules.plan.config.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    for d in &args.data {
        super::check_not_same_file(&args.out, d)?;
    }
    let progress = Progress::new(args.quiet);
    let pool = super::pool(args.threads)?;
    let plan = &rules.plan;
    let (prepared, fitted) = pool.install(|| -> anyhow::Result<(Prepared, Fitted)> {
        let mut prepared = Prepared::new(plan, &options);
        let projection = tune::union([plan.projection(), eval::projection()]);
        for (i, dir) in args.data.iter().enumerate() {
            let of = if args.data.len() > 1 { format!(" ({}/{})", i + 1, args.data.len()) } else { String::new() };
            let read = ReadProgress::default();
            let loaded = progress
                .run(
                    format!("reading {}{of}", dir.display()),
                    Unit::Bytes,
                    super::score::input_bytes(dir),
                    &read.file_bytes,
                    || Loaded::read(dir, projection.clone(), args.time_unit, &read),
                )
                .with_context(|| format!("reading dataset {}", dir.display()))?;
            let done = AtomicU64::new(0);
            let total = loaded.data.events.accounts.len() as u64;
            progress.run(format!("scoring{of}"), Unit::Accounts, total, &done, || {
                prepared.add(&dir.display().to_string(), loaded, plan, &done)
            });
        }
        let fitted = fit::fit(&prepared, &options).context("fitting")?;
        Ok((prepared, fitted))
    })?;

    let header = header(&args, &rules.name, &prepared, &fitted);
    let text = fit::overlay_text(&prepared, &fitted.model, &header);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    // The overlay must give, when loaded, exactly the numbers fitted.
    let mut with = layers.clone();
    with.push(RuleLayer::Path(args.out.clone()));
    let (set, diags) = layers::load(&with, &Default::default());
    let Some(set) = set else {
        anyhow::bail!("internal error: the overlay written does not load:\n{}", diags.render());
    };
    fit::check_applied(&prepared, &fitted.model, &Plan::compile(&set))
        .map_err(|e| anyhow::anyhow!("internal error: {e}"))?;

    let out = if args.json {
        let summaries = fitted.summaries();
        let o = Output {
            overlay: args.out.display().to_string(),
            rules: rules.name.clone(),
            folds: args.folds,
            seed: args.seed,
            candidates: prepared.candidates(),
            compromises: prepared.compromises(),
            datasets: fitted
                .datasets
                .iter()
                .zip(summaries)
                .map(|(d, (train, held_out))| DatasetOut {
                    dataset: &d.dataset,
                    train,
                    held_out,
                    held_out_report: &d.held_out,
                })
                .collect(),
            notes: &fitted.notes,
        };
        let mut s = serde_json::to_string_pretty(&o)?;
        s.push('\n');
        changeling::terminal::json_for(&s, std::io::IsTerminal::is_terminal(&std::io::stdout())).into_owned()
    } else {
        changeling::terminal::for_terminal(&render(&args, &rules.name, &prepared, &fitted)).into_owned()
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The figures, train beside held out: one table per dataset.
fn figures(fitted: &Fitted) -> String {
    let mut out = String::new();
    for (d, (train, held)) in fitted.datasets.iter().zip(fitted.summaries()) {
        let _ = writeln!(out, "\n{}: {} accounts", d.dataset, d.train.accounts.total);
        let mut rows = vec![vec!["figure".to_string(), "train".into(), "held out".into()]];
        let mut row = |name: String, a: String, b: String| rows.push(vec![name, a, b]);
        row("ROC AUC".into(), num(train.roc_auc), num(held.roc_auc));
        row("PR AUC".into(), num(train.pr_auc), num(held.pr_auc));
        row("ECE".into(), num(train.ece), num(held.ece));
        for (t, tier) in train.tiers.iter().enumerate() {
            row(format!("recall {tier}"), num(train.recall[t]), num(held.recall[t]));
        }
        for (t, tier) in train.tiers.iter().enumerate() {
            row(
                format!("benign {tier}"),
                count_share(train.benign_flagged[t], train.benign_flagged_share[t]),
                count_share(held.benign_flagged[t], held.benign_flagged_share[t]),
            );
        }
        row(
            format!("worst style {}", train.tiers.first().map_or("-", String::as_str)),
            train.worst_style.as_ref().map_or_else(|| "-".into(), |w| format!("{} {:.3}", w.style, w.recall)),
            held.worst_style.as_ref().map_or_else(|| "-".into(), |w| format!("{} {:.3}", w.style, w.recall)),
        );
        table(&mut out, &rows);
        let _ = writeln!(out, "\nheld-out reliability (each account scored by the fold model that did not see it):");
        let mut rel = String::new();
        super::eval::render_reliability(&mut rel, &d.held_out.calibration);
        out.push_str(rel.trim_start_matches('\n').split_once('\n').map_or("", |x| x.1));
    }
    out
}

/// The overlay's header: how it was made, and its figures.
fn header(args: &FitArgs, rules: &str, prepared: &Prepared, fitted: &Fitted) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "A rules overlay written by `changeling fit`: apply it with");
    let _ = writeln!(h, "  changeling score --rules {} --rules {}", layer_args(rules), args.out.display());
    let _ = writeln!(
        h,
        "Fitted on {} ({} candidate incidents, {} compromises) from the rules in {rules};",
        fit::names(&args.data).join(", "),
        prepared.candidates(),
        prepared.compromises()
    );
    let _ = writeln!(
        h,
        "{} folds by account, seed {}, slack {}, l2 {}; target precision {}.",
        args.folds,
        args.seed,
        changeling::time::compact_duration(args.slack),
        args.l2,
        targets(args).unwrap_or_default().iter().map(|(t, p)| format!("{t}={p}")).collect::<Vec<_>>().join(",")
    );
    let _ = writeln!(h, "Scores are calibrated: a score reads as the share of such incidents that were compromises.");
    let _ = write!(h, "Figures (train: this model on the data it was fitted to; held out: cross-validated):");
    h.push_str(&figures(fitted));
    for n in &fitted.notes {
        let _ = writeln!(h, "note: {n}");
    }
    h
}

/// The layers' names as `--rules` arguments.
fn layer_args(name: &str) -> String {
    name.replace(" + ", " --rules ")
}

/// The text report on stdout.
fn render(args: &FitArgs, rules: &str, prepared: &Prepared, fitted: &Fitted) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "changeling fit: {} dataset(s) with the rules in {rules}; {} folds by account (seed {}), slack {}",
        args.data.len(),
        args.folds,
        args.seed,
        changeling::time::compact_duration(args.slack)
    );
    let _ = writeln!(
        out,
        "  candidates  {} incidents, {} of them compromises; each scored once, refitted from its hits",
        prepared.candidates(),
        prepared.compromises()
    );
    let _ =
        writeln!(out, "  overlay     {} (apply with --rules {} --rules {0})", args.out.display(), layer_args(rules));
    let m = &fitted.model;
    let _ = writeln!(
        out,
        "  fitted      {} rule weights, {} family caps, {} calibration knots, tiers {}",
        m.fitted_rules.len(),
        m.fitted_families.len(),
        m.calibration.as_ref().map_or(0, |c| c.raw.len()),
        m.tiers.iter().map(|t| format!("{t}")).collect::<Vec<_>>().join(" / ")
    );
    out.push_str(&figures(fitted));
    let _ = writeln!(
        out,
        "\ntrain: the overlay's model on the data it was fitted to (optimistic); held out: every account scored by\n\
         the model of the folds without it (weights, caps, calibration and tiers all fitted without it)"
    );
    for n in &fitted.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
