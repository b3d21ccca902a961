//! Signal kinds: the registry.
//!
//! A signal is one piece of evidence about one event of one account: "this
//! like is far from the account's history", "nothing could have shown it
//! this item", "this unlike came an hour after the like". Each kind lives in
//! its own file with its documentation, parameters, binding and evaluator;
//! this file is the only other place a new kind touches.
//!
//! Life of a signal:
//! 1. **parse** (rule loading): parameters read and range-checked, with
//!    diagnostics. Result: [`SignalDef`], data-independent.
//! 2. **bind** (before scoring): resolved against a dataset (action names
//!    to symbols, shared indexes such as "who reposted what" built once).
//!    Result: [`Bound`], read-only and shared by all workers.
//! 3. **per account**: a [`State`] (per worker, reset per account) is fed
//!    every event of the account in time order ([`Bound::observe`]) and asked
//!    about the events the rule selects ([`Bound::eval`]) *before* it
//!    observes them, so a signal never sees an event's future.
//!
//! Evaluation cannot fail: every check that can fail happens at parse or
//! bind time.

pub mod after_hit;
pub mod aggregate;
pub mod feed_exposure;
pub mod impossible_travel;
pub mod lockstep;
pub mod new_context;
pub mod off_pattern;
pub mod rate_spike;
pub mod sequence;
pub mod unlike_latency;

use std::collections::HashMap;
use std::sync::Arc;

use crate::data::schema::{TableKind, ev};
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::reader::{Ctx, Sp, TableReader};
use crate::time::Millis;

/// Generates the registry: one enum variant per kind for the definition,
/// the binding and the per-account state, the list of kind names, and the
/// dispatch over them. Each module provides `Params::{parse, describe,
/// state_key, reads}` and `Bound::{new, new_state, reset, observe, eval,
/// note}`.
macro_rules! registry {
    ($( $variant:ident => $module:ident, $name:literal; )*) => {
        /// Every signal kind, by the name rules use.
        pub const KINDS: &[&str] = &[$( $name, )*];

        /// A signal as declared in a rule, parameters validated.
        #[derive(Clone, Debug)]
        pub enum SignalDef {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant($module::Params),
            )*
        }

        /// A signal bound to a dataset: read-only, shared by all workers.
        #[derive(Debug)]
        pub enum Bound {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant($module::Bound),
            )*
        }

        /// Per-account state of one signal (or of several sharing a state key).
        #[derive(Debug)]
        pub enum State {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant($module::State),
            )*
        }

        /// Parses a `[[signal]]` table of kind `kind`; `None` for an unknown
        /// kind (the caller reports it).
        pub fn parse(kind: &str, r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Option<SignalDef> {
            Some(match kind {
                $( $name => SignalDef::$variant($module::Params::parse(r, ctx)), )*
                _ => return None,
            })
        }

        impl SignalDef {
            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self { $( SignalDef::$variant(_) => $name, )* }
            }

            /// The evidence family this kind's evidence belongs to, if any
            /// (a rule's default family is its first signal's).
            pub fn family(&self) -> Option<&'static str> {
                match self { $( SignalDef::$variant(_) => $module::FAMILY, )* }
            }

            /// Parameters with their values, for `explain-plan`.
            pub fn describe(&self) -> Vec<(&'static str, String)> {
                match self { $( SignalDef::$variant(p) => p.describe(), )* }
            }

            /// Identifies the per-account state this signal keeps: signals
            /// with the same key share one state (one baseline, one walk of
            /// the follow graph).
            pub fn state_key(&self) -> String {
                match self { $( SignalDef::$variant(p) => format!("{}{}", $name, p.state_key()), )* }
            }

            /// The (table, column) pairs the signal reads.
            pub fn reads(&self) -> Vec<(TableKind, String)> {
                match self { $( SignalDef::$variant(p) => p.reads(), )* }
            }

            /// Binds the signal to a dataset, sharing indexes through `cache`.
            pub fn bind(&self, data: &Dataset, cache: &mut BindCache) -> Bound {
                match self { $( SignalDef::$variant(p) => Bound::$variant($module::Bound::new(p, data, cache)), )* }
            }
        }

        impl Bound {
            /// A fresh per-account state.
            pub fn new_state(&self) -> State {
                match self { $( Bound::$variant(b) => State::$variant(b.new_state()), )* }
            }

            /// Resets `state` for a new account, whose events are `span`
            /// (a signal that looks ahead may read them all; see
            /// `off_pattern`'s `return_window`).
            pub fn reset(&self, state: &mut State, span: &AccountSpan, data: &Dataset) {
                match (self, state) {
                    $( (Bound::$variant(b), State::$variant(s)) => b.reset(s, span, data), )*
                    _ => unreachable!("a state is always used with the bound that made it"),
                }
            }

            /// Feeds one event of the account to `state` (after it was evaluated).
            pub fn observe(&self, state: &mut State, e: &Ev<'_>) {
                match (self, state) {
                    $( (Bound::$variant(b), State::$variant(s)) => b.observe(s, e), )*
                    _ => unreachable!("a state is always used with the bound that made it"),
                }
            }

            /// Judges one event, given the account's state before it.
            pub fn eval(&self, state: &mut State, e: &Ev<'_>) -> Outcome {
                match (self, state) {
                    $( (Bound::$variant(b), State::$variant(s)) => b.eval(s, e), )*
                    _ => unreachable!("a state is always used with the bound that made it"),
                }
            }

            /// A note for the user about this binding (for example, that the
            /// signal abstains on this dataset), said once per run.
            pub fn note(&self) -> Option<String> {
                match self { $( Bound::$variant(b) => b.note(), )* }
            }
        }
    };
}

