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

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{Ev, Needs, Outcome, Signal, Universe};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::Code;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{HOUR, MINUTE, Millis, compact_duration, format_rfc3339, human_duration};

/// The kind.
pub struct UnlikeLatency;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("min", Ty::Duration, D::Duration(10 * MINUTE), "shortest latency that fires"),
    key("max", Ty::Duration, D::Duration(48 * HOUR), "longest latency that fires"),
    opt("base_strength", Ty::Number { min: 0.0, max: 1.0 }, D::Number(0.6), "strength of a single removal in the band"),
    key("chain", Ty::Bool, D::Bool(true), "removals of one burst one after another strengthen each other"),
    key("burst_gap", Ty::Duration, D::Duration(15 * MINUTE), "likes closer than this form one burst"),
    key("chain_gap", Ty::Duration, D::Duration(6 * HOUR), "removals closer than this continue a chain"),
    opt(
        "coverage",
        Ty::Number { min: 0.0, max: 4.0 },
        D::Number(0.0),
        "weight of the share of the burst removed so far",
    ),
    key("like_action", Ty::Text, D::Text("like"), "the like action"),
    key("unlike_action", Ty::Text, D::Text("unlike"), "the unlike action"),
];

/// The parameters the per-account state (open likes, bursts, chains)
/// depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Shortest latency that fires.
    pub min: Millis,
    /// Longest latency that fires.
    pub max: Millis,
    /// Whether removals of one burst one after another strengthen each other.
    pub chain: bool,
    /// Likes closer than this form one burst.
    pub burst_gap: Millis,
    /// Removals closer than this continue a chain.
    pub chain_gap: Millis,
    /// The like action.
    pub like_action: String,
    /// The unlike action.
    pub unlike_action: String,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// Strength of a single removal in the band.
    pub base_strength: f64,
    /// How much the share of the burst's likes removed so far matters: the
    /// strength is multiplied by `(chain / likes)^coverage` (0: not at all).
    pub coverage: f64,
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    key: Key,
    like: Option<Sym>,
    unlike: Option<Sym>,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
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

impl Tracker {
    fn in_band(&self, latency: Millis) -> bool {
        latency >= self.key.min && latency <= self.key.max
    }

    /// The chain length this removal would have, given the burst's state.
    fn chain_len(&self, b: &Burst, ts: Millis) -> u32 {
        if self.key.chain && b.chain > 0 && ts.saturating_sub(b.last_removal) <= self.key.chain_gap {
            b.chain + 1
        } else {
            1
        }
    }
}

