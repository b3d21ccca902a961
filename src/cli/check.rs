//! `changeling check` and `changeling explain-plan`.

use std::path::Path;
use std::process::ExitCode;

/// Validates rules; exit 2 when any has an error.
pub fn check(rules: &Path) -> anyhow::Result<ExitCode> {
    let (set, diags) = changeling::rules::load(rules);
    eprint!("{}", diags.render());
    match set {
        Some(set) => {
            let n = set.rules.len();
            eprintln!("{}: {n} rule{} OK", rules.display(), if n == 1 { "" } else { "s" });
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(2)),
    }
}

/// Prints the compiled plan to stdout.
pub fn explain_plan(rules: &Path) -> anyhow::Result<ExitCode> {
    let Some(plan) = super::load_plan(rules, false) else {
        return Ok(ExitCode::from(2));
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(plan.explain().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
