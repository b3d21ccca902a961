//! Per-rule counts over written incidents: what `changeling score` prints
//! after the alerts (and puts in its `--json` stats), so that a run says
//! which rules produced what without `jq`.

use serde::Serialize;

use super::Context;
use crate::score::AccountIncidents;

/// One rule's share of the written incidents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleSummary {
    /// The rule id.
    pub rule: String,
    /// Its severity.
    pub severity: &'static str,
    /// Its hits in written incidents.
    pub hits: u64,
    /// Accounts with at least one of them.
    pub accounts: u64,
    /// Incidents holding one of its hits, per tier (highest first), as
    /// (tier, incidents); in JSON an object `{"high": 2, "medium": 0}`.
    #[serde(serialize_with = "tier_map")]
    pub incidents: Vec<(String, u64)>,
}

fn tier_map<S: serde::Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, n) in v {
        m.serialize_entry(k, n)?;
    }
    m.end()
}

impl RuleSummary {
    /// Adds the counts of the same rule over other accounts.
    pub fn add(&mut self, other: &RuleSummary) {
        self.hits += other.hits;
        self.accounts += other.accounts;
        for ((_, n), (_, m)) in self.incidents.iter_mut().zip(&other.incidents) {
            *n += m;
        }
    }
}

/// Per-rule counts over `accounts`' incidents, for every rule of the plan
/// (rules without hits included, with zeros), by plan order.
pub fn per_rule(accounts: &[AccountIncidents], cx: Context<'_>) -> Vec<RuleSummary> {
    let tiers = &cx.plan.config.tiers;
    let n = cx.plan.rules.len();
    let mut hits = vec![0u64; n];
    let mut accts = vec![0u64; n];
    let mut incidents = vec![vec![0u64; tiers.len()]; n];
    let mut in_account = vec![false; n];
    let mut in_incident = vec![false; n];
    for a in accounts {
        in_account.iter_mut().for_each(|x| *x = false);
        for inc in &a.incidents {
            in_incident.iter_mut().for_each(|x| *x = false);
            for h in &inc.hits {
                let r = h.rule as usize;
                hits[r] += 1;
                in_incident[r] = true;
                in_account[r] = true;
            }
            for (r, hit) in in_incident.iter().enumerate() {
                if *hit {
                    incidents[r][inc.tier] += 1;
                }
            }
        }
        for (r, hit) in in_account.iter().enumerate() {
            accts[r] += u64::from(*hit);
        }
    }
    (0..n)
        .map(|r| RuleSummary {
            rule: cx.plan.rules[r].id.clone(),
            severity: cx.rules[r].severity.name(),
            hits: hits[r],
            accounts: accts[r],
            incidents: tiers.iter().zip(&incidents[r]).map(|(t, c)| (t.name.clone(), *c)).collect(),
        })
        .collect()
}
