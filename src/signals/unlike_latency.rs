//! `unlike_latency`: how long a like stayed up before it was removed.
//!
//! **What it detects.** An unlike paired with the account's earlier like of
//! the same item, and the time between them. It fires when that latency is
//! inside a band: `min = "10m"`, `max = "48h"` by default.
//!
//! **Why it suggests compromise.** An accidental tap is undone within
//! seconds. A like that stays up for an hour and is then removed is the
//! owner (or the platform) cleaning up after someone else: in the story
//! behind changeling, the porn like was removed after about an hour, the
//! political ones one by one later. With `chain = true` (default), the
//! strength grows when several likes of one burst (likes less than
//! `burst_gap` apart) are removed one after another (removals less than
//! `chain_gap` apart): the k-th removal of such a chain has strength
//! `1 - (1 - base_strength)^k`. With `coverage` above 0 it is multiplied by
//! `(k / likes)^coverage`, the share of the burst removed so far: the owner
//! undoing an intruder's burst removes all of it; regret removes one or two
//! likes of a long session.
//!
//! The same signal with a short band, no chain and a rule `effect =
//! "against"` is the evidence *against* compromise of an accidental tap:
//!
//! ```toml
//! [[signal]]
//! kind = "unlike_latency"
//! min = "0s"
//! max = "30s"
//! chain = false
//! ```
//!
//! **Parameters** (defaults): `min = "10m"`, `max = "48h"`,
//! `base_strength = 0.6`, `chain = true`, `burst_gap = "15m"`,
//! `chain_gap = "6h"`, `coverage = 0.0`, `like_action = "like"`,
//! `unlike_action = "unlike"`.
//!
//! **Known false positives.** Regret: people do remove old likes, one at a
//! time, especially of political posts. A like made before the log starts
//! cannot be paired: such unlikes give no evidence.

use super::{BindCache, Ev, Outcome};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::Code;
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{HOUR, MINUTE, Millis, compact_duration, format_rfc3339, human_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("cleanup");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Shortest latency that fires.
    pub min: Millis,
    /// Longest latency that fires.
    pub max: Millis,
    /// Strength of a single removal in the band.
    pub base_strength: f64,
    /// Whether removals of one burst one after another strengthen each other.
    pub chain: bool,
    /// Likes closer than this form one burst.
    pub burst_gap: Millis,
    /// Removals closer than this continue a chain.
    pub chain_gap: Millis,
    /// How much the share of the burst's likes removed so far matters: the
    /// strength is multiplied by `(chain / likes)^coverage` (0: not at all).
    pub coverage: f64,
    /// The like action.
    pub like_action: String,
    /// The unlike action.
    pub unlike_action: String,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let min = r.duration(ctx, "min");
        let max = r.duration(ctx, "max");
        let p = Params {
            min: min.as_ref().map_or(10 * MINUTE, |d| d.value),
            max: max.as_ref().map_or(48 * HOUR, |d| d.value),
            base_strength: r.num_in(ctx, "base_strength", 0.0, 1.0, 0.6),
            chain: r.bool(ctx, "chain").is_none_or(|b| b.value),
            burst_gap: r.duration_or(ctx, "burst_gap", 15 * MINUTE),
            chain_gap: r.duration_or(ctx, "chain_gap", 6 * HOUR),
            coverage: r.num_in(ctx, "coverage", 0.0, 4.0, 0.0),
            like_action: r.str(ctx, "like_action").map_or_else(|| "like".into(), |s| s.value),
            unlike_action: r.str(ctx, "unlike_action").map_or_else(|| "unlike".into(), |s| s.value),
        };
        if p.min > p.max {
            let span = max.or(min).map_or(r.span.clone(), |d| d.span);
            ctx.report(
                Code::BadValue,
                span,
                format!(
                    "the band is empty: `min` ({}) is longer than `max` ({})",
                    compact_duration(p.min),
                    compact_duration(p.max)
                ),
            );
        }
        p
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("band", format!("{} ..= {}", compact_duration(self.min), compact_duration(self.max))),
            ("base_strength", self.base_strength.to_string()),
            ("chain", self.chain.to_string()),
            ("burst_gap", compact_duration(self.burst_gap)),
            ("chain_gap", compact_duration(self.chain_gap)),
            ("coverage", self.coverage.to_string()),
            ("like_action", self.like_action.clone()),
            ("unlike_action", self.unlike_action.clone()),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}",
            self.like_action, self.unlike_action, self.burst_gap, self.min, self.max, self.chain_gap
        )
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![(TableKind::Events, "action".into()), (TableKind::Events, "target".into())]
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    like: Option<Sym>,
    unlike: Option<Sym>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Burst {
    start: Millis,
    likes: u32,
    chain: u32,
    last_removal: Millis,
}

