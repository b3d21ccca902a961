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
use super::{Cause, EarlierHit, Ev, Needs, Outcome, Persist, Signal, Universe, Why};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::Effect;
use crate::rules::diag::Code;
use crate::rules::reader::Sp;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{HOUR, MINUTE, Millis, format_rfc3339};

/// The kind.
pub struct AfterHit;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("rules", Ty::List, D::Required, "rule ids whose hits count"),
    key("within", Ty::Duration, D::Duration(48 * HOUR), "how far back the earlier hit may be"),
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
/// follows, and whether (and how far back) it records what the account did
/// to targets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Rule ids whose hits count, sorted.
    pub rules: Vec<String>,
    /// Their numbers in the plan (set when the plan is compiled).
    pub numbers: Vec<u32>,
    /// How far back the earlier hit may be (and what the account did is
    /// kept, with `coverage`).
    pub within: Millis,
    /// Whether the state records the account's events on targets
    /// (`coverage` above 0).
    pub track: bool,
    /// The coverage weight.
    pub coverage: super::Num,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// The rule ids as written, for diagnostics.
    pub written: Vec<Sp<String>>,
    /// The earlier hit must be on the same target.
    pub same_target: bool,
    /// Strength is the earlier hit's.
    pub inherit_strength: bool,
    /// Hits of `rules` closer than this form one burst.
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
    ids: Vec<String>,
    /// How long after their events the referenced rules' hits may still
    /// change (and this verdict with them).
    horizon: Millis,
}

/// Per-account state (with `coverage`): the account's events on targets
/// within `within`, (time, action, target), oldest first.
#[derive(Debug, Default)]
pub struct State {
    acted: std::collections::VecDeque<(Millis, Sym, Sym)>,
}

/// What a verdict is decided on, beside the account's earlier hits: the
/// event, and (with `coverage`) the account's earlier events on targets.
/// Kept while the earlier hits may still change.
#[derive(Clone, Debug)]
pub struct Context {
    ts: Millis,
    action: Sym,
    target: Option<Sym>,
    acted: Vec<(Millis, Sym, Sym)>,
    deadline: Millis,
}

impl Tracker {
    fn counts(&self, h: &EarlierHit) -> bool {
        h.effect == Effect::For && self.key.numbers.contains(&h.rule)
    }

    /// The share of the burst of `rules` hits around `h0` (an element of
    /// `hits`) whose targets the account has since acted on with this
    /// event's action (this event included): (followed up, hits).
    fn covered(&self, gap: Millis, cx: &Context, all: &[EarlierHit], found: usize) -> (usize, usize) {
        let counting: Vec<usize> = (0..all.len()).filter(|&i| self.counts(&all[i])).collect();
        let Some(at) = counting.iter().position(|&i| i == found) else { return (1, 1) };
        let hits: Vec<&EarlierHit> = counting.iter().map(|&i| &all[i]).collect();
        let mut lo = at;
        while lo > 0 && hits[lo].ts.saturating_sub(hits[lo - 1].ts) <= gap {
            lo -= 1;
        }
        let mut hi = at;
        while hi + 1 < hits.len() && hits[hi + 1].ts.saturating_sub(hits[hi].ts) <= gap {
            hi += 1;
        }
        let mut targets: Vec<(Sym, Millis)> =
            hits[lo..=hi].iter().filter_map(|h| h.target.map(|t| (t, h.ts))).collect();
        targets.sort_unstable();
        targets.dedup_by_key(|t| t.0);
        let done = targets
            .iter()
            .filter(|&&(t, hit_at)| {
                Some(t) == cx.target || cx.acted.iter().any(|&(ts, a, x)| ts > hit_at && a == cx.action && x == t)
            })
            .count();
        (done.max(1), targets.len().max(1))
    }

