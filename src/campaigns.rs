//! Campaigns: incidents of several accounts that share cross-account
//! evidence, grouped, with one id written in each member's alert.
//!
//! Two kinds of evidence join incidents:
//!
//! - **lockstep**: the hits of the lockstep rules (rules with a `lockstep`
//!   signal) of two incidents are on one item;
//! - **network** or **client**: the `new_context` hits of incidents of
//!   different accounts say one value of a network field (`asn`, `ip`) or
//!   of a client field (`client`, `device`) was new to each account, and
//!   those hits fall within one window ([`Options::window`]: the rules'
//!   `[incident] gap`, 6 h by default). Per value, the hits are taken in
//!   time order and cut into windows: each window starts at the first hit
//!   not in the one before and holds the hits up to `window` after it, so
//!   everything one value joins lies within one window. A window joins
//!   its incidents only when the value is rare and new to them at once:
//!   it holds at least half of all the accounts whose incidents show the
//!   value new anywhere in the run ([`Options::min_share`]), and at most
//!   [`Options::max_accounts`] accounts. A common value (a big carrier's
//!   network, the web client, a client version everyone is moving to) is
//!   new to a few accounts in every window, never to most of its accounts
//!   in one; a campaign's network or tool is new to its accounts at once.
//!
//! Incidents joined by either kind, directly or through others, are one
//! group, and a group of incidents of at least two accounts is a campaign.
//! Its id is `c-` and the smallest member incident id: the same in every
//! run that sees that incident, whatever the thread count or the order of
//! the input.
//!
//! Only evidence between incidents counts: an account the rules do not
//! flag joins nothing, however alike its network. Values of other context
//! fields (`country`, extra fields) join nothing: a country is shared by
//! too many.
//!
//! Limits: the run keeps a hit's words, not its event, so a `new_context`
//! hit's value is read back from its words
//! ([`crate::signals::new_context::new_value`]). The grouping needs the
//! run's incidents in memory (a run whose incidents were spilled does not
//! group them; the summary says so).

use std::collections::{BTreeMap, BTreeSet};

use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::AccountIncidents;
use crate::signals::SignalDef;
use crate::signals::new_context::new_value;
use crate::time::Millis;

/// A window's hits of more accounts than this join nothing (see the
/// module doc): a bound on what one value can join, whatever the run.
/// The largest window that joined anything, on synth seeds 2 and 3 (20,000
/// accounts, 60 days) with a rule added that reports every like from a
/// new `asn`, `ip` or `client`, held 22 and 25 accounts, all of them a
/// planted campaign's; not measured beyond that.
pub const MAX_ACCOUNTS: usize = 50;

/// A window joins its incidents only when it holds at least this share of
/// the accounts whose incidents show its value new anywhere in the run
/// (see the module doc). With the shipped rules on synth seed 2 this
/// leaves out `client 'automation-kit'`, new to 23 flagged accounts over
/// 60 days (independent follow sprees, at most 2 in one 6 h window); with
/// a rule reporting every new `asn`, `ip` and `client` of a like, it
/// leaves out 319 windows (the web client, consumer carriers) that would
/// have made 159 campaigns of 945 accounts, 855 of them benign.
pub const MIN_SHARE: f64 = 0.5;

/// Which kind of shared evidence joined members of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// Lockstep hits on one item.
    Lockstep,
    /// One network (`asn`, `ip`) new to each account, in one window.
    Network,
    /// One client or device (`client`, `device`) new to each account, in
    /// one window.
    Client,
}

impl Evidence {
    /// Its name, as `--json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Evidence::Lockstep => "lockstep",
            Evidence::Network => "network",
            Evidence::Client => "client",
        }
    }

    /// The kind of evidence a new value of context field `field` is, if
    /// any: network fields, client fields, nothing for the others.
    pub fn of_field(field: &str) -> Option<Evidence> {
        match field {
            "asn" | "ip" => Some(Evidence::Network),
            "client" | "device" => Some(Evidence::Client),
            _ => None,
        }
    }
}

