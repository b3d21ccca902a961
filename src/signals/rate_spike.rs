//! `rate_spike`: the account does an action far more often than its own
//! history makes plausible.
//!
//! **What it detects.** The number `k` of the account's `actions` in the
//! last `window` (this event included) has a Poisson tail probability
//! `P[X >= k]` below `max_tail`, where the expected count comes from the
//! account's own rate over the `baseline` before the window, smoothed
//! toward the population's rate.
//!
//! **Why it suggests compromise.** A hijacked account is put to work:
//! hundreds of follows in minutes from an automation client, a burst of
//! likes of scam posts. A fixed count ("more than 50 follows an hour")
//! flags busy accounts every day and misses quiet accounts doing 20; a tail
//! probability against the account's own rate does neither.
//!
//! **How.** Expected rate `r = (n_b + smoothing_days * p) / (T_b + smoothing_days)`,
//! with `n_b` counted actions over the `T_b` days of baseline the account
//! has (its history, at most `baseline`) and `p` the population's daily rate
//! per account (over the whole input). `lambda = r * window`. It fires when
//! `P[Poisson(lambda) >= k] <= max_tail` (statrs), with strength rising
//! from 0.5 at the threshold to 1 at a thousandth of it. After a spiking
//! action it is quiet for `cooldown` (default: `window`), so one spree
//! gives one hit per window, not one per follow. The cooldown follows the
//! account's actions, not the rule's hits: it starts at the first spiking
//! action whether or not the rule selected that event, so rules that share
//! this signal's state (same parameters) cannot silence each other.
//!
//! **Parameters** (defaults): `actions` (required), `window = "1h"`,
//! `baseline = "30d"`, `max_tail = 1e-6`, `smoothing_days = 7.0`,
//! `min_count = 5`, `cooldown` = `window`.
//!
//! ```toml
//! [[signal]]
//! kind = "rate_spike"
//! actions = ["follow"]
//! window = "30m"
//! ```
//!
//! **Known false positives.** New accounts following many accounts while
//! onboarding; live events (a football final) that make a fan like fifty
//! posts in an hour. Pair with `new_context` (client) for automation.

use std::collections::VecDeque;

use statrs::distribution::{DiscreteCDF, Poisson};

use super::{BindCache, Ev, Outcome};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset, EventRows};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::Code;
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{DAY, HOUR, Millis, compact_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("automation");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Actions counted.
    pub actions: Vec<String>,
    /// The window whose count is judged.
    pub window: Millis,
    /// How far back the account's own rate is measured.
    pub baseline: Millis,
    /// Tail probability at or below which it fires.
    pub max_tail: f64,
    /// Days of population rate mixed into the account's rate.
    pub smoothing_days: f64,
    /// Counts below this never fire.
    pub min_count: u64,
    /// Quiet time after a hit.
    pub cooldown: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let actions = match r.str_list(ctx, "actions") {
            Some(l) if !l.value.is_empty() => l.value.into_iter().map(|s| s.value).collect(),
            Some(l) => {
                ctx.report(Code::BadValue, l.span, "`actions` must name at least one action");
                Vec::new()
            }
            None => {
                let span = r.span.start..r.span.start + 1;
                ctx.report(
                    Code::MissingKey,
                    span,
                    "signal `rate_spike` is missing required key `actions` (the actions to count)",
                );
                Vec::new()
            }
        };
        let window = r.duration_or(ctx, "window", HOUR).max(1);
        Params {
            actions,
            window,
            baseline: r.duration_or(ctx, "baseline", 30 * DAY),
            max_tail: r.num_in(ctx, "max_tail", 1e-300, 0.5, 1e-6),
            smoothing_days: r.num_in(ctx, "smoothing_days", 0.0, 3650.0, 7.0),
            min_count: r.count(ctx, "min_count", 1_000_000, 5),
            cooldown: r.duration_or(ctx, "cooldown", window),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("actions", format!("{:?}", self.actions)),
            ("window", compact_duration(self.window)),
            ("baseline", compact_duration(self.baseline)),
            ("max_tail", format!("{:e}", self.max_tail)),
            ("smoothing_days", self.smoothing_days.to_string()),
            ("min_count", self.min_count.to_string()),
            ("cooldown", compact_duration(self.cooldown)),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{:?}/{}/{}/{}", self.actions, self.window, self.baseline, self.cooldown)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![(TableKind::Events, "action".into())]
    }
}

