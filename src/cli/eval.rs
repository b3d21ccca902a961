//! `changeling eval`: measure alerts against a dataset's ground-truth
//! labels, and print the report as aligned text or as one JSON object.
//! The definitions (slack, account-days, AUC ties) are in the library's
//! `changeling::eval` module doc.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use changeling::data::{Dataset, ReadOptions, TableKind};
use changeling::eval::{self, Curves, Listed, Listing, Report, Settings, TierSource};
use changeling::terminal::{aligned_table, table};
use changeling::time::{Millis, TimeUnit, parse_duration};
use changeling::tune::Summary;
use serde::Serialize;

use super::progress::Progress;

/// Arguments of `changeling eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Dataset directory: its `labels` table is the ground truth, its
    /// events give the accounts and account-days. Repeat for several
    /// datasets: they are then reported in one table, one row each, with
    /// the worst of each column across them.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Alerts to measure, as `changeling score` writes them (JSON Lines,
    /// Parquet or CSV by the name's .parquet or .csv), one file per --data, in the
    /// same order. Without it, each dataset is scored in memory with
    /// --rules and the result measured.
    #[arg(long)]
    alerts: Vec<PathBuf>,
    /// Rules: the rules to score with (without --alerts), or whose tiers
    /// the alerts use; a directory, a rule file or `builtin` (the default),
    /// repeatable as for `score`. When they do not load and alerts are
    /// given, the tiers are taken from the alerts, ordered by their lowest
    /// score.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// List the false-positive and false-negative accounts at --tier (by
    /// default the highest): each with its score, tier, style and rules.
    #[arg(long)]
    list: bool,
    /// How far a labelled compromise window is widened on each side; an
    /// alert on a compromised account counts only when it overlaps it.
    #[arg(long, default_value = "1h", value_parser = parse_slack)]
    slack: Millis,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// Print the report as JSON instead of text: one object for one
    /// dataset; for several, an array of them followed by the worst row.
    #[arg(long)]
    json: bool,
    /// Tier at which to list the rules that hit true- and false-positive
    /// accounts (default: the highest).
    #[arg(long, value_name = "NAME")]
    tier: Option<String>,
    /// Worker threads when scoring in memory (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bars on stderr while scoring in memory.
    #[arg(long, short)]
    quiet: bool,
}

/// Parses a duration argument (`1h`, `30m`).
pub fn parse_slack(s: &str) -> Result<Millis, String> {
    parse_duration(s)
}

/// The JSON output for one dataset: where from, then the report.
#[derive(Serialize)]
struct Output<'a> {
    dataset: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts_file: Option<String>,
    /// The rules scored with, when scored in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    scored_with_rules: Option<String>,
    /// With several datasets: the report's figures in one row.
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
    #[serde(flatten)]
    report: &'a Report,
    /// The ROC and precision-recall curves, one point per distinct score.
    curves: &'a Curves,
    /// With --list: the false-positive and false-negative accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<&'a Listing>,
}

/// One dataset measured: the report, its curves and its lists.
pub struct Measurement {
    /// The report.
    pub report: Report,
    /// Its curves.
    pub curves: Curves,
    /// Its false positives and negatives at the rule-table tier.
    pub listing: Listing,
}

/// An element of the JSON array for several datasets: a dataset's report,
/// or, last, the worst row.
#[derive(Serialize)]
#[serde(untagged)]
enum Row<'a> {
    Dataset(Output<'a>),
    Worst { worst: Summary },
}

