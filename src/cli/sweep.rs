//! `changeling sweep`: a grid of rule and engine parameters, every setting
//! scored and measured on datasets read once, as a table with its Pareto
//! front. The library side (grid, one read, shared hits, summaries) is
//! `changeling::tune`; overrides are `changeling::rules::overrides`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use changeling::data::ReadProgress;
use changeling::eval::{self, Report};
use changeling::plan::Plan;
use changeling::rules::{self, Overrides, overrides};
use changeling::time::{Millis, TimeUnit};
use changeling::tune::{self, Grid, Loaded, Summary};
use serde::Serialize;

use changeling::terminal::table;

use super::eval::{count_share, num, parse_slack};
use super::progress::{Progress, Unit};

/// Arguments of `changeling sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Dataset directory with a `labels` table. Repeat for several: each
    /// figure of a setting is then the worst across them.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Rules that the settings override: a directory (changeling.toml and
    /// rule files), one rule file, or `builtin` (the default: the rules
    /// built into changeling); repeat to stack them (see `score --rules`).
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// A parameter and the values to try, PATH=V1,V2,...: a rule's
    /// `<rule id>.<signal kind>.<param>` (`<kind>#2` for its second signal
    /// of a kind), `<rule id>.hit.<key>`, `<rule id>.events.<key>`, or
    /// `<table>.<key>` of changeling.toml (`tier.high.min_score`). Values
    /// are TOML; a bare word is a string (`6h`). Repeat for a grid: every
    /// combination is one setting.
    #[arg(long = "set", value_name = "PATH=V1,V2,...", value_parser = overrides::parse_set)]
    set: Vec<(String, Vec<String>)>,
    /// How far a labelled compromise window is widened on each side; an
    /// alert on a compromised account counts only when it overlaps it.
    #[arg(long, default_value = "1h", value_parser = parse_slack)]
    slack: Millis,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// Print the results as one JSON object (with each dataset's full
    /// report per setting) instead of a table.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core). The output is the same
    /// for any number.
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bars and no rule warnings on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Reports of every setting on every dataset.
pub struct Measured {
    /// `reports[setting][dataset]`.
    pub reports: Vec<Vec<Report>>,
    /// When asked for, `extras[setting][dataset]`: the curves and the
    /// false-positive and false-negative accounts.
    pub extras: Vec<Vec<(eval::Curves, eval::Listing)>>,
    /// Passes over each dataset's accounts (settings differing only in
    /// weights, `[incident]` and tiers share one).
    pub passes: usize,
}

/// Reads each dataset once (with the union of the columns every plan
/// reads), scores it under every plan, and evaluates each result.
pub fn measure(
    data: &[PathBuf],
    plans: &[Plan],
    slack: Millis,
    rules_tier: Option<&str>,
    time_unit: Option<TimeUnit>,
    progress: &Progress,
) -> anyhow::Result<Measured> {
    measure_with(data, plans, slack, rules_tier, time_unit, progress, false)
}

/// [`measure`], with the curves and account lists too when `extras`.
pub fn measure_with(
    data: &[PathBuf],
    plans: &[Plan],
    slack: Millis,
    rules_tier: Option<&str>,
    time_unit: Option<TimeUnit>,
    progress: &Progress,
    extras: bool,
) -> anyhow::Result<Measured> {
    let projection = tune::union(plans.iter().map(Plan::projection).chain([eval::projection()]));
    let refs: Vec<&Plan> = plans.iter().collect();
    let passes = tune::passes(&refs);
    let mut reports: Vec<Vec<Report>> = plans.iter().map(|_| Vec::new()).collect();
    let mut more: Vec<Vec<(eval::Curves, eval::Listing)>> = plans.iter().map(|_| Vec::new()).collect();
    for (i, dir) in data.iter().enumerate() {
        let of = if data.len() > 1 { format!(" ({}/{})", i + 1, data.len()) } else { String::new() };
        let read = ReadProgress::default();
        let loaded = progress
            .run(
                format!("reading {}{of}", dir.display()),
                Unit::Bytes,
                super::score::input_bytes(dir),
                &read.file_bytes,
                || Loaded::read(dir, projection.clone(), time_unit, &read),
            )
            .with_context(|| format!("reading dataset {}", dir.display()))?;
        let done = AtomicU64::new(0);
        let total = loaded.data.events.accounts.len() as u64 * passes as u64;
        let what = if plans.len() == 1 {
            format!("scoring{of}")
        } else {
            format!("scoring {} settings in {passes} pass{}{of}", plans.len(), if passes == 1 { "" } else { "es" })
        };
        let scored = progress.run(what, Unit::Accounts, total, &done, || tune::score_plans(&loaded.data, &refs, &done));
        for (s, (plan, scored)) in plans.iter().zip(&scored).enumerate() {
            let report = tune::evaluate(&loaded, plan, scored, slack, rules_tier)
                .with_context(|| format!("evaluating on {}", dir.display()))?;
            reports[s].push(report);
            if extras {
                let alerts = eval::AlertFile::from_incidents(
                    std::path::Path::new("<scored in memory>"),
                    &scored.accounts,
                    plan,
                    &loaded.data.strings,
                );
                let settings = eval::Settings {
                    tiers: plan.config.tiers.iter().map(|t| t.name.clone()).collect(),
                    tier_source: eval::TierSource::Rules,
                    slack,
                    rules_tier: rules_tier.map(str::to_string),
                };
                let curves = eval::curves(&loaded.truth, &loaded.days, &alerts, &settings)?;
                let listing = eval::listing(&loaded.truth, &loaded.days, &alerts, &settings)?;
                more[s].push((curves, listing));
            }
        }
    }
    Ok(Measured { reports, extras: if extras { more } else { Vec::new() }, passes })
}

