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
//! among the `n` history events (actions in `history` within `window`
//! before the event: never the event itself or anything after it). The
//! baseline is kept by day (for a window of two days or more; by hour for
//! two hours or more, else by minute), and a day leaves it whole: at an
//! event of day `d`, a 180-day window holds days `d - 180` to `d`, up to
//! the event. Kept by day, a baseline is a few counts per day, whatever the
//! number of events, which is what a daily run carries from one run to the
//! next. The
//! probability of `v` is smoothed toward the population's distribution
//! `pi_v` (over all accounts' history events of the `window`'s days before
//! the event's day: [`crate::facts::prior`]) with `smoothing` pseudo-events:
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
//! `target_author`). The population distribution is read as of the day
//! before the event: a new trend that everyone takes up today is still
//! rare for the population until tomorrow.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::Arc;

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF};

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{Cause, Ev, Horizon, Need, Needs, Num, Outcome, Persist, Signal, Universe, Why, fmt_prob, sorted};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
pub use crate::facts::prior::Feature;
use crate::facts::prior::{self, Prior};
use crate::intern::{Interner, Sym, SymMap};
use crate::rules::diag::Code;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{DAY, HOUR, MINUTE, Millis, compact_duration, day_of, days_covering, format_rfc3339};

/// The feature's values for an event's target, into `out`.
fn values_at(f: Feature, e: &Ev<'_>, out: &mut Vec<Sym>) {
    let author = e.data.events.sym(crate::data::schema::ev::TARGET_AUTHOR, e.i);
    f.values_of(e.target(), author, &e.data.items, out);
}

/// The kind.
pub struct OffPattern;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("features", Ty::List, D::List(&["labels"]), "any of `labels`, `author`, `lang`"),
    key("history", Ty::List, D::List(&["like", "repost", "reply", "post"]), "actions forming the baseline"),
    key("window", Ty::Duration, D::Duration(180 * DAY), "how far back the baseline reaches"),
    key("min_history", Ty::Count { min: 0, max: 1_000_000 }, D::Count(20), "fewer history events: abstain"),
    key("max_probability", Ty::Number { min: 1e-9, max: 1.0 }, D::Number(0.02), "at or below: off pattern"),
    key(
        "smoothing",
        Ty::Number { min: 0.0, max: 1e6 },
        D::Number(10.0),
        "pseudo-events from the population distribution",
    ),
    key("burst_window", Ty::Duration, D::Duration(0), "novel events this close form a burst (`0s`: no burst factor)"),
    opt(
        "full_surprise",
        Ty::Number { min: 0.1, max: 300.0 },
        D::Number(4.0),
        "burst surprise (`-log10` probability) for a factor of 1",
    ),
    key(
        "novelty_prior",
        Ty::Custom("a number from 1e-6 to 1, or \"good_turing\""),
        D::Number(0.05),
        "novelty rate assumed without history, or `\"good_turing\"`",
    ),
    key("novelty_smoothing", Ty::Number { min: 0.0, max: 1e6 }, D::Number(20.0), "pseudo-events of `novelty_prior`"),
    opt(
        "max_burst",
        Ty::Count { min: 0, max: 1_000_000 },
        D::Count(10),
        "a burst counts as at most this many events (`0`: no limit)",
    ),
    key("return_window", Ty::Duration, D::Duration(0), "look-ahead for a return to the value (`0s`: none)"),
    opt("return_after", Ty::Duration, D::Duration(6 * HOUR), "sooner than this is the same sitting, not a return"),
];

/// The parameters the per-account state depends on: the baseline, the
/// novelty judgement of history events, the burst and the look-ahead.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Which properties of the target to judge.
    pub features: Vec<Feature>,
    /// Actions forming the baseline.
    pub history: Vec<String>,
    /// How far back the baseline reaches.
    pub window: Millis,
    /// History needed before the signal speaks.
    pub min_history: u64,
    /// Probability at or below which a value is off pattern.
    pub max_probability: Num,
    /// Pseudo-events drawn from the population distribution.
    pub smoothing: Num,
    /// Novel events this close before the event form its burst (0: the
    /// burst is not judged).
    pub burst_window: Millis,
    /// Novelty rate assumed before an account has a history of its own:
    /// a fixed rate, or (`None`, written `"good_turing"`) the account's own
    /// Good–Turing estimate of how often it engages with a value it never
    /// engaged with before, `(N1 + 1) / (n + 2)` over its baseline.
    pub novelty_prior: Option<Num>,
    /// Pseudo-events of `novelty_prior` in an account's novelty rate.
    pub novelty_smoothing: Num,
    /// How far to look ahead for the account engaging with the value again
    /// (0: no look-ahead).
    pub return_window: Millis,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// Surprise (`-log10` of the burst's probability) at which the burst
    /// factor reaches 1.
    pub full_surprise: f64,
    /// A burst counts as at most this many events, keeping its share of
    /// novel ones (0: no limit).
    pub max_burst: u64,
    /// Engagement sooner than this after the event is not a return (it is
    /// the same sitting).
    pub return_after: Millis,
}

