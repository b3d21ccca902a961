//! `changeling report`: alerts as one self-contained HTML page (see
//! `changeling::report`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use changeling::alerts::read;
use changeling::data::{Dataset, ReadOptions};
use changeling::eval::{self, TierSource, Truth};
use changeling::report::{self, Input, Labels};
use changeling::time::{Millis, TimeUnit};

/// Arguments of `changeling report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The alerts, as `changeling score` writes them (JSON Lines, Parquet
    /// by the name's .parquet, or CSV of hit rows by .csv).
    #[arg(long)]
    alerts: PathBuf,
    /// Dataset with a labels table: adds precision and recall, the ROC and
    /// precision-recall curves and per-rule true and false positives.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The HTML file to write; `-` writes the page to stdout.
    #[arg(long, short, default_value = "report.html")]
    out: PathBuf,
    /// Rules whose tiers order the alerts' (default: builtin; when they do
    /// not load, tiers are taken from the alerts).
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// How many top accounts to show, with their incidents.
    #[arg(long, default_value_t = 25)]
    top: usize,
    /// How far a labelled compromise window is widened on each side.
    #[arg(long, default_value = "1h", value_parser = super::eval::parse_slack)]
    slack: Millis,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
}

/// Runs the command.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let to_stdout = args.out.as_os_str() == "-";
    if !to_stdout {
        // The page is written over neither the alerts nor the dataset, and
        // a destination that cannot be written is found before any work.
        if let Some(d) = &args.data {
            changeling::output::check_not_input(&args.out, d).map_err(anyhow::Error::msg)?;
        }
        super::check_not_same_file(&args.out, &args.alerts)?;
        changeling::output::check_writable(&args.out)?;
    }
    let alerts = read::read(&args.alerts)?;
    let layers = super::rule_layers(&args.rules)?;
    let (tiers, tier_source) = match changeling::rules::layers::load(&layers, &Default::default()) {
        (Some(set), _) => {
            let tiers: Vec<String> = set.config.tiers.iter().map(|t| t.name.clone()).collect();
            if alerts.iter().all(|a| tiers.contains(&a.tier)) {
                (tiers, TierSource::Rules)
            } else {
                (read::tiers_of(&alerts), TierSource::Alerts)
            }
        }
        (None, _) => (read::tiers_of(&alerts), TierSource::Alerts),
    };
    let truth_days = match &args.data {
        Some(d) => {
            let opts = ReadOptions {
                projection: Some(eval::projection()),
                time_unit: args.time_unit,
                ..ReadOptions::default()
            };
            let data = Dataset::open(d, &opts).with_context(|| format!("reading dataset {}", d.display()))?;
            let truth = Truth::from_dataset(&data)?;
            Some((truth, eval::account_days(&data)))
        }
        None => None,
    };
    let input = Input {
        alerts_name: args.alerts.display().to_string(),
        alerts: &alerts,
        tiers,
        tier_source,
        labels: truth_days.as_ref().map(|(truth, days)| Labels {
            dataset: args.data.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            truth,
            days,
            slack: args.slack,
        }),
        top: args.top,
    };
    let page = report::render(&input)?;
    let written_to = if to_stdout {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(page.as_bytes())?;
        out.flush()?;
        "stdout".to_string()
    } else {
        changeling::output::write_file(&args.out, page.as_bytes())?;
        args.out.display().to_string()
    };
    super::to_stderr(&format!(
        "changeling report: {} incidents of {} written to {written_to}\n",
        alerts.len(),
        args.alerts.display(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
