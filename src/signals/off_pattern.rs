//! `off_pattern`: the target is far from what this account usually engages
//! with.
//!
//! **What it detects.** A like (or any selected action) of an item whose
//! labels (topics, content classes), author or language the account has
//! rarely or never engaged with in its recent history.
//!
//! **Why it suggests compromise.** Someone else at the keyboard brings their
//! own interests: a diplomat's account that likes state media for a year
//! and then likes an adult video and posts attacking its own government is
//! acting out of pattern. On its own this is weak evidence (people do
//! discover new things), which is why shipped rules pair it with
//! `feed_exposure` and give one hit a modest weight.
//!
//! **How.** For each feature value `v` the account's baseline counts `c_v`
//! among the `n` history events (actions in `history`, within `window`
//! before the event: never the event itself or anything after it). The
//! probability of `v` is smoothed toward the population's distribution
//! `pi_v` (over all accounts' history events) with `smoothing` pseudo-events:
//! `p_v = (c_v + smoothing * pi_v) / (n + smoothing)`. For the item's labels
//! the most familiar label counts: `p = max_v p_v`. The signal fires when
//! `p <= max_probability`, with strength `2 * P[rate <= max_probability] - 1`
//! under the posterior of the account's rate of that value,
//! `Beta(c_v + smoothing * pi_v, n - c_v + smoothing * (1 - pi_v))`
//! (statrs): how sure the baseline is that the account rarely engages with
//! it. A value rare in the population is confidently rare for a short
//! history too; a common one needs history first. Below `min_history`
//! history events it abstains.
//! With several features, every feature that has evidence must be off
//! pattern; the strength is the smallest.
//!
//! **Novelty in bursts** (`burst_window`, off by default). Real people are
//! novel too, and in bursts: a new interest, a weekend of rating old films.
//! What matters is how unusual a *burst* of novelty is for *this* account.
//! Each history event is judged when it happens (enough history, and off
//! pattern or not); the account's own novelty rate is the share of its
//! judged history events that were novel, smoothed toward `novelty_prior`
//! with `novelty_smoothing` pseudo-events (so an explorer, whose likes are
//! often novel, has a high rate). With `m` judged events in the last
//! `burst_window` (this one included) of which `k` are novel, the burst's
//! probability is `P[Binomial(m, rate) >= k]` and its surprise `-log10` of
//! that; the strength is multiplied by `min(1, surprise / full_surprise)`.
//! The likes of one sitting are not independent draws (a rating session of
//! sixty likes is one decision to sit down, not sixty), so a burst counts
//! as at most `max_burst` events, keeping its share of novel ones.
//! One novel like in a long rating session is ordinary; five in ten minutes
//! from an account that is never novel are not. Novel events of the burst
//! stay out of the baseline until they are `burst_window` old, so that a
//! burst is judged against the history before it (an intruder's first
//! likes do not make their next ones look familiar).
//!
//! **Look-ahead** (`return_window`, off by default; for batch jobs that see
//! the days after an event). A new interest lasts; an intruder's interests
//! leave with the intruder. When the account engages again with any of the
//! novel values (a history event carrying it) more than `return_after`
//! after the event and at most `return_window` after it, the novelty was a
//! new interest and the signal is quiet. The `why` says how far the log
//! reaches: an event less than `return_window` before the end of the input
//! is judged on the days there are, and the `why` calls it provisional
//! (re-scoring later may clear it). This does look at the account's own
//! future events: it is meant for batch scoring, not for alerting on the
//! day.
//!
//! **Parameters** (defaults):
//! - `features = ["labels"]`: any of `labels`, `author`, `lang`.
//! - `history = ["like", "repost", "reply", "post"]`: actions that form the baseline.
//! - `window = "180d"`: how far back the baseline reaches.
//! - `min_history = 20`: fewer history events with the feature known: abstain.
//! - `max_probability = 0.02`: at or below this the value is off pattern.
//! - `smoothing = 10.0`: pseudo-events drawn from the population distribution.
//! - `burst_window = "0s"`: novel events this close together form a burst
//!   (`0s`: no burst factor).
//! - `full_surprise = 4.0`: the burst surprise (`-log10` probability) at
//!   which the burst factor reaches 1.
//! - `novelty_prior = 0.05`, `novelty_smoothing = 20.0`: the account's
//!   novelty rate before it has history of its own; `"good_turing"` for the
//!   account's own Good–Turing estimate of meeting a value it never met,
//!   `(N1 + 1) / (n + 2)` over its baseline.
//! - `max_burst = 10`: a burst counts as at most this many events (0: no
//!   limit).
//! - `return_window = "0s"`: how far to look ahead for a return to the
//!   value (`0s`: no look-ahead); `return_after = "6h"`: sooner is the same
//!   sitting, not a return.
//!
//! ```toml
//! [[signal]]
//! kind = "off_pattern"
//! features = ["labels"]
//! max_probability = 0.05
//! min_history = 10
//! burst_window = "1h"
//! return_window = "30d"
//! ```
//!
//! **Known false positives.** A genuine new interest (the account follows
//! football clubs and likes their posts): pair with `feed_exposure`, which
//! sees the follows, and use the look-ahead. A binge on a new interest that
//! fizzles looks like an intruder's visit; so does a one-off link from a
//! friend. Items without labels give no evidence; a dataset without `items`
//! makes `labels` and `lang` silent (only `author` works from
//! `target_author`). The population distribution is computed over the
//! whole input, so it does look ahead at the population level (not at the
//! account).