    /// The verdict on the event of `cx`, given the account's hits on
    /// earlier events.
    fn decide(
        &self,
        j: &Judge,
        cx: &Context,
        hits: &[EarlierHit],
        words: bool,
        text: &dyn Fn(Sym) -> String,
    ) -> Outcome {
        let o = &j.opts;
        if o.same_target && cx.target.is_none() {
            return Outcome::Quiet;
        }
        let found = hits
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, h)| h.ts >= cx.ts.saturating_sub(self.key.within))
            .find(|(_, h)| self.counts(h) && (!o.same_target || h.target == cx.target));
        let Some((at, h)) = found else { return Outcome::Quiet };
        let mut strength = if o.inherit_strength { h.strength } else { 1.0 };
        let covered = self.key.track.then(|| self.covered(o.burst_gap, cx, hits, at));
        if let Some((done, of)) = covered {
            strength *= (done as f64 / of as f64).powf(self.key.coverage.0);
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        if !words {
            return Outcome::Fire { strength, why: Why::default() };
        }
        let mut why = format!(
            "the {} of {} at {} was hit by {} (strength {})",
            text(h.action),
            h.target.map_or_else(|| "-".to_string(), text),
            format_rfc3339(h.ts),
            j.ids[h.rule as usize],
            h.strength
        );
        if let Some((done, of)) = covered {
            why.push_str(&format!("; {done} of the {of} targets that burst of hits was on followed up so far"));
        }
        Outcome::Fire { strength, why: Why::Text(why) }
    }

    /// The context of a verdict on `e`.
    fn context(&self, j: &Judge, s: &State, e: &Ev<'_>) -> Context {
        Context {
            ts: e.ts,
            action: e.action,
            target: e.target(),
            acted: s.acted.iter().copied().collect(),
            deadline: e.ts.saturating_add(j.horizon),
        }
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
    type Later = Context;

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
            same_target: r.flag("same_target"),
            inherit_strength: r.flag("inherit_strength"),
            burst_gap: r.duration("burst_gap"),
        };
        let within = r.duration("within");
        let coverage = r.number("coverage");
        let key = Key { rules, numbers: Vec::new(), within, track: coverage > 0.0, coverage: super::Num(coverage) };
        (key, opts)
    }

    fn needs(key: &Key, opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["target"]);
        n.rules = opts.written.clone();
        n.reach = key.within;
        n
    }

    fn resolve(key: &mut Key, _opts: &mut Opts, rules: &[String]) {
        key.numbers =
            rules.iter().enumerate().filter(|(_, id)| key.rules.contains(id)).map(|(i, _)| i as u32).collect();
    }

    fn tracker(key: &Key, _u: &Universe<'_>) -> Tracker {
        Tracker { key: key.clone() }
    }

    fn judge(key: &Key, opts: &Opts, u: &Universe<'_>) -> Judge {
        let horizon = key.numbers.iter().filter_map(|&r| u.rule_horizons.get(r as usize)).map(|h| h.longest()).max();
        Judge { opts: opts.clone(), ids: u.rule_ids.to_vec(), horizon: horizon.unwrap_or(0) }
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
        let horizon = e.ts.saturating_sub(t.key.within);
        while s.acted.front().is_some_and(|&(at, _, _)| at < horizon) {
            s.acted.pop_front();
        }
        if let Some(target) = e.target() {
            s.acted.push_back((e.ts, e.action, target));
        }
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let text = |x: Sym| e.text(x).to_string();
        t.decide(j, &t.context(j, s, e), e.hits, e.words, &text)
    }

    /// The referenced rules' hits are decided later (look-ahead, other
    /// accounts' later actions): the verdict is decided again on the hits
    /// as they stand at the end ([`Cause::Hits`]).
    fn later(j: &Judge, t: &Tracker, s: &State, e: &Ev<'_>, _said: &Outcome) -> Option<Context> {
        Some(t.context(j, s, e))
    }

    fn revise(j: &Judge, t: &Tracker, cx: &mut Context, cause: &Cause<'_>, said: &Outcome) -> Option<Outcome> {
        let Cause::Hits(hits, strings) = *cause else { return None };
        let text = |x: Sym| strings.resolve(x).to_string();
        let now = t.decide(j, cx, hits, true, &text);
        (now != *said).then_some(now)
    }

    fn deadline(cx: &Context) -> Millis {
        cx.deadline
    }

    fn save(t: &Tracker, s: &State, now: Millis, w: &mut Enc<'_>) {
        let kept = s.acted.iter().filter(|&&(at, _, _)| at >= now.saturating_sub(t.key.within));
        w.count(kept.clone().count());
        for &(at, action, target) in kept {
            w.time(at);
            w.sym(action);
            w.sym(target);
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        for _ in 0..r.count()? {
            s.acted.push_back((r.time()?, r.sym()?, r.sym()?));
        }
        Ok(())
    }
}

impl Persist for Context {
    fn save(&self, w: &mut Enc<'_>) {
        w.time(self.ts);
        w.sym(self.action);
        w.opt_sym(self.target);
        w.count(self.acted.len());
        for &(at, action, target) in &self.acted {
            w.time(at);
            w.sym(action);
            w.sym(target);
        }
        w.time(self.deadline);
    }

    fn load(r: &mut Dec<'_>) -> Result<Context, CodecError> {
        let (ts, action, target) = (r.time()?, r.sym()?, r.opt_sym()?);
        let acted = (0..r.count()?).map(|_| Ok((r.time()?, r.sym()?, r.sym()?))).collect::<Result<_, CodecError>>()?;
        Ok(Context { ts, action, target, acted, deadline: r.time()? })
    }
}
