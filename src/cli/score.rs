//! `changeling score`: read, score, write alerts, summarise.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use changeling::alerts::select::{self, Selection};
use changeling::alerts::{self, Context, summary};
use changeling::data::ReadOptions;
use changeling::output::OutputFile;
use changeling::rules::Severity;
use changeling::run::{self, RunOptions, RunOutput, RunProgress};
use changeling::score::AccountIncidents;
use changeling::time::{Millis, TimeUnit};

use super::progress::style;

/// Format of written alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per incident and line (the data contract).
    Jsonl,
    /// CSV with a header row; see --csv-rows.
    Csv,
    /// Parquet: one row per incident, hits as a list of structs.
    Parquet,
}

/// What a CSV row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CsvRows {
    /// One row per incident.
    Incident,
    /// One row per hit (a timeline), with its incident's fields.
    Hit,
}

/// What a daily run writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum EmitArg {
    /// Incidents new or changed by the batch.
    Changes,
    /// Every incident not yet final.
    Open,
}

/// A rule severity, as rules write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityArg {
    fn severity(self) -> Severity {
        match self {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

/// Arguments of `changeling score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Dataset directory (events, items, follows, ... as JSONL, CSV or
    /// Parquet; see docs/data.md). Default: the demo dataset built into
    /// changeling.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Rules: a directory (changeling.toml and rule files), one rule file,
    /// or `builtin` for the rules built into changeling. Repeat to stack
    /// them: a later rule with the id of an earlier one replaces it, and
    /// the last changeling.toml is used (`--rules builtin --rules team/`).
    /// Default: $CHANGELING_RULES (a list like PATH), else `builtin`.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Exceptions: a TOML file of `[[exception]]` tables (an account,
    /// device, IP network, ASN, item or author, the rules they cover, a
    /// reason, an expiry) whose hits are not reported. Repeatable.
    /// Default: $CHANGELING_EXCEPTIONS (a list like PATH), else none.
    #[arg(long, value_name = "FILE")]
    exceptions: Vec<PathBuf>,
    /// Group the incidents of several accounts that share lockstep items,
    /// or a network or client new to each of them within one window (the
    /// rules' `[incident] gap`), into campaigns: each member's alert gets the campaign's id
    /// (`campaign`) and the summary lists them. Needs every incident in
    /// memory at once (a run whose incidents are spilled does not group).
    #[arg(long, conflicts_with = "state")]
    campaigns: bool,
    /// Write alerts here instead of stdout (`-` is stdout). The format is
    /// taken from the extension (.jsonl, .ndjson or .json; .csv; .parquet)
    /// unless --format is given; any other extension is an error.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Format of the alerts (default: from the --out extension, else jsonl).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// With CSV: one row per incident, or one row per hit.
    #[arg(long, value_enum, default_value = "incident")]
    csv_rows: CsvRows,
    /// Write only incidents of this tier or a higher one.
    #[arg(long, value_name = "TIER")]
    min_tier: Option<String>,
    /// Write only incidents with a hit of a rule whose id matches (`*`
    /// matches anything: `likes/*`). Repeatable, or comma-separated.
    #[arg(long = "rule", value_name = "PATTERN", value_delimiter = ',')]
    include_rules: Vec<String>,
    /// Hits of rules whose id matches do not make an incident written.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    exclude_rule: Vec<String>,
    /// Write only incidents with a hit of a rule with one of these tags.
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    include_tags: Vec<String>,
    /// Hits of rules with one of these tags do not make an incident written.
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    exclude_tag: Vec<String>,
    /// Write only incidents with a hit of a rule of one of these severities.
    #[arg(long = "severity", value_enum, value_name = "SEVERITY", value_delimiter = ',')]
    include_severities: Vec<SeverityArg>,
    /// Hits of rules of these severities do not make an incident written.
    #[arg(long, value_enum, value_name = "SEVERITY", value_delimiter = ',')]
    exclude_severity: Vec<SeverityArg>,
    /// Write only incidents with a hit of a rule of this severity or higher.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    min_severity: Option<SeverityArg>,
    /// Reporting window start: write only incidents with a hit at or after
    /// this time (RFC 3339, epoch ms, or a date: 2020-09-09). All the data
    /// is still read and scored: signals need the history before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Millis>,
    /// Reporting window end: write only incidents with a hit before this
    /// time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<Millis>,
    /// Print the summary on stderr as one JSON object (with the per-rule
    /// counts) instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory budget for events, e.g. 2GiB or 512MiB (default: half of
    /// physical memory). Inputs larger than this are partitioned by account
    /// into spill files and scored part by part, with the same output.
    /// At least 1MiB (see docs/data.md).
    #[arg(long, value_parser = run::parse_memory_budget)]
    memory: Option<u64>,
    /// Directory for spill files (default: the system's temp directory).
    /// They are removed on exit, on error and on Ctrl-C.
    #[arg(long)]
    tmp: Option<PathBuf>,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// Stop at the first bad data record instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// How many skipped records per table to show in the summary.
    #[arg(long, default_value_t = 5)]
    max_errors: usize,
    /// Fail (exit 2, writing nothing) when a table's share of skipped
    /// records is over this (0 to 1). Default: fail only when every record
    /// of a table is skipped; 1 never fails.
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    max_skipped_share: Option<f64>,
    /// A JSONL line or CSV record longer than this is skipped as bad, and
    /// so is a CSV quoted cell not closed within it (e.g. 4MiB).
    #[arg(long, value_name = "SIZE", value_parser = run::parse_memory, default_value = "1MiB")]
    max_record_bytes: u64,
    /// Exit with code 1 when any written incident reaches this tier (or a
    /// higher one).
    #[arg(long, value_name = "TIER")]
    fail_on: Option<String>,
    /// A daily run: --data is the new batch of events, scored against the
    /// state the previous run left in DIR, which this run updates (a DIR
    /// that does not exist starts empty). See docs/state.md.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// With --state: write the incidents this batch made new or changed
    /// (`changes`: new, updated, final, withdrawn), or every incident not
    /// yet final (`open`).
    #[arg(long, value_enum, requires = "state")]
    emit: Option<EmitArg>,
    /// No progress bars and no summary on stderr (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// A time argument: RFC 3339, epoch milliseconds, or a date (its UTC
/// midnight).
pub fn parse_time(s: &str) -> Result<Millis, String> {
    changeling::time::parse_timestamp(s)
        .or_else(|| changeling::time::parse_timestamp(&format!("{s}T00:00:00Z")))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a time: give RFC 3339 (2020-09-09T14:00:00Z), a date (2020-09-09) or epoch milliseconds"
            )
        })
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a share between 0 and 1")),
    }
}