/// A network or client value that joined members of a campaign.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Shared {
    /// The context field (`asn`, `ip`, `client`, `device`).
    pub field: String,
    /// Its value, new to each account it joined.
    pub value: String,
}

/// How incidents are grouped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// New-network and new-client hits join incidents when they fall in
    /// one window this long.
    pub window: Millis,
    /// A window whose hits are of more accounts than this joins nothing.
    pub max_accounts: usize,
    /// A window whose accounts are fewer than this share of its value's
    /// accounts in the run joins nothing.
    pub min_share: f64,
}

impl Options {
    /// The options of `plan`: its `[incident] gap` as the window,
    /// [`MAX_ACCOUNTS`], [`MIN_SHARE`].
    pub fn of(plan: &Plan) -> Options {
        Options { window: plan.config.incident_gap, max_accounts: MAX_ACCOUNTS, min_share: MIN_SHARE }
    }
}

/// One campaign.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Campaign {
    /// `c-` and the smallest member incident id.
    pub id: String,
    /// Member accounts, sorted.
    pub members: Vec<String>,
    /// The kinds of evidence that joined its members, in the order
    /// lockstep, network, client.
    pub evidence: Vec<Evidence>,
    /// The items their lockstep hits share, sorted.
    pub items: Vec<String>,
    /// The new networks and clients that joined members, sorted.
    pub contexts: Vec<Shared>,
    /// Earliest start and latest end of the member incidents.
    #[serde(serialize_with = "span")]
    pub span: (Millis, Millis),
    /// Member incidents per tier name, in the tiers' order.
    pub tiers: Vec<(String, u64)>,
    /// Member incident ids.
    #[serde(skip)]
    pub incidents: Vec<String>,
}