/// One setting's results.
#[derive(Serialize)]
struct SettingOut {
    /// From 1, in grid order.
    setting: usize,
    /// Parameter path to value.
    values: serde_json::Map<String, serde_json::Value>,
    /// On the Pareto front at the highest tier.
    pareto: bool,
    /// The tiers at which it is on the Pareto front, highest first.
    pareto_tiers: Vec<String>,
    /// The worst of each figure across the datasets.
    worst: Summary,
    datasets: Vec<DatasetOut>,
}

#[derive(Serialize)]
struct DatasetOut {
    dataset: String,
    summary: Summary,
    report: Report,
}

#[derive(Serialize)]
struct SweepOut {
    rules: String,
    datasets: Vec<String>,
    slack: String,
    parameters: Vec<String>,
    passes: usize,
    settings: Vec<SettingOut>,
    /// Settings on the Pareto front at the highest tier, by number.
    pareto: Vec<usize>,
    /// The Pareto front at each tier, highest first.
    pareto_by_tier: Vec<TierFront>,
}

/// The settings on the Pareto front at one tier.
#[derive(Serialize)]
struct TierFront {
    tier: String,
    /// By number.
    settings: Vec<usize>,
}

/// A TOML value text as JSON (strings, numbers, booleans, arrays, tables).
fn json_value(text: &str) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct V {
        v: toml::Value,
    }
    toml::from_str::<V>(&format!("v = {text}"))
        .ok()
        .and_then(|v| serde_json::to_value(v.v).ok())
        .unwrap_or_else(|| serde_json::Value::String(text.to_string()))
}

/// A TOML value text as shown in the table: strings without quotes.
fn shown(text: &str) -> String {
    match json_value(text) {
        serde_json::Value::String(s) => s,
        _ => text.to_string(),
    }
}

/// Column names for the parameters: a rule's parameter without the rule
/// id (`off_pattern.max_probability`) when no other parameter has that
/// name, else the whole path.
fn short_names(paths: &[String]) -> Vec<String> {
    let short = |p: &str| -> String {
        let parts: Vec<&str> = p.split('.').collect();
        if parts.len() > 2 && parts[0].contains('/') { parts[parts.len() - 2..].join(".") } else { p.to_string() }
    };
    paths
        .iter()
        .map(|p| {
            let s = short(p);
            if paths.iter().filter(|q| short(q) == s).count() == 1 { s } else { p.clone() }
        })
        .collect()
}

