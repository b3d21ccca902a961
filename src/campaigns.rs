//! Campaigns: incidents of several accounts that share cross-account
//! evidence, grouped, with one id written in each member's alert.
//!
//! The evidence used is that of the lockstep rules (rules with a
//! `lockstep` signal): two incidents whose lockstep hits are on one item
//! are of one campaign, and so, transitively, are the incidents linked
//! through others. A group of incidents of at least two accounts is a
//! campaign. Its id is `c-` and the smallest member incident id: the same
//! in every run that sees that incident, whatever the thread count or the
//! order of the input.
//!
//! Limits: other shared evidence (the same new network or client in one
//! window) is not used yet, and the grouping needs the run's incidents in
//! memory (a run whose incidents were spilled does not group them; the
//! summary says so).

use std::collections::{BTreeMap, BTreeSet};

use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::AccountIncidents;
use crate::signals::SignalDef;
use crate::time::Millis;

/// One campaign.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Campaign {
    /// `c-` and the smallest member incident id.
    pub id: String,
    /// Member accounts, sorted.
    pub members: Vec<String>,
    /// The items their lockstep hits share, sorted.
    pub items: Vec<String>,
    /// Earliest start and latest end of the member incidents.
    #[serde(serialize_with = "span")]
    pub span: (Millis, Millis),
    /// Member incidents per tier name, in the tiers' order.
    pub tiers: Vec<(String, u64)>,
    /// Member incident ids.
    #[serde(skip)]
    pub incidents: Vec<String>,
}

fn span<S: serde::Serializer>(s: &(Millis, Millis), ser: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    m.serialize_entry("start", &crate::time::format_rfc3339(s.0))?;
    m.serialize_entry("end", &crate::time::format_rfc3339(s.1))?;
    m.end()
}

/// The campaigns of `accounts` (every incident of the run), sorted by id.
pub fn find(accounts: &[AccountIncidents], plan: &Plan, strings: &Interner) -> Vec<Campaign> {
    let lockstep: Vec<bool> =
        plan.rules.iter().map(|r| r.signals.iter().any(|s| matches!(s.def, SignalDef::Lockstep(_)))).collect();
    // Incidents with lockstep hits, and the items of those hits.
    let mut nodes: Vec<(usize, usize)> = Vec::new();
    let mut by_item: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (a, acc) in accounts.iter().enumerate() {
        for (i, inc) in acc.incidents.iter().enumerate() {
            let items: BTreeSet<&str> = inc
                .hits
                .iter()
                .filter(|h| lockstep.get(h.rule as usize).copied().unwrap_or(false))
                .filter_map(|h| h.target.map(|t| strings.resolve(t)))
                .collect();
            if items.is_empty() {
                continue;
            }
            let n = nodes.len();
            nodes.push((a, i));
            for item in items {
                by_item.entry(item).or_default().push(n);
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
    for members in by_item.values() {
        for w in members.windows(2) {
            let (x, y) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            if x != y {
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for n in 0..nodes.len() {
        let r = root(&mut parent, n);
        groups.entry(r).or_default().push(n);
    }
    let mut out = Vec::new();
    for members in groups.values() {
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
            items,
            span: (incs.iter().map(|i| i.start).min().unwrap_or(0), incs.iter().map(|i| i.end).max().unwrap_or(0)),
            tiers,
            incidents: ids,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Incident id to campaign id, for the alert writers.
pub fn by_incident(campaigns: &[Campaign]) -> BTreeMap<String, String> {
    campaigns.iter().flat_map(|c| c.incidents.iter().map(|i| (i.clone(), c.id.clone()))).collect()
}