/// Reads `novelty_prior`: a number in (0, 1], or `"good_turing"`.
fn novelty_prior(r: &mut ParamReader<'_, '_, '_, '_>) -> Option<Num> {
    let fallback = Some(Num(0.05));
    let value = match r.raw("novelty_prior") {
        None => fallback,
        Some(v) => match v.get_ref() {
            toml::de::DeValue::String(text) if text == "good_turing" => None,
            toml::de::DeValue::String(text) => {
                let msg = format!("`novelty_prior` is \"{text}\": a number from 1e-6 to 1, or \"good_turing\"");
                r.ctx().report(Code::BadValue, v.span(), msg);
                fallback
            }
            other => match crate::rules::reader::as_number(other) {
                Some(x) if (1e-6..=1.0).contains(&x) => Some(Num(x)),
                _ => {
                    r.ctx().report(
                        Code::BadValue,
                        v.span(),
                        "`novelty_prior` must be a number from 1e-6 to 1, or \"good_turing\"",
                    );
                    fallback
                }
            },
        },
    };
    r.describe("novelty_prior", value.map_or_else(|| "good_turing".into(), |x| super::spec::show_number(x.0)));
    value
}

/// How sure the baseline is that the account's own rate of a value is at
/// most `max_probability`: with `c` of `n` history events carrying it and a
/// population share `pi`, the account's rate has the posterior
/// `Beta(c + smoothing * pi, n - c + smoothing * (1 - pi))`, and the
/// strength is `2 * P[rate <= max_probability] - 1` (0 when the posterior
/// mean is at the threshold, 1 when all of it is below). A value rare in
/// the population is confidently rare for a short history too; a common
/// one needs history to be called off pattern.
fn confidence(t: &Tracker, c: u32, n: u64, pi: f64) -> f64 {
    let a = (f64::from(c) + t.smoothing * pi).max(1e-9);
    let b = (n as f64 - f64::from(c) + t.smoothing * (1.0 - pi)).max(1e-9);
    let below = Beta::new(a, b).map_or(0.5, |d| d.cdf(t.max_probability));
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

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    features: Vec<Feature>,
    history: Vec<Sym>,
    priors: Vec<Arc<prior::Value>>,
    window: Millis,
    min_history: u64,
    max_probability: f64,
    smoothing: f64,
    burst_window: Millis,
    novelty_prior: Option<f64>,
    novelty_smoothing: f64,
    return_window: Millis,
    /// The width of the baseline's buckets, and how many of them before
    /// the current one it holds.
    bucket: Millis,
    buckets: i64,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
}

/// A feature value: (feature index in `Key::features`, value).
type Value = (u8, Sym);

/// What the baseline says about one event's target.
#[derive(Clone, Debug, Default)]
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

/// A fired verdict waiting on the look-ahead: a history event of the
/// account carrying one of `values`, after `from` and up to `to`, takes it
/// back; once the data reaches past `to`, its words say so (made from the
/// verdict's own words when it is settled, not kept twice).
#[derive(Clone, Debug)]
pub struct Watch {
    values: Vec<Value>,
    from: Millis,
    to: Millis,
}

impl Persist for Watch {
    fn save(&self, w: &mut Enc<'_>) {
        save_values(&self.values, w);
        w.time(self.from);
        w.time(self.to);
    }

    fn load(r: &mut Dec<'_>) -> Result<Watch, CodecError> {
        let values = load_values(r)?;
        let (from, to) = (r.time()?, r.time()?);
        if r.carry_version() < 2 {
            // Version 1 kept the verdict's words before and after the
            // look-ahead's here too.
            r.text()?;
            r.text()?;
        }
        Ok(Watch { values, from, to })
    }
}

/// What a fired verdict says, as numbers: made into words only when a hit
/// is written ([`Words::text`]). A verdict waits for its look-ahead
/// (`return_window`, 30 days in the shipped rules), so a daily state keeps
/// many of them per account: as numbers, each takes tens of bytes, where
/// its words took hundreds. It holds every number its words show, the
/// windows included, so the words read the same in any later run.
#[derive(Clone, Debug, PartialEq)]
pub struct Words {
    /// The history's window (`180-day`).
    window: Millis,
    /// Per off-pattern feature: the feature, its values (labels: all of
    /// the event's labels it found novel), the deciding value, that value's
    /// count in the history, the history's size, the probability.
    off: Vec<OffWords>,
    /// The look-ahead: its length, its end, and whether it is settled
    /// (the end passed with no return).
    look_ahead: Option<(Millis, Millis, bool)>,
    /// The burst's numbers, when the rule looks at bursts.
    burst: Option<BurstWords>,
}

/// One off-pattern feature of [`Words`].
#[derive(Clone, Debug, PartialEq)]
struct OffWords {
    feature: Feature,
    names: Vec<Sym>,
    best: Sym,
    count: u32,
    of: u64,
    probability: f64,
}

/// The burst clause of [`Words`].
#[derive(Clone, Debug, PartialEq)]
struct BurstWords {
    window: Millis,
    novel: u64,
    judged: u64,
    values: u64,
    rate: f64,
    before_novel: u64,
    before_judged: u64,
    probability: f64,
}

