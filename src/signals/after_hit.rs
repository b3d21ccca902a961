//! `after_hit`: the event follows up on an event another rule already hit.
//!
//! **What it detects.** An earlier event of the same account, at most
//! `within` before, was hit by one of `rules` (a hit *for* compromise), and
//! (with `same_target`, the default) it acted on the same target as this
//! event. The strength is that hit's strength (with `inherit_strength`, the
//! default), or 1 (a pure link: when the earlier hit's evidence is already
//! counted in another family, the follow-up should not count it twice).
//! This is how rules chain
//! evidence: "an unlike, an hour after the like, *of a like that was itself
//! unexposed and off pattern*".
//!
//! **Why it suggests compromise.** In the story behind changeling the
//! strongest evidence is the pair: likes the feed could not have shown,
//! removed one by one an hour later. Either half alone has innocent
//! explanations (people discover things; people regret likes); the owner
//! cleaning up after someone else explains both.
//!
//! With `coverage` above 0 the strength is multiplied by the share, to that
//! power, of the targets of the earlier hit's burst (hits of `rules` less
//! than `burst_gap` apart) that the account has followed up so far.
//!
//! **Parameters**: see [`PARAMS`]. Unknown rule ids are errors (E017),
//! since a typo would silently disable the rule; they are resolved to rule
//! numbers when the plan is compiled.
//!
//! ```toml
//! [[signal]]
//! kind = "after_hit"
//! rules = ["likes/unexposed-off-pattern"]
//! within = "48h"
//! ```
//!
//! **Known false positives.** Whatever the referenced rules' are; this
//! signal adds none of its own.

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{EarlierHit, Ev, Needs, Outcome, Signal, Universe};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::Effect;
use crate::rules::diag::Code;
use crate::rules::reader::Sp;
use crate::time::{HOUR, MINUTE, Millis, format_rfc3339};

/// The kind.
pub struct AfterHit;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("rules", Ty::List, D::Required, "rule ids whose hits count"),
    opt("within", Ty::Duration, D::Duration(48 * HOUR), "how far back the earlier hit may be"),
    opt("same_target", Ty::Bool, D::Bool(true), "the earlier hit must be on the same target"),
    opt("inherit_strength", Ty::Bool, D::Bool(true), "strength is the earlier hit's (else 1: a pure link)"),
    key(
        "coverage",
        Ty::Number { min: 0.0, max: 4.0 },
        D::Number(0.0),
        "weight of the share of the hit burst followed up so far",
    ),
    opt("burst_gap", Ty::Duration, D::Duration(15 * MINUTE), "hits of `rules` closer than this form one burst"),
];

/// The parameters the per-account state depends on: which rules' hits it
/// follows, and whether it records what the account did to their targets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Rule ids whose hits count, sorted.
    pub rules: Vec<String>,
    /// Their numbers in the plan (set when the plan is compiled).
    pub numbers: Vec<u32>,
    /// Whether the state records the account's events on hit targets
    /// (`coverage` above 0).
    pub track: bool,
    /// The coverage weight.
    pub coverage: super::Num,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// Rule ids as written, with where.
    pub written: Vec<Sp<String>>,
    /// How far back the earlier hit may be.
    pub within: Millis,
    /// Whether the earlier hit must be on the same target.
    pub same_target: bool,
    /// Whether the strength is the earlier hit's (else 1: a pure link).
    pub inherit_strength: bool,
    /// Hits of `rules` closer than this to each other form one burst.
    pub burst_gap: Millis,
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    key: Key,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
    /// Every rule id of the plan, by number (for the `why`).
    ids: Vec<String>,
}

/// Per-account state: with `coverage`, the (action, target) of the
/// account's events on targets that `rules` hit before (the scorer hands
/// the earlier hits themselves over).
#[derive(Debug, Default)]
pub struct State {
    acted: Vec<(Sym, Sym)>,
}

impl Tracker {
    fn counts(&self, h: &EarlierHit) -> bool {
        h.effect == Effect::For && self.key.numbers.contains(&h.rule)
    }