impl Campaign {
    /// What joined its members, in words: `lockstep (2 items), network
    /// (asn AS64500)`.
    pub fn evidence_text(&self) -> String {
        self.evidence
            .iter()
            .map(|&e| {
                if e == Evidence::Lockstep {
                    let n = self.items.len();
                    return format!("lockstep ({n} item{})", if n == 1 { "" } else { "s" });
                }
                let values: Vec<String> = self
                    .contexts
                    .iter()
                    .filter(|s| Evidence::of_field(&s.field) == Some(e))
                    .map(|s| format!("{} {}", s.field, s.value))
                    .collect();
                format!("{} ({})", e.name(), values.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn span<S: serde::Serializer>(s: &(Millis, Millis), ser: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    m.serialize_entry("start", &crate::time::format_rfc3339(s.0))?;
    m.serialize_entry("end", &crate::time::format_rfc3339(s.1))?;
    m.end()
}

/// The network and client values a `new_context` hit says were new, with
/// the words it was read from: for each of `fields` whose kind is network
/// or client, the value the words give it.
pub fn new_contexts<'w, 'f>(
    why: &'w str,
    fields: impl IntoIterator<Item = &'f str>,
) -> impl Iterator<Item = (&'f str, &'w str)> {
    fields
        .into_iter()
        .filter(|f| Evidence::of_field(f).is_some())
        .filter_map(move |f| new_value(why, f).map(|v| (f, v)))
}

/// A hit showing a new network or client value, as the grouping sorts
/// them: its time, account, incident id and node.
type ValueHit<'a> = (Millis, &'a str, &'a str, usize);

/// The campaigns of `accounts` (every incident of the run), sorted by id,
/// with the options of `plan` ([`Options::of`]).
pub fn find(accounts: &[AccountIncidents], plan: &Plan, strings: &Interner) -> Vec<Campaign> {
    find_with(accounts, plan, strings, Options::of(plan))
}

/// The campaigns of `accounts`, sorted by id, with `opts`.
pub fn find_with(accounts: &[AccountIncidents], plan: &Plan, strings: &Interner, opts: Options) -> Vec<Campaign> {
    let lockstep: Vec<bool> =
        plan.rules.iter().map(|r| r.signals.iter().any(|s| matches!(s.def, SignalDef::Lockstep(_)))).collect();
    // The network and client fields of each rule's new_context signals.
    let context_fields: Vec<Vec<&str>> = plan
        .rules
        .iter()
        .map(|r| {
            let mut fields: Vec<&str> = r
                .signals
                .iter()
                .filter_map(|s| match &s.def {
                    SignalDef::NewContext(d) => Some(d.key.fields.iter().map(String::as_str)),
                    _ => None,
                })
                .flatten()
                .filter(|f| Evidence::of_field(f).is_some())
                .collect();
            fields.sort_unstable();
            fields.dedup();
            fields
        })
        .collect();
    // Incidents with lockstep hits or new networks or clients, the items
    // of those hits, and each value's earliest hit per incident.
    let mut nodes: Vec<(usize, usize)> = Vec::new();
    let mut by_item: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_value: BTreeMap<(&str, &str), Vec<ValueHit<'_>>> = BTreeMap::new();
    for (a, acc) in accounts.iter().enumerate() {
        let actor = strings.resolve(acc.actor);
        for (i, inc) in acc.incidents.iter().enumerate() {
            let items: BTreeSet<&str> = inc
                .hits
                .iter()
                .filter(|h| lockstep.get(h.rule as usize).copied().unwrap_or(false))
                .filter_map(|h| h.target.map(|t| strings.resolve(t)))
                .collect();
            let mut values: BTreeMap<(&str, &str), Millis> = BTreeMap::new();
            for h in &inc.hits {
                let Some(fields) = context_fields.get(h.rule as usize).filter(|f| !f.is_empty()) else { continue };
                if !h.signals.contains(&"new_context") {
                    continue;
                }
                for (field, value) in new_contexts(&h.why, fields.iter().copied()) {
                    let at = values.entry((field, value)).or_insert(h.ts);
                    *at = (*at).min(h.ts);
                }
            }
            if items.is_empty() && values.is_empty() {
                continue;
            }
            let n = nodes.len();
            nodes.push((a, i));
            for item in items {
                by_item.entry(item).or_default().push(n);
            }
            for (key, ts) in values {
                by_value.entry(key).or_default().push((ts, actor, inc.id.as_str(), n));
            }
        }
    }
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    fn join(parent: &mut [usize], members: &[usize]) {
        for w in members.windows(2) {
            let (x, y) = (root(parent, w[0]), root(parent, w[1]));
            if x != y {
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    for members in by_item.values() {
        join(&mut parent, members);
    }
    // Each value's windows of at least two accounts, at most max_accounts
    // and at least min_share of the value's: (field, value, a node of it).
    let mut joins: Vec<(&str, &str, usize)> = Vec::new();
    for (&(field, value), hits) in &mut by_value {
        // In time order, ties by account and incident: not by input order.
        hits.sort_unstable();
        let all = hits.iter().map(|h| h.1).collect::<BTreeSet<&str>>().len();
        let mut start = 0;
        while start < hits.len() {
            let end = start + hits[start..].partition_point(|h| h.0.saturating_sub(hits[start].0) <= opts.window);
            let window = &hits[start..end];
            let accounts: BTreeSet<&str> = window.iter().map(|h| h.1).collect();
            let n = accounts.len();
            if (2..=opts.max_accounts).contains(&n) && n as f64 >= opts.min_share * all as f64 {
                let members: Vec<usize> = window.iter().map(|h| h.3).collect();
                join(&mut parent, &members);
                joins.push((field, value, members[0]));
            }
            start = end;
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for n in 0..nodes.len() {
        let r = root(&mut parent, n);
        groups.entry(r).or_default().push(n);
    }
    let mut contexts_of: BTreeMap<usize, BTreeSet<Shared>> = BTreeMap::new();
    for (field, value, n) in joins {
        let r = root(&mut parent, n);
        contexts_of.entry(r).or_default().insert(Shared { field: field.to_string(), value: value.to_string() });
    }
    let mut out = Vec::new();
    for (r, members) in &groups {
        let actors: BTreeSet<&str> = members.iter().map(|&n| strings.resolve(accounts[nodes[n].0].actor)).collect();
        if actors.len() < 2 {
            continue;
        }
        let incs: Vec<&crate::score::Incident> =
            members.iter().map(|&n| &accounts[nodes[n].0].incidents[nodes[n].1]).collect();
        let mut ids: Vec<String> = incs.iter().map(|i| i.id.clone()).collect();
        ids.sort();
        let items: BTreeSet<&str> =
            by_item.iter().filter(|(_, ns)| ns.iter().any(|n| members.contains(n))).map(|(i, _)| *i).collect();
        let items: Vec<String> = items
            .into_iter()
            .filter(|i| by_item[i].iter().filter(|n| members.contains(n)).count() > 1)
            .map(str::to_string)
            .collect();
        let contexts: Vec<Shared> = contexts_of.remove(r).unwrap_or_default().into_iter().collect();
        let mut evidence: Vec<Evidence> = contexts.iter().filter_map(|s| Evidence::of_field(&s.field)).collect();
        if !items.is_empty() {
            evidence.push(Evidence::Lockstep);
        }
        evidence.sort_unstable();
        evidence.dedup();
        let tiers = plan
            .config
            .tiers
            .iter()
            .enumerate()
            .map(|(t, tier)| (tier.name.clone(), incs.iter().filter(|i| i.tier == t).count() as u64))
            .collect();
        out.push(Campaign {
            id: format!("c-{}", ids[0]),
            members: actors.into_iter().map(str::to_string).collect(),
            evidence,
            items,
            contexts,
            span: (incs.iter().map(|i| i.start).min().unwrap_or(0), incs.iter().map(|i| i.end).max().unwrap_or(0)),
            tiers,
            incidents: ids,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The kinds of evidence that join the members of one campaign as an
/// alerts file shows them (for the report, which reads alerts, not a
/// run): lockstep when two member incidents have lockstep hits on one
/// item, network or client when `new_context` hits of two member accounts
/// say one network or client value was new. Each member is its account
/// and its hits as (signal kinds, target, words).
pub fn evidence_of<'a, H>(members: impl IntoIterator<Item = (&'a str, H)>) -> Vec<Evidence>
where
    H: IntoIterator<Item = (&'a [String], Option<&'a str>, &'a str)>,
{
    let mut items: BTreeMap<&str, usize> = BTreeMap::new();
    let mut values: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for (actor, hits) in members {
        let mut mine: BTreeSet<&str> = BTreeSet::new();
        for (signals, target, why) in hits {
            if signals.iter().any(|s| s == "lockstep")
                && let Some(t) = target
            {
                mine.insert(t);
            }
            if signals.iter().any(|s| s == "new_context") {
                for (field, value) in new_contexts(why, ["asn", "ip", "client", "device"]) {
                    values.entry((field, value)).or_default().insert(actor);
                }
            }
        }
        for t in mine {
            *items.entry(t).or_default() += 1;
        }
    }
    let mut out: BTreeSet<Evidence> = BTreeSet::new();
    if items.values().any(|&n| n > 1) {
        out.insert(Evidence::Lockstep);
    }
    out.extend(values.iter().filter(|(_, a)| a.len() > 1).filter_map(|((f, _), _)| Evidence::of_field(f)));
    out.into_iter().collect()
}

/// Incident id to campaign id, for the alert writers.
pub fn by_incident(campaigns: &[Campaign]) -> BTreeMap<String, String> {
    campaigns.iter().flat_map(|c| c.incidents.iter().map(|i| (i.clone(), c.id.clone()))).collect()
}