impl Words {
    /// The words, as the verdict says them.
    pub fn text(&self, strings: &Interner) -> String {
        let mut why = Vec::new();
        for o in &self.off {
            let what = match o.feature {
                Feature::Labels if o.names.len() > 1 => {
                    let mut names: Vec<&str> = o.names.iter().map(|&n| strings.resolve(n)).collect();
                    names.sort_unstable();
                    format!(
                        "labels {} have probability at most",
                        names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                    )
                }
                Feature::Labels => format!("label '{}' has probability", strings.resolve(o.best)),
                Feature::Author => format!("author {} has probability", strings.resolve(o.best)),
                Feature::Lang => format!("language '{}' has probability", strings.resolve(o.best)),
            };
            why.push(format!(
                "{what} {} in this account's {} history ({} of {} events)",
                fmt_prob(o.probability),
                window_words(self.window),
                o.count,
                o.of,
            ));
        }
        if let Some((length, to, settled)) = self.look_ahead {
            why.push(look_ahead_words(length, to, settled));
        }
        if let Some(b) = &self.burst {
            why.push(format!(
                "{} of {} judged like{} in the last {} novel, across {} value{}; \
                 before them this account's likes were novel at a rate of {} ({} of {}), so a burst like this has probability {}",
                b.novel,
                b.judged,
                if b.judged == 1 { "" } else { "s" },
                compact_duration(b.window),
                b.values,
                if b.values == 1 { "" } else { "s" },
                fmt_prob(b.rate),
                b.before_novel,
                b.before_judged,
                fmt_prob(b.probability),
            ));
        }
        why.join("; ")
    }

    /// Writes it.
    pub fn save(&self, w: &mut Enc<'_>) {
        w.time(self.window);
        w.count(self.off.len());
        for o in &self.off {
            w.u8(o.feature as u8);
            w.count(o.names.len());
            for &n in &o.names {
                w.sym(n);
            }
            w.sym(o.best);
            w.u64(u64::from(o.count));
            w.u64(o.of);
            w.f64(o.probability);
        }
        w.bool(self.look_ahead.is_some());
        if let Some((length, to, settled)) = self.look_ahead {
            w.time(length);
            w.time(to);
            w.bool(settled);
        }
        w.bool(self.burst.is_some());
        if let Some(b) = &self.burst {
            w.time(b.window);
            for n in [b.novel, b.judged, b.values] {
                w.u64(n);
            }
            w.f64(b.rate);
            w.u64(b.before_novel);
            w.u64(b.before_judged);
            w.f64(b.probability);
        }
    }

    /// Reads what [`Words::save`] wrote.
    pub fn load(r: &mut Dec<'_>) -> Result<Words, CodecError> {
        let window = r.time()?;
        let mut off = Vec::new();
        for _ in 0..r.count()? {
            let feature = match r.u8()? {
                0 => Feature::Labels,
                1 => Feature::Author,
                2 => Feature::Lang,
                k => return Err(CodecError(format!("an off_pattern feature of kind {k}"))),
            };
            let names = (0..r.count()?).map(|_| r.sym()).collect::<Result<Vec<_>, _>>()?;
            let best = r.sym()?;
            off.push(OffWords { feature, names, best, count: r.u32()?, of: r.u64()?, probability: r.f64()? });
        }
        let look_ahead = if r.bool()? { Some((r.time()?, r.time()?, r.bool()?)) } else { None };
        let burst = if r.bool()? {
            Some(BurstWords {
                window: r.time()?,
                novel: r.u64()?,
                judged: r.u64()?,
                values: r.u64()?,
                rate: r.f64()?,
                before_novel: r.u64()?,
                before_judged: r.u64()?,
                probability: r.f64()?,
            })
        } else {
            None
        };
        Ok(Words { window, off, look_ahead, burst })
    }
}

/// The look-ahead's words while the account may still engage with the
/// values again (provisional), and once it can no longer.
fn look_ahead_words(length: Millis, to: Millis, settled: bool) -> String {
    if settled {
        format!("not engaged with again in the {} after (look-ahead)", compact_duration(length))
    } else {
        format!(
            "not engaged with again yet (look-ahead {}: provisional until {})",
            compact_duration(length),
            format_rfc3339(to)
        )
    }
}

/// Writes feature values.
fn save_values(values: &[Value], w: &mut Enc<'_>) {
    w.count(values.len());
    for &(k, v) in values {
        w.u8(k);
        w.sym(v);
    }
}

/// Reads what [`save_values`] wrote.
fn load_values(r: &mut Dec<'_>) -> Result<Vec<Value>, CodecError> {
    (0..r.count()?).map(|_| Ok((r.u8()?, r.sym()?))).collect()
}

/// A history event in the burst window: when, whether it was judged, and
/// its values if it was novel (then it is not yet in the baseline).
#[derive(Debug)]
struct Recent {
    ts: Millis,
    judged: bool,
    novel: Vec<Value>,
}

/// What the history events of one bucket of time (a day, for windows of
/// days) added to the baseline, for taking it out again when the bucket
/// leaves the window.
#[derive(Debug, Default)]
struct Bucket {
    /// The bucket's number (time divided by the bucket width).
    at: i64,
    /// (feature index, value, count).
    values: Vec<(u8, Sym, u32)>,
    /// Per feature: history events with the feature known.
    known: Vec<u32>,
    /// Judged and novel history events.
    judged: u32,
    novel: u32,
}