impl Signal for UnlikeLatency {
    const NAME: &'static str = "unlike_latency";
    const FAMILY: Option<&'static str> = Some("cleanup");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = ();

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let key = Key {
            min: r.duration("min"),
            max: r.duration("max"),
            chain: r.flag("chain"),
            burst_gap: r.duration("burst_gap"),
            chain_gap: r.duration("chain_gap"),
            like_action: r.text("like_action"),
            unlike_action: r.text("unlike_action"),
        };
        let opts = Opts { base_strength: r.number("base_strength"), coverage: r.number("coverage") };
        if key.min > key.max {
            let span = r.span();
            r.ctx().report(
                Code::BadValue,
                span,
                format!(
                    "the band is empty: `min` ({}) is longer than `max` ({})",
                    compact_duration(key.min),
                    compact_duration(key.max)
                ),
            );
        }
        (key, opts)
    }

    fn needs(key: &Key, _opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action", "target"]);
        n.reach = key.max;
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        Tracker { key: key.clone(), like: u.resolve(&key.like_action), unlike: u.resolve(&key.unlike_action) }
    }

    fn judge(_key: &Key, opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone() }
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.open.clear();
        s.bursts.clear();
        s.last_like = None;
    }

    /// The likes still open that a later unlike can find in the band
    /// (liked at most `max` before `now`), by target name, and the bursts
    /// they belong to (and the last, which the next like may join).
    fn save(t: &Tracker, s: &State, now: Millis, w: &mut Enc<'_>) {
        let mut open: Vec<(Sym, Millis, u32)> = s
            .open
            .iter()
            .filter(|&(_, &(liked, _))| liked >= now.saturating_sub(t.key.max))
            .map(|(&target, &(liked, id))| (target, liked, id))
            .collect();
        open.sort_by_cached_key(|a| w.text_of(a.0));
        let mut kept: Vec<u32> = open.iter().map(|o| o.2).collect();
        kept.extend(s.bursts.len().checked_sub(1).map(|last| last as u32));
        kept.sort_unstable();
        kept.dedup();
        w.count(kept.len());
        for &id in &kept {
            let b = &s.bursts[id as usize];
            w.time(b.start);
            w.u64(u64::from(b.likes));
            w.u64(u64::from(b.chain));
            w.time(b.last_removal);
        }
        w.count(open.len());
        for (target, liked, id) in open {
            w.sym(target);
            w.time(liked);
            w.u64(kept.binary_search(&id).expect("an open like's burst is kept") as u64);
        }
        w.bool(s.last_like.is_some());
        if let Some(at) = s.last_like {
            w.time(at);
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        for _ in 0..r.count()? {
            s.bursts.push(Burst { start: r.time()?, likes: r.u32()?, chain: r.u32()?, last_removal: r.time()? });
        }
        for _ in 0..r.count()? {
            let (target, liked, id) = (r.sym()?, r.time()?, r.u32()?);
            if id as usize >= s.bursts.len() {
                return Err(CodecError(format!("burst {id} of {}", s.bursts.len())));
            }
            s.open.insert(target, (liked, id));
        }
        s.last_like = if r.bool()? { Some(r.time()?) } else { None };
        Ok(())
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        let Some(target) = e.target() else { return };
        if Some(e.action) == t.like {
            let new_burst =
                s.last_like.is_none_or(|at| e.ts.saturating_sub(at) > t.key.burst_gap) || s.bursts.is_empty();
            if new_burst {
                s.bursts.push(Burst { start: e.ts, ..Burst::default() });
            }
            let id = s.bursts.len() as u32 - 1;
            s.bursts[id as usize].likes += 1;
            s.last_like = Some(e.ts);
            s.open.insert(target, (e.ts, id));
        } else if Some(e.action) == t.unlike
            && let Some((liked, id)) = s.open.remove(&target)
            && t.in_band(e.ts.saturating_sub(liked))
        {
            let k = t.chain_len(&s.bursts[id as usize], e.ts);
            let b = &mut s.bursts[id as usize];
            b.chain = k;
            b.last_removal = e.ts;
        }
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        if Some(e.action) != t.unlike {
            return Outcome::Quiet;
        }
        let Some(target) = e.target() else {
            return Outcome::Quiet;
        };
        let Some(&(liked, id)) = s.open.get(&target) else {
            return Outcome::Quiet;
        };
        let latency = e.ts.saturating_sub(liked);
        if !t.in_band(latency) {
            return Outcome::Quiet;
        }
        let burst = s.bursts[id as usize];
        let k = t.chain_len(&burst, e.ts);
        let o = &j.opts;
        let covered = f64::from(k) / f64::from(burst.likes.max(k));
        let strength = (1.0 - (1.0 - o.base_strength).powi(k as i32)) * covered.powf(o.coverage);
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::fire(e, strength, || {
            let mut why = format!(
                "removed {} after the like (band {} to {})",
                human_duration(latency),
                human_duration(t.key.min),
                human_duration(t.key.max)
            );
            if k > 1 {
                why.push_str(&format!(
                    "; the {} removal in a row from a burst of {} likes starting {}",
                    ordinal(k),
                    burst.likes,
                    format_rfc3339(burst.start)
                ));
            } else if burst.likes > 1 && o.coverage > 0.0 {
                why.push_str(&format!(
                    "; one of a burst of {} likes starting {}",
                    burst.likes,
                    format_rfc3339(burst.start)
                ));
            }
            why
        })
    }
}