/// An error when too many records of a table were skipped (see
/// `--max-skipped-share`): a run over data it could not read is no clean
/// run, and must not replace the previous alerts.
fn check_skipped(report: &changeling::data::ReadReport, max_share: Option<f64>) -> anyhow::Result<()> {
    for (kind, t) in &report.tables {
        let seen = t.records + t.skipped;
        if t.skipped == 0 {
            continue;
        }
        let share = t.skipped as f64 / seen as f64;
        let over = match max_share {
            None => t.records == 0,
            Some(max) => share > max,
        };
        if over {
            let first = t.samples.first().map_or(String::new(), |s| {
                format!("; the first: {}", changeling::terminal::value(&s.to_string(), 300))
            });
            anyhow::bail!(
                "{} of {} {kind} records skipped ({:.1}%){first}; nothing written. Fix the data, or pass \
                 --max-skipped-share (now {}) to accept it",
                thousands(t.skipped),
                thousands(seen),
                share * 100.0,
                max_share.map_or("all skipped fails".to_string(), |m| m.to_string())
            );
        }
    }
    Ok(())
}

/// Where alerts go and in what format.
#[derive(Debug, PartialEq, Eq)]
pub struct Destination {
    /// The file, or `None` for stdout.
    pub path: Option<PathBuf>,
    /// The format.
    pub format: Format,
}

/// The destination of `--out` and `--format`: the format given, else the
/// extension's; stdout without `--out` or with `-`. A destination that
/// exists and is not a regular file (`/dev/null`, a named pipe) needs no
/// extension: JSON Lines unless `--format` says otherwise. A `--format`
/// that the extension contradicts (`--format parquet -o x.csv`) is an
/// error, not a Parquet file named `.csv`.
pub fn destination(out: Option<&Path>, format: Option<Format>) -> anyhow::Result<Destination> {
    let path = out.filter(|p| p.as_os_str() != "-").map(Path::to_path_buf);
    let Some(p) = &path else { return Ok(Destination { path, format: format.unwrap_or(Format::Jsonl) }) };
    let special = std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir());
    let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    let by_ext = match ext.as_deref() {
        Some("jsonl" | "ndjson" | "json") => Some(Format::Jsonl),
        Some("csv") => Some(Format::Csv),
        Some("parquet") => Some(Format::Parquet),
        _ => None,
    };
    let name = |f: Format| match f {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    };
    let format = match (format, by_ext) {
        (Some(f), Some(e)) if f != e => anyhow::bail!(
            "--out {} names a .{} file but --format is {}: a reader would take the file for what its name says; \
             name it .{} or drop --format",
            p.display(),
            ext.as_deref().unwrap_or_default(),
            name(f),
            name(f)
        ),
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) if special => Format::Jsonl,
        (None, None) => match ext {
            Some(other) => anyhow::bail!(
                "--out {}: cannot tell the format from the extension `.{other}`; name the file .jsonl, .csv or \
                 .parquet, or pass --format jsonl|csv|parquet (alerts are written uncompressed)",
                p.display()
            ),
            None => anyhow::bail!(
                "--out {}: cannot tell the format without an extension; name the file .jsonl, .csv or .parquet, \
                 or pass --format jsonl|csv|parquet",
                p.display()
            ),
        },
    };
    Ok(Destination { path, format })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(n: u64, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-9);
    if r >= 1e6 { format!("{:.1} M events/s", r / 1e6) } else { format!("{:.0} k events/s", r / 1e3) }
}

