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

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{Ev, Needs, Outcome, Signal, Universe, Why};
use crate::data::schema::{Kind, TableKind};
use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::Code;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{Millis, format_rfc3339, human_duration};

/// The kind.
pub struct NewContext;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("fields", Ty::List, D::List(&["device"]), "event fields whose values must all be new"),
    opt(
        "min_history",
        Ty::Count { min: 0, max: 1_000_000 },
        D::Count(10),
        "events with the field needed before it speaks",
    ),
    opt("recent", Ty::Duration, D::Duration(0), "a value first seen at most this long ago still counts as new"),
];

/// The parameters the per-account state (values seen per field) depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Event fields whose values must all be new.
    pub fields: Vec<String>,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// History (events with the field present) needed before it speaks.
    pub min_history: u64,
    /// A value first seen at most this long ago still counts as new.
    pub recent: Millis,
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    fields: Vec<String>,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
}

#[derive(Debug, Default)]
struct FieldHistory {
    /// Value -> (events, first seen).
    seen: SymMap<(u32, Millis)>,
    events: u32,
    singletons: u32,
}

/// Per-account state: values seen per field, and where the fields are in
/// the events table being scored.
#[derive(Debug, Default)]
pub struct State {
    fields: Vec<FieldHistory>,
    /// Column of each field in the events table (None: never present).
    columns: Vec<Option<usize>>,
    /// Which events table `columns` are of (its address).
    table: usize,
}

impl Signal for NewContext {
    const NAME: &'static str = "new_context";
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
        let list = r.spanned_list("fields");
        for f in &list.value {
            let known = TableKind::Events.fields().iter().find(|d| d.name == f.value);
            if known.is_some_and(|d| d.kind != Kind::Sym) || ["actor", "action", "target"].contains(&f.value.as_str()) {
                r.ctx().report(
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
            r.ctx().report(Code::BadValue, list.span.clone(), "`fields` must name at least one field");
        }
        let key = Key { fields: list.value.into_iter().map(|s| s.value).collect() };
        let opts = Opts { min_history: r.count("min_history"), recent: r.duration("recent") };
        (key, opts)
    }

    fn needs(key: &Key, _opts: &Opts) -> Needs {
        Needs { reads: key.fields.iter().map(|f| (TableKind::Events, f.clone())).collect(), ..Needs::default() }
    }

    fn tracker(key: &Key, _u: &Universe<'_>) -> Tracker {
        Tracker { fields: key.fields.clone() }
    }

    fn judge(_key: &Key, opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone() }
    }

    fn new_state(t: &Tracker) -> State {
        State { fields: t.fields.iter().map(|_| FieldHistory::default()).collect(), ..State::default() }
    }

    fn reset(t: &Tracker, s: &mut State, _span: &AccountSpan, data: &Dataset) {
        let table = &data.events.table as *const _ as usize;
        if s.table != table || s.columns.len() != t.fields.len() {
            s.columns = t.fields.iter().map(|f| data.events.table.column_index(f)).collect();
            s.table = table;
        }
        for f in &mut s.fields {
            f.seen.clear();
            f.events = 0;
            f.singletons = 0;
        }
    }

    /// Per field, the values seen by name with their count and first time,
    /// and the field's event and singleton counts.
    fn save(_t: &Tracker, s: &State, _now: Millis, w: &mut Enc<'_>) {
        for h in &s.fields {
            let mut seen: Vec<(Sym, (u32, Millis))> = h.seen.iter().map(|(&k, &v)| (k, v)).collect();
            seen.sort_by_cached_key(|a| w.text_of(a.0));
            w.count(seen.len());
            for (v, (n, first)) in seen {
                w.sym(v);
                w.u64(u64::from(n));
                w.time(first);
            }
            w.u64(u64::from(h.events));
            w.u64(u64::from(h.singletons));
        }
    }