/// Per-account baseline: counts of each feature value over the window,
/// kept by bucket of time, the account's own novelty rate, and its recent
/// burst.
#[derive(Debug, Default)]
pub struct State {
    /// The buckets of the window, oldest first.
    buckets: VecDeque<Bucket>,
    /// Per feature (in `Key::features` order): value counts and the
    /// number of history events with the feature known, over the buckets.
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
    /// The event the state was last advanced to, and its judgement once
    /// asked for (by a rule or by `observe`: computed once per event).
    current: Option<(usize, OnceCell<Judgement>)>,
    /// Buffers for an event's values.
    scratch: (Vec<Sym>, Vec<Value>),
}

/// The width of the buckets a baseline of `window` is kept in: a day for a
/// window of two days or more, an hour for one of two hours or more, else
/// a minute.
fn bucket_width(window: Millis) -> Millis {
    if window >= 2 * DAY {
        DAY
    } else if window >= 2 * HOUR {
        HOUR
    } else {
        MINUTE
    }
}

impl Tracker {
    /// Every feature value of `e`'s target, by feature index, into `out`.
    fn event_values(&self, e: &Ev<'_>, syms: &mut Vec<Sym>, out: &mut Vec<Value>) {
        out.clear();
        for (k, &f) in self.features.iter().enumerate() {
            values_at(f, e, syms);
            out.extend(syms.iter().map(|&v| (k as u8, v)));
        }
    }

    /// Adds (`delta` 1) or takes out (-1) one value of feature `k`.
    fn count(s: &mut State, k: u8, v: Sym, delta: i32) {
        let (counts, _) = &mut s.counts[k as usize];
        let singles = &mut s.singles[k as usize];
        let c = counts.entry(v).or_default();
        let before = *c;
        *c = c.wrapping_add_signed(delta);
        *singles = singles.wrapping_add_signed(i32::from(*c == 1) - i32::from(before == 1));
        if *c == 0 {
            counts.remove(&v);
        }
    }

    /// Moves history events older than `burst_window` into the baseline and
    /// drops the buckets that have left the window.
    fn evict(&self, s: &mut State, now: Millis) {
        let since = now.saturating_sub(self.burst_window);
        while s.burst.front().is_some_and(|r| r.ts < since) {
            let r = s.burst.pop_front().expect("checked");
            if !r.novel.is_empty() {
                self.enter_baseline(s, r.ts, &r.novel, r.judged, true);
            }
        }
        let oldest = now.div_euclid(self.bucket) - self.buckets;
        while s.buckets.front().is_some_and(|b| b.at < oldest) {
            let b = s.buckets.pop_front().expect("checked");
            s.judged -= b.judged;
            s.novel -= b.novel;
            for (k, n) in b.known.iter().enumerate() {
                s.counts[k].1 -= n;
            }
            for &(k, v, n) in &b.values {
                for _ in 0..n {
                    Tracker::count(s, k, v, -1);
                }
            }
        }
    }

    /// Adds a history event at `ts` with `values` to the baseline.
    fn enter_baseline(&self, s: &mut State, ts: Millis, values: &[Value], judged: bool, novel: bool) {
        let at = ts.div_euclid(self.bucket);
        let features = self.features.len();
        // The event's bucket: the last, or (for a burst event entering
        // late, after midnight) one before it.
        let i = match s.buckets.iter().rposition(|b| b.at <= at) {
            Some(i) if s.buckets[i].at == at => i,
            found => {
                let i = found.map_or(0, |i| i + 1);
                s.buckets.insert(i, Bucket { at, known: vec![0; features], ..Bucket::default() });
                i
            }
        };
        let b = &mut s.buckets[i];
        b.judged += u32::from(judged);
        b.novel += u32::from(novel);
        for k in 0..features as u8 {
            if values.iter().any(|v| v.0 == k) {
                b.known[k as usize] += 1;
            }
        }
        for &(k, v) in values {
            match b.values.iter_mut().find(|x| x.0 == k && x.1 == v) {
                Some(x) => x.2 += 1,
                None => b.values.push((k, v, 1)),
            }
        }
        s.judged += u32::from(judged);
        s.novel += u32::from(novel);
        for k in 0..features as u8 {
            if values.iter().any(|v| v.0 == k) {
                s.counts[k as usize].1 += 1;
            }
        }
        for &(k, v) in values {
            Tracker::count(s, k, v, 1);
        }
    }

    /// Judges the event's target against the baseline (events before it).
    fn judge(&self, s: &State, e: &Ev<'_>) -> Judgement {
        let mut j = Judgement::default();
        let mut values = Vec::new();
        let day = day_of(e.ts);
        for (k, (f, prior)) in self.features.iter().zip(&self.priors).enumerate() {
            values_at(*f, e, &mut values);
            if values.is_empty() {
                continue;
            }
            let (counts, n) = &s.counts[k];
            let n = u64::from(*n);
            // Too little history of its own, or none of the population's
            // (the first day of the data): no judgement.
            if n < self.min_history || !prior.known(day) {
                j.abstained = true;
                continue;
            }
            // The most familiar of the target's values decides.
            let (best, c, prob) = values
                .iter()
                .map(|&v| {
                    let c = counts.get(&v).copied().unwrap_or(0);
                    (v, c, (f64::from(c) + self.smoothing * prior.of(v, day)) / (n as f64 + self.smoothing))
                })
                .max_by(|a, b| a.2.total_cmp(&b.2).then_with(|| e.text(b.0).cmp(e.text(a.0))))
                .expect("values is not empty");
            if prob > self.max_probability {
                j.familiar = true;
                continue;
            }
            j.off.push((k as u8, best, c, n, prob));
            j.values.extend(values.iter().map(|&v| (k as u8, v)));
        }
        j
    }

