//! Which incidents are reported: the triage filters of `changeling score`.
//!
//! Scoring always runs every rule over all the data; a [`Selection`] only
//! chooses which of the resulting incidents are written. An incident is
//! written whole (every hit, the score unchanged), so a reported incident
//! reads the same whatever the filters; it is reported when
//!
//! - its tier is `min_tier` or higher;
//! - one of its hits for compromise (not an accidental tap) is by a rule
//!   that the rule, tag and severity filters let through: its id matches
//!   one of `rules` (when any is given; `*` matches any run of characters,
//!   `likes/*`), it has one of `tags` (when any), its severity is one of
//!   `severities` (when any) and at least `min_severity`, and neither its
//!   id, its tags nor its severity is excluded;
//! - and, with a reporting window (`since`, `until`), one of those hits
//!   falls in it (`since <= ts < until`).
//!
//! The window is for batch jobs: a daily job reads the whole history (the
//! signals need it) and reports only incidents with a hit on the new day.

use super::RuleInfo;
use crate::rules::Severity;
use crate::score::{AccountIncidents, Incident};
use crate::time::Millis;

/// Triage filters. The default keeps every incident.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Lowest tier reported, as an index into the tiers (0 the highest).
    pub min_tier: Option<usize>,
    /// Rule id patterns; a hit's rule must match one (when not empty).
    pub rules: Vec<String>,
    /// Rule id patterns whose hits never make an incident reported.
    pub exclude_rules: Vec<String>,
    /// Tags; a hit's rule must have one (when not empty).
    pub tags: Vec<String>,
    /// Tags whose rules' hits never make an incident reported.
    pub exclude_tags: Vec<String>,
    /// Severities; a hit's rule must have one (when not empty).
    pub severities: Vec<Severity>,
    /// Severities excluded.
    pub exclude_severities: Vec<Severity>,
    /// Lowest severity.
    pub min_severity: Option<Severity>,
    /// Reporting window start (inclusive).
    pub since: Option<Millis>,
    /// Reporting window end (exclusive).
    pub until: Option<Millis>,
}

/// Whether `id` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, id: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == id;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !id.starts_with(first) || id.len() < first.len() + last.len() || !id.ends_with(last) {
        return false;
    }
    let mut rest = &id[first.len()..id.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl Selection {
    /// Whether the selection keeps everything.
    pub fn is_everything(&self) -> bool {
        self.min_tier.is_none() && !self.filters_rules() && self.since.is_none() && self.until.is_none()
    }

    fn filters_rules(&self) -> bool {
        !(self.rules.is_empty()
            && self.exclude_rules.is_empty()
            && self.tags.is_empty()
            && self.exclude_tags.is_empty()
            && self.severities.is_empty()
            && self.exclude_severities.is_empty()
            && self.min_severity.is_none())
    }

    /// Whether the rule, tag and severity filters let a rule through.
    pub fn admits(&self, rule: &RuleInfo) -> bool {
        let id = rule.id.as_str();
        (self.rules.is_empty() || self.rules.iter().any(|p| matches(p, id)))
            && !self.exclude_rules.iter().any(|p| matches(p, id))
            && (self.tags.is_empty() || rule.tags.iter().any(|t| self.tags.contains(t)))
            && !rule.tags.iter().any(|t| self.exclude_tags.contains(t))
            && (self.severities.is_empty() || self.severities.contains(&rule.severity))
            && !self.exclude_severities.contains(&rule.severity)
            && self.min_severity.is_none_or(|m| rule.severity >= m)
    }

    fn in_window(&self, ts: Millis) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }

    /// Whether `incident` is reported; `rules` by plan index.
    pub fn keeps(&self, incident: &Incident, rules: &[RuleInfo]) -> bool {
        if self.min_tier.is_some_and(|t| incident.tier > t) {
            return false;
        }
        incident.hits.iter().any(|h| {
            h.effect == crate::rules::Effect::For && self.in_window(h.ts) && self.admits(&rules[h.rule as usize])
        })
    }

    /// Drops every incident not reported, and the accounts left without
    /// one.
    pub fn apply(&self, accounts: &mut Vec<AccountIncidents>, rules: &[RuleInfo]) {
        if self.is_everything() {
            return;
        }
        for a in accounts.iter_mut() {
            a.incidents.retain(|i| self.keeps(i, rules));
        }
        accounts.retain(|a| !a.incidents.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, severity: Severity, tags: &[&str]) -> RuleInfo {
        RuleInfo {
            id: id.into(),
            title: String::new(),
            severity,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            version: 1,
        }
    }

    #[test]
    fn patterns() {
        assert!(matches("likes/*", "likes/lockstep"));
        assert!(matches("*lockstep", "likes/lockstep"));
        assert!(matches("*/*-spree", "follows/api-spree"));
        assert!(matches("likes/lockstep", "likes/lockstep"));
        assert!(!matches("likes/*", "follows/api-spree"));
        assert!(!matches("likes/lock", "likes/lockstep"));
        assert!(!matches("a*a", "a"));
    }

    #[test]
    fn rule_tag_and_severity_filters() {
        let lockstep = rule("likes/lockstep", Severity::High, &["likes", "campaign"]);
        let tap = rule("likes/accidental-tap", Severity::Info, &["likes", "benign"]);
        let all = Selection::default();
        assert!(all.admits(&lockstep) && all.admits(&tap));
        let s = Selection { tags: vec!["campaign".into()], ..Selection::default() };
        assert!(s.admits(&lockstep) && !s.admits(&tap));
        let s = Selection { exclude_tags: vec!["benign".into()], ..Selection::default() };
        assert!(s.admits(&lockstep) && !s.admits(&tap));
        let s = Selection { min_severity: Some(Severity::Medium), ..Selection::default() };
        assert!(s.admits(&lockstep) && !s.admits(&tap));
        let s = Selection { exclude_rules: vec!["likes/lock*".into()], ..Selection::default() };
        assert!(!s.admits(&lockstep) && s.admits(&tap));
        let s = Selection { severities: vec![Severity::Info], ..Selection::default() };
        assert!(!s.admits(&lockstep) && s.admits(&tap));
    }
}
