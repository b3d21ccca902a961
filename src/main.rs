//! The `changeling` command line. Thin: parses arguments and hands over to
//! the commands in `cli/`, which use the library.
//!
//! Exit codes: 0 ran clean; 1 accounts flagged at or above `--fail-on`;
//! 2 an error (bad rules, unreadable data, bad arguments).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            if cli::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