    /// The judgement of event `e` (the state was advanced to it).
    fn judgement<'s>(&self, s: &'s State, e: &Ev<'_>) -> &'s Judgement {
        let (i, cell) = s.current.as_ref().expect("the state is advanced before an event is judged");
        assert_eq!(*i, e.i, "the state is advanced to the event judged");
        cell.get_or_init(|| self.judge(s, e))
    }

    /// The burst factor: how surprising the recent burst of novelty is for
    /// this account, and its words. `values` are the event's novel values.
    fn burst(&self, o: &Opts, s: &State, values: &[Value], words: bool) -> (f64, Option<BurstWords>) {
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
        let prior = self.novelty_prior.unwrap_or_else(|| {
            let (n, singles) = (s.counts[0].1, s.singles[0]);
            (f64::from(singles + 1) / f64::from(n + 2)).min(1.0)
        });
        let rate =
            (f64::from(s.novel) + self.novelty_smoothing * prior) / (f64::from(s.judged) + self.novelty_smoothing);
        // A sitting's likes are not independent draws: a burst counts as at
        // most `max_burst` events, keeping its share of novel ones.
        let (trials, successes) = if o.max_burst > 0 && judged > o.max_burst {
            let k = (novel as f64 * o.max_burst as f64 / judged as f64).round() as u64;
            (o.max_burst, k.max(1))
        } else {
            (judged, novel)
        };
        // P[Binomial(trials, rate) >= successes].
        let tail = Binomial::new(rate, trials).map_or(1.0, |b| b.sf(successes - 1));
        let surprise = -tail.max(1e-300).log10();
        let factor = (surprise / o.full_surprise).min(1.0);
        if !words {
            return (factor, None);
        }
        let words = BurstWords {
            window: self.burst_window,
            novel,
            judged,
            values: seen.len() as u64,
            rate,
            before_novel: u64::from(s.novel),
            before_judged: u64::from(s.judged),
            probability: tail,
        };
        (factor, Some(words))
    }
}