/// Per-account state: likes not yet removed, and bursts of likes.
#[derive(Debug, Default)]
pub struct State {
    open: SymMap<(Millis, u32)>,
    bursts: Vec<Burst>,
    last_like: Option<Millis>,
}

fn ordinal(k: u32) -> String {
    let suffix = match (k % 10, k % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, _cache: &mut BindCache) -> Bound {
        Bound { params: p.clone(), like: data.strings.get(&p.like_action), unlike: data.strings.get(&p.unlike_action) }
    }

    fn in_band(&self, latency: Millis) -> bool {
        latency >= self.params.min && latency <= self.params.max
    }

    /// The chain length this removal would have, given the burst's state.
    fn chain_len(&self, b: &Burst, ts: Millis) -> u32 {
        if self.params.chain && b.chain > 0 && ts - b.last_removal <= self.params.chain_gap { b.chain + 1 } else { 1 }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.open.clear();
        s.bursts.clear();
        s.last_like = None;
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        let Some(target) = e.target() else { return };
        if Some(e.action) == self.like {
            let new_burst = s.last_like.is_none_or(|t| e.ts - t > self.params.burst_gap) || s.bursts.is_empty();
            if new_burst {
                s.bursts.push(Burst { start: e.ts, ..Burst::default() });
            }
            let id = s.bursts.len() as u32 - 1;
            s.bursts[id as usize].likes += 1;
            s.last_like = Some(e.ts);
            s.open.insert(target, (e.ts, id));
        } else if Some(e.action) == self.unlike
            && let Some((liked, id)) = s.open.remove(&target)
            && self.in_band(e.ts - liked)
        {
            let k = self.chain_len(&s.bursts[id as usize], e.ts);
            let b = &mut s.bursts[id as usize];
            b.chain = k;
            b.last_removal = e.ts;
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        if Some(e.action) != self.unlike {
            return Outcome::Quiet;
        }
        let Some(target) = e.target() else {
            return Outcome::Quiet;
        };
        let Some(&(liked, id)) = s.open.get(&target) else {
            return Outcome::Quiet;
        };
        let latency = e.ts - liked;
        if !self.in_band(latency) {
            return Outcome::Quiet;
        }
        let burst = s.bursts[id as usize];
        let k = self.chain_len(&burst, e.ts);
        let p = &self.params;
        let covered = f64::from(k) / f64::from(burst.likes.max(k));
        let strength = (1.0 - (1.0 - p.base_strength).powi(k as i32)) * covered.powf(p.coverage);
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        let mut why = format!(
            "removed {} after the like (band {} to {})",
            human_duration(latency),
            human_duration(p.min),
            human_duration(p.max)
        );
        if k > 1 {
            why.push_str(&format!(
                "; the {} removal in a row from a burst of {} likes starting {}",
                ordinal(k),
                burst.likes,
                format_rfc3339(burst.start)
            ));
        } else if burst.likes > 1 && p.coverage > 0.0 {
            why.push_str(&format!(
                "; one of a burst of {} likes starting {}",
                burst.likes,
                format_rfc3339(burst.start)
            ));
        }
        Outcome::Fire { strength, why }
    }
}