/// Runs the command.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let grid = Grid::new(args.set.clone()).map_err(anyhow::Error::msg)?;
    let settings = grid.settings();
    let layers = super::rule_layers(&args.rules)?;
    let Some(plans) = load_settings(&args, &layers, &settings) else { return Ok(ExitCode::from(2)) };
    let progress = Progress::new(args.quiet);
    let pool = super::pool(args.threads)?;
    let measured = pool.install(|| measure(&args.data, &plans, args.slack, None, args.time_unit, &progress))?;

    let summaries: Vec<Vec<Summary>> =
        measured.reports.iter().map(|per_data| per_data.iter().map(Summary::of).collect()).collect();
    let worst: Vec<Summary> = summaries.iter().map(|s| Summary::worst(s)).collect();
    let tiers = worst.first().map(|w| w.tiers.clone()).unwrap_or_default();
    // fronts[t][i]: setting i is on the Pareto front at tier t.
    let fronts = tune::fronts(&worst, tiers.len().max(1));
    let front = &fronts[0];

    let text = if args.json {
        let out = SweepOut {
            rules: super::layers_name(&args.rules),
            datasets: args.data.iter().map(|d| d.display().to_string()).collect(),
            slack: changeling::time::compact_duration(args.slack),
            parameters: grid.axes.iter().map(|(p, _)| p.clone()).collect(),
            passes: measured.passes,
            pareto: (0..settings.len()).filter(|&i| front[i]).map(|i| i + 1).collect(),
            pareto_by_tier: tiers
                .iter()
                .zip(&fronts)
                .map(|(t, f)| TierFront {
                    tier: t.clone(),
                    settings: (0..settings.len()).filter(|&i| f[i]).map(|i| i + 1).collect(),
                })
                .collect(),
            settings: settings
                .iter()
                .zip(measured.reports)
                .zip(summaries)
                .zip(&worst)
                .enumerate()
                .map(|(i, (((o, reports), summaries), worst))| SettingOut {
                    setting: i + 1,
                    values: o.assignments.iter().map(|a| (a.path.clone(), json_value(&a.value))).collect(),
                    pareto: front[i],
                    pareto_tiers: tiers.iter().zip(&fronts).filter(|(_, f)| f[i]).map(|(t, _)| t.clone()).collect(),
                    worst: worst.clone(),
                    datasets: args
                        .data
                        .iter()
                        .zip(reports)
                        .zip(summaries)
                        .map(|((d, report), summary)| DatasetOut { dataset: d.display().to_string(), summary, report })
                        .collect(),
                })
                .collect(),
        };
        let mut s = serde_json::to_string_pretty(&out)?;
        s.push('\n');
        changeling::terminal::json_for(&s, std::io::IsTerminal::is_terminal(&std::io::stdout())).into_owned()
    } else {
        render(&args, &grid, &settings, &worst, &fronts, measured.passes)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Loads and compiles the rules under every setting. On errors, prints
/// each distinct diagnostic once and which settings failed, and returns
/// `None`. Warnings are printed once, from the first setting, unless
/// `--quiet`.
fn load_settings(args: &SweepArgs, layers: &[rules::layers::RuleLayer], settings: &[Overrides]) -> Option<Vec<Plan>> {
    let mut plans = Vec::new();
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut shown: BTreeSet<String> = BTreeSet::new();
    let mut err = std::io::stderr().lock();
    for (i, o) in settings.iter().enumerate() {
        let (set, diags) = rules::layers::load(layers, o);
        match set {
            Some(set) => {
                if i == 0 && !args.quiet && !diags.items.is_empty() {
                    let _ = write!(err, "{}", diags.render());
                }
                plans.push(Plan::compile(&set));
            }
            None => {
                for d in diags.sorted().into_iter().filter(|d| d.is_error()) {
                    let text = d.render();
                    if shown.insert(text.clone()) {
                        let _ = writeln!(err, "{text}");
                    }
                }
                let values: Vec<String> = o.assignments.iter().map(|a| a.text()).collect();
                failed.push((i + 1, values.join(" ")));
            }
        }
    }
    if failed.is_empty() {
        return Some(plans);
    }
    let list: Vec<String> = failed.iter().take(5).map(|(n, v)| format!("#{n} ({v})")).collect();
    let more = if failed.len() > 5 { format!(" and {} more", failed.len() - 5) } else { String::new() };
    let _ = writeln!(
        err,
        "error: rules in {} do not load under {} of {} setting{}: {}{more}",
        super::layers_name(&args.rules),
        failed.len(),
        settings.len(),
        if settings.len() == 1 { "" } else { "s" },
        list.join(", ")
    );
    None
}

/// The sweep as a table, then its Pareto front at each tier.
fn render(
    args: &SweepArgs,
    grid: &Grid,
    settings: &[Overrides],
    worst: &[Summary],
    fronts: &[Vec<bool>],
    passes: usize,
) -> String {
    let mut out = String::new();
    let paths: Vec<String> = grid.axes.iter().map(|(p, _)| p.clone()).collect();
    let n = args.data.len();
    let _ = writeln!(
        out,
        "changeling sweep: {} setting{} of the rules in {} over {n} dataset{}, slack {}",
        settings.len(),
        if settings.len() == 1 { "" } else { "s" },
        super::layers_name(&args.rules),
        if n == 1 { "" } else { "s" },
        changeling::time::compact_duration(args.slack)
    );
    for d in &args.data {
        let _ = writeln!(out, "  dataset    {}", d.display());
    }
    for p in &paths {
        let _ = writeln!(out, "  parameter  {p}");
    }
    let _ = writeln!(
        out,
        "  scored in {passes} pass{} over the accounts (settings that differ only in weights, [incident] or tiers share one)",
        if passes == 1 { "" } else { "es" }
    );
    if n > 1 {
        let _ = writeln!(
            out,
            "  each figure is the worst across the {n} datasets: the lowest P, R and ROC AUC, the most benign\n  \
             accounts flagged and FP/M (--json has each dataset's)"
        );
    }

    let tiers = worst.first().map(|w| w.tiers.clone()).unwrap_or_default();
    let top = tiers.first().cloned().unwrap_or_else(|| "-".into());
    let mut header = vec!["#".to_string()];
    header.extend(short_names(&paths));
    header.extend(tiers.iter().map(|t| format!("P {t}")));
    header.extend(tiers.iter().map(|t| format!("R {t}")));
    header.extend(tiers.iter().map(|t| format!("benign {t}")));
    header.extend([format!("FP/M {top}"), "ROC AUC".into(), "PR AUC".into()]);
    header.extend(tiers.iter().map(|t| format!("front {t}")));
    let mut rows = vec![header];
    for (i, (o, w)) in settings.iter().zip(worst).enumerate() {
        let mut row = vec![(i + 1).to_string()];
        row.extend(o.assignments.iter().map(|a| shown(&a.value)));
        row.extend(w.precision.iter().map(|x| num(*x)));
        row.extend(w.recall.iter().map(|x| num(*x)));
        row.extend(w.benign_flagged.iter().map(u64::to_string));
        row.push(w.fp_per_million_account_days.map_or_else(|| "-".into(), |x| format!("{x:.1}")));
        row.push(num(w.roc_auc));
        row.push(num(w.pr_auc));
        row.extend(fronts.iter().take(tiers.len()).map(|f| if f[i] { "*".to_string() } else { String::new() }));
        rows.push(row);
    }
    out.push('\n');
    table(&mut out, &rows);
    let _ = writeln!(
        out,
        "\nP, R, benign: precision, recall and benign accounts flagged at each tier or higher\n\
         FP/M: benign accounts flagged at {top} per million benign account-days\n\
         PR AUC: area under the precision-recall curve (average precision)\n\
         front T: on the Pareto front of recall against benign accounts flagged, at tier T or higher"
    );
    for (t, tier) in tiers.iter().enumerate() {
        let front = &fronts[t];
        let _ = writeln!(
            out,
            "\nPareto front at {tier} (*): recall at {tier} (higher is better), benign accounts flagged at {tier} \
             (fewer is better)"
        );
        for (i, (o, w)) in settings.iter().zip(worst).enumerate().filter(|(i, _)| front[*i]) {
            let values: Vec<String> = o.assignments.iter().map(|a| format!("{}={}", a.path, shown(&a.value))).collect();
            let values = if values.is_empty() { "(the rules as they are)".to_string() } else { values.join(" ") };
            let recall = num(w.recall.get(t).copied().flatten());
            // With several datasets the worst count and the worst share may
            // come from different ones: the count only.
            let share = if n == 1 { w.benign_flagged_share.get(t).copied().flatten() } else { None };
            let benign = count_share(w.benign_flagged.get(t).copied().unwrap_or(0), share);
            let _ = writeln!(out, "  #{}  recall {recall}, benign {benign}: {values}", i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_columns_are_short_but_distinct() {
        let paths = [
            "likes/a.hit.weight".to_string(),
            "likes/b.hit.weight".to_string(),
            "likes/a.off_pattern.max_probability".to_string(),
            "incident.gap".to_string(),
            "tier.high.min_score".to_string(),
        ];
        assert_eq!(
            short_names(&paths),
            [
                "likes/a.hit.weight",
                "likes/b.hit.weight",
                "off_pattern.max_probability",
                "incident.gap",
                "tier.high.min_score"
            ]
        );
    }

    #[test]
    fn values_show_without_quotes() {
        assert_eq!(shown("\"6h\""), "6h");
        assert_eq!(shown("0.05"), "0.05");
        assert_eq!(json_value("0.05"), serde_json::json!(0.05));
        assert_eq!(json_value("[\"like\"]"), serde_json::json!(["like"]));
    }
}