/// Runs the command.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let measured = if args.alerts.is_empty() {
        match scored_in_memory(&args)? {
            Some(r) => r,
            None => return Ok(ExitCode::from(2)),
        }
    } else {
        anyhow::ensure!(
            args.alerts.len() == args.data.len(),
            "--alerts is given {} time(s) for {} --data: give one alerts file per dataset, in the same order",
            args.alerts.len(),
            args.data.len()
        );
        let mut measured = Vec::new();
        for (data, alerts) in args.data.iter().zip(&args.alerts) {
            measured.push(from_file(&args, data, alerts)?);
        }
        measured
    };
    let reports: Vec<Report> = measured.iter().map(|m| m.report.clone()).collect();

    let text = if reports.len() == 1 {
        if args.json {
            let mut s = serde_json::to_string_pretty(&output(&args, 0, &measured[0], None))?;
            s.push('\n');
            s
        } else {
            let mut text = render(&what(&args, 0), &args.data[0], &reports[0]);
            if args.list {
                render_listing(&mut text, &measured[0].listing);
            }
            text
        }
    } else {
        let summaries: Vec<Summary> = reports.iter().map(Summary::of).collect();
        let worst = Summary::worst(&summaries);
        if args.json {
            let mut rows: Vec<Row> = Vec::new();
            for (i, m) in measured.iter().enumerate() {
                rows.push(Row::Dataset(output(&args, i, m, Some(summaries[i].clone()))));
            }
            rows.push(Row::Worst { worst });
            let mut s = serde_json::to_string_pretty(&rows)?;
            s.push('\n');
            s
        } else {
            let mut text = render_datasets(&args, &reports, &summaries, &worst);
            if args.list {
                for (i, m) in measured.iter().enumerate() {
                    let _ = write!(text, "\n{}:", args.data[i].display());
                    render_listing(&mut text, &m.listing);
                }
            }
            text
        }
    };
    // Actors, tiers and rule ids come from the alerts and the data.
    let text = match args.json {
        true => {
            changeling::terminal::json_for(&text, std::io::IsTerminal::is_terminal(&std::io::stdout())).into_owned()
        }
        false => changeling::terminal::for_terminal(&text).into_owned(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn output<'a>(args: &EvalArgs, i: usize, m: &'a Measurement, summary: Option<Summary>) -> Output<'a> {
    Output {
        dataset: args.data[i].display().to_string(),
        alerts_file: args.alerts.get(i).map(|a| a.display().to_string()),
        scored_with_rules: args.alerts.is_empty().then(|| super::layers_name(&args.rules)),
        summary,
        report: &m.report,
        curves: &m.curves,
        accounts: args.list.then_some(&m.listing),
    }
}

/// The false-positive and false-negative accounts, appended to `out`.
fn render_listing(out: &mut String, l: &Listing) {
    let Some(tier) = &l.tier else { return };
    let rows = |list: &[Listed], with_rules: bool| -> Vec<Vec<String>> {
        let mut header = ["account", "score", "tier", "style"].map(String::from).to_vec();
        if with_rules {
            header.push(format!("rules of its alerts at {tier} or higher"));
        }
        let mut rows = vec![header];
        for a in list {
            let mut row = vec![
                a.actor.clone(),
                format!("{:.4}", a.score),
                a.tier.clone().unwrap_or_else(|| "-".into()),
                a.style.clone().unwrap_or_else(|| "-".into()),
            ];
            if with_rules {
                row.push(a.rules.join(" "));
            }
            rows.push(row);
        }
        rows
    };
    let _ = writeln!(
        out,
        "\nfalse positives at {tier} (benign accounts flagged at {tier} or higher): {}",
        l.false_positives.len()
    );
    if !l.false_positives.is_empty() {
        aligned_table(out, &rows(&l.false_positives, true), "  ", |c| c == 1);
    }
    let _ = writeln!(
        out,
        "\nfalse negatives at {tier} (compromised accounts not flagged at {tier}, nearest first): {}",
        l.false_negatives.len()
    );
    if !l.false_negatives.is_empty() {
        aligned_table(out, &rows(&l.false_negatives, false), "  ", |c| c == 1);
    }
}

/// What was measured against dataset `i`, for the text header.
fn what(args: &EvalArgs, i: usize) -> String {
    match args.alerts.get(i) {
        Some(a) => a.display().to_string(),
        None => format!("the rules in {} (scored in memory)", super::layers_name(&args.rules)),
    }
}