impl Signal for OffPattern {
    const NAME: &'static str = "off_pattern";
    const FAMILY: Option<&'static str> = Some("content");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = Watch;

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let list = r.spanned_list("features");
        let mut features = Vec::new();
        for f in &list.value {
            match Feature::named(&f.value) {
                Some(feature) => features.push(feature),
                None => r.unknown_name(f, "off_pattern feature", &Feature::NAMES),
            }
        }
        if list.value.is_empty() {
            r.ctx().report(Code::BadValue, list.span.clone(), "`features` must name at least one feature");
        }
        features.sort();
        features.dedup();
        let key = Key {
            features,
            history: r.list("history"),
            window: r.duration("window"),
            min_history: r.count("min_history"),
            max_probability: Num(r.number("max_probability")),
            smoothing: Num(r.number("smoothing")),
            burst_window: r.duration("burst_window"),
            novelty_prior: novelty_prior(r),
            novelty_smoothing: Num(r.number("novelty_smoothing")),
            return_window: r.duration("return_window"),
        };
        let opts = Opts {
            full_surprise: r.number("full_surprise"),
            max_burst: r.count("max_burst"),
            return_after: r.duration("return_after"),
        };
        (key, opts)
    }

    fn needs(key: &Key, _opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action", "target"]);
        for f in &key.features {
            match f {
                Feature::Labels => n.read(TableKind::Items, &["id", "labels"]),
                Feature::Lang => n.read(TableKind::Items, &["id", "lang"]),
                Feature::Author => {
                    n.read(TableKind::Events, &["target_author"]).read(TableKind::Items, &["id", "author"])
                }
            };
            n.facts.push(Need::Fact(
                prior::Key { feature: *f, history: sorted(&key.history), days: days_covering(key.window) }.into(),
            ));
        }
        n.reach = key.window;
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        let history = sorted(&key.history);
        Tracker {
            features: key.features.clone(),
            history: u.resolve_all(&key.history),
            priors: key
                .features
                .iter()
                .map(|&feature| {
                    u.fact::<Prior>(&prior::Key { feature, history: history.clone(), days: days_covering(key.window) })
                })
                .collect(),
            window: key.window,
            min_history: key.min_history,
            max_probability: key.max_probability.0,
            smoothing: key.smoothing.0,
            burst_window: key.burst_window,
            novelty_prior: key.novelty_prior.map(|x| x.0),
            novelty_smoothing: key.novelty_smoothing.0,
            return_window: key.return_window,
            bucket: bucket_width(key.window),
            buckets: key.window.div_euclid(bucket_width(key.window))
                + i64::from(key.window.rem_euclid(bucket_width(key.window)) > 0),
        }
    }

    fn judge(_key: &Key, opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone() }
    }

    fn new_state(t: &Tracker) -> State {
        let n = t.features.len();
        State { counts: (0..n).map(|_| (SymMap::default(), 0)).collect(), singles: vec![0; n], ..State::default() }
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.buckets.clear();
        for (c, n) in &mut s.counts {
            c.clear();
            *n = 0;
        }
        s.singles.iter_mut().for_each(|x| *x = 0);
        (s.judged, s.novel) = (0, 0);
        s.burst.clear();
        s.current = None;
    }

    fn advance(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        t.evict(s, e.ts);
        s.current = Some((e.i, OnceCell::new()));
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let o = &j.opts;
        let jm = t.judgement(s, e);
        if jm.familiar {
            return Outcome::Quiet;
        }
        if jm.off.is_empty() {
            return if jm.abstained { Outcome::Abstain } else { Outcome::Quiet };
        }
        let mut strength = f64::INFINITY;
        let mut off = Vec::new();
        for &(k, best, count, of, probability) in &jm.off {
            let feature = t.features[k as usize];
            strength = strength.min(confidence(t, count, of, t.priors[k as usize].of(best, day_of(e.ts))));
            if e.words {
                let names = if feature == Feature::Labels {
                    jm.values.iter().filter(|x| x.0 == k).map(|x| x.1).collect()
                } else {
                    Vec::new()
                };
                off.push(OffWords { feature, names, best, count, of, probability });
            }
        }
        let mut burst = None;
        if t.burst_window > 0 {
            let factor;
            (factor, burst) = t.burst(o, s, &jm.values, e.words);
            strength *= factor;
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        if !e.words {
            return Outcome::Fire { strength, why: Why::default() };
        }
        let look_ahead = (t.return_window > 0).then(|| (t.return_window, e.ts.saturating_add(t.return_window), false));
        let words = Words { window: t.window, off, look_ahead, burst };
        Outcome::Fire { strength, why: Why::OffPattern(Box::new(words)) }
    }

    fn horizon(key: &Key, _opts: &Opts) -> Horizon {
        Horizon { adds: 0, revokes: key.return_window }
    }

    /// With a look-ahead, a fired verdict waits: the account engaging with
    /// one of its values again after `return_after` and within
    /// `return_window` takes it back ([`Watch`]).
    fn later(j: &Judge, t: &Tracker, s: &State, e: &Ev<'_>, said: &Outcome) -> Option<Watch> {
        if !matches!(said, Outcome::Fire { .. }) || t.return_window == 0 {
            return None;
        }
        Some(Watch {
            values: t.judgement(s, e).values.clone(),
            from: e.ts.saturating_add(j.opts.return_after),
            to: e.ts.saturating_add(t.return_window),
        })
    }

    fn revise(_j: &Judge, t: &Tracker, w: &mut Watch, cause: &Cause<'_>, said: &Outcome) -> Option<Outcome> {
        // The words of the verdict as given, their look-ahead said as
        // settled (words made by a build before verdicts kept numbers: the
        // clause replaced in the text; absent when given without words).
        let settled = |said: &Outcome| match said {
            Outcome::Fire { strength, why: Why::OffPattern(words) } => {
                let mut words = words.clone();
                if let Some(look_ahead) = &mut words.look_ahead {
                    look_ahead.2 = true;
                }
                Some(Outcome::Fire { strength: *strength, why: Why::OffPattern(words) })
            }
            Outcome::Fire { strength, why: Why::Text(why) } => {
                let clause = look_ahead_words(t.return_window, w.to, false);
                let (before, after) = why.split_once(&clause).unwrap_or((why, ""));
                Some(Outcome::Fire {
                    strength: *strength,
                    why: Why::Text(format!("{before}{}{after}", look_ahead_words(t.return_window, w.to, true))),
                })
            }
            other => Some(other.clone()),
        };
        match *cause {
            Cause::Event(e) if e.ts > w.to => settled(said),
            Cause::Event(e) if e.ts > w.from && t.history.contains(&e.action) => {
                let mut found = Vec::new();
                let returned = w.values.iter().any(|&(k, v)| {
                    values_at(t.features[k as usize], e, &mut found);
                    found.contains(&v)
                });
                // Taken back for good: nothing can change it now.
                returned.then(|| {
                    w.to = Millis::MIN;
                    Outcome::Quiet
                })
            }
            Cause::End(end) if end >= w.to => settled(said),
            _ => None,
        }
    }

    fn deadline(w: &Watch) -> Millis {
        w.to
    }

    /// The buckets still in the window at `now` (the counts are theirs
    /// summed, rebuilt on loading) and the burst.
    fn save(t: &Tracker, s: &State, now: Millis, w: &mut Enc<'_>) {
        let oldest = now.div_euclid(t.bucket) - t.buckets;
        let kept: Vec<&Bucket> = s.buckets.iter().filter(|b| b.at >= oldest).collect();
        w.count(kept.len());
        // Each bucket's number after the first as its distance from the
        // one before (buckets are kept in order): a byte, not three.
        let mut before = None;
        for b in kept {
            match before {
                None => w.i64(b.at),
                Some(p) => w.u64((b.at - p) as u64),
            }
            before = Some(b.at);
            let mut values = b.values.clone();
            values.sort_by_cached_key(|x| (x.0, w.text_of(x.1)));
            w.count(values.len());
            for (k, v, n) in values {
                w.u8(k);
                w.sym(v);
                w.u64(u64::from(n));
            }
            for &n in &b.known {
                w.u64(u64::from(n));
            }
            w.u64(u64::from(b.judged));
            w.u64(u64::from(b.novel));
        }
        w.count(s.burst.len());
        for r in &s.burst {
            w.time(r.ts);
            w.bool(r.judged);
            save_values(&r.novel, w);
        }
    }

    fn load(t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        let features = t.features.len();
        let feature = |k: u8| -> Result<u8, CodecError> {
            if (k as usize) < features { Ok(k) } else { Err(CodecError(format!("feature {k} of {features}"))) }
        };
        let mut before: Option<i64> = None;
        for _ in 0..r.count()? {
            // Version 4 on: each bucket after the first as its distance
            // from the one before.
            let at = match before {
                Some(p) if r.carry_version() >= 4 => {
                    let d = r.u64()?;
                    i64::try_from(d).ok().filter(|&d| d > 0).and_then(|d| p.checked_add(d))
                }
                _ => Some(r.i64()?),
            };
            let at = at.ok_or_else(|| CodecError("a baseline bucket out of order".into()))?;
            before = Some(at);
            let mut b = Bucket { at, ..Bucket::default() };
            for _ in 0..r.count()? {
                b.values.push((feature(r.u8()?)?, r.sym()?, r.u32()?));
            }
            b.known = (0..features).map(|_| r.u32()).collect::<Result<_, _>>()?;
            (b.judged, b.novel) = (r.u32()?, r.u32()?);
            for &(k, v, n) in &b.values {
                *s.counts[k as usize].0.entry(v).or_default() += n;
            }
            for (k, &n) in b.known.iter().enumerate() {
                s.counts[k].1 += n;
            }
            s.judged += b.judged;
            s.novel += b.novel;
            s.buckets.push_back(b);
        }
        for (k, (counts, _)) in s.counts.iter().enumerate() {
            s.singles[k] = counts.values().filter(|&&c| c == 1).count() as u32;
        }
        for _ in 0..r.count()? {
            let (ts, judged) = (r.time()?, r.bool()?);
            let novel = load_values(r)?;
            if novel.iter().any(|v| v.0 as usize >= features) {
                return Err(CodecError("a burst value of an unknown feature".into()));
            }
            s.burst.push_back(Recent { ts, judged, novel });
        }
        Ok(())
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        if !t.history.contains(&e.action) {
            return;
        }
        if t.burst_window > 0 {
            let asked = match s.current.take() {
                Some((i, cell)) if i == e.i => cell.into_inner(),
                _ => None,
            };
            let jm = asked.unwrap_or_else(|| t.judge(s, e));
            let judged = jm.judged();
            let novel = if jm.novel() { jm.values } else { Vec::new() };
            if novel.is_empty() {
                let (mut syms, mut values) = std::mem::take(&mut s.scratch);
                t.event_values(e, &mut syms, &mut values);
                t.enter_baseline(s, e.ts, &values, judged, false);
                s.scratch = (syms, values);
            }
            s.burst.push_back(Recent { ts: e.ts, judged, novel });
        } else {
            let (mut syms, mut values) = std::mem::take(&mut s.scratch);
            t.event_values(e, &mut syms, &mut values);
            t.enter_baseline(s, e.ts, &values, false, false);
            s.scratch = (syms, values);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A waiting verdict's look-ahead as version 2 writes it, and as
    /// version 1 did (with a copy of the verdict's words before and after
    /// the look-ahead's clause): both read whole.
    #[test]
    fn a_watch_reads_in_both_versions() {
        let strings = Interner::new();
        let watch = Watch { values: Vec::new(), from: 5, to: 9 };
        for version in [1u8, 2] {
            let mut w = Enc::new(&strings);
            watch.save(&mut w);
            if version == 1 {
                w.text("label 'x' has probability 0.01; ");
                w.text("");
            }
            w.u8(0xaa);
            let (table, body) = crate::state::codec::unpack(&w.finish()).unwrap();
            assert!(table.len() <= 1);
            let mut r = Dec::with_syms(&body, Vec::new());
            r.set_carry_version(version);
            let read = Watch::load(&mut r).unwrap();
            assert_eq!((read.from, read.to, read.values.len()), (5, 9, 0), "version {version}");
            assert_eq!(r.u8().unwrap(), 0xaa, "version {version}: what follows the watch");
        }
    }

    /// A baseline's buckets read back as saved: version 4 writes each
    /// bucket after the first as its distance from the one before; the
    /// numbers version 3 wrote whole still read; a distance of zero (two
    /// buckets of one day) is an error, not a baseline out of order.
    #[test]
    fn buckets_read_back_in_both_versions() {
        let mut strings = Interner::new();
        let label = strings.intern("music");
        let t = Tracker {
            features: vec![Feature::Labels],
            history: Vec::new(),
            priors: Vec::new(),
            window: 180 * DAY,
            min_history: 3,
            max_probability: 0.05,
            smoothing: 5.0,
            burst_window: 0,
            novelty_prior: None,
            novelty_smoothing: 20.0,
            return_window: 0,
            bucket: DAY,
            buckets: 180,
        };
        let data = Dataset::from_jsonl(&[(TableKind::Events, "")], false).unwrap();
        let days = [19_800i64, 19_801, 19_870];
        let bucket = |at: i64| Bucket { at, values: vec![(0, label, 2)], known: vec![2], judged: 1, novel: 0 };
        let mut saved = OffPattern::new_state(&t);
        saved.buckets = days.iter().map(|&d| bucket(d)).collect();
        let now = 19_871 * DAY;
        // What version 3 wrote: every bucket's number whole.
        let v3 = |w: &mut Enc<'_>, days: &[i64]| {
            w.count(days.len());
            for &d in days {
                w.i64(d);
                w.count(1);
                w.u8(0);
                w.sym(label);
                w.u64(2);
                w.u64(2);
                w.u64(1);
                w.u64(0);
            }
            w.count(0);
        };
        let read = |version: u8, write: &dyn Fn(&mut Enc<'_>)| {
            let mut w = Enc::new(&strings);
            write(&mut w);
            let payload = w.finish();
            // The payload's one string is the label.
            let (_, body) = crate::state::codec::unpack(&payload).unwrap();
            let mut r = Dec::with_syms(&body, vec![label]);
            r.set_carry_version(version);
            let mut s = OffPattern::new_state(&t);
            OffPattern::load(&t, &mut s, &mut r, &data).map(|()| (s, body.len()))
        };
        let (v4, v4_len) = read(4, &|w| OffPattern::save(&t, &saved, now, w)).unwrap();
        let (old, v3_len) = read(3, &|w| v3(w, &days)).unwrap();
        for s in [&v4, &old] {
            assert_eq!(s.buckets.iter().map(|b| b.at).collect::<Vec<_>>(), days);
            assert_eq!(s.counts[0].0.get(&label), Some(&6));
            assert_eq!(s.judged, 3);
        }
        assert!(v4_len + 4 <= v3_len, "two distances of a byte each, not numbers of three: {v4_len} vs {v3_len}");
        let mut twice = OffPattern::new_state(&t);
        twice.buckets = [bucket(19_800), bucket(19_800)].into_iter().collect();
        let err = read(4, &|w| OffPattern::save(&t, &twice, now, w)).unwrap_err();
        assert!(err.0.contains("out of order"), "{err}");
    }

    /// The numbers of a real alert's off_pattern verdict.
    fn sample(strings: &mut Interner) -> Words {
        let label = strings.intern("state-media");
        let to = crate::time::parse_timestamp("2024-04-30T06:34:00Z").unwrap();
        let off = OffWords {
            feature: Feature::Labels,
            names: vec![label],
            best: label,
            count: 0,
            of: 26,
            probability: 0.0033,
        };
        let burst = BurstWords {
            window: HOUR,
            novel: 1,
            judged: 2,
            values: 1,
            rate: 0.07,
            before_novel: 2,
            before_judged: 23,
            probability: 0.13,
        };
        Words { window: 180 * DAY, off: vec![off], look_ahead: Some((30 * DAY, to, false)), burst: Some(burst) }
    }

    /// A verdict's words as numbers, with its look-ahead provisional, and
    /// settled.
    pub(crate) fn provisional_and_settled(strings: &mut Interner) -> (Why, Why) {
        let words = sample(strings);
        let mut settled = words.clone();
        settled.look_ahead.as_mut().unwrap().2 = true;
        (Why::OffPattern(Box::new(words)), Why::OffPattern(Box::new(settled)))
    }

    /// A verdict's numbers say what the verdict said when it was given
    /// (the words of a real alert), as given and once its look-ahead is
    /// settled, before and after a trip through a payload, in a fifth of
    /// the bytes.
    #[test]
    fn words_read_back_and_say_what_the_verdict_said() {
        let mut strings = Interner::new();
        let words = sample(&mut strings);
        let said = "label 'state-media' has probability 0.0033 in this account's 180-day history (0 of 26 events); \
                    not engaged with again yet (look-ahead 30d: provisional until 2024-04-30T06:34:00Z); \
                    1 of 2 judged likes in the last 1h novel, across 1 value; before them this account's likes were \
                    novel at a rate of 0.070 (2 of 23), so a burst like this has probability 0.13";
        assert_eq!(words.text(&strings), said);
        let mut w = Enc::new(&strings);
        words.save(&mut w);
        w.u8(0xaa);
        let (table, body) = crate::state::codec::unpack(&w.finish()).unwrap();
        assert!(table.len() + body.len() < said.len() / 4, "{} + {} bytes", table.len(), body.len());
        let mut other = Interner::new();
        other.intern("something else first");
        let mut r = Dec::open(&table, &body, &mut other).unwrap();
        let mut read = Words::load(&mut r).unwrap();
        assert_eq!(r.u8().unwrap(), 0xaa, "what follows the words");
        assert_eq!(read.text(&other), said);
        read.look_ahead.as_mut().unwrap().2 = true;
        let settled = said.replace(
            "not engaged with again yet (look-ahead 30d: provisional until 2024-04-30T06:34:00Z)",
            "not engaged with again in the 30d after (look-ahead)",
        );
        assert_eq!(read.text(&other), settled);
    }
}
