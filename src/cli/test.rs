//! `changeling test`: the rules' test cases, run against the rule files
//! (see `changeling::ruletest` for the case format).
//!
//! Exit codes: 0 every case passed; 1 a case failed, a case file could not
//! be read, or (with `--require-coverage`) a rule lacks a positive or a
//! benign case; 2 the rules do not load.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use changeling::rules::{Assignment, Overrides, overrides};
use changeling::ruletest;

/// Arguments of `changeling test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Rules: directories, rule files, or `builtin` (the default); later
    /// ones replace earlier rules with the same id. The cases of every
    /// directory's tests/ run against the rules they stack to.
    #[arg(value_name = "RULES")]
    rules: Vec<PathBuf>,
    /// Also write the results as JUnit XML to this file, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Fail when a rule has no positive or no benign case.
    #[arg(long)]
    require_coverage: bool,
    /// Run with a rule or engine parameter changed, PATH=VALUE (as in
    /// `changeling sweep --set`, one value): which cases notice?
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = overrides::parse_set)]
    set: Vec<(String, Vec<String>)>,
    /// Move each numeric and duration parameter of each rule's signals by
    /// a quarter either way, run the rule's cases with each, and list the
    /// mutations no case catches (exit 1 if any): thresholds the cases do
    /// not pin.
    #[arg(long, conflicts_with_all = ["set", "junit"])]
    mutate: bool,
    /// Print every case, not only failures.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs the command.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let layers = super::rule_layers(&args.rules)?;
    let mut overrides = Overrides::default();
    for (path, values) in &args.set {
        anyhow::ensure!(values.len() == 1, "--set {path}: give one value to test with");
        overrides.assignments.push(Assignment { path: path.clone(), value: values[0].clone() });
    }
    if let Some(path) = &args.junit {
        changeling::output::check_writable(path)?;
    }
    let name = changeling::rules::layers::describe(&layers);
    if args.mutate {
        return mutate(&layers, &name, args.verbose);
    }
    let suite = match ruletest::run_layers(&layers, &overrides) {
        Ok(s) => s,
        Err(diags) => {
            super::to_stderr(&changeling::terminal::for_terminal(&diags.render()))?;
            return Ok(ExitCode::from(2));
        }
    };
    if suite.warnings.warnings() > 0 {
        super::to_stderr(&changeling::terminal::for_terminal(&suite.warnings.render()))?;
    }
    // Case names, rule ids and the actors of case data come from the rule
    // and case files: the text is escaped for the terminal as a whole.
    let mut out = String::new();
    writeln!(out, "changeling test: {} case(s) of the rules in {name}", suite.results.len())?;
    for r in &suite.results {
        match &r.outcome {
            Ok(()) if args.verbose => writeln!(out, "ok    {} ({})", r.title(), r.kind.name())?,
            Ok(()) => {}
            Err(e) => {
                writeln!(out, "FAIL  {} ({}, {})", r.title(), r.kind.name(), r.file.display())?;
                for line in e.lines() {
                    writeln!(out, "      {line}")?;
                }
            }
        }
    }
    for (file, e) in &suite.file_errors {
        writeln!(out, "ERROR {}: {e}", file.display())?;
    }
    for (rule, missing) in &suite.coverage {
        writeln!(out, "{} {rule} has no {missing} case", if args.require_coverage { "FAIL " } else { "note:" })?;
    }
    let uncovered = args.require_coverage && !suite.coverage.is_empty();
    writeln!(
        out,
        "{} passed, {} failed{}",
        suite.passed(),
        suite.failed(),
        if suite.file_errors.is_empty() {
            String::new()
        } else {
            format!(", {} case file(s) unreadable", suite.file_errors.len())
        }
    )?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(changeling::terminal::for_terminal(&out).as_bytes())?;
    stdout.flush()?;
    if let Some(path) = &args.junit {
        changeling::output::write_file(path, suite.junit().as_bytes())?;
    }
    Ok(if suite.ok() && !uncovered { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `changeling test --mutate`.
fn mutate(layers: &[changeling::rules::layers::RuleLayer], name: &str, verbose: bool) -> anyhow::Result<ExitCode> {
    let mutations = match ruletest::mutate(layers) {
        Ok(m) => m,
        Err(diags) => {
            super::to_stderr(&changeling::terminal::for_terminal(&diags.render()))?;
            return Ok(ExitCode::from(2));
        }
    };
    let tried: Vec<&ruletest::Mutation> = mutations.iter().filter(|m| m.caught.is_some()).collect();
    let missed: Vec<&&ruletest::Mutation> = tried.iter().filter(|m| m.caught == Some(false)).collect();
    let mut out = String::new();
    writeln!(
        out,
        "changeling test --mutate: {} mutations of the rules in {name} ({} out of range, not tried); {} caught, {} not",
        tried.len(),
        mutations.len() - tried.len(),
        tried.len() - missed.len(),
        missed.len()
    )?;
    for m in &mutations {
        let shown = match m.caught {
            Some(true) if verbose => "caught",
            Some(false) => "NOT CAUGHT: no case of the rule failed",
            None if verbose => "out of range",
            _ => continue,
        };
        writeln!(out, "  {} = {} -> {}: {shown}", m.path, m.from, m.to)?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(changeling::terminal::for_terminal(&out).as_bytes())?;
    stdout.flush()?;
    Ok(if missed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