/// Measures one alerts file against one dataset.
fn from_file(args: &EvalArgs, data_dir: &Path, alerts_path: &Path) -> anyhow::Result<Measurement> {
    let alerts = eval::read_alerts(alerts_path)?;

    let mut notes = Vec::new();
    let layers = super::rule_layers(&args.rules)?;
    let (tiers, tier_source) = match changeling::rules::layers::load(&layers, &Default::default()) {
        (Some(set), _) => (set.config.tiers.into_iter().map(|t| t.name).collect(), TierSource::Rules),
        (None, diags) => {
            let tiers = eval::tiers_from_alerts(&alerts);
            let first =
                diags.sorted().into_iter().find(|d| d.is_error()).map_or_else(String::new, |d| format!("; first: {d}"));
            notes.push(format!(
                "rules in {} do not load ({} error{}{first}); tiers taken from the alerts, ordered by their lowest score: {}",
                super::layers_name(&args.rules),
                diags.errors(),
                if diags.errors() == 1 { "" } else { "s" },
                if tiers.is_empty() { "none".to_string() } else { tiers.join(", ") }
            ));
            (tiers, TierSource::Alerts)
        }
    };

    let opts =
        ReadOptions { projection: Some(eval::projection()), time_unit: args.time_unit, ..ReadOptions::default() };
    let data = Dataset::open(data_dir, &opts).with_context(|| format!("reading dataset {}", data_dir.display()))?;
    let truth = eval::Truth::from_dataset(&data)?;
    if let Some(r) = data.report.table(TableKind::Labels)
        && r.skipped > 0
    {
        let first = r.samples.first().map_or_else(String::new, |s| format!("; first: {s}"));
        notes.push(format!("{} bad labels records were skipped{first}", r.skipped));
    }
    let days = eval::account_days(&data);
    let settings = Settings { tiers, tier_source, slack: args.slack, rules_tier: args.tier.clone() };
    let mut report = eval::evaluate(&truth, &days, &alerts, &settings)?;
    notes.append(&mut report.notes);
    report.notes = notes;
    let curves = eval::curves(&truth, &days, &alerts, &settings)?;
    let listing = eval::listing(&truth, &days, &alerts, &settings)?;
    Ok(Measurement { report, curves, listing })
}

/// Scores every dataset in memory with the rules and measures it. `None`
/// when the rules do not load (the diagnostics are printed).
fn scored_in_memory(args: &EvalArgs) -> anyhow::Result<Option<Vec<Measurement>>> {
    let layers = super::rule_layers(&args.rules)?;
    let Some(rules) = super::load_rules(&layers, args.quiet) else { return Ok(None) };
    let progress = Progress::new(args.quiet);
    let pool = super::pool(args.threads)?;
    let measured = pool.install(|| {
        let (plans, tier) = (&[rules.plan], args.tier.as_deref());
        super::sweep::measure_with(&args.data, plans, args.slack, tier, args.time_unit, &progress, true)
    })?;
    let reports = measured.reports.into_iter().next().unwrap_or_default();
    let extras = measured.extras.into_iter().next().unwrap_or_default();
    Ok(Some(
        reports
            .into_iter()
            .zip(extras)
            .map(|(report, (curves, listing))| Measurement { report, curves, listing })
            .collect(),
    ))
}

/// A ratio with three decimals, or `-` when absent.
pub fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

