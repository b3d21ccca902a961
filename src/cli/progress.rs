//! Progress bars on stderr: one bar per phase, drawn only when stderr is a
//! terminal and the command is not `--quiet`. [`style`] gives every bar of
//! every command the same counts and rates: a count is `12/40` only once
//! the total is known (never `0/0`), and a rate is `1.2 k/s`, not a raw
//! float.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A rate per second in a few digits: `850/s`, `12.3 k/s`, `4.1 M/s`.
pub fn human_rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "-".into()
    } else if per_sec >= 1e6 {
        format!("{:.1} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}/s")
    }
}

/// A bar style from `template`, which may use, besides indicatif's keys,
/// `{count}` (`12/40`, or `12` while the total is unknown), `{rate}` (see
/// [`human_rate`]) and `{eta_known}` (`, eta 3s` once the total is known).
pub fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .with_key("count", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = match s.len() {
                Some(len) if len > 0 => write!(w, "{}/{len}", s.pos()),
                _ => write!(w, "{}", s.pos()),
            };
        })
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&human_rate(s.per_sec()));
        })
        .with_key("eta_known", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            if s.len().is_some_and(|l| l > 0) && s.pos() > 0 {
                let _ = write!(w, ", eta {}", indicatif::HumanDuration(s.eta()));
            }
        })
}

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
                    Unit::Bytes => "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}{eta_known})",
                    Unit::Accounts => "{spinner} {msg} {count} accounts ({rate}{eta_known})",
                };
                let bar = ProgressBar::new(total);
                bar.set_style(style(template));
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

#[cfg(test)]
mod tests {
    use super::human_rate;

    #[test]
    fn rates_read_as_a_few_digits() {
        assert_eq!(human_rate(850.4), "850/s");
        assert_eq!(human_rate(12_345.678), "12.3 k/s");
        assert_eq!(human_rate(4_100_000.0), "4.1 M/s");
        assert_eq!(human_rate(0.0), "-");
    }
}
