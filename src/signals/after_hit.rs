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
//! **Parameters**: `rules` (required: rule ids), `within = "48h"`,
//! `same_target = true`, `inherit_strength = true`. Unknown rule ids are
//! errors (E017), since a typo would silently disable the rule.
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

use super::{BindCache, Ev, Outcome};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::Effect;
use crate::rules::diag::Code;
use crate::rules::reader::{Ctx, Sp, TableReader};
use crate::score::Hit;
use crate::time::{HOUR, MINUTE, Millis, compact_duration, format_rfc3339};

/// No evidence family of its own: a rule using it takes its family from
/// its other signals (or declares `families`).
pub const FAMILY: Option<&str> = None;

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Rule ids whose hits count, with where they are written.
    pub rules: Vec<Sp<String>>,
    /// How far back the earlier hit may be.
    pub within: Millis,
    /// Whether the earlier hit must be on the same target.
    pub same_target: bool,
    /// Whether the strength is the earlier hit's (else 1: a pure link).
    pub inherit_strength: bool,
    /// How much the share of the followed-up burst's hits that the account
    /// has followed up so far matters: the strength is multiplied by that
    /// share to this power (0: not at all).
    pub coverage: f64,
    /// Hits of `rules` closer than this to each other form one burst.
    pub burst_gap: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let rules = match r.str_list(ctx, "rules") {
            Some(l) if !l.value.is_empty() => l.value,
            Some(l) => {
                ctx.report(Code::BadValue, l.span, "`rules` must name at least one rule id");
                Vec::new()
            }
            None => {
                let span = r.span.start..r.span.start + 1;
                ctx.report(Code::MissingKey, span, "signal `after_hit` is missing required key `rules` (rule ids)");
                Vec::new()
            }
        };
        Params {
            rules,
            within: r.duration_or(ctx, "within", 48 * HOUR),
            same_target: r.bool(ctx, "same_target").is_none_or(|b| b.value),
            inherit_strength: r.bool(ctx, "inherit_strength").is_none_or(|b| b.value),
            coverage: r.num_in(ctx, "coverage", 0.0, 4.0, 0.0),
            burst_gap: r.duration_or(ctx, "burst_gap", 15 * MINUTE),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("rules", format!("{:?}", self.rules.iter().map(|r| &r.value).collect::<Vec<_>>())),
            ("within", compact_duration(self.within)),
            ("same_target", self.same_target.to_string()),
            ("inherit_strength", self.inherit_strength.to_string()),
            ("coverage", self.coverage.to_string()),
            ("burst_gap", compact_duration(self.burst_gap)),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        // What the state records depends on which rules' hits it follows.
        let mut ids: Vec<&str> = self.rules.iter().map(|r| r.value.as_str()).collect();
        ids.sort_unstable();
        format!("{ids:?}/{}", self.coverage > 0.0)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![(TableKind::Events, "target".into())]
    }
}

/// Bound to a dataset (and to the plan's rule numbering).
#[derive(Debug)]
pub struct Bound {
    params: Params,
    rules: Vec<u32>,
    ids: Vec<String>,
}

/// Per-account state: with `coverage`, the (action, target) of the
/// account's events on targets that `rules` hit before (the scorer hands
/// the earlier hits themselves over).
#[derive(Debug, Default)]
pub struct State {
    acted: Vec<(Sym, Sym)>,
}

impl Bound {
    pub(crate) fn new(p: &Params, _data: &Dataset, cache: &mut BindCache) -> Bound {
        let rules = cache
            .rule_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| p.rules.iter().any(|r| &r.value == *id))
            .map(|(i, _)| i as u32)
            .collect();
        Bound { params: p.clone(), rules, ids: cache.rule_ids.clone() }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.acted.clear();
    }

    fn counts(&self, h: &Hit) -> bool {
        h.effect == Effect::For && self.rules.contains(&h.rule)
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        if self.params.coverage <= 0.0 {
            return;
        }
        if let Some(t) = e.target()
            && e.hits.iter().any(|h| self.counts(h) && h.target == Some(t))
        {
            s.acted.push((e.action, t));
        }
    }

    /// The share of the burst of `rules` hits around `h0` whose targets the
    /// account has now acted on with this event's action (this event
    /// included): (followed up, hits).
    fn covered(&self, s: &State, e: &Ev<'_>, h0: &Hit) -> (usize, usize) {
        let hits: Vec<&Hit> = e.hits.iter().filter(|h| self.counts(h)).collect();
        let Some(at) = hits.iter().position(|h| std::ptr::eq(*h, h0)) else { return (1, 1) };
        let gap = self.params.burst_gap;
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

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let target = e.target();
        if self.params.same_target && target.is_none() {
            return Outcome::Quiet;
        }
        let found = e.hits.iter().rev().take_while(|h| h.ts >= e.ts - self.params.within).find(|h| {
            h.effect == Effect::For && self.rules.contains(&h.rule) && (!self.params.same_target || h.target == target)
        });
        let Some(h) = found else { return Outcome::Quiet };
        let mut strength = if self.params.inherit_strength { h.strength } else { 1.0 };
        let mut why = format!(
            "the {} of {} at {} was hit by {} (strength {})",
            e.text(h.action),
            h.target.map_or("-", |t| e.text(t)),
            format_rfc3339(h.ts),
            self.ids[h.rule as usize],
            h.strength
        );
        if self.params.coverage > 0.0 {
            let (done, of) = self.covered(s, e, h);
            strength *= (done as f64 / of as f64).powf(self.params.coverage);
            why.push_str(&format!("; {done} of the {of} targets that burst of hits was on followed up so far"));
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why }
    }
}
