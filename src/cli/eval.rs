//! `changeling eval`: measure alerts against a dataset's ground-truth
//! labels, and print the report as aligned text or as one JSON object.
//! The definitions (slack, account-days, AUC ties) are in the library's
//! `changeling::eval` module doc.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use changeling::data::{Dataset, ReadOptions, TableKind};
use changeling::eval::{self, Report, Settings, TierSource};
use changeling::time::{Millis, parse_duration};
use serde::Serialize;

/// Arguments of `changeling eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Dataset directory: its `labels` table is the ground truth, its
    /// events give the accounts and account-days.
    #[arg(long)]
    data: PathBuf,
    /// Alerts to measure: JSON Lines as `changeling score` writes them.
    #[arg(long)]
    alerts: PathBuf,
    /// Rules directory whose tiers the alerts use. When it does not load,
    /// the tiers are taken from the alerts, ordered by their lowest score.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// How far a labelled compromise window is widened on each side; an
    /// alert on a compromised account counts only when it overlaps it.
    #[arg(long, default_value = "1h", value_parser = parse_slack)]
    slack: Millis,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Tier at which to list the rules that hit true- and false-positive
    /// accounts (default: the highest).
    #[arg(long, value_name = "NAME")]
    tier: Option<String>,
}

fn parse_slack(s: &str) -> Result<Millis, String> {
    parse_duration(s)
}

/// The JSON output: where from, then the report.
#[derive(Serialize)]
struct Output<'a> {
    dataset: String,
    alerts_file: String,
    #[serde(flatten)]
    report: &'a Report,
}

/// Runs the command.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let alerts = eval::read_alerts(&args.alerts)?;

    let mut notes = Vec::new();
    let (tiers, tier_source) = match changeling::rules::load(&args.rules) {
        (Some(set), _) => (set.config.tiers.into_iter().map(|t| t.name).collect(), TierSource::Rules),
        (None, diags) => {
            let tiers = eval::tiers_from_alerts(&alerts);
            let first =
                diags.sorted().into_iter().find(|d| d.is_error()).map_or_else(String::new, |d| format!("; first: {d}"));
            notes.push(format!(
                "rules in {} do not load ({} error{}{first}); tiers taken from the alerts, ordered by their lowest score: {}",
                args.rules.display(),
                diags.errors(),
                if diags.errors() == 1 { "" } else { "s" },
                if tiers.is_empty() { "none".to_string() } else { tiers.join(", ") }
            ));
            (tiers, TierSource::Alerts)
        }
    };

    let opts = ReadOptions { projection: Some(eval::projection()), ..ReadOptions::default() };
    let data = Dataset::open(&args.data, &opts).with_context(|| format!("reading dataset {}", args.data.display()))?;
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

    let text = if args.json {
        let out = Output {
            dataset: args.data.display().to_string(),
            alerts_file: args.alerts.display().to_string(),
            report: &report,
        };
        let mut s = serde_json::to_string_pretty(&out)?;
        s.push('\n');
        s
    } else {
        render(&args, &report)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

/// Writes `rows` as a table: first column left-aligned, the others
/// right-aligned, two spaces between, indented by two.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if c == 0 {
                let _ = write!(line, " {cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The report as text.
fn render(args: &EvalArgs, r: &Report) -> String {
    let mut out = String::new();
    let a = &r.accounts;
    let _ = writeln!(out, "changeling eval: {} against {}", args.alerts.display(), args.data.display());
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
