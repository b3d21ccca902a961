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

use super::{BindCache, Ev, Outcome};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::rules::diag::Code;
use crate::rules::reader::{Ctx, TableReader, str_list_value};
use crate::time::{HOUR, Millis, compact_duration, format_rfc3339};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("context");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The steps, each a set of actions, in order.
    pub steps: Vec<Vec<String>>,
    /// The first step must be at most this long before the judged event.
    pub within: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let mut steps = Vec::new();
        match r.array(ctx, "steps") {
            Some((items, span)) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => steps.push(vec![s.to_string()]),
                        _ => {
                            if let Some(list) = str_list_value(ctx, "steps", item) {
                                steps.push(list.value.into_iter().map(|s| s.value).collect());
                            }
                        }
                    }
                }
                if steps.is_empty() {
                    ctx.report(Code::BadValue, span, "`steps` must list at least one step");
                }
            }
            None => {
                let span = r.span.start..r.span.start + 1;
                ctx.report(
                    Code::MissingKey,
                    span,
                    "signal `sequence` is missing required key `steps` (a list of action lists)",
                )
                .help
                .push("help: steps = [[\"login\"], [\"password_change\", \"email_change\"]]".into());
            }
        }
        Params { steps, within: r.duration_or(ctx, "within", HOUR) }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("steps", format!("{:?}", self.steps)), ("within", compact_duration(self.within))]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{:?}", self.steps)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![(TableKind::Events, "action".into())]
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    steps: Vec<Vec<Sym>>,
}

/// Per-account state: for each step, the most recent chain reaching it,
/// as (chain start, time of this step).
#[derive(Debug, Default)]
pub struct State {
    reached: Vec<Option<(Millis, Millis)>>,
    /// Times of every step of the chain that reached the last step.
    trail: Vec<Vec<Millis>>,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, _cache: &mut BindCache) -> Bound {
        Bound { params: p.clone(), steps: p.steps.iter().map(|s| super::resolve_all(data, s)).collect() }
    }

    pub(crate) fn new_state(&self) -> State {
        State { reached: vec![None; self.steps.len()], trail: vec![Vec::new(); self.steps.len()] }
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.reached.iter_mut().for_each(|r| *r = None);
        s.trail.iter_mut().for_each(Vec::clear);
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        // Later steps first, so one event does not advance two steps.
        for k in (0..self.steps.len()).rev() {
            if !self.steps[k].contains(&e.action) {
                continue;
            }
            if k == 0 {
                s.reached[0] = Some((e.ts, e.ts));
                s.trail[0] = vec![e.ts];
            } else if let Some((start, _)) = s.reached[k - 1]
                && e.ts - start <= self.params.within
            {
                s.reached[k] = Some((start, e.ts));
                let mut t = s.trail[k - 1].clone();
                t.push(e.ts);
                s.trail[k] = t;
            }
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let Some(last) = self.steps.len().checked_sub(1) else { return Outcome::Abstain };
        match s.reached[last] {
            Some((start, _)) if e.ts - start <= self.params.within => {
                let parts: Vec<String> = self
                    .params
                    .steps
                    .iter()
                    .zip(&s.trail[last])
                    .map(|(names, t)| format!("{} at {}", names.join("/"), format_rfc3339(*t)))
                    .collect();
                Outcome::Fire {
                    strength: 1.0,
                    why: format!("after {} (within {})", parts.join(", then "), compact_duration(self.params.within)),
                }
            }
            _ => Outcome::Quiet,
        }
    }
}