/// The report as text: of `what` (the alerts) against `data`.
fn render(what: &str, data: &Path, r: &Report) -> String {
    let mut out = String::new();
    let a = &r.accounts;
    let _ = writeln!(out, "changeling eval: {what} against {}", data.display());
    let _ = writeln!(
        out,
        "  accounts  {}: {} compromised, {} benign ({} labelled); {} benign account-days",
        a.total, a.compromised, a.benign, a.labelled_benign, a.benign_account_days
    );
    let _ = writeln!(
        out,
        "  alerts    {} read, {} counted, {} on compromised accounts outside their window ± {} (counted nowhere)",
        r.alerts.read, r.alerts.counted, r.alerts.outside_window, r.slack
    );
    let source = match r.tier_source {
        TierSource::Rules => "from the rules",
        TierSource::Alerts => "from the alerts",
    };
    let _ = writeln!(out, "  tiers     {} ({source})", r.tiers.join(", "));

    let _ = writeln!(out, "\naccounts flagged at each tier or higher");
    let mut rows = vec![
        ["tier", "flagged", "TP", "FP", "FN", "precision", "recall", "F1", "FP per M account-days"]
            .map(String::from)
            .to_vec(),
    ];
    for t in &r.by_tier {
        rows.push(vec![
            t.tier.clone(),
            t.flagged.to_string(),
            t.true_positives.to_string(),
            t.false_positives.to_string(),
            t.false_negatives.to_string(),
            num(t.precision),
            num(t.recall),
            num(t.f1),
            t.fp_per_million_account_days.map_or_else(|| "-".into(), |x| format!("{x:.1}")),
        ]);
    }
    table(&mut out, &rows);

    // Style tables: one row per style, one column per tier.
    let header = |first: &str| {
        let mut h = vec![first.to_string(), "accounts".into()];
        h.extend(r.tiers.iter().cloned());
        h
    };
    if let Some(first) = r.by_tier.first()
        && !first.compromised_styles.is_empty()
    {
        let _ = writeln!(out, "\nrecall by compromised style");
        let mut rows = vec![header("style")];
        for (i, s) in first.compromised_styles.iter().enumerate() {
            let mut row = vec![s.style.clone(), s.accounts.to_string()];
            row.extend(r.by_tier.iter().map(|t| format!("{:.3}", t.compromised_styles[i].recall)));
            rows.push(row);
        }
        table(&mut out, &rows);
    }
    if let Some(first) = r.by_tier.first()
        && !first.benign_styles.is_empty()
    {
        let _ = writeln!(out, "\nfalse-positive rate by benign look-alike style");
        let mut rows = vec![header("style")];
        for (i, s) in first.benign_styles.iter().enumerate() {
            let mut row = vec![s.style.clone(), s.accounts.to_string()];
            row.extend(r.by_tier.iter().map(|t| format!("{:.3}", t.benign_styles[i].fp_rate)));
            rows.push(row);
        }
        table(&mut out, &rows);
    }

    let k = &r.ranking;
    let _ = writeln!(
        out,
        "\nranking by each account's highest counting incident score (0 without one): {} positive, {} negative",
        k.positives, k.negatives
    );
    table(
        &mut out,
        &[vec!["ROC AUC".into(), num(k.roc_auc)], vec!["PR AUC".into(), num(k.pr_auc), "(average precision)".into()]],
    );

    render_reliability(&mut out, &r.calibration);

    if let Some(tier) = &r.rules.tier {
        let _ = writeln!(out, "\nrules that hit accounts flagged at {tier}");
        let mut counts: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        for c in &r.rules.true_positives {
            counts.entry(&c.rule).or_default().0 = c.accounts;
        }
        for c in &r.rules.false_positives {
            counts.entry(&c.rule).or_default().1 = c.accounts;
        }
        let mut list: Vec<(&str, (u64, u64))> = counts.into_iter().collect();
        list.sort_by_key(|&(_, (tp, fp))| (std::cmp::Reverse(tp), std::cmp::Reverse(fp)));
        if list.is_empty() {
            let _ = writeln!(out, "  (none)");
        } else {
            let mut rows = vec![["rule", "TP accounts", "FP accounts"].map(String::from).to_vec()];
            for (rule, (tp, fp)) in list {
                rows.push(vec![rule.to_string(), tp.to_string(), fp.to_string()]);
            }
            table(&mut out, &rows);
        }
    }

    if !r.notes.is_empty() {
        out.push('\n');
        for n in &r.notes {
            let _ = writeln!(out, "note: {n}");
        }
    }
    out
}

