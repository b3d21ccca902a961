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
//! per account, over the `baseline`'s days before the event's day
//! ([`crate::facts::rate`]). `lambda = r * window`. It fires when
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
use std::sync::Arc;

use statrs::distribution::{DiscreteCDF, Poisson};

use super::spec::{Default as D, Param, ParamReader, Ty, key};
use super::{Ev, Need, Needs, Num, Outcome, Signal, Universe, Why, sorted};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::facts::rate::{self, Rate};
use crate::intern::Sym;
use crate::rules::diag::Code;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{DAY, HOUR, Millis, compact_duration, day_of, days_covering};

/// The kind.
pub struct RateSpike;

/// The parameters. Every one is part of the key: the cooldown follows the
/// account's spiking actions, so the state depends on what makes a spike.
pub const PARAMS: &[Param] = &[
    key("actions", Ty::List, D::Required, "actions counted"),
    key("window", Ty::Duration, D::Duration(HOUR), "the window whose count is judged"),
    key("baseline", Ty::Duration, D::Duration(30 * DAY), "how far back the account's own rate is measured"),
    key(
        "max_tail",
        Ty::Number { min: 1e-300, max: 0.5 },
        D::Number(1e-6),
        "tail probability at or below which it fires",
    ),
    key(
        "smoothing_days",
        Ty::Number { min: 0.0, max: 3650.0 },
        D::Number(7.0),
        "days of population rate mixed into the account's",
    ),
    key("min_count", Ty::Count { min: 0, max: 1_000_000 }, D::Count(5), "counts below this never fire"),
    key("cooldown", Ty::Duration, D::Same("window"), "quiet time after a spiking action"),
];

/// The parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Actions counted.
    pub actions: Vec<String>,
    /// The window whose count is judged.
    pub window: Millis,
    /// How far back the account's own rate is measured.
    pub baseline: Millis,
    /// Tail probability at or below which it fires.
    pub max_tail: Num,
    /// Days of population rate mixed into the account's rate.
    pub smoothing_days: Num,
    /// Counts below this never fire.
    pub min_count: u64,
    /// Quiet time after a spiking action.
    pub cooldown: Millis,
}

/// No other parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts;

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    key: Key,
    actions: Vec<Sym>,
    /// Population rate of the counted actions per account-day, by day.
    population: Arc<rate::Value>,
}

/// The population rate a rate spike reads: of its actions, over its
/// baseline's days.
fn rate_key(key: &Key) -> rate::Key {
    rate::Key { actions: sorted(&key.actions), days: days_covering(key.baseline) }
}

/// Nothing to bind beyond the key.
#[derive(Debug)]
pub struct Judge;

/// Per-account state: times of counted actions over the baseline.
#[derive(Debug, Default)]
pub struct State {
    times: VecDeque<Millis>,
    first_seen: Option<Millis>,
    quiet_until: Millis,
}

impl Tracker {
    /// Whether this action spikes, given the account's actions before it:
    /// (strength, why; the why only when `e` asks for words).
    fn spike(&self, s: &State, e: &Ev<'_>) -> Option<(f64, String)> {
        let p = &self.key;
        let window_start = e.ts.saturating_sub(p.window);
        let in_window = s.times.iter().rev().take_while(|&&t| t > window_start).count() as u64 + 1;
        if in_window < p.min_count {
            return None;
        }
        let in_baseline = s.times.len() as u64 + 1 - in_window;
        let first = s.first_seen.unwrap_or(e.ts);
        let since = first.max(window_start.saturating_sub(p.baseline));
        let baseline_days = (window_start.saturating_sub(since).max(0) as f64) / DAY as f64;
        let population = self.population.per_day(day_of(e.ts));
        let rate =
            (in_baseline as f64 + p.smoothing_days.0 * population) / (baseline_days + p.smoothing_days.0).max(1e-9);
        let lambda = (rate * p.window as f64 / DAY as f64).max(1e-9);
        let tail = Poisson::new(lambda).map_or(1.0, |d| d.sf(in_window - 1));
        if tail > p.max_tail.0 {
            return None;
        }
        let strength = (0.5 + 0.5 * (p.max_tail.0 / tail.max(f64::MIN_POSITIVE)).log10() / 3.0).clamp(0.5, 1.0);
        if !e.words {
            return Some((strength, String::new()));
        }
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
}

impl Signal for RateSpike {
    const NAME: &'static str = "rate_spike";
    const FAMILY: Option<&'static str> = Some("automation");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = ();

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let actions = if r.raw("actions").is_some() {
            let l = r.spanned_list("actions");
            if l.value.is_empty() {
                r.ctx().report(Code::BadValue, l.span.clone(), "`actions` must name at least one action");
            }
            l.value.into_iter().map(|s| s.value).collect()
        } else {
            let span = r.span();
            r.ctx().report(
                Code::MissingKey,
                span.start..span.start + 1,
                "signal `rate_spike` is missing required key `actions` (the actions to count)",
            );
            Vec::new()
        };
        let key = Key {
            actions,
            window: r.duration("window").max(1),
            baseline: r.duration("baseline"),
            max_tail: Num(r.number("max_tail")),
            smoothing_days: Num(r.number("smoothing_days")),
            min_count: r.count("min_count"),
            cooldown: r.duration("cooldown"),
        };
        (key, Opts)
    }

    fn needs(key: &Key, _opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action"]);
        n.facts.push(Need::Fact(rate_key(key).into()));
        n.reach = key.baseline.saturating_add(key.window);
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        Tracker { key: key.clone(), actions: u.resolve_all(&key.actions), population: u.fact::<Rate>(&rate_key(key)) }
    }

    fn judge(_key: &Key, _opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.times.clear();
        s.first_seen = None;
        s.quiet_until = Millis::MIN;
    }

    fn save(t: &Tracker, s: &State, now: Millis, w: &mut Enc<'_>) {
        let horizon = now.saturating_sub(t.key.baseline.saturating_add(t.key.window));
        let kept = s.times.iter().filter(|&&at| at >= horizon);
        w.count(kept.clone().count());
        for &at in kept {
            w.time(at);
        }
        w.bool(s.first_seen.is_some());
        if let Some(first) = s.first_seen {
            w.time(first);
        }
        w.time(s.quiet_until);
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        for _ in 0..r.count()? {
            s.times.push_back(r.time()?);
        }
        s.first_seen = if r.bool()? { Some(r.time()?) } else { None };
        s.quiet_until = r.time()?;
        Ok(())
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        s.first_seen.get_or_insert(e.ts);
        if t.actions.contains(&e.action) {
            let quiet = Ev { words: false, ..*e };
            if e.ts >= s.quiet_until && t.spike(s, &quiet).is_some() {
                s.quiet_until = e.ts.saturating_add(t.key.cooldown);
            }
            s.times.push_back(e.ts);
        }
        let horizon = e.ts.saturating_sub(t.key.baseline.saturating_add(t.key.window));
        while s.times.front().is_some_and(|&at| at < horizon) {
            s.times.pop_front();
        }
    }

    fn eval(_j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        if !t.actions.contains(&e.action) || e.ts < s.quiet_until {
            return Outcome::Quiet;
        }
        match t.spike(s, e) {
            Some((strength, why)) => Outcome::Fire { strength, why: Why::Text(why) },
            None => Outcome::Quiet,
        }
    }
}