use std::collections::VecDeque;
use std::sync::Arc;

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF};

use super::{BindCache, Ev, Outcome, actions_param, fmt_prob, resolve_all};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset, EventRows, Items};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::{Code, unknown_name_help};
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{DAY, Millis, compact_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("content");

/// A property of the target that a baseline is kept of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// The item's labels (multi-valued).
    Labels,
    /// The item's author.
    Author,
    /// The item's language.
    Lang,
}

impl Feature {
    const NAMES: [&'static str; 3] = ["labels", "author", "lang"];

    fn name(self) -> &'static str {
        match self {
            Feature::Labels => "labels",
            Feature::Author => "author",
            Feature::Lang => "lang",
        }
    }

    /// The feature's values for an event's target, into `out`.
    fn values(self, e: &Ev<'_>, out: &mut Vec<Sym>) {
        let author = e.data.events.sym(crate::data::schema::ev::TARGET_AUTHOR, e.i);
        self.values_of(e.target(), author, &e.data.items, out);
    }

    /// The feature's values for a target with an optional explicit author.
    fn values_of(self, target: Option<Sym>, author: Option<Sym>, items: &Items, out: &mut Vec<Sym>) {
        out.clear();
        let row = target.and_then(|t| items.row(t));
        match self {
            Feature::Labels => {
                if let Some(r) = row {
                    out.extend_from_slice(items.labels(r));
                }
            }
            Feature::Author => out.extend(author.or_else(|| row.and_then(|r| items.author(r)))),
            Feature::Lang => out.extend(row.and_then(|r| items.lang(r))),
        }
    }
}

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Which properties of the target to judge.
    pub features: Vec<Feature>,
    /// Actions forming the baseline.
    pub history: Vec<String>,
    /// How far back the baseline reaches.
    pub window: Millis,
    /// History needed before the signal speaks.
    pub min_history: u64,
    /// Probability at or below which a value is off pattern.
    pub max_probability: f64,
    /// Pseudo-events drawn from the population distribution.
    pub smoothing: f64,
    /// Novel events this close before the event form its burst (0: the
    /// burst is not judged).
    pub burst_window: Millis,
    /// Surprise (`-log10` of the burst's probability) at which the burst
    /// factor reaches 1.
    pub full_surprise: f64,
    /// Novelty rate assumed before an account has a history of its own:
    /// a fixed rate, or (`None`, written `"good_turing"`) the account's own
    /// Good–Turing estimate of how often it engages with a value it never
    /// engaged with before, `(N1 + 1) / (n + 2)` over its baseline.
    pub novelty_prior: Option<f64>,
    /// Pseudo-events of `novelty_prior` in an account's novelty rate.
    pub novelty_smoothing: f64,
    /// A burst counts as at most this many events, keeping its share of
    /// novel ones (0: no limit).
    pub max_burst: u64,

    /// How far to look ahead for the account engaging with the value again
    /// (0: no look-ahead).
    pub return_window: Millis,
    /// Engagement sooner than this after the event is not a return (it is
    /// the same sitting).
    pub return_after: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let mut features = Vec::new();
        match r.str_list(ctx, "features") {
            Some(list) => {
                for f in list.value {
                    match Feature::NAMES.iter().position(|n| *n == f.value) {
                        Some(i) => features.push([Feature::Labels, Feature::Author, Feature::Lang][i]),
                        None => {
                            let help = unknown_name_help(&f.value, &Feature::NAMES);
                            ctx.report(Code::BadValue, f.span, format!("unknown off_pattern feature `{}`", f.value))
                                .help = help;
                        }
                    }
                }
                if features.is_empty() {
                    ctx.report(Code::BadValue, list.span, "`features` must name at least one feature");
                }
            }
            None => features.push(Feature::Labels),
        }
        features.sort();
        features.dedup();
        Params {
            features,
            history: actions_param(r, ctx, "history", &["like", "repost", "reply", "post"]),
            window: r.duration_or(ctx, "window", 180 * DAY),
            min_history: r.count(ctx, "min_history", 1_000_000, 20),
            max_probability: r.num_in(ctx, "max_probability", 1e-9, 1.0, 0.02),
            smoothing: r.num_in(ctx, "smoothing", 0.0, 1e6, 10.0),
            burst_window: r.duration_or(ctx, "burst_window", 0),
            full_surprise: r.num_in(ctx, "full_surprise", 0.1, 300.0, 4.0),
            novelty_prior: novelty_prior(r, ctx),
            novelty_smoothing: r.num_in(ctx, "novelty_smoothing", 0.0, 1e6, 20.0),
            max_burst: r.count(ctx, "max_burst", 1_000_000, 10),

            return_window: r.duration_or(ctx, "return_window", 0),
            return_after: r.duration_or(ctx, "return_after", 6 * crate::time::HOUR),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("features", format!("{:?}", self.features.iter().map(|f| f.name()).collect::<Vec<_>>())),
            ("history", format!("{:?}", self.history)),
            ("window", compact_duration(self.window)),
            ("min_history", self.min_history.to_string()),
            ("max_probability", self.max_probability.to_string()),
            ("smoothing", self.smoothing.to_string()),
            ("burst_window", compact_duration(self.burst_window)),
            ("full_surprise", self.full_surprise.to_string()),
            ("novelty_prior", self.novelty_prior.map_or_else(|| "good_turing".into(), |x| x.to_string())),
            ("novelty_smoothing", self.novelty_smoothing.to_string()),
            ("max_burst", self.max_burst.to_string()),
            ("return_window", compact_duration(self.return_window)),
            ("return_after", compact_duration(self.return_after)),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        // Every parameter the state depends on: the baseline, the novelty
        // judgement of history events, the burst and the look-ahead.
        format!(
            "{:?}{:?}/{}/{}/{}/{}/{}/{}/{}/{}",
            self.features,
            self.history,
            self.window,
            self.min_history,
            self.max_probability,
            self.smoothing,
            self.burst_window,
            self.novelty_prior.map_or(-1.0, |x| x),
            self.novelty_smoothing,
            self.return_window
        )
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        let mut v = vec![(TableKind::Events, "action"), (TableKind::Events, "target")];
        for f in &self.features {
            match f {
                Feature::Labels => v.extend([(TableKind::Items, "id"), (TableKind::Items, "labels")]),
                Feature::Lang => v.extend([(TableKind::Items, "id"), (TableKind::Items, "lang")]),
                Feature::Author => v.extend([
                    (TableKind::Events, "target_author"),
                    (TableKind::Items, "id"),
                    (TableKind::Items, "author"),
                ]),
            }
        }
        v.into_iter().map(|(t, c)| (t, c.to_string())).collect()
    }
}

