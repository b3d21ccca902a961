//! `changeling synth`: generate a synthetic dataset with planted episodes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use changeling::synth::{self, Compression, Format, SynthConfig};

/// Record format of the generated files.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    /// One JSON object per line.
    Jsonl,
    /// Header row, comma-separated; list values separated by `|`.
    Csv,
}

/// Compression of the generated files.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompressArg {
    /// Plain text.
    None,
    /// gzip (`.gz`).
    Gz,
    /// Zstandard (`.zst`).
    Zst,
}

/// Arguments of `changeling synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of accounts (at least 100).
    #[arg(long, default_value_t = 10_000)]
    accounts: u32,
    /// Days of activity (at least 2).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed: the same arguments and seed give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (created if missing). A directory that already
    /// holds a dataset (table files, or the `daily/` datasets) is refused
    /// unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Write over the dataset already in --out.
    #[arg(long)]
    force: bool,
    /// Record format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: FormatArg,
    /// Compression of every file.
    #[arg(long, value_enum, default_value = "none")]
    compress: CompressArg,
    /// Also write impressions (items shown in home feeds).
    #[arg(long)]
    impressions: bool,
    /// Share of accounts with a planted compromise episode.
    #[arg(long, default_value_t = 0.01)]
    compromise_rate: f64,
    /// Share of accounts with a benign look-alike of an episode.
    #[arg(long, default_value_t = 0.01)]
    lookalike_rate: f64,
    /// Share of event lines written twice, as real exports repeat records.
    #[arg(long, default_value_t = 0.001)]
    duplicate_rate: f64,
    /// Share of event lines followed by a malformed line.
    #[arg(long, default_value_t = 0.0)]
    broken_rate: f64,
    /// When the log starts (RFC 3339 or epoch milliseconds).
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    start: String,
    /// Also write the population as one dataset per day, under
    /// OUT/daily/<date>/: each day's events, impressions and new items, the
    /// follow graph and accounts in the first (for `score --state`).
    #[arg(long)]
    daily: bool,
    /// Worker threads (default: one per core). The output does not depend
    /// on it.
    #[arg(long)]
    threads: Option<usize>,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the command.
pub fn run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let start = changeling::time::parse_timestamp(&args.start).with_context(|| {
        format!(
            "--start {:?}: not a timestamp (RFC 3339 such as 2024-01-01T00:00:00Z, or epoch milliseconds)",
            args.start
        )
    })?;
    let cfg = SynthConfig {
        accounts: args.accounts,
        days: args.days,
        seed: args.seed,
        start,
        format: match args.format {
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
        },
        compression: match args.compress {
            CompressArg::None => Compression::None,
            CompressArg::Gz => Compression::Gzip,
            CompressArg::Zst => Compression::Zstd,
        },
        impressions: args.impressions,
        compromise_rate: args.compromise_rate,
        lookalike_rate: args.lookalike_rate,
        duplicate_rate: args.duplicate_rate,
        broken_rate: args.broken_rate,
    };
    cfg.validate()?;
    let existing = synth::existing_dataset(&args.out);
    if !args.force && !existing.is_empty() {
        let names: Vec<String> =
            existing.iter().map(|p| p.file_name().unwrap_or(p.as_os_str()).to_string_lossy().into_owned()).collect();
        anyhow::bail!(
            "--out {}: already holds a dataset ({}); choose another directory, or pass --force to write over it",
            args.out.display(),
            names.join(", ")
        );
    }
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting worker threads")?;
    let t0 = Instant::now();
    let report = pool
        .install(|| synth::generate(&cfg, &args.out))
        .with_context(|| format!("generating into {}", args.out.display()))?;
    let days = if args.daily {
        pool.install(|| synth::daily::split(&cfg, &args.out))
            .with_context(|| format!("writing the days into {}", args.out.join("daily").display()))?
    } else {
        Vec::new()
    };
    let secs = t0.elapsed().as_secs_f64();
    if !args.quiet {
        let mut e = std::io::stderr().lock();
        let events = report.records(changeling::data::TableKind::Events);
        writeln!(
            e,
            "changeling synth: {} accounts, {} days, seed {} -> {}",
            cfg.accounts,
            cfg.days,
            cfg.seed,
            args.out.display()
        )?;
        for f in &report.files {
            writeln!(
                e,
                "  {:<12} {:>12} records  {:>9.1} MB  {}",
                f.table.name(),
                f.records,
                f.bytes as f64 / 1e6,
                f.path.display()
            )?;
        }
        writeln!(e, "  dirt         {} duplicate lines, {} broken lines", report.duplicates, report.broken)?;
        let styles: Vec<String> = report.styles.iter().map(|(s, n)| format!("{s} {n}")).collect();
        writeln!(e, "  planted      {}", styles.join(", "))?;
        let h = &report.habits;
        writeln!(
            e,
            "  habits       {} binges ({} kept), {} link shares, {} rating sessions, {} clean-ups, \
             {} late unlikes, {} dormant returns",
            h.binges, h.binges_kept, h.link_shares, h.rating_sessions, h.cleanups, h.late_unlikes, h.comebacks
        )?;
        if let (Some(a), Some(b)) = (days.first(), days.last()) {
            writeln!(e, "  daily        {} datasets, {} .. {}", days.len(), a.display(), b.display())?;
        }
        writeln!(e, "  took         {secs:.2} s ({:.2} M events/s)", events as f64 / secs.max(1e-9) / 1e6)?;
    }
    Ok(ExitCode::SUCCESS)
}
