//! `changeling explain`: one account's timeline with every rule's decision
//! (see `changeling::explain`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use changeling::data::{Dataset, ReadOptions};
use changeling::explain::{self, Options};
use changeling::time::{Millis, TimeUnit};

/// Arguments of `changeling explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Dataset directory (default: the demo dataset built into changeling).
    #[arg(long)]
    data: Option<PathBuf>,
    /// An account to explain. Repeatable: the dataset is read and the
    /// rules bound to it once for all of them.
    #[arg(long, value_name = "ACCOUNT")]
    actor: Vec<String>,
    /// A file of accounts to explain, one a line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    actors: Option<PathBuf>,
    /// Explain every member of this campaign (an id as `score
    /// --campaigns` writes it, `c-...`), after the accounts asked for.
    #[arg(long, value_name = "ID")]
    campaign: Option<String>,
    /// Print each account as one JSON object a line (its incidents as
    /// `score` writes them, the timeline with every decision, the pivots)
    /// instead of text.
    #[arg(long)]
    json: bool,
    /// Show every event within --window of this time, each with every
    /// rule's decision (RFC 3339, a date, or epoch milliseconds). Without
    /// it, the whole history is shown, events without a hit or a near
    /// miss counted, not listed.
    #[arg(long, value_name = "TIME", value_parser = super::score::parse_time)]
    around: Option<Millis>,
    /// Half-width of the window around --around.
    #[arg(long, default_value = "2h", value_parser = super::eval::parse_slack)]
    window: Millis,
    /// Show every event with every decision, not only hits and near misses.
    #[arg(long)]
    all: bool,
    /// Rules, as for `score` (default: builtin).
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Exceptions: a TOML file of `[[exception]]` tables (an account,
    /// device, IP network, ASN, item or author, the rules they cover, a
    /// reason, an expiry) whose hits are not reported. Repeatable.
    /// Default: $CHANGELING_EXCEPTIONS (a list like PATH), else none.
    #[arg(long, value_name = "FILE")]
    exceptions: Vec<PathBuf>,
    /// At most this many accounts to pivot to per lockstep rule.
    #[arg(long, default_value_t = 20)]
    pivots: usize,
    /// The unit of the data's numeric times: s, ms, us or ns. Default:
    /// milliseconds (the data contract), and a table whose times fall in
    /// 1970, where epoch seconds read as milliseconds land, is an error.
    #[arg(long, value_name = "UNIT", value_parser = super::parse_time_unit)]
    time_unit: Option<TimeUnit>,
    /// Worker threads for reading (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// The accounts asked for: `--actor`s, then those of `--actors`, each once,
/// in that order.
fn accounts(args: &ExplainArgs) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |a: &str| {
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    };
    args.actor.iter().for_each(|a| add(a));
    if let Some(f) = &args.actors {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading --actors {}", f.display()))?;
        for line in text.lines() {
            let a = line.split('#').next().unwrap_or("").trim();
            if !a.is_empty() {
                add(a);
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty() || args.campaign.is_some(),
        "no account to explain: give --actor ACCOUNT (repeatable), --actors FILE or --campaign ID"
    );
    Ok(out)
}

/// Runs the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let mut actors = accounts(&args)?;
    let layers = super::rule_layers(&args.rules)?;
    let Some(rules) = super::load_rules(&layers, true) else { return Ok(ExitCode::from(2)) };
    let Some(rules) = super::with_exceptions(rules, &args.exceptions, false)? else { return Ok(ExitCode::from(2)) };
    let (dir, _demo, name) = super::data_dir(args.data.as_ref())?;
    let pool = super::pool(args.threads)?;
    let data = pool
        .install(|| Dataset::open(&dir, &ReadOptions { time_unit: args.time_unit, ..ReadOptions::default() }))
        .with_context(|| format!("reading dataset {name}"))?;
    let opts = Options { around: args.around, window: args.window, all: args.all, max_pivots: args.pivots };
    let explainer = pool.install(|| explain::Explainer::new(&rules.plan, &data));
    let mut campaign_line = None;
    if let Some(id) = &args.campaign {
        let all = pool.install(|| explainer.score_all());
        let found = changeling::campaigns::find(&all, &rules.plan, &data.strings);
        let Some(c) = found.iter().find(|c| c.id == *id) else {
            let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
            anyhow::bail!(
                "no campaign `{id}` in {name} (its campaigns: {})",
                if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
            );
        };
        for m in &c.members {
            if !actors.contains(m) {
                actors.push(m.clone());
            }
        }
        let items = if c.items.is_empty() { String::new() } else { format!("items {}, ", c.items.join(", ")) };
        campaign_line = Some(format!(
            "campaign {}: {} accounts ({}), {items}{} .. {}; evidence {}",
            c.id,
            c.members.len(),
            c.members.join(", "),
            changeling::time::format_rfc3339(c.span.0),
            changeling::time::format_rfc3339(c.span.1),
            c.evidence_text()
        ));
    }
    // Every account is checked before anything is printed.
    let missing: Vec<String> = actors
        .iter()
        .filter(|a| data.strings.get(a).is_none_or(|s| !data.events.accounts.iter().any(|x| x.actor == s)))
        .cloned()
        .collect();
    if let Some(first) = missing.first() {
        let e = explainer.explain(first, &opts).err();
        let suggestion = match e {
            Some(explain::ExplainError::NoSuchAccount { suggestion: Some(s), .. }) => format!(" (did you mean `{s}`?)"),
            _ => String::new(),
        };
        let which = if missing.len() == 1 {
            format!("account `{first}` has no events")
        } else {
            format!("{} accounts have no events ({})", missing.len(), missing.join(", "))
        };
        // Named as the user knows the dataset: the demo's temporary
        // directory means nothing to them.
        anyhow::bail!("{which} in {name}{suggestion}");
    }
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "changeling explain: {name} with the rules in {}", rules.name)?;
        if let Some(line) = &campaign_line {
            // Account ids from the data, made safe for a terminal.
            writeln!(out, "{}", changeling::terminal::for_terminal(line))?;
        }
    }
    for (k, actor) in actors.iter().enumerate() {
        let x = pool.install(|| explainer.explain(actor, &opts))?;
        if args.json {
            let cx = changeling::alerts::Context::new(&rules.plan, &rules.info, &data.strings);
            // Control and invisible characters as JSON escapes: the same
            // values, safe on a terminal.
            let line = serde_json::to_string(&explain::to_json(&x, cx))?;
            writeln!(out, "{}", changeling::terminal::escape_json(&line))?;
        } else {
            if k > 0 {
                writeln!(out)?;
            }
            // Values from the data, made safe for a terminal.
            out.write_all(changeling::terminal::for_terminal(&explain::render(&x, &rules.plan)).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
