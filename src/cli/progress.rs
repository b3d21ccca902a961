//! Progress bars on stderr for the measuring commands (`eval` scoring in
//! memory, `sweep`): one bar per phase, drawn only when stderr is a
//! terminal and the command is not `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// What a bar counts.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Bytes of input read.
    Bytes,
    /// Accounts scored.
    Accounts,
}

/// Whether to draw bars.
pub struct Progress {
    show: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, unless `quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress { show: !quiet && std::io::stderr().is_terminal() }
    }

    /// Runs `f`, meanwhile drawing `counter` out of `total` `unit`s after
    /// `message`.
    pub fn run<R>(&self, message: String, unit: Unit, total: u64, counter: &AtomicU64, f: impl FnOnce() -> R) -> R {
        if !self.show {
            return f();
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let template = match unit {
                    Unit::Bytes => "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
                    Unit::Accounts => "{spinner} {msg} {pos}/{len} accounts ({per_sec}, eta {eta})",
                };
                let bar = ProgressBar::new(total);
                bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
                bar.set_message(message);
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(counter.load(Ordering::Relaxed).min(total));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            });
            let r = f();
            done.store(true, Ordering::Relaxed);
            r
        })
    }
}
