//! The `changeling` command line. Thin: parses arguments and hands over to
//! the commands in `cli/`, which use the library.
//!
//! Exit codes: 0 ran clean; 1 accounts flagged at or above `--fail-on`;
//! 2 an error (bad rules, unreadable data, bad arguments, every record of a
//! table skipped, no rules loaded); 130, 143 and 129 interrupted by SIGINT,
//! SIGTERM and SIGHUP (after removing spill files and unfinished outputs).
//! A closed stdout or stderr (`changeling check 2>&1 | head`) is not an
//! error: the command stops quietly with exit code 0.

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::install_signal_handlers();
    // A panic inside the Parquet decoder is caught and reported as a bad
    // file naming it; the default hook's message would only add noise.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !changeling::data::parquet::in_decoder() {
            default_hook(info);
        }
    }));
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            if cli::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            // The message may quote the data: made safe for a terminal.
            let message = format!("error: {e:#}");
            let _ = writeln!(std::io::stderr(), "{}", changeling::terminal::for_terminal(&message));
            ExitCode::from(2)
        }
    }
}
