//! `changeling score`: read, score, write alerts, summarise.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use changeling::data::ReadOptions;
use changeling::run::{self, RunOptions, RunOutput, RunProgress};

/// Arguments of `changeling score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Dataset directory (events, items, follows, ... as JSONL, CSV or Parquet).
    #[arg(long, default_value = "datasets/demo")]
    data: PathBuf,
    /// Rules directory (changeling.toml and rule files) or one rule file.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Write alerts here instead of stdout: JSON Lines, or Parquet when the
    /// name ends in `.parquet` (one row per incident, hits as a list of
    /// structs, zstd-compressed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory budget for events, e.g. 2GiB or 512MiB (default: half of
    /// physical memory). Inputs larger than this are partitioned by account
    /// into spill files and scored part by part, with the same output.
    #[arg(long, value_parser = run::parse_memory)]
    memory: Option<u64>,
    /// Directory for spill files (default: the system's temp directory).
    /// They are removed on exit, on error and on Ctrl-C.
    #[arg(long)]
    tmp: Option<PathBuf>,
    /// Stop at the first bad data record instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// How many skipped records per table to show in the summary.
    #[arg(long, default_value_t = 5)]
    max_errors: usize,
    /// Exit with code 1 when any incident reaches this tier (or a higher one).
    #[arg(long, value_name = "TIER")]
    fail_on: Option<String>,
    /// No progress bars and no summary on stderr (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
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

/// Whether alerts go to `path` as Parquet, by its extension.
fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// Runs the command.
pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting worker threads")?;
    // Spill files must not outlive an interrupted run.
    let _ = ctrlc::set_handler(|| {
        changeling::spill::remove_all_on_interrupt();
        std::process::exit(130);
    });
    pool.install(|| score(&args))
}

/// Draws progress on stderr until `done`, when stderr is a terminal.
fn show_progress(progress: &RunProgress, done: &AtomicBool, total_bytes: u64) {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{spinner} reading {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}")
            .expect("a valid template"),
    );
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
        bar.set_style(
            ProgressStyle::with_template("{spinner} sorting {pos}/{len} partitions ({per_sec}, eta {eta}) {msg}")
                .expect("a valid template"),
        );
        while !phase_over(&progress.scoring) {
            let sorted = progress.partitions_sorted.load(Ordering::Relaxed);
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
    let (total, what) =
        if parts > 0 { (parts, "partitions") } else { (progress.accounts_total.load(Ordering::Relaxed), "accounts") };
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} scoring {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"))
            .expect("a valid template"),
    );
    while !done.load(Ordering::Relaxed) {
        let now = if parts > 0 {
            progress.partitions_done.load(Ordering::Relaxed)
        } else {
            progress.accounts_done.load(Ordering::Relaxed)
        };
        if bar.length() == Some(0) {
            bar.set_length(progress.accounts_total.load(Ordering::Relaxed));
        }
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

fn score(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let Some(plan) = super::load_plan(&args.rules, args.quiet) else { return Ok(ExitCode::from(2)) };
    let fail_tier = match &args.fail_on {
        Some(name) => Some(plan.config.tiers.iter().position(|t| &t.name == name).with_context(|| {
            let names: Vec<&str> = plan.config.tiers.iter().map(|t| t.name.as_str()).collect();
            format!("--fail-on {name}: no such tier (tiers: {})", names.join(", "))
        })?),
        None => None,
    };
    let opts = RunOptions {
        read: ReadOptions {
            strict: args.strict,
            max_samples: args.max_errors,
            projection: Some(plan.projection()),
            ..ReadOptions::default()
        },
        memory: args.memory.unwrap_or_else(run::default_memory),
        tmp: args.tmp.clone().unwrap_or_else(std::env::temp_dir),
        force_partitions: None,
        force_split_before_scoring: false,
    };
    let progress = RunProgress::default();
    let done = AtomicBool::new(false);
    let show = !args.quiet && std::io::stderr().is_terminal();
    let result: anyhow::Result<RunOutput> = std::thread::scope(|s| {
        if show {
            let total = input_bytes(&args.data);
            let (p, d) = (&progress, &done);
            s.spawn(move || show_progress(p, d, total));
        }
        let r = run::run(&args.data, &plan, &opts, &progress).context("scoring");
        done.store(true, Ordering::Relaxed);
        r
    });
    let out = result?;

    let written = match &args.out {
        Some(path) if is_parquet(path) => changeling::alerts::write_parquet(path, &out.accounts, &plan, &out.strings)
            .with_context(|| format!("writing {}", path.display()))?,
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(f);
            let n = changeling::alerts::write_jsonl(&mut w, &out.accounts, &plan, &out.strings)?;
            w.flush().with_context(|| format!("writing {}", path.display()))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            let n = changeling::alerts::write_jsonl(&mut w, &out.accounts, &plan, &out.strings)?;
            w.flush()?;
            n
        }
    };

    if !args.quiet {
        summary(args, &plan, &out, written, t0.elapsed().as_secs_f64())?;
    }
    if let Some(t) = fail_tier
        && out.accounts.iter().any(|a| a.incidents.iter().any(|i| i.tier <= t))
    {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(
    args: &ScoreArgs,
    plan: &changeling::plan::Plan,
    out: &RunOutput,
    written: u64,
    total: f64,
) -> anyhow::Result<()> {
    let r = &out.report;
    let files: usize = r.tables.iter().map(|(_, t)| t.files).sum();
    let dups: u64 = r.tables.iter().map(|(_, t)| t.duplicates).sum();
    let mut per_tier = vec![0u64; plan.config.tiers.len()];
    for a in &out.accounts {
        for i in &a.incidents {
            per_tier[i.tier] += 1;
        }
    }
    let tiers: Vec<String> =
        plan.config.tiers.iter().zip(&per_tier).map(|(t, n)| format!("{} {}", t.name, thousands(*n))).collect();
    let mut e = std::io::stderr().lock();
    writeln!(
        e,
        "changeling score: {} with {} rules from {}",
        args.data.display(),
        plan.rules.len(),
        args.rules.display()
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
    if let Some(p) = out.partitions {
        writeln!(e, "  spilled    {p} partitions, {:.1} MiB on disk", out.spilled_bytes as f64 / (1u64 << 20) as f64)?;
    }
    writeln!(e, "  accounts   {} ({} flagged)", thousands(out.accounts_seen), thousands(out.accounts.len() as u64))?;
    writeln!(e, "  incidents  {} written: {}", thousands(written), tiers.join(", "))?;
    writeln!(e, "  scored     in {:.2} s ({})", out.score_secs, rate(out.events, out.score_secs))?;
    writeln!(e, "  total      {total:.2} s")?;
    for (kind, t) in &r.tables {
        if t.skipped > 0 {
            writeln!(e, "  skipped {} {kind} records; first {}:", thousands(t.skipped), t.samples.len())?;
            for s in &t.samples {
                writeln!(e, "    {s}")?;
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
