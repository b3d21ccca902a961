//! `changeling score`: read, bind, score, write alerts, summarise.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use changeling::data::{Dataset, ReadOptions};
use changeling::score::Scorer;

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
    /// Stop at the first bad data record instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// How many skipped records per table to show in the summary.
    #[arg(long, default_value_t = 5)]
    max_errors: usize,
    /// Exit with code 1 when any incident reaches this tier (or a higher one).
    #[arg(long, value_name = "TIER")]
    fail_on: Option<String>,
    /// No summary on stderr (errors are still printed).
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
    if r >= 1e6 {
        format!("{:.1} M events/s", r / 1e6)
    } else {
        format!("{:.0} k events/s", r / 1e3)
    }
}

/// Whether alerts go to `path` as Parquet, by its extension.
fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// Runs the command.
pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting worker threads")?;
    pool.install(|| score(&args))
}

fn score(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let Some(plan) = super::load_plan(&args.rules, args.quiet) else {
        return Ok(ExitCode::from(2));
    };
    let fail_tier = match &args.fail_on {
        Some(name) => Some(
            plan.config
                .tiers
                .iter()
                .position(|t| &t.name == name)
                .with_context(|| {
                    let names: Vec<&str> =
                        plan.config.tiers.iter().map(|t| t.name.as_str()).collect();
                    format!(
                        "--fail-on {name}: no such tier (tiers: {})",
                        names.join(", ")
                    )
                })?,
        ),
        None => None,
    };
    let opts = ReadOptions {
        strict: args.strict,
        max_samples: args.max_errors,
        projection: Some(plan.projection()),
        ..ReadOptions::default()
    };
    let data = Dataset::open(&args.data, &opts)
        .with_context(|| format!("reading dataset {}", args.data.display()))?;
    let t_read = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let scorer = Scorer::new(&plan, &data);
    let accounts = scorer.run();
    let t_score = t1.elapsed().as_secs_f64();

    let written = match &args.out {
        Some(path) if is_parquet(path) => {
            changeling::alerts::write_parquet(path, &accounts, &plan, &data)
                .with_context(|| format!("writing {}", path.display()))?
        }
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(f);
            let n = changeling::alerts::write_jsonl(&mut w, &accounts, &plan, &data)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            let n = changeling::alerts::write_jsonl(&mut w, &accounts, &plan, &data)?;
            w.flush()?;
            n
        }
    };

    if !args.quiet {
        let events = data.events.len() as u64;
        let r = &data.report;
        let files: usize = r.tables.iter().map(|(_, t)| t.files).sum();
        let dups: u64 = r.tables.iter().map(|(_, t)| t.duplicates).sum();
        let mut per_tier = vec![0u64; plan.config.tiers.len()];
        for a in &accounts {
            for i in &a.incidents {
                per_tier[i.tier] += 1;
            }
        }
        let tiers: Vec<String> = plan
            .config
            .tiers
            .iter()
            .zip(&per_tier)
            .map(|(t, n)| format!("{} {}", t.name, thousands(*n)))
            .collect();
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
            "  read       {} events ({} skipped, {} duplicates dropped) from {files} files in {t_read:.2} s ({})",
            thousands(events),
            thousands(r.skipped()),
            thousands(dups),
            rate(events, t_read)
        )?;
        writeln!(
            e,
            "  accounts   {} ({} flagged)",
            thousands(data.events.accounts.len() as u64),
            thousands(accounts.len() as u64)
        )?;
        writeln!(
            e,
            "  incidents  {} written: {}",
            thousands(written),
            tiers.join(", ")
        )?;
        writeln!(
            e,
            "  scored     in {t_score:.2} s ({})",
            rate(events, t_score)
        )?;
        writeln!(e, "  total      {:.2} s", t0.elapsed().as_secs_f64())?;
        for (kind, t) in &r.tables {
            if t.skipped > 0 {
                writeln!(
                    e,
                    "  skipped {} {kind} records; first {}:",
                    thousands(t.skipped),
                    t.samples.len()
                )?;
                for s in &t.samples {
                    writeln!(e, "    {s}")?;
                }
            }
        }
        if r.skipped() > 0 {
            writeln!(e, "  (use --strict to stop at the first bad record)")?;
        }
        for n in scorer.notes() {
            writeln!(e, "note: {n}")?;
        }
    }
    if let Some(t) = fail_tier
        && accounts
            .iter()
            .any(|a| a.incidents.iter().any(|i| i.tier <= t))
    {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