    fn load(t: &Tracker, s: &mut State, r: &mut Dec<'_>, data: &Dataset) -> Result<(), CodecError> {
        s.columns = t.fields.iter().map(|f| data.events.table.column_index(f)).collect();
        s.table = &data.events.table as *const _ as usize;
        for h in &mut s.fields {
            for _ in 0..r.count()? {
                h.seen.insert(r.sym()?, (r.u32()?, r.time()?));
            }
            h.events = r.u32()?;
            h.singletons = r.u32()?;
        }
        Ok(())
    }

    fn observe(_t: &Tracker, s: &mut State, e: &Ev<'_>) {
        for (k, col) in s.columns.iter().enumerate() {
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

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let o = &j.opts;
        let mut strength = 1.0f64;
        let mut why = Vec::new();
        for (k, col) in s.columns.iter().enumerate() {
            let Some(v) = col.and_then(|c| e.data.events.sym(c, e.i)) else { return Outcome::Abstain };
            let h = &s.fields[k];
            if u64::from(h.events) < o.min_history {
                return Outcome::Abstain;
            }
            let name = &t.fields[k];
            match h.seen.get(&v) {
                Some(&(_, first)) if e.ts.saturating_sub(first) > o.recent => return Outcome::Quiet,
                Some(&(count, first)) => {
                    // First seen recently: judge against the history before it.
                    let before = h.events - count;
                    if u64::from(before) < o.min_history {
                        return Outcome::Abstain;
                    }
                    let singles = h.singletons.saturating_sub(u32::from(count == 1));
                    strength = strength.min(1.0 - f64::from(singles + 1) / f64::from(before + 1));
                    if e.words {
                        why.push(format!(
                            "{name} '{}' first seen {} ago ({}), new after {before} events with {} other {}",
                            e.text(v),
                            human_duration(e.ts.saturating_sub(first)),
                            format_rfc3339(first),
                            h.seen.len() - 1,
                            noun(name, h.seen.len() - 1)
                        ));
                    }
                }
                None => {
                    strength = strength.min(1.0 - f64::from(h.singletons + 1) / f64::from(h.events + 1));
                    if e.words {
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
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why: Why::Text(why.join("; ")) }
    }
}

/// The value of `field` that the words of a `new_context` hit say was new
/// to the account, read back from the hit's `why` (the event's words, then
/// each fired signal's, `; ` between them): `Some("AS64500")` from
/// `... asn 'AS64500' first seen 3 min ago (...), new after 40 events with
/// 2 other asns`. For grouping incidents into campaigns
/// ([`crate::campaigns`]), which see a run's hits but not its events.
///
/// It reads the words [`NewContext`]'s `eval` writes, and only those: the
/// segment starts the signals' words (after `: ` or `; `), the value is
/// quoted, and what follows it must be one of the two tails `eval` writes,
/// whole, up to the end or the next `; `. A value holding a quote is read
/// whole when the rest of it is not such a tail. When the words say it
/// twice (a target or author in the event's words can be any text), the
/// last one is taken: a signal's words come after the event's.
pub fn new_value<'w>(why: &'w str, field: &str) -> Option<&'w str> {
    let mut found = None;
    let mut from = 0;
    while let Some(at) = why[from..].find(field).map(|p| p + from) {
        from = at + 1;
        let before = &why[..at];
        if !(before.ends_with(": ") || before.ends_with("; ")) {
            continue;
        }
        let Some(rest) = why[at + field.len()..].strip_prefix(" '") else { continue };
        if let Some(value) = value_before_tail(rest) {
            found = Some(value);
        }
    }
    found
}

/// The quoted value at the start of `rest` (the opening quote gone): up to
/// the first quote followed by a whole tail as `eval` writes it.
fn value_before_tail(rest: &str) -> Option<&str> {
    rest.match_indices('\'').map(|(q, _)| q).find(|&q| is_tail(&rest[q + 1..])).map(|q| &rest[..q])
}

/// Whether `s` starts with one of the tails `eval` writes after a value,
/// ending the words or followed by `; `:
/// ` never seen in N events of this account (it used N other[s])` or
/// ` first seen D ago (TIME), new after N events with N other NOUN`.
fn is_tail(s: &str) -> bool {
    fn number(s: &str) -> Option<&str> {
        let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (digits > 0).then(|| &s[digits..])
    }
    fn ends(s: &str) -> bool {
        s.is_empty() || s.starts_with("; ")
    }
    if let Some(s) = s.strip_prefix(" never seen in ") {
        let Some(s) = number(s).and_then(|s| s.strip_prefix(" events of this account (it used ")) else {
            return false;
        };
        let Some(s) = number(s).and_then(|s| s.strip_prefix(" other")) else { return false };
        return ends(s.strip_prefix("s)").or_else(|| s.strip_prefix(')')).unwrap_or("x"));
    }
    let Some(s) = s.strip_prefix(" first seen ") else { return false };
    // The duration and time hold no `)`; the time is RFC 3339.
    let Some((_, s)) = s.split_once(" ago (") else { return false };
    let Some((time, s)) = s.split_once("), new after ") else { return false };
    if crate::time::parse_rfc3339(time).is_none() {
        return false;
    }
    let Some(s) = number(s).and_then(|s| s.strip_prefix(" events with ")) else { return false };
    let Some(s) = number(s).and_then(|s| s.strip_prefix(" other ")) else { return false };
    ends(s.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '-'))
}

/// A context field's name as a noun for `n` of them: one country, two
/// countries, two devices.
fn noun(field: &str, n: usize) -> String {
    if n == 1 {
        return field.to_string();
    }
    match field.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ if field.ends_with('s') || field.ends_with('x') => format!("{field}es"),
        _ => format!("{field}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::{new_value, noun};

    #[test]
    fn the_new_value_is_read_back_from_the_words() {
        let never = "liked t1 by u2: asn 'AS64500' never seen in 40 events of this account (it used 2 others)";
        assert_eq!(new_value(never, "asn"), Some("AS64500"));
        let one = "followed u9: device 'd1' never seen in 12 events of this account (it used 1 other)";
        assert_eq!(new_value(one, "device"), Some("d1"));
        let first = "followed u9: rate 40/h; client 'automation-kit' first seen 3 min 05 s ago \
                     (2024-01-02T03:04:05Z), new after 7 events with 1 other client";
        assert_eq!(new_value(first, "client"), Some("automation-kit"));
        // Two fields, then another signal's words.
        let two = "liked t1 by u2: device 'd 9' first seen 1 h ago (2024-01-02T03:04:05Z), new after 10 \
                   events with 2 other devices; country 'FR' never seen in 10 events of this account (it \
                   used 1 other); after login at 2024-01-02T03:00:00Z (within 2h)";
        assert_eq!(new_value(two, "device"), Some("d 9"));
        assert_eq!(new_value(two, "country"), Some("FR"));
        assert_eq!(new_value(two, "asn"), None);
        // A quote inside the value.
        let quoted = "liked t1 by u2: client 'o'brien' never seen in 10 events of this account (it used 1 other)";
        assert_eq!(new_value(quoted, "client"), Some("o'brien"));
        // The event's words (a target is any text) say it too: the
        // signal's words, after them, are taken.
        let forged = "liked x: asn 'AS1' never seen in 9 events of this account (it used 1 other) by u2: asn \
                      'AS2' never seen in 40 events of this account (it used 2 others)";
        assert_eq!(new_value(forged, "asn"), Some("AS2"));
        // Not a tail as eval writes it; not a field of the words.
        assert_eq!(new_value("liked t1: asn 'AS1' is new", "asn"), None);
        assert_eq!(
            new_value("liked t1: basn 'AS1' never seen in 9 events of this account (it used 1 other)", "asn"),
            None
        );
        assert_eq!(new_value("liked t1: matched the rule's selection", "asn"), None);
    }

    #[test]
    fn field_names_are_nouns_in_the_why() {
        assert_eq!(noun("country", 1), "country");
        assert_eq!(noun("country", 0), "countries");
        assert_eq!(noun("country", 3), "countries");
        assert_eq!(noun("device", 2), "devices");
        assert_eq!(noun("ip", 2), "ips");
        assert_eq!(noun("survey", 2), "surveys");
        assert_eq!(noun("address", 2), "addresses");
    }
}