/// Accumulates the population's rate of the counted actions per
/// account-day (see [`super::aggregate`]): an account's days are the span
/// from its first to its last event, at least one.
#[derive(Clone, Debug, Default)]
pub struct RateAcc {
    count: u64,
    spans: SymMap<(Millis, Millis)>,
}

impl RateAcc {
    pub(crate) fn add(&mut self, rows: &dyn EventRows, range: std::ops::Range<usize>, actions: &[Sym]) {
        for i in range {
            let (actor, ts) = (rows.actor_at(i), rows.ts_at(i));
            let span = self.spans.entry(actor).or_insert((ts, ts));
            span.0 = span.0.min(ts);
            span.1 = span.1.max(ts);
            if actions.contains(&rows.action_at(i)) {
                self.count += 1;
            }
        }
    }

    pub(crate) fn merge(&mut self, other: RateAcc) {
        self.count += other.count;
        for (k, (a, b)) in other.spans {
            let span = self.spans.entry(k).or_insert((a, b));
            span.0 = span.0.min(a);
            span.1 = span.1.max(b);
        }
    }

    pub(crate) fn finish(self) -> f64 {
        let days: f64 = self.spans.values().map(|&(a, b)| ((b - a) as f64 / DAY as f64).max(1.0)).sum();
        if days > 0.0 { self.count as f64 / days } else { 0.0 }
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    actions: Vec<Sym>,
    /// Population rate: counted actions per account-day.
    population_per_day: f64,
}

/// Per-account state: times of counted actions over the baseline.
#[derive(Debug, Default)]
pub struct State {
    times: VecDeque<Millis>,
    first_seen: Option<Millis>,
    quiet_until: Millis,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, cache: &mut BindCache) -> Bound {
        let actions = super::resolve_all(data, &p.actions);
        let population_per_day = cache.rates.get(&super::aggregate::key(&p.actions)).copied().unwrap_or(0.0);
        Bound { params: p.clone(), actions, population_per_day }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.times.clear();
        s.first_seen = None;
        s.quiet_until = Millis::MIN;
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        s.first_seen.get_or_insert(e.ts);
        if self.actions.contains(&e.action) {
            if e.ts >= s.quiet_until && self.spike(s, e).is_some() {
                s.quiet_until = e.ts.saturating_add(self.params.cooldown);
            }
            s.times.push_back(e.ts);
        }
        let horizon = e.ts.saturating_sub(self.params.baseline + self.params.window);
        while s.times.front().is_some_and(|&t| t < horizon) {
            s.times.pop_front();
        }
    }

    /// Whether this action spikes, given the account's actions before it:
    /// (strength, why).
    fn spike(&self, s: &State, e: &Ev<'_>) -> Option<(f64, String)> {
        let p = &self.params;
        let window_start = e.ts - p.window;
        let in_window = s.times.iter().rev().take_while(|&&t| t > window_start).count() as u64 + 1;
        if in_window < p.min_count {
            return None;
        }
        let in_baseline = s.times.len() as u64 + 1 - in_window;
        let first = s.first_seen.unwrap_or(e.ts);
        let baseline_days = ((window_start - first.max(window_start - p.baseline)).max(0) as f64) / DAY as f64;
        let rate = (in_baseline as f64 + p.smoothing_days * self.population_per_day)
            / (baseline_days + p.smoothing_days).max(1e-9);
        let lambda = (rate * p.window as f64 / DAY as f64).max(1e-9);
        let tail = Poisson::new(lambda).map_or(1.0, |d| d.sf(in_window - 1));
        if tail > p.max_tail {
            return None;
        }
        let strength = (0.5 + 0.5 * (p.max_tail / tail.max(f64::MIN_POSITIVE)).log10() / 3.0).clamp(0.5, 1.0);
        Some((
            strength,
            format!(
                "{in_window} {} actions in {} where this account's history predicts {:.2} (P = {:.1e}; {in_baseline} in the {:.0} days before)",
                p.actions.join("/"),
                compact_duration(p.window),
                lambda,
                tail,
                baseline_days
            ),
        ))
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        if !self.actions.contains(&e.action) || e.ts < s.quiet_until {
            return Outcome::Quiet;
        }
        match self.spike(s, e) {
            Some((strength, why)) => Outcome::Fire { strength, why },
            None => Outcome::Quiet,
        }
    }
}