/// Runs the command.
pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let pool = super::pool(args.threads)?;
    // Spill files do not outlive an interrupted run: see
    // `super::install_signal_handlers`.
    pool.install(|| score(&args))
}

/// Draws progress on stderr until `done`, when stderr is a terminal.
fn show_progress(progress: &RunProgress, done: &AtomicBool, total_bytes: u64) {
    use indicatif::ProgressBar;
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(style("{spinner} reading {bytes}/{total_bytes} ({bytes_per_sec}{eta_known}) {msg}"));
    let phase_over = |flag: &AtomicBool| done.load(Ordering::Relaxed) || flag.load(Ordering::Relaxed);
    while !phase_over(&progress.sorting) && !phase_over(&progress.scoring) {
        bar.set_position(progress.read.file_bytes.load(Ordering::Relaxed));
        let spilling = if progress.spilling.load(Ordering::Relaxed) { ", partitioning to disk" } else { "" };
        bar.set_message(format!("{} records{spilling}", thousands(progress.read.records.load(Ordering::Relaxed))));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
    if !phase_over(&progress.scoring) {
        let bar = ProgressBar::new(progress.partitions.load(Ordering::Relaxed));
        bar.set_style(style("{spinner} sorting {count} partitions ({rate}{eta_known}) {msg}"));
        while !phase_over(&progress.scoring) {
            let sorted = progress.partitions_sorted.load(Ordering::Relaxed);
            bar.set_length(progress.partitions.load(Ordering::Relaxed));
            bar.set_position(sorted);
            if Some(sorted) == bar.length() {
                bar.set_message("building the item indexes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    }
    if done.load(Ordering::Relaxed) {
        return;
    }
    let parts = progress.partitions.load(Ordering::Relaxed);
    let what = if parts > 0 { "partitions" } else { "accounts" };
    let bar = ProgressBar::new(parts);
    bar.set_style(style(&format!("{{spinner}} scoring {{count}} {what} ({{rate}}{{eta_known}})")));
    while !done.load(Ordering::Relaxed) {
        let (now, total) = if parts > 0 {
            (progress.partitions_done.load(Ordering::Relaxed), parts)
        } else {
            (progress.accounts_done.load(Ordering::Relaxed), progress.accounts_total.load(Ordering::Relaxed))
        };
        bar.set_length(total);
        bar.set_position(now);
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// Bytes of every file below `dir`, for progress bars.
pub fn input_bytes(dir: &std::path::Path) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                std::fs::read_dir(p).map(|rd| rd.filter_map(Result::ok).map(|e| walk(&e.path())).sum()).unwrap_or(0)
            }
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    walk(dir)
}

/// The index of tier `name`, or an error listing the tiers.
fn tier_index(plan: &changeling::plan::Plan, flag: &str, name: &str) -> anyhow::Result<usize> {
    plan.config.tiers.iter().position(|t| t.name == name).with_context(|| {
        let names: Vec<&str> = plan.config.tiers.iter().map(|t| t.name.as_str()).collect();
        format!("{flag} {name}: no such tier (tiers: {})", names.join(", "))
    })
}

/// The triage filters of the arguments, checked against the rules.
fn selection(args: &ScoreArgs, plan: &changeling::plan::Plan) -> anyhow::Result<Selection> {
    let ids: Vec<&str> = plan.rules.iter().map(|r| r.id.as_str()).collect();
    for (flag, patterns) in [("--rule", &args.include_rules), ("--exclude-rule", &args.exclude_rule)] {
        for p in patterns {
            if !ids.iter().any(|id| select::matches(p, id)) {
                let hint = changeling::rules::diag::did_you_mean(p, ids.iter().copied())
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                anyhow::bail!("{flag} {p}: matches no rule{hint} (`changeling rules list` lists them)");
            }
        }
    }
    if let (Some(s), Some(u)) = (args.since, args.until) {
        anyhow::ensure!(s < u, "--since must be before --until");
    }
    let sev = |v: &[SeverityArg]| v.iter().map(|s| s.severity()).collect();
    Ok(Selection {
        min_tier: args.min_tier.as_deref().map(|t| tier_index(plan, "--min-tier", t)).transpose()?,
        rules: args.include_rules.clone(),
        exclude_rules: args.exclude_rule.clone(),
        tags: args.include_tags.clone(),
        exclude_tags: args.exclude_tag.clone(),
        severities: sev(&args.include_severities),
        exclude_severities: sev(&args.exclude_severity),
        min_severity: args.min_severity.map(SeverityArg::severity),
        since: args.since,
        until: args.until,
    })
}

/// Writes the alerts to `dest` a chunk of accounts at a time (spilled
/// incidents are merged back as they are written), after `each` has seen
/// (and may filter) every chunk; returns how many were written.
fn write(
    dest: &Destination,
    rows: CsvRows,
    incidents: run::Incidents,
    cx: Context<'_>,
    each: impl FnMut(&mut Vec<AccountIncidents>),
) -> anyhow::Result<u64> {
    let rows = match rows {
        CsvRows::Incident => alerts::csv::Rows::Incident,
        CsvRows::Hit => alerts::csv::Rows::Hit,
    };
    match &dest.path {
        Some(path) => {
            // Whole or not at all: see `changeling::output`.
            let mut f = OutputFile::create(path)?;
            let n = write_to(&mut f, dest.format, rows, incidents, cx, each)
                .with_context(|| format!("writing {}", path.display()))?;
            f.commit()?;
            Ok(n)
        }
        None if dest.format == Format::Parquet => {
            anyhow::ensure!(
                !std::io::stdout().is_terminal(),
                "refusing to write Parquet to a terminal: pass --out FILE.parquet or redirect stdout"
            );
            let mut buf = Vec::new();
            let n = write_to(&mut buf, dest.format, rows, incidents, cx, each)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&buf)?;
            stdout.flush()?;
            Ok(n)
        }
        None if std::io::stdout().is_terminal() => {
            // Values from the data would drive the terminal: control and
            // invisible characters are escaped (JSON Lines as JSON escapes,
            // the same values; CSV cells as `\x1b`, `\u{200b}`).
            let text = match dest.format {
                Format::Jsonl => changeling::terminal::Text::Json,
                _ => changeling::terminal::Text::Plain,
            };
            let mut w = changeling::terminal::EscapingWriter::new(BufWriter::new(std::io::stdout()), text);
            let n = write_to(&mut w, dest.format, rows, incidents, cx, each)?;
            w.finish()?.flush()?;
            Ok(n)
        }
        None => {
            let mut w = BufWriter::new(std::io::stdout());
            let n = write_to(&mut w, dest.format, rows, incidents, cx, each)?;
            w.flush()?;
            Ok(n)
        }
    }
}

/// [`write`] into one writer.
fn write_to<W: Write + Send>(
    mut out: W,
    format: Format,
    rows: alerts::csv::Rows,
    incidents: run::Incidents,
    cx: Context<'_>,
    mut each: impl FnMut(&mut Vec<AccountIncidents>),
) -> std::io::Result<u64> {
    match format {
        Format::Jsonl => {
            let mut n = 0;
            incidents.for_each_chunk(|mut chunk| {
                each(&mut chunk);
                n += alerts::write_jsonl(&mut out, &chunk, cx)?;
                Ok(())
            })?;
            Ok(n)
        }
        Format::Csv => {
            let mut w = alerts::csv::CsvAlerts::new(out, rows)?;
            let mut n = 0;
            incidents.for_each_chunk(|mut chunk| {
                each(&mut chunk);
                n += w.write(&chunk, cx)?;
                Ok(())
            })?;
            w.finish()?;
            Ok(n)
        }
        Format::Parquet => {
            let mut w = alerts::ParquetAlerts::new(out)?;
            incidents.for_each_chunk(|mut chunk| {
                each(&mut chunk);
                w.write(chunk, cx)?;
                Ok(())
            })?;
            w.finish(cx)
        }
    }
}

/// What the summary and the exit code need of the written incidents,
/// gathered chunk by chunk as they are written.
struct Tally {
    /// Incidents before the triage filters.
    before: u64,
    /// Accounts with a written incident.
    flagged: u64,
    /// Written incidents per tier.
    per_tier: Vec<u64>,
    per_rule: Vec<summary::RuleSummary>,
    /// Whether a written incident reached the `--fail-on` tier.
    failed: bool,
    /// Sorted runs the incidents were spilled in (0: held in memory).
    incident_runs: usize,
}

impl Tally {
    fn new(cx: Context<'_>) -> Tally {
        Tally {
            before: 0,
            flagged: 0,
            per_tier: vec![0; cx.plan.config.tiers.len()],
            per_rule: summary::per_rule(&[], cx),
            failed: false,
            incident_runs: 0,
        }
    }

    /// Counts one chunk: `before` the filters, then as written.
    fn add(&mut self, before: u64, chunk: &[AccountIncidents], cx: Context<'_>, fail_tier: Option<usize>) {
        self.before += before;
        self.flagged += chunk.len() as u64;
        for i in chunk.iter().flat_map(|a| &a.incidents) {
            self.per_tier[i.tier] += 1;
            self.failed |= fail_tier.is_some_and(|t| i.tier <= t);
        }
        for (total, more) in self.per_rule.iter_mut().zip(summary::per_rule(chunk, cx)) {
            total.add(&more);
        }
    }
}

fn score(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    // An output that would overwrite an input is the first thing to say.
    if let (Some(out), Some(data)) = (&args.out, &args.data)
        && out.as_os_str() != "-"
    {
        changeling::output::check_not_input(out, data).map_err(anyhow::Error::msg)?;
    }
    let dest = destination(args.out.as_deref(), args.format)?;
    let layers = super::rule_layers(&args.rules)?;
    let Some(rules) = super::load_rules(&layers, args.quiet) else { return Ok(ExitCode::from(2)) };
    let Some(rules) = super::with_exceptions(rules, &args.exceptions, args.quiet)? else {
        return Ok(ExitCode::from(2));
    };
    let plan = &rules.plan;
    let fail_tier = args.fail_on.as_deref().map(|t| tier_index(plan, "--fail-on", t)).transpose()?;
    let selection = selection(args, plan)?;
    let (data, _demo, data_name) = super::data_dir(args.data.as_ref())?;
    if let Some(path) = &dest.path {
        changeling::output::check_not_input(path, &data).map_err(anyhow::Error::msg)?;
        // Found now, not after the whole run.
        changeling::output::check_writable(path)?;
    }
    if let Some(t) = &args.tmp
        && t.exists()
        && !t.is_dir()
    {
        anyhow::bail!(
            "--tmp {}: not a directory; give a directory for the spill files (one that does not exist yet is made)",
            t.display()
        );
    }
    let opts = RunOptions {
        read: ReadOptions {
            strict: args.strict,
            max_samples: args.max_errors,
            max_record_bytes: usize::try_from(args.max_record_bytes).unwrap_or(usize::MAX),
            projection: Some(plan.projection()),
            time_unit: args.time_unit,
            ..ReadOptions::default()
        },
        memory: args.memory.unwrap_or_else(run::default_memory),
        tmp: args.tmp.clone().unwrap_or_else(std::env::temp_dir),
        force_partitions: None,
        force_split_before_scoring: false,
    };
    if let Some(state) = &args.state {
        let daily = Daily { args, rules: &rules, dest: &dest, selection, fail_tier, state, t0 };
        return daily.run(&data, &data_name, &opts.read);
    }
    let progress = RunProgress::default();
    let done = AtomicBool::new(false);
    let show = !args.quiet && std::io::stderr().is_terminal();
    let result: anyhow::Result<RunOutput> = std::thread::scope(|s| {
        if show {
            let total = input_bytes(&data);
            let (p, d) = (&progress, &done);
            s.spawn(move || show_progress(p, d, total));
        }
        let r = run::run(&data, plan, &opts, &progress).context("scoring");
        done.store(true, Ordering::Relaxed);
        r
    });
    let mut out = result?;
    for line in &out.memory_trace {
        writeln!(std::io::stderr(), "{line}")?;
    }
    check_skipped(&out.report, args.max_skipped_share)?;
    let mut incidents =
        std::mem::replace(&mut out.incidents, run::Incidents::in_memory(Vec::new(), out.strings.clone()));
    // Campaigns need every incident at once: grouped when they are held in
    // memory (see changeling::campaigns).
    let campaigns = if args.campaigns && incidents.spilled_runs() == 0 {
        let accounts = incidents.into_vec().context("reading the incidents back")?;
        let found = changeling::campaigns::find(&accounts, plan, &out.strings);
        incidents = run::Incidents::in_memory(accounts, out.strings.clone());
        Some(found)
    } else {
        if args.campaigns {
            out.notes.push("campaigns not grouped: the incidents were spilled to disk (--memory)".into());
        }
        None
    };
    let by_incident = changeling::campaigns::by_incident(campaigns.as_deref().unwrap_or_default());
    let cx = Context::new(plan, &rules.info, &out.strings).with_campaigns(&by_incident);
    let mut tally = Tally::new(cx);
    tally.incident_runs = incidents.spilled_runs();
    let written = write(&dest, args.csv_rows, incidents, cx, |chunk| {
        let before = chunk.iter().map(|a| a.incidents.len() as u64).sum();
        selection.apply(chunk, &rules.info);
        tally.add(before, chunk, cx, fail_tier);
    })?;

    if !args.quiet {
        let s = Summary {
            rules: &rules,
            data: &data_name,
            out: &out,
            written,
            tally: &tally,
            total: t0.elapsed().as_secs_f64(),
            state: None,
            campaigns: campaigns.as_deref(),
        };
        if args.json { s.json()? } else { s.text()? }
    }
    if tally.failed {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A daily run of `score --state`.
struct Daily<'a> {
    args: &'a ScoreArgs,
    rules: &'a super::Loaded,
    dest: &'a Destination,
    selection: Selection,
    fail_tier: Option<usize>,
    state: &'a Path,
    t0: Instant,
}

impl Daily<'_> {
    /// Reads the state, scores the batch, writes the alerts, then the next
    /// state: alerts first, so that a run that fails after them writes
    /// them again next time rather than lose them.
    fn run(self, data: &Path, data_name: &str, read: &ReadOptions) -> anyhow::Result<ExitCode> {
        use changeling::run::daily::{self, Emit};
        use changeling::state::store::Store;
        let plan = &self.rules.plan;
        let t_open = Instant::now();
        let opened = Store::open(self.state)?;
        let open_secs = t_open.elapsed().as_secs_f64();
        let emit = match self.args.emit {
            Some(EmitArg::Open) => Emit::Open,
            _ => Emit::Changes,
        };
        let progress = RunProgress::default();
        let done = AtomicBool::new(false);
        let show = !self.args.quiet && std::io::stderr().is_terminal();
        let result = std::thread::scope(|s| {
            if show {
                let total = input_bytes(data);
                let (p, d) = (&progress, &done);
                s.spawn(move || show_progress(p, d, total));
            }
            let r = daily::run(data, plan, &opened, read, emit, &progress).context("scoring the batch");
            done.store(true, Ordering::Relaxed);
            r
        });
        let (out, update) = result?;
        check_skipped(&out.report, self.args.max_skipped_share)?;
        let cx = Context::new(plan, &self.rules.info, &out.strings);
        let mut tally = Tally::new(cx);
        let incidents = out.incidents;
        let selection = &self.selection;
        let written = write(self.dest, self.args.csv_rows, incidents, cx, |chunk| {
            let before = chunk.iter().map(|a| a.incidents.len() as u64).sum();
            selection.apply(chunk, &self.rules.info);
            tally.add(before, chunk, cx, self.fail_tier);
        })?;
        let (store, opened) = opened;
        let t_commit = Instant::now();
        let committed = store
            .commit(opened, update, &changeling::state::Keys::of(plan))
            .with_context(|| format!("writing the state in {}", self.state.display()))?;
        let write_secs = t_commit.elapsed().as_secs_f64();
        if !self.args.quiet {
            let run = RunOutput {
                incidents: run::Incidents::in_memory(Vec::new(), out.strings.clone()),
                strings: out.strings.clone(),
                report: out.report.clone(),
                events: out.events,
                accounts_seen: out.accounts_seen,
                notes: out.notes.clone(),
                partitions: None,
                spilled_bytes: 0,
                read_secs: out.read_secs,
                score_secs: out.score_secs,
                memory_trace: Vec::new(),
            };
            let state = StateLine {
                read_secs: open_secs + out.state_read_secs,
                write_secs,
                dir: self.state,
                fresh: out.fresh,
                watermark: out.watermark,
                late: out.late_events,
                resumed: out.accounts_resumed,
                committed: &committed,
                emit,
            };
            let s = Summary {
                rules: self.rules,
                data: data_name,
                out: &run,
                written,
                tally: &tally,
                total: self.t0.elapsed().as_secs_f64(),
                state: Some(state),
                campaigns: None,
            };
            if self.args.json { s.json()? } else { s.text()? }
        }
        Ok(if tally.failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    }
}

/// What the summary says of a daily run's state.
struct StateLine<'a> {
    /// Seconds opening the state and reading its rows.
    read_secs: f64,
    /// Seconds writing the next generation.
    write_secs: f64,
    dir: &'a Path,
    fresh: bool,
    watermark: (Option<Millis>, Option<Millis>),
    late: u64,
    resumed: u64,
    committed: &'a changeling::state::store::Committed,
    emit: changeling::run::daily::Emit,
}

/// What the summary on stderr is made of.
struct Summary<'a> {
    rules: &'a super::Loaded,
    data: &'a str,
    out: &'a RunOutput,
    written: u64,
    tally: &'a Tally,
    total: f64,
    /// A daily run's state, with `--state`.
    state: Option<StateLine<'a>>,
    /// The run's campaigns (`None`: not grouped, the incidents were
    /// spilled or the run is a daily one).
    campaigns: Option<&'a [changeling::campaigns::Campaign]>,
}

impl Summary<'_> {
    fn per_tier(&self) -> Vec<(String, u64)> {
        let tiers = &self.rules.plan.config.tiers;
        tiers.iter().zip(&self.tally.per_tier).map(|(t, n)| (t.name.clone(), *n)).collect()
    }

    fn text(&self) -> anyhow::Result<()> {
        let (out, r) = (self.out, &self.out.report);
        let files: usize = r.tables.iter().map(|(_, t)| t.files).sum();
        let dups: u64 = r.tables.iter().map(|(_, t)| t.duplicates).sum();
        let tiers: Vec<String> = self.per_tier().iter().map(|(t, n)| format!("{t} {}", thousands(*n))).collect();
        let mut e = std::io::stderr().lock();
        let n = self.rules.plan.rules.len();
        writeln!(
            e,
            "changeling score: {} with {n} rule{} from {}",
            self.data,
            if n == 1 { "" } else { "s" },
            self.rules.name
        )?;
        writeln!(
            e,
            "  read       {} events ({} skipped, {} duplicates dropped) from {files} files in {:.2} s ({})",
            thousands(out.events),
            thousands(r.skipped()),
            thousands(dups),
            out.read_secs,
            rate(out.events, out.read_secs)
        )?;
        // Each table's time span: a wrong unit shows here first.
        let spans: Vec<(String, Millis, Millis)> =
            r.tables.iter().filter_map(|(k, t)| t.span.map(|(a, b)| (k.to_string(), a, b))).collect();
        let width = spans.iter().map(|s| s.0.len()).max().unwrap_or(0);
        for (i, (table, first, last)) in spans.iter().enumerate() {
            writeln!(
                e,
                "  {:<10} {table:<width$}  {} .. {}",
                if i == 0 { "times" } else { "" },
                changeling::time::format_rfc3339(*first),
                changeling::time::format_rfc3339(*last)
            )?;
        }
        if let Some(p) = out.partitions {
            let runs = match self.tally.incident_runs {
                0 => String::new(),
                1 => "; incidents in 1 sorted run".into(),
                n => format!("; incidents in {n} sorted runs"),
            };
            writeln!(
                e,
                "  spilled    {p} partitions, {:.1} MiB on disk{runs}",
                out.spilled_bytes as f64 / (1u64 << 20) as f64
            )?;
        }
        writeln!(e, "  accounts   {} ({} flagged)", thousands(out.accounts_seen), thousands(self.tally.flagged))?;
        if let Some(st) = &self.state {
            let at = |w: Option<Millis>| w.map_or("-".to_string(), changeling::time::format_rfc3339);
            let start = if st.fresh {
                "started empty".to_string()
            } else {
                format!("resumed at watermark {}", at(st.watermark.0))
            };
            let late = if st.late > 0 {
                format!("; {} late events (at or before the watermark) left out", thousands(st.late))
            } else {
                String::new()
            };
            writeln!(
                e,
                "  state      {}: {start}, now at {}; {} accounts resumed{late}",
                st.dir.display(),
                at(st.watermark.1),
                thousands(st.resumed)
            )?;
            writeln!(
                e,
                "             generation {}: {} accounts, {:.1} MiB ({:.0} bytes an account){}; read in {:.2} s, \
                 written in {:.2} s",
                st.committed.generation,
                thousands(st.committed.accounts),
                st.committed.bytes as f64 / (1u64 << 20) as f64,
                st.committed.bytes as f64 / st.committed.accounts.max(1) as f64,
                if st.committed.compacted { "; layers merged" } else { "" },
                st.read_secs,
                st.write_secs
            )?;
            let what = match st.emit {
                changeling::run::daily::Emit::Changes => "new or changed",
                changeling::run::daily::Emit::Open => "open",
            };
            writeln!(e, "             incidents written: the {what} ones")?;
        }
        let filtered = if self.written < self.tally.before {
            format!(" (of {} before the filters)", thousands(self.tally.before))
        } else {
            String::new()
        };
        writeln!(e, "  incidents  {} written{filtered}: {}", thousands(self.written), tiers.join(", "))?;
        writeln!(e, "  scored     in {:.2} s ({})", out.score_secs, rate(out.events, out.score_secs))?;
        if let Some(cs) = self.campaigns
            && !cs.is_empty()
        {
            writeln!(
                e,
                "  campaigns  {} (incidents of several accounts sharing lockstep items, or a new network or client in one window):",
                cs.len()
            )?;
            for c in cs {
                let tiers: Vec<String> =
                    c.tiers.iter().filter(|(_, n)| *n > 0).map(|(t, n)| format!("{t} {n}")).collect();
                let line = format!(
                    "    {}  {} accounts, {} items, {} .. {}; incidents {}; evidence {}",
                    c.id,
                    c.members.len(),
                    c.items.len(),
                    changeling::time::format_rfc3339(c.span.0),
                    changeling::time::format_rfc3339(c.span.1),
                    tiers.join(", "),
                    c.evidence_text()
                );
                writeln!(e, "{}", changeling::terminal::for_terminal(&line))?;
            }
        }
        if let Some(x) = &self.rules.plan.exceptions {
            let each = x.suppressed();
            let total: u64 = each.iter().map(|s| s.hits).sum();
            writeln!(e, "  exceptions {} hits suppressed by {} exceptions:", thousands(total), each.len())?;
            for s in &each {
                let rules = if s.rules.is_empty() { String::new() } else { format!(" ({})", s.rules.join(", ")) };
                let expires = s.expires.as_ref().map_or(String::new(), |x| format!(", expires {x}"));
                // Quotes the files: made safe for a terminal.
                let line =
                    format!("    {}  {}{rules}: {} hits; {}{expires}", s.exception, s.on, thousands(s.hits), s.reason);
                writeln!(e, "{}", changeling::terminal::for_terminal(&line))?;
            }
        }
        writeln!(e, "  total      {:.2} s", self.total)?;
        let per_rule = &self.tally.per_rule;
        let with_hits: Vec<&summary::RuleSummary> = per_rule.iter().filter(|r| r.hits > 0).collect();
        if !with_hits.is_empty() {
            let tiers = &self.rules.plan.config.tiers;
            let mut rows = vec![vec!["rule".to_string(), "hits".into(), "accounts".into()]];
            rows[0].extend(tiers.iter().map(|t| format!("incidents {}", t.name)));
            for r in &with_hits {
                let mut row = vec![r.rule.clone(), thousands(r.hits), thousands(r.accounts)];
                row.extend(r.incidents.iter().map(|(_, n)| thousands(*n)));
                rows.push(row);
            }
            let mut table = String::new();
            changeling::terminal::table(&mut table, &rows);
            writeln!(e, "  per rule, in the written incidents:")?;
            for line in table.lines() {
                writeln!(e, "  {line}")?;
            }
            let quiet = per_rule.len() - with_hits.len();
            if quiet > 0 {
                let names: Vec<&str> = per_rule.iter().filter(|r| r.hits == 0).map(|r| r.rule.as_str()).collect();
                writeln!(e, "    no hits: {}", names.join(", "))?;
            }
        }
        for (kind, t) in &r.tables {
            if t.skipped > 0 {
                writeln!(e, "  skipped {} {kind} records; first {}:", thousands(t.skipped), t.samples.len())?;
                for s in &t.samples {
                    // Quotes the data: made safe for a terminal.
                    writeln!(e, "    {}", changeling::terminal::value(&s.to_string(), 300))?;
                }
            }
        }
        if r.skipped() > 0 {
            writeln!(e, "  (use --strict to stop at the first bad record)")?;
        }
        for n in &out.notes {
            writeln!(e, "note: {n}")?;
        }
        Ok(())
    }

    fn json(&self) -> anyhow::Result<()> {
        let (out, r) = (self.out, &self.out.report);
        let tiers: serde_json::Map<String, serde_json::Value> =
            self.per_tier().into_iter().map(|(t, n)| (t, n.into())).collect();
        let skipped: serde_json::Map<String, serde_json::Value> =
            r.tables.iter().map(|(k, t)| (k.to_string(), t.skipped.into())).collect();
        let spans: serde_json::Map<String, serde_json::Value> = r
            .tables
            .iter()
            .filter_map(|(k, t)| {
                let (first, last) = t.span?;
                let at = changeling::time::format_rfc3339;
                Some((k.to_string(), serde_json::json!({ "first": at(first), "last": at(last) })))
            })
            .collect();
        let v = serde_json::json!({
            "data": self.data,
            "time_span": spans,
            "rules": self.rules.name,
            "events": out.events,
            "skipped": skipped,
            "duplicates": r.tables.iter().map(|(_, t)| t.duplicates).sum::<u64>(),
            "accounts": out.accounts_seen,
            "accounts_flagged": self.tally.flagged,
            "incidents_written": self.written,
            "incidents_before_filters": self.tally.before,
            "incidents_per_tier": tiers,
            "per_rule": self.tally.per_rule,
            "partitions": out.partitions,
            "incident_runs": self.tally.incident_runs,
            "read_secs": out.read_secs,
            "score_secs": out.score_secs,
            "total_secs": self.total,
            "notes": out.notes,
            "exceptions": self.rules.plan.exceptions.as_ref().map(|x| x.suppressed()),
            "campaigns": self.campaigns,
            "state": self.state.as_ref().map(|st| serde_json::json!({
                "dir": st.dir.display().to_string(),
                "fresh": st.fresh,
                "watermark_before": st.watermark.0.map(changeling::time::format_rfc3339),
                "watermark": st.watermark.1.map(changeling::time::format_rfc3339),
                "late_events": st.late,
                "accounts_resumed": st.resumed,
                "generation": st.committed.generation,
                "accounts": st.committed.accounts,
                "bytes": st.committed.bytes,
                "compacted": st.committed.compacted,
                "state_read_secs": st.read_secs,
                "state_write_secs": st.write_secs,
            })),
        });
        let mut e = std::io::stderr().lock();
        writeln!(e, "{}", changeling::terminal::json_for(&serde_json::to_string_pretty(&v)?, e.is_terminal()))?;
        Ok(())
    }
}