/// Reads `novelty_prior`: a number in (0, 1], or `"good_turing"`.
fn novelty_prior(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Option<f64> {
    if let Some(v) = r.get("novelty_prior")
        && let toml::de::DeValue::String(text) = v.get_ref()
    {
        if text == "good_turing" {
            return None;
        }
        ctx.report(
            Code::BadValue,
            v.span(),
            format!("`novelty_prior` is \"{text}\": a number from 1e-6 to 1, or \"good_turing\""),
        );
        return Some(0.05);
    }
    Some(r.num_in(ctx, "novelty_prior", 1e-6, 1.0, 0.05))
}

/// The population's distribution of one feature over history events.
#[derive(Debug, Default)]
pub struct Prior {
    share: SymMap<f64>,
    unseen: f64,
}

impl Prior {
    fn of(&self, v: Sym) -> f64 {
        self.share.get(&v).copied().unwrap_or(self.unseen)
    }
}

/// Accumulates a [`Prior`] (see [`super::aggregate`]).
#[derive(Clone, Debug, Default)]
pub struct PriorAcc {
    counts: SymMap<u64>,
    total: u64,
}

impl PriorAcc {
    pub(crate) fn add(
        &mut self,
        feature: Feature,
        history: &[Sym],
        rows: &dyn EventRows,
        range: std::ops::Range<usize>,
        items: &Items,
    ) {
        let mut values = Vec::new();
        for i in range {
            if !history.contains(&rows.action_at(i)) {
                continue;
            }
            feature.values_of(rows.target_at(i), rows.target_author_at(i), items, &mut values);
            if !values.is_empty() {
                self.total += 1;
            }
            for &v in &values {
                *self.counts.entry(v).or_default() += 1;
            }
        }
    }

    pub(crate) fn merge(&mut self, other: PriorAcc) {
        self.total += other.total;
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
    }

    pub(crate) fn finish(self) -> Prior {
        // Laplace smoothing, so that a value never seen still has a share.
        let denom = self.total as f64 + self.counts.len() as f64 + 1.0;
        Prior {
            share: self.counts.into_iter().map(|(k, c)| (k, (c as f64 + 1.0) / denom)).collect(),
            unseen: 1.0 / denom,
        }
    }
}

/// How sure the baseline is that the account's own rate of a value is at
/// most `max_probability`: with `c` of `n` history events carrying it and a
/// population share `pi`, the account's rate has the posterior
/// `Beta(c + smoothing * pi, n - c + smoothing * (1 - pi))`, and the
/// strength is `2 * P[rate <= max_probability] - 1` (0 when the posterior
/// mean is at the threshold, 1 when all of it is below). A value rare in
/// the population is confidently rare for a short history too; a common
/// one needs history to be called off pattern.
fn confidence(p: &Params, c: u32, n: u64, pi: f64) -> f64 {
    let a = (f64::from(c) + p.smoothing * pi).max(1e-9);
    let b = (n as f64 - f64::from(c) + p.smoothing * (1.0 - pi)).max(1e-9);
    let below = Beta::new(a, b).map_or(0.5, |d| d.cdf(p.max_probability));
    (2.0 * below - 1.0).clamp(0.0, 1.0)
}

/// A window as an adjective: `180-day`, `12-hour`, or `1h30m`.
fn window_words(ms: Millis) -> String {
    use crate::time::HOUR;
    if ms % DAY == 0 {
        format!("{}-day", ms / DAY)
    } else if ms % HOUR == 0 {
        format!("{}-hour", ms / HOUR)
    } else {
        compact_duration(ms)
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    history: Vec<Sym>,
    priors: Vec<(Feature, Arc<Prior>)>,
    /// When the whole input ends (for look-ahead near the end).
    data_end: Option<Millis>,
}

/// A feature value: (feature index in `Params::features`, value).
type Value = (u8, Sym);

/// What the baseline says about one event's target.
#[derive(Debug, Default)]
struct Judgement {
    /// Some feature had too little history.
    abstained: bool,
    /// Some feature's value is familiar.
    familiar: bool,
    /// Per off-pattern feature: (feature index, deciding value, its count,
    /// history size, probability).
    off: Vec<(u8, Sym, u32, u64, f64)>,
    /// Every value of the off-pattern features (the directions it explores).
    values: Vec<Value>,
}

impl Judgement {
    /// Judged (enough history) and off pattern in every feature it has.
    fn novel(&self) -> bool {
        !self.familiar && !self.abstained && !self.off.is_empty()
    }

    /// Judged at all: every feature with a value had enough history.
    fn judged(&self) -> bool {
        !self.abstained && (self.familiar || !self.off.is_empty())
    }
}

/// A history event in the burst window: when, which, whether it was
/// judged, and its values if it was novel (then it is not yet in the
/// baseline).
#[derive(Debug)]
struct Recent {
    ts: Millis,
    i: u32,
    judged: bool,
    novel: Vec<Value>,
}

/// Per-account baseline: counts of each feature value over the window,
/// the account's own novelty rate, its recent burst, and (with
/// `return_window`) when it engaged with each value, past and future.
#[derive(Debug, Default)]
pub struct State {
    /// History events in the window, oldest first: (ts, event index,
    /// judged, novel).
    window: VecDeque<(Millis, u32, bool, bool)>,
    /// Per feature (in `Params::features` order): value counts and the
    /// number of history events with the feature known.
    counts: Vec<(SymMap<u32>, u32)>,
    /// Per feature: how many values the baseline holds exactly once.
    singles: Vec<u32>,
    /// Judged and novel history events in the window.
    judged: u32,
    novel: u32,
    /// History events within `burst_window`, oldest first. The novel ones
    /// are not yet in the baseline, so that a burst of novelty is judged
    /// against the history before it (an attacker's first likes do not make
    /// the next ones familiar); the others are.
    burst: VecDeque<Recent>,
    /// With `return_window`: per feature, the times of the account's
    /// history events with each value, over its whole log.
    times: Vec<SymMap<Vec<Millis>>>,
    /// The judgement of the event last judged, by event index.
    cached: Option<(usize, Judgement)>,
    values: Vec<Sym>,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, cache: &mut BindCache) -> Bound {
        let history = resolve_all(data, &p.history);
        let key = super::aggregate::key(&p.history);
        let priors =
            p.features.iter().map(|&f| (f, cache.priors.get(&(f, key.clone())).cloned().unwrap_or_default())).collect();
        Bound { params: p.clone(), history, priors, data_end: cache.data_end }
    }

    pub(crate) fn new_state(&self) -> State {
        let n = self.params.features.len();
        State {
            counts: (0..n).map(|_| (SymMap::default(), 0)).collect(),
            singles: vec![0; n],
            times: (0..n).map(|_| SymMap::default()).collect(),
            ..State::default()
        }
    }

    pub(crate) fn reset(&self, s: &mut State, span: &AccountSpan, data: &Dataset) {
        s.window.clear();
        for (c, n) in &mut s.counts {
            c.clear();
            *n = 0;
        }
        s.singles.iter_mut().for_each(|x| *x = 0);
        (s.judged, s.novel) = (0, 0);
        s.burst.clear();
        s.cached = None;
        for t in &mut s.times {
            t.clear();
        }
        if self.params.return_window > 0 {
            // Look-ahead: every history event of the account, by value.
            for i in span.range() {
                let e = Ev::at(data, i);
                if !self.history.contains(&e.action) {
                    continue;
                }
                for (k, &f) in self.params.features.iter().enumerate() {
                    f.values(&e, &mut s.values);
                    for &v in &s.values {
                        s.times[k].entry(v).or_default().push(e.ts);
                    }
                }
            }
        }
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    fn add(&self, s: &mut State, e: &Ev<'_>, delta: i32) {
        for (k, &f) in self.params.features.iter().enumerate() {
            f.values(e, &mut s.values);
            if s.values.is_empty() {
                continue;
            }
            let (counts, n) = &mut s.counts[k];
            *n = n.wrapping_add_signed(delta);
            let singles = &mut s.singles[k];
            for &v in &s.values {
                let c = counts.entry(v).or_default();
                let before = *c;
                *c = c.wrapping_add_signed(delta);
                *singles = singles.wrapping_add_signed(i32::from(*c == 1) - i32::from(before == 1));
                if *c == 0 {
                    counts.remove(&v);
                }
            }
        }
    }

    /// Moves history events older than `burst_window` into the baseline and
    /// drops baseline events older than `window`.
    fn evict(&self, s: &mut State, e: &Ev<'_>) {
        let since = e.ts.saturating_sub(self.params.burst_window);
        while s.burst.front().is_some_and(|r| r.ts < since) {
            let r = s.burst.pop_front().expect("checked");
            if !r.novel.is_empty() {
                self.enter_baseline(s, e.data, r.ts, r.i, r.judged, true);
            }
        }
        let horizon = e.ts.saturating_sub(self.params.window);
        while let Some(&(ts, i, judged, novel)) = s.window.front() {
            if ts >= horizon {
                break;
            }
            s.window.pop_front();
            s.judged -= u32::from(judged);
            s.novel -= u32::from(novel);
            self.add(s, &Ev::at(e.data, i as usize), -1);
        }
    }

    fn enter_baseline(&self, s: &mut State, data: &Dataset, ts: Millis, i: u32, judged: bool, novel: bool) {
        s.judged += u32::from(judged);
        s.novel += u32::from(novel);
        s.window.push_back((ts, i, judged, novel));
        self.add(s, &Ev::at(data, i as usize), 1);
    }

    /// Judges the event's target against the baseline (events before it).
    fn judge(&self, s: &mut State, e: &Ev<'_>) -> Judgement {
        let p = &self.params;
        let mut j = Judgement::default();
        let mut values = std::mem::take(&mut s.values);
        for (k, (f, prior)) in self.priors.iter().enumerate() {
            f.values(e, &mut values);
            if values.is_empty() {
                continue;
            }
            let (counts, n) = &s.counts[k];
            let n = u64::from(*n);
            if n < p.min_history {
                j.abstained = true;
                continue;
            }
            // The most familiar of the target's values decides.
            let (best, c, prob) = values
                .iter()
                .map(|&v| {
                    let c = counts.get(&v).copied().unwrap_or(0);
                    (v, c, (f64::from(c) + p.smoothing * prior.of(v)) / (n as f64 + p.smoothing))
                })
                .max_by(|a, b| a.2.total_cmp(&b.2).then_with(|| e.text(b.0).cmp(e.text(a.0))))
                .expect("values is not empty");
            if prob > p.max_probability {
                j.familiar = true;
                continue;
            }
            j.off.push((k as u8, best, c, n, prob));
            j.values.extend(values.iter().map(|&v| (k as u8, v)));
        }
        s.values = values;
        j
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        if !self.history.contains(&e.action) {
            return;
        }
        if self.params.burst_window > 0 {
            let j = self.judgement(s, e);
            let judged = j.judged();
            let novel = if j.novel() { j.values } else { Vec::new() };
            if novel.is_empty() {
                self.enter_baseline(s, e.data, e.ts, e.i as u32, judged, false);
            }
            s.burst.push_back(Recent { ts: e.ts, i: e.i as u32, judged, novel });
        } else {
            self.evict(s, e);
            self.enter_baseline(s, e.data, e.ts, e.i as u32, false, false);
        }
    }

    /// The burst factor: how surprising the recent burst of novelty is for
    /// this account, and its words. `values` are the event's novel values.
    fn burst(&self, s: &State, values: &[Value]) -> (f64, String) {
        let p = &self.params;
        // The event itself is judged and novel.
        let (mut judged, mut novel) = (1u64, 1u64);
        let mut seen: Vec<Value> = values.to_vec();
        for r in s.burst.iter().filter(|r| r.judged) {
            judged += 1;
            if !r.novel.is_empty() {
                novel += 1;
                seen.extend_from_slice(&r.novel);
            }
        }
        seen.sort_unstable();
        seen.dedup();
        let prior = p.novelty_prior.unwrap_or_else(|| {
            let (n, singles) = (s.counts[0].1, s.singles[0]);
            (f64::from(singles + 1) / f64::from(n + 2)).min(1.0)
        });
        let rate = (f64::from(s.novel) + p.novelty_smoothing * prior) / (f64::from(s.judged) + p.novelty_smoothing);
        // A sitting's likes are not independent draws: a burst counts as at
        // most `max_burst` events, keeping its share of novel ones.
        let (trials, successes) = if p.max_burst > 0 && judged > p.max_burst {
            let k = (novel as f64 * p.max_burst as f64 / judged as f64).round() as u64;
            (p.max_burst, k.max(1))
        } else {
            (judged, novel)
        };
        // P[Binomial(trials, rate) >= successes].
        let tail = Binomial::new(rate, trials).map_or(1.0, |b| b.sf(successes - 1));
        let surprise = -tail.max(1e-300).log10();
        let factor = (surprise / p.full_surprise).min(1.0);
        let words = format!(
            "{novel} of {judged} judged like{} in the last {} novel, across {} value{}; \
             before them this account's likes were novel at a rate of {} ({} of {}), so a burst like this has probability {}",
            if judged == 1 { "" } else { "s" },
            compact_duration(p.burst_window),
            seen.len(),
            if seen.len() == 1 { "" } else { "s" },
            fmt_prob(rate),
            s.novel,
            s.judged,
            fmt_prob(tail),
        );
        (factor, words)
    }

    /// Look-ahead: whether the account engages with any of `values` again
    /// after the incident, and the words for it. `None` when it returns.
    fn look_ahead(&self, s: &State, e: &Ev<'_>, values: &[Value]) -> Option<String> {
        let p = &self.params;
        let from = e.ts.saturating_add(p.return_after);
        let to = e.ts.saturating_add(p.return_window);
        for &(k, v) in values {
            if let Some(times) = s.times[k as usize].get(&v) {
                let i = times.partition_point(|&t| t <= from);
                if times.get(i).is_some_and(|&t| t <= to) {
                    return None;
                }
            }
        }
        let end = self.data_end.unwrap_or(to);
        Some(if end >= to {
            format!("not engaged with again in the {} after (look-ahead)", compact_duration(p.return_window))
        } else {
            format!(
                "not engaged with again in the {} of log after it (look-ahead {} wanted: provisional)",
                compact_duration(end.saturating_sub(e.ts).max(0)),
                compact_duration(p.return_window)
            )
        })
    }

    /// The judgement of event `e`, computed once per event however many
    /// rules ask (and `observe` after them): the state does not change
    /// between them, and every parameter the judgement uses is part of the
    /// state key, so each asker would compute the same.
    fn judgement(&self, s: &mut State, e: &Ev<'_>) -> Judgement {
        self.evict(s, e);
        match s.cached.take() {
            Some((i, j)) if i == e.i => j,
            _ => self.judge(s, e),
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let j = self.judgement(s, e);
        let out = self.eval_judged(s, e, &j);
        s.cached = Some((e.i, j));
        out
    }

    fn eval_judged(&self, s: &State, e: &Ev<'_>, j: &Judgement) -> Outcome {
        let p = &self.params;
        if j.familiar {
            return Outcome::Quiet;
        }
        if j.off.is_empty() {
            return if j.abstained { Outcome::Abstain } else { Outcome::Quiet };
        }
        let mut strength = f64::INFINITY;
        let mut why = Vec::new();
        for &(k, best, c, n, prob) in &j.off {
            let f = self.priors[k as usize].0;
            strength = strength.min(confidence(p, c, n, self.priors[k as usize].1.of(best)));
            let names: Vec<&str> = {
                let mut v: Vec<&str> = j.values.iter().filter(|x| x.0 == k).map(|x| e.text(x.1)).collect();
                v.sort_unstable();
                v
            };
            let what = match f {
                Feature::Labels if names.len() > 1 => format!(
                    "labels {} have probability at most",
                    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                ),
                Feature::Labels => format!("label '{}' has probability", e.text(best)),
                Feature::Author => format!("author {} has probability", e.text(best)),
                Feature::Lang => format!("language '{}' has probability", e.text(best)),
            };
            why.push(format!(
                "{what} {} in this account's {} history ({c} of {n} events)",
                fmt_prob(prob),
                window_words(p.window),
            ));
        }
        if p.return_window > 0 {
            match self.look_ahead(s, e, &j.values) {
                Some(words) => why.push(words),
                None => return Outcome::Quiet,
            }
        }
        if p.burst_window > 0 {
            let (factor, words) = self.burst(s, &j.values);
            strength *= factor;
            why.push(words);
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why: why.join("; ") }
    }
}