/// The reliability diagram as a table, and the ECE, appended to `out`.
pub fn render_reliability(out: &mut String, c: &eval::Reliability) {
    let _ = writeln!(
        out,
        "\nreliability of incident scores: {} incidents, {} of them compromises (in the window of a compromised account)",
        c.incidents, c.compromises
    );
    if c.bins.is_empty() {
        let _ = writeln!(out, "  (no incidents)");
        return;
    }
    let mut rows = vec![["scores", "mean score", "observed share", "incidents"].map(String::from).to_vec()];
    for b in &c.bins {
        rows.push(vec![
            format!("{:.1}-{:.1}", b.from, b.to),
            format!("{:.3}", b.mean_score),
            format!("{:.3}", b.observed),
            b.count.to_string(),
        ]);
    }
    table(out, &rows);
    let _ = writeln!(
        out,
        "  expected calibration error (ECE) {}: the mean gap between score and observed share, weighted by incidents",
        num(c.ece)
    );
}

/// A count and its share of `of`, as `3 (1.2%)`.
pub fn count_share(n: u64, share: Option<f64>) -> String {
    match share {
        Some(x) => format!("{n} ({:.1}%)", x * 100.0),
        None => n.to_string(),
    }
}

/// Several datasets as one table, one row each, then the worst row.
fn render_datasets(args: &EvalArgs, reports: &[Report], summaries: &[Summary], worst: &Summary) -> String {
    let mut out = String::new();
    let source = if args.alerts.is_empty() {
        format!("scored in memory with the rules in {}", super::layers_name(&args.rules))
    } else {
        "alerts from files".to_string()
    };
    let _ = writeln!(out, "changeling eval: {} datasets, {source}; slack {}", reports.len(), reports[0].slack);
    let tiers = &worst.tiers;
    let top = tiers.first().map_or("-", String::as_str);
    let mut header = vec!["dataset".to_string(), "accounts".into(), "compromised".into(), "benign".into()];
    header.extend(tiers.iter().map(|t| format!("recall {t}")));
    header.extend(tiers.iter().map(|t| format!("benign {t}")));
    header.extend([
        format!("FP/M {top}"),
        format!("worst style {top}"),
        "ROC AUC".into(),
        "PR AUC".into(),
        "ECE".into(),
    ]);
    let row = |name: String, counts: Option<&Report>, s: &Summary| -> Vec<String> {
        let count = |f: fn(&Report) -> u64| counts.map_or_else(|| "-".to_string(), |r| f(r).to_string());
        let mut row =
            vec![name, count(|r| r.accounts.total), count(|r| r.accounts.compromised), count(|r| r.accounts.benign)];
        row.extend(s.recall.iter().map(|x| num(*x)));
        row.extend(s.benign_flagged.iter().zip(&s.benign_flagged_share).map(|(n, x)| count_share(*n, *x)));
        row.push(s.fp_per_million_account_days.map_or_else(|| "-".into(), |x| format!("{x:.1}")));
        row.push(s.worst_style.as_ref().map_or_else(|| "-".into(), |w| format!("{} {:.3}", w.style, w.recall)));
        row.push(num(s.roc_auc));
        row.push(num(s.pr_auc));
        row.push(num(s.ece));
        row
    };
    let mut rows = vec![header];
    for (i, (r, s)) in reports.iter().zip(summaries).enumerate() {
        rows.push(row(args.data[i].display().to_string(), Some(r), s));
    }
    rows.push(row("worst".into(), None, worst));
    out.push('\n');
    table(&mut out, &rows);
    let _ = writeln!(
        out,
        "\nrecall, benign: recall and benign accounts flagged at each tier or higher\n\
         FP/M: benign accounts flagged at {top} per million benign account-days\n\
         worst style: the compromise style with the lowest recall at {top}\n\
         ECE: expected calibration error of the incident scores (see the reliability table of one dataset)\n\
         worst: the worst of each column across the datasets, each column on its own: the lowest recall,\n\
         \x20      style recall and AUCs; the most benign accounts flagged (count, share), FP/M and ECE"
    );
    let mut first = true;
    for (i, r) in reports.iter().enumerate() {
        for n in &r.notes {
            if first {
                out.push('\n');
                first = false;
            }
            let _ = writeln!(out, "note: {}: {n}", args.data[i].display());
        }
    }
    out
}