registry! {
    AfterHit => after_hit, "after_hit";
    FeedExposure => feed_exposure, "feed_exposure";
    ImpossibleTravel => impossible_travel, "impossible_travel";
    Lockstep => lockstep, "lockstep";
    NewContext => new_context, "new_context";
    OffPattern => off_pattern, "off_pattern";
    RateSpike => rate_spike, "rate_spike";
    Sequence => sequence, "sequence";
    UnlikeLatency => unlike_latency, "unlike_latency";
}

/// Whole-input aggregates, finished, for binding (see [`aggregate`]).
/// Keys are sorted action names.
#[derive(Clone, Debug, Default)]
pub struct BindCache {
    /// Population distributions, by (feature, history actions).
    pub priors: HashMap<(off_pattern::Feature, Vec<String>), Arc<off_pattern::Prior>>,
    /// Who did which actions on each item, when, by action set.
    pub item_actors: HashMap<Vec<String>, Arc<aggregate::ItemActors>>,
    /// Population rate of an action set, per account-day.
    pub rates: HashMap<Vec<String>, f64>,
    /// Ids of the plan's rules, by index (for signals about other rules' hits).
    pub rule_ids: Vec<String>,
    /// The time of the last event of the whole input (for look-ahead).
    pub data_end: Option<Millis>,
}

/// What a signal says about an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Evidence, with a strength in (0, 1] and the reason in plain words.
    Fire {
        /// How strong, in (0, 1].
        strength: f64,
        /// Which evidence, with the numbers.
        why: String,
    },
    /// Looked, and found nothing.
    Quiet,
    /// Cannot tell (too little history, no data to judge by).
    Abstain,
}

/// One event as signals see it.
#[derive(Clone, Copy)]
pub struct Ev<'a> {
    /// The dataset.
    pub data: &'a Dataset,
    /// The event's index in `data.events`.
    pub i: usize,
    /// When.
    pub ts: Millis,
    /// Who.
    pub actor: Sym,
    /// What.
    pub action: Sym,
    /// The account's rule hits on earlier events (empty outside the scorer).
    pub hits: &'a [crate::score::Hit],
}

impl<'a> Ev<'a> {
    /// The event at index `i`.
    #[inline]
    pub fn at(data: &'a Dataset, i: usize) -> Ev<'a> {
        let e = &data.events;
        Ev { data, i, ts: e.ts(i), actor: e.actor(i), action: e.action(i), hits: &[] }
    }

    /// The target item or account.
    #[inline]
    pub fn target(&self) -> Option<Sym> {
        self.data.events.target(self.i)
    }

    /// The target's row in `items`, if it is a known item.
    #[inline]
    pub fn item_row(&self) -> Option<usize> {
        self.target().and_then(|t| self.data.items.row(t))
    }

    /// The target's author: the event's `target_author`, else the item's.
    #[inline]
    pub fn author(&self) -> Option<Sym> {
        self.data
            .events
            .sym(ev::TARGET_AUTHOR, self.i)
            .or_else(|| self.item_row().and_then(|r| self.data.items.author(r)))
    }

    /// The event's `surface`.
    #[inline]
    pub fn surface(&self) -> Option<Sym> {
        self.data.events.sym(ev::SURFACE, self.i)
    }

    /// A symbol's text.
    #[inline]
    pub fn text(&self, s: Sym) -> &'a str {
        self.data.strings.resolve(s)
    }
}

/// Resolves action names to the dataset's symbols (names the data never
/// uses are dropped: no event can have them).
pub fn resolve_all(data: &Dataset, names: &[String]) -> Vec<Sym> {
    let mut v: Vec<Sym> = names.iter().filter_map(|n| data.strings.get(n)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Reads a list of action names, or `default` when absent.
pub fn actions_param(
    r: &mut TableReader<'_, '_>,
    ctx: &mut Ctx<'_>,
    key: &'static str,
    default: &[&str],
) -> Vec<String> {
    match r.str_list(ctx, key) {
        Some(Sp { value, .. }) => value.into_iter().map(|s| s.value).collect(),
        None => default.iter().map(|s| s.to_string()).collect(),
    }
}

/// Formats a probability for a `why`: 4 significant digits, no exponent
/// above 1e-6.
pub fn fmt_prob(p: f64) -> String {
    if p == 0.0 {
        return "0".into();
    }
    if p < 1e-6 {
        return format!("{p:.1e}");
    }
    let digits = (-p.log10()).floor() as i32 + 2;
    format!("{p:.*}", digits.max(2) as usize)
}

#[cfg(test)]
mod tests {
    use super::fmt_prob;

    #[test]
    fn probabilities_read_well() {
        assert_eq!(fmt_prob(0.00041234), "0.00041");
        assert_eq!(fmt_prob(0.5), "0.50");
        assert_eq!(fmt_prob(0.0312), "0.031");
        assert_eq!(fmt_prob(0.0), "0");
    }
}