    /// The share of the burst of `rules` hits around `h0` whose targets the
    /// account has now acted on with this event's action (this event
    /// included): (followed up, hits).
    fn covered(&self, gap: Millis, s: &State, e: &Ev<'_>, h0: &EarlierHit) -> (usize, usize) {
        let hits: Vec<&EarlierHit> = e.hits.iter().filter(|h| self.counts(h)).collect();
        let Some(at) = hits.iter().position(|h| std::ptr::eq(*h, h0)) else { return (1, 1) };
        let mut lo = at;
        while lo > 0 && hits[lo].ts.saturating_sub(hits[lo - 1].ts) <= gap {
            lo -= 1;
        }
        let mut hi = at;
        while hi + 1 < hits.len() && hits[hi + 1].ts.saturating_sub(hits[hi].ts) <= gap {
            hi += 1;
        }
        let mut targets: Vec<Sym> = hits[lo..=hi].iter().filter_map(|h| h.target).collect();
        targets.sort_unstable();
        targets.dedup();
        let done = targets
            .iter()
            .filter(|&&t| Some(t) == e.target() || s.acted.iter().any(|&(a, x)| a == e.action && x == t))
            .count();
        (done.max(1), targets.len().max(1))
    }
}

impl Signal for AfterHit {
    const NAME: &'static str = "after_hit";
    const FAMILY: Option<&'static str> = None;
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let written = if r.raw("rules").is_some() {
            let listed = r.spanned_list("rules");
            if listed.value.is_empty() {
                r.ctx().report(Code::BadValue, listed.span, "`rules` must name at least one rule id");
            }
            listed.value
        } else {
            let span = r.span();
            r.ctx().report(
                Code::MissingKey,
                span.start..span.start + 1,
                "signal `after_hit` is missing required key `rules` (rule ids)",
            );
            Vec::new()
        };
        let mut rules: Vec<String> = written.iter().map(|r| r.value.clone()).collect();
        rules.sort();
        rules.dedup();
        let opts = Opts {
            written,
            within: r.duration("within"),
            same_target: r.flag("same_target"),
            inherit_strength: r.flag("inherit_strength"),
            burst_gap: r.duration("burst_gap"),
        };
        let coverage = r.number("coverage");
        let key = Key { rules, numbers: Vec::new(), track: coverage > 0.0, coverage: super::Num(coverage) };
        (key, opts)
    }

    fn needs(_key: &Key, opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["target"]);
        n.rules = opts.written.clone();
        n
    }

    fn resolve(key: &mut Key, _opts: &mut Opts, rules: &[String]) {
        key.numbers =
            rules.iter().enumerate().filter(|(_, id)| key.rules.contains(id)).map(|(i, _)| i as u32).collect();
    }

    fn tracker(key: &Key, _u: &Universe<'_>) -> Tracker {
        Tracker { key: key.clone() }
    }

    fn judge(_key: &Key, opts: &Opts, u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone(), ids: u.rule_ids.to_vec() }
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.acted.clear();
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        if !t.key.track {
            return;
        }
        if let Some(target) = e.target()
            && e.hits.iter().any(|h| t.counts(h) && h.target == Some(target))
        {
            s.acted.push((e.action, target));
        }
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let o = &j.opts;
        let target = e.target();
        if o.same_target && target.is_none() {
            return Outcome::Quiet;
        }
        let found = e
            .hits
            .iter()
            .rev()
            .take_while(|h| h.ts >= e.ts.saturating_sub(o.within))
            .find(|h| t.counts(h) && (!o.same_target || h.target == target));
        let Some(h) = found else { return Outcome::Quiet };
        let mut strength = if o.inherit_strength { h.strength } else { 1.0 };
        let covered = t.key.track.then(|| t.covered(o.burst_gap, s, e, h));
        if let Some((done, of)) = covered {
            strength *= (done as f64 / of as f64).powf(t.key.coverage.0);
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::fire(e, strength, || {
            let mut why = format!(
                "the {} of {} at {} was hit by {} (strength {})",
                e.text(h.action),
                h.target.map_or("-", |t| e.text(t)),
                format_rfc3339(h.ts),
                j.ids[h.rule as usize],
                h.strength
            );
            if let Some((done, of)) = covered {
                why.push_str(&format!("; {done} of the {of} targets that burst of hits was on followed up so far"));
            }
            why
        })
    }
}
