//! `changeling check` and `changeling explain-plan`.

use std::process::ExitCode;

use changeling::rules::layers::{self, RuleLayer};

/// Validates rules; exit 2 when any has an error.
pub fn check(rules: &[RuleLayer]) -> anyhow::Result<ExitCode> {
    let (set, diags) = layers::load(rules, &changeling::rules::Overrides::default());
    super::to_stderr(&changeling::terminal::for_terminal(&diags.render()))?;
    match set {
        Some(set) if set.rules.is_empty() => {
            super::to_stderr(&format!("error: {}: no rules\n", layers::describe(rules)))?;
            Ok(ExitCode::from(2))
        }
        Some(set) => {
            let n = set.rules.len();
            super::to_stderr(&format!("{}: {n} rule{} OK\n", layers::describe(rules), if n == 1 { "" } else { "s" }))?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(2)),
    }
}

/// Prints the compiled plan to stdout.
pub fn explain_plan(rules: &[RuleLayer]) -> anyhow::Result<ExitCode> {
    let Some(loaded) = super::load_rules(rules, false) else {
        return Ok(ExitCode::from(2));
    };
    use std::io::Write;
    // Titles, patterns and names come from the rule files.
    std::io::stdout().lock().write_all(changeling::terminal::for_terminal(&loaded.plan.explain()).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
