//! `sequence`: the event completes an ordered sequence of actions within a
//! time window.
//!
//! **What it detects.** The account did the `steps` in order (each step is
//! a set of actions), the first of them at most `within` before the event
//! being judged, which comes after the last step. For example: a `login`,
//! then a `password_change` or `email_change`, then this like.
//!
//! **Why it suggests compromise.** Takeovers follow a script: get in,
//! lock the owner out (change the password or the recovery email), then
//! use the account. Each step alone is ordinary; the order within minutes is
//! not. Windows are in event time, never wall-clock time, so replaying an
//! old log gives the same answer.
//!
//! **How.** For each step the state keeps the start time of the most recent
//! chain that has reached it (a chain reaching step k continues the most
//! recent chain that reached step k-1). The signal fires, with strength 1,
//! when the last step has been reached by a chain that started within
//! `within`; it says when each step happened.
//!
//! **Parameters**: `steps` (required, a list of lists of actions),
//! `within = "1h"`.
//!
//! ```toml
//! [[signal]]
//! kind = "sequence"
//! steps = [["login"], ["password_change", "email_change"]]
//! within = "2h"
//! ```
//!
//! **Known false positives.** Owners who change their password and go on
//! using the account, which is why shipped rules pair it with
//! `new_context`.

use toml::de::DeValue;

use super::spec::{Default as D, Param, ParamReader, Ty, key};
use super::{Ev, Needs, Outcome, Signal, Universe};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::diag::Code;
use crate::rules::reader::str_list_value;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{HOUR, Millis, compact_duration, format_rfc3339};

/// The kind.
pub struct Sequence;

/// The parameters. Both are part of the key: the state follows chains of
/// steps, and a chain is broken once it is older than `within`.
pub const PARAMS: &[Param] = &[
    key(
        "steps",
        Ty::Custom("a list of steps, each an action or a list of actions"),
        D::Required,
        "the steps, in order, e.g. `[[\"login\"], [\"password_change\", \"email_change\"]]`",
    ),
    key("within", Ty::Duration, D::Duration(HOUR), "the first step must be at most this long before the event"),
];

/// The parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The steps, each a set of actions, in order.
    pub steps: Vec<Vec<String>>,
    /// The first step must be at most this long before the judged event.
    pub within: Millis,
}

/// No other parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts;

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    key: Key,
    steps: Vec<Vec<Sym>>,
}

/// Nothing to bind beyond the key.
#[derive(Debug)]
pub struct Judge;

/// Per-account state: for each step, the most recent chain reaching it,
/// as (chain start, time of this step).
#[derive(Debug, Default)]
pub struct State {
    reached: Vec<Option<(Millis, Millis)>>,
    /// Times of every step of the chain that reached the last step.
    trail: Vec<Vec<Millis>>,
}

impl Signal for Sequence {
    const NAME: &'static str = "sequence";
    const FAMILY: Option<&'static str> = Some("context");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = ();

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let mut steps = Vec::new();
        match r.raw("steps") {
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::String(s) => steps.push(vec![s.to_string()]),
                            _ => {
                                if let Some(list) = str_list_value(r.ctx(), "steps", item) {
                                    steps.push(list.value.into_iter().map(|s| s.value).collect());
                                }
                            }
                        }
                    }
                    if steps.is_empty() {
                        r.ctx().report(Code::BadValue, v.span(), "`steps` must list at least one step");
                    }
                }
                _ => {
                    r.ctx().report(Code::WrongType, v.span(), "`steps` must be an array of steps");
                }
            },
            None => {
                let span = r.span();
                r.ctx()
                    .report(
                        Code::MissingKey,
                        span.start..span.start + 1,
                        "signal `sequence` is missing required key `steps` (a list of action lists)",
                    )
                    .help
                    .push("help: steps = [[\"login\"], [\"password_change\", \"email_change\"]]".into());
            }
        }
        r.describe("steps", format!("{steps:?}"));
        (Key { steps, within: r.duration("within") }, Opts)
    }

    fn needs(key: &Key, _opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action"]);
        n.reach = key.within;
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        Tracker { key: key.clone(), steps: key.steps.iter().map(|s| u.resolve_all(s)).collect() }
    }

    fn judge(_key: &Key, _opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge
    }

    fn new_state(t: &Tracker) -> State {
        State { reached: vec![None; t.steps.len()], trail: vec![Vec::new(); t.steps.len()] }
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.reached.iter_mut().for_each(|r| *r = None);
        s.trail.iter_mut().for_each(Vec::clear);
    }

    fn save(_t: &Tracker, s: &State, _now: Millis, w: &mut Enc<'_>) {
        for (reached, trail) in s.reached.iter().zip(&s.trail) {
            w.bool(reached.is_some());
            if let Some((start, at)) = reached {
                w.time(*start);
                w.time(*at);
            }
            w.count(trail.len());
            for &t in trail {
                w.time(t);
            }
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        for k in 0..s.reached.len() {
            s.reached[k] = if r.bool()? { Some((r.time()?, r.time()?)) } else { None };
            s.trail[k] = (0..r.count()?).map(|_| r.time()).collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        // Later steps first, so one event does not advance two steps.
        for k in (0..t.steps.len()).rev() {
            if !t.steps[k].contains(&e.action) {
                continue;
            }
            if k == 0 {
                s.reached[0] = Some((e.ts, e.ts));
                s.trail[0] = vec![e.ts];
            } else if let Some((start, _)) = s.reached[k - 1]
                && e.ts.saturating_sub(start) <= t.key.within
            {
                s.reached[k] = Some((start, e.ts));
                let mut trail = s.trail[k - 1].clone();
                trail.push(e.ts);
                s.trail[k] = trail;
            }
        }
    }

    fn eval(_j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let Some(last) = t.steps.len().checked_sub(1) else { return Outcome::Abstain };
        match s.reached[last] {
            Some((start, _)) if e.ts.saturating_sub(start) <= t.key.within => Outcome::fire(e, 1.0, || {
                let parts: Vec<String> = t
                    .key
                    .steps
                    .iter()
                    .zip(&s.trail[last])
                    .map(|(names, at)| format!("{} at {}", names.join("/"), format_rfc3339(*at)))
                    .collect();
                format!("after {} (within {})", parts.join(", then "), compact_duration(t.key.within))
            }),
            _ => Outcome::Quiet,
        }
    }
}
