//! `new_context`: the event comes from a device, client, country or network
//! this account has not used before.
//!
//! **What it detects.** The value of one or more context fields of the
//! event (`device`, `client`, `country`, `asn`, `ip`, or any other event
//! field) first seen for this account: at this event, or (with `recent`) at
//! most that long before it, so a like made ten minutes after a login from
//! a new device still counts as coming from a new context.
//!
//! **Why it suggests compromise.** A takeover usually starts from the
//! attacker's own machine and network: a device and a country the account
//! has never used, often with a different client.
//!
//! **How.** Per field, the account's history counts each value's events.
//! The signal abstains until the account has `min_history` events with the
//! field present before the value was first seen. It fires when *every* listed field's value is new (first
//! seen less than `recent` ago), so `fields = ["device", "country"]` asks
//! for a new device in a new country. The strength is one minus the
//! Good–Turing estimate of how often this account shows a new value,
//! `(N1 + 1) / (n + 1)` (N1: values seen exactly once, n: events seen): an
//! account that has used one device for 300 events and now shows another
//! is a strong signal; one that changes devices every week is not.
//!
//! **Parameters** (defaults): `fields = ["device"]`, `min_history = 10`,
//! `recent = "0s"`.
//!
//! ```toml
//! [[signal]]
//! kind = "new_context"
//! fields = ["device", "country"]
//! recent = "2h"
//! ```
//!
//! **Known false positives.** A new phone, travel (which is why pairing
//! device with country, or with an account-security change, is stronger),
//! VPNs and mobile networks that change `asn`/`ip` constantly: prefer
//! `device`, `client` and `country` over `ip`.

use super::{BindCache, Ev, Outcome};
use crate::data::schema::{Kind, TableKind};
use crate::data::{AccountSpan, Dataset};
use crate::intern::SymMap;
use crate::rules::diag::Code;
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{Millis, compact_duration, format_rfc3339, human_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("context");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Event fields whose values must all be new.
    pub fields: Vec<String>,
    /// History (events with the field present) needed before it speaks.
    pub min_history: u64,
    /// A value first seen at most this long ago still counts as new.
    pub recent: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let fields: Vec<String> = match r.str_list(ctx, "fields") {
            Some(list) => {
                for f in &list.value {
                    let known = TableKind::Events.fields().iter().find(|d| d.name == f.value);
                    if known.is_some_and(|d| d.kind != Kind::Sym)
                        || ["actor", "action", "target"].contains(&f.value.as_str())
                    {
                        ctx.report(
                            Code::BadValue,
                            f.span.clone(),
                            format!(
                                "`{}` is not a context field (use device, client, country, asn, ip or an extra field)",
                                f.value
                            ),
                        );
                    }
                }
                if list.value.is_empty() {
                    ctx.report(Code::BadValue, list.span.clone(), "`fields` must name at least one field");
                }
                list.value.into_iter().map(|s| s.value).collect()
            }
            None => vec!["device".into()],
        };
        Params {
            fields,
            min_history: r.count(ctx, "min_history", 1_000_000, 10),
            recent: r.duration_or(ctx, "recent", 0),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("fields", format!("{:?}", self.fields)),
            ("min_history", self.min_history.to_string()),
            ("recent", compact_duration(self.recent)),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{:?}", self.fields)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        self.fields.iter().map(|f| (TableKind::Events, f.clone())).collect()
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    /// Column of each field in the events table (None: never present).
    columns: Vec<Option<usize>>,
}

#[derive(Debug, Default)]
struct FieldHistory {
    /// Value -> (events, first seen).
    seen: SymMap<(u32, Millis)>,
    events: u32,
    singletons: u32,
}

/// Per-account state: values seen per field.
#[derive(Debug, Default)]
pub struct State {
    fields: Vec<FieldHistory>,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, _cache: &mut BindCache) -> Bound {
        Bound { params: p.clone(), columns: p.fields.iter().map(|f| data.events.table.column_index(f)).collect() }
    }

    pub(crate) fn new_state(&self) -> State {
        State { fields: self.columns.iter().map(|_| FieldHistory::default()).collect() }
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        for f in &mut s.fields {
            f.seen.clear();
            f.events = 0;
            f.singletons = 0;
        }
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        for (k, col) in self.columns.iter().enumerate() {
            let Some(v) = col.and_then(|c| e.data.events.sym(c, e.i)) else { continue };
            let h = &mut s.fields[k];
            h.events += 1;
            let entry = h.seen.entry(v).or_insert((0, e.ts));
            entry.0 += 1;
            match entry.0 {
                1 => h.singletons += 1,
                2 => h.singletons -= 1,
                _ => {}
            }
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let mut strength = 1.0f64;
        let mut why = Vec::new();
        for (k, col) in self.columns.iter().enumerate() {
            let Some(v) = col.and_then(|c| e.data.events.sym(c, e.i)) else { return Outcome::Abstain };
            let h = &s.fields[k];
            if u64::from(h.events) < self.params.min_history {
                return Outcome::Abstain;
            }
            let name = &self.params.fields[k];
            match h.seen.get(&v) {
                Some(&(_, first)) if e.ts - first > self.params.recent => return Outcome::Quiet,
                Some(&(count, first)) => {
                    // First seen recently: judge against the history before it.
                    let before = h.events - count;
                    if u64::from(before) < self.params.min_history {
                        return Outcome::Abstain;
                    }
                    let singles = h.singletons.saturating_sub(u32::from(count == 1));
                    strength = strength.min(1.0 - f64::from(singles + 1) / f64::from(before + 1));
                    why.push(format!(
                        "{name} '{}' first seen {} ago ({}), new after {before} events with {} other {name}s",
                        e.text(v),
                        human_duration(e.ts - first),
                        format_rfc3339(first),
                        h.seen.len() - 1
                    ));
                }
                None => {
                    strength = strength.min(1.0 - f64::from(h.singletons + 1) / f64::from(h.events + 1));
                    why.push(format!(
                        "{name} '{}' never seen in {} events of this account (it used {} other{})",
                        e.text(v),
                        h.events,
                        h.seen.len(),
                        if h.seen.len() == 1 { "" } else { "s" }
                    ));
                }
            }
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why: why.join("; ") }
    }
}
