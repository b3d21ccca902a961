//! `changeling rules list` and `changeling rules export`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

/// The `rules` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// List rules: id, title, severity, tags, version, signals.
    List {
        /// Rules: directories, rule files, or `builtin` (the default);
        /// later ones replace earlier rules with the same id.
        #[arg(value_name = "RULES")]
        rules: Vec<PathBuf>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the built-in rules (changeling.toml, the rule files and their
    /// test cases) into a directory, to edit or to run with --rules.
    Export {
        /// The directory (created if missing).
        dir: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
}

/// One rule as listed.
#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    title: &'a str,
    severity: &'static str,
    tags: &'a [String],
    version: u64,
    signals: Vec<&'static str>,
    families: &'a [String],
    weight: f64,
    effect: &'static str,
    file: String,
}

/// Runs a `rules` subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::List { rules, json } => list(&rules, json),
        RulesCommand::Export { dir, force } => {
            let written = changeling::rules::embedded::export(&dir, force)
                .map_err(|e| anyhow::anyhow!("exporting the rules to {}: {e}", dir.display()))?;
            let tests = written.iter().filter(|p| p.starts_with(dir.join(changeling::rules::TESTS_DIR))).count();
            super::to_stderr(&format!(
                "wrote {} files to {}: changeling.toml, {} rule files, {tests} test case files; run them with \
                 `changeling score --rules {}` and test them with `changeling test {}`\n",
                written.len(),
                dir.display(),
                written.len() - tests - 1,
                dir.display(),
                dir.display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(rules: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let layers = super::rule_layers(rules)?;
    let Some(loaded) = super::load_rules(&layers, true) else { return Ok(ExitCode::from(2)) };
    let listed: Vec<Listed> = loaded
        .set
        .rules
        .iter()
        .map(|r| Listed {
            id: &r.id.value,
            title: &r.title,
            severity: r.severity.name(),
            tags: &r.tags,
            version: r.version,
            signals: r.signals.iter().map(|s| s.def.kind()).collect(),
            families: &r.families,
            weight: r.weight,
            effect: r.effect.name(),
            file: r.source.path.display().to_string(),
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        let json = serde_json::to_string_pretty(&listed)?;
        writeln!(stdout, "{}", changeling::terminal::json_for(&json, std::io::IsTerminal::is_terminal(&stdout)))?;
    } else {
        let mut rows = vec![["id", "severity", "version", "tags", "signals", "title"].map(String::from).to_vec()];
        for r in &listed {
            rows.push(vec![
                r.id.to_string(),
                r.severity.to_string(),
                r.version.to_string(),
                r.tags.join(","),
                if r.signals.is_empty() { "-".into() } else { r.signals.join(",") },
                r.title.to_string(),
            ]);
        }
        let mut text = String::new();
        changeling::terminal::aligned_table(&mut text, &rows, "", |_| false);
        writeln!(stdout, "{} rules from {}\n", listed.len(), loaded.name)?;
        stdout.write_all(text.as_bytes())?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
