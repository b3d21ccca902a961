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
//! `p <= max_probability`, with strength
//! `(1 - p / max_probability) * (1 - P[Binomial(n, max_probability) <= c])`:
//! the second factor (statrs) is the confidence that the account's true rate
//! is below `max_probability` given how much history it has, so a short
//! history speaks softly. Below `min_history` history events it abstains.
//! With several features, every feature that has evidence must be off
//! pattern; the strength is the smallest.
//!
//! **Parameters** (defaults):
//! - `features = ["labels"]`: any of `labels`, `author`, `lang`.
//! - `history = ["like", "repost", "reply", "post"]`: actions that form the baseline.
//! - `window = "180d"`: how far back the baseline reaches.
//! - `min_history = 20`: fewer history events with the feature known: abstain.
//! - `max_probability = 0.02`: at or below this the value is off pattern.
//! - `smoothing = 10.0`: pseudo-events drawn from the population distribution.
//!
//! ```toml
//! [[signal]]
//! kind = "off_pattern"
//! features = ["labels"]
//! max_probability = 0.02
//! min_history = 20
//! ```
//!
//! **Known false positives.** A genuine new interest (the account follows
//! football clubs and likes their posts): pair with `feed_exposure`, which
//! sees the follows. Items without labels give no evidence; a dataset
//! without `items` makes `labels` and `lang` silent (only `author` works
//! from `target_author`). The population distribution is computed over the
//! whole input, so it does look ahead at the population level (not at the
//! account).

use std::collections::VecDeque;
use std::sync::Arc;

use statrs::distribution::{Binomial, DiscreteCDF};

use super::{BindCache, Ev, Outcome, actions_param, fmt_prob, resolve_all};
use crate::data::schema::TableKind;
use crate::data::{Dataset, EventRows, Items};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::{Code, unknown_name_help};
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{DAY, Millis, compact_duration};

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
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{:?}{:?}{}", self.features, self.history, self.window)
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
}

/// Per-account baseline: counts of each feature value over the window.
#[derive(Debug, Default)]
pub struct State {
    /// History events in the window, oldest first: (ts, event index).
    window: VecDeque<(Millis, u32)>,
    /// Per feature (in `Params::features` order): value counts and the
    /// number of history events with the feature known.
    counts: Vec<(SymMap<u32>, u32)>,
    values: Vec<Sym>,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, cache: &mut BindCache) -> Bound {
        let history = resolve_all(data, &p.history);
        let key = super::aggregate::key(&p.history);
        let priors =
            p.features.iter().map(|&f| (f, cache.priors.get(&(f, key.clone())).cloned().unwrap_or_default())).collect();
        Bound { params: p.clone(), history, priors }
    }

    pub(crate) fn new_state(&self) -> State {
        State { counts: self.params.features.iter().map(|_| (SymMap::default(), 0)).collect(), ..State::default() }
    }

    pub(crate) fn reset(&self, s: &mut State, _actor: Sym, _data: &Dataset) {
        s.window.clear();
        for (c, n) in &mut s.counts {
            c.clear();
            *n = 0;
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
            for &v in &s.values {
                let c = counts.entry(v).or_default();
                *c = c.wrapping_add_signed(delta);
                if *c == 0 {
                    counts.remove(&v);
                }
            }
        }
    }

    fn evict(&self, s: &mut State, e: &Ev<'_>) {
        let horizon = e.ts.saturating_sub(self.params.window);
        while let Some(&(ts, i)) = s.window.front() {
            if ts >= horizon {
                break;
            }
            s.window.pop_front();
            self.add(s, &Ev::at(e.data, i as usize), -1);
        }
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        if !self.history.contains(&e.action) {
            return;
        }
        self.evict(s, e);
        s.window.push_back((e.ts, e.i as u32));
        self.add(s, e, 1);
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        self.evict(s, e);
        let p = &self.params;
        let mut strength = f64::INFINITY;
        let mut why = Vec::new();
        let mut abstained = false;
        let mut values = std::mem::take(&mut s.values);
        for (k, (f, prior)) in self.priors.iter().enumerate() {
            f.values(e, &mut values);
            if values.is_empty() {
                continue;
            }
            let (counts, n) = &s.counts[k];
            let n = u64::from(*n);
            if n < p.min_history {
                abstained = true;
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
                s.values = values;
                return Outcome::Quiet;
            }
            let tail = Binomial::new(p.max_probability, n).map_or(1.0, |b| b.cdf(u64::from(c)));
            strength = strength.min((1.0 - prob / p.max_probability) * (1.0 - tail));
            let what = match f {
                Feature::Labels if values.len() > 1 => {
                    let mut names: Vec<&str> = values.iter().map(|&v| e.text(v)).collect();
                    names.sort_unstable();
                    format!(
                        "labels {} have probability at most",
                        names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                    )
                }
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
        s.values = values;
        if why.is_empty() {
            return if abstained { Outcome::Abstain } else { Outcome::Quiet };
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why: why.join("; ") }
    }
}
