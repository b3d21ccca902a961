//! Grouping an account's hits into incidents, and scoring them.
//!
//! Hits *for* compromise that follow each other within the configured gap
//! form one incident. A hit *against* compromise (an accidental tap undone
//! in seconds) joins the incident that holds a hit for on the same target
//! (the like it undoes) and ends less than the gap before it; otherwise it
//! is dropped. It never makes an incident on its own.
//!
//! The score combines evidence by noisy-OR: each hit is an independent
//! chance `weight * strength` that the account is compromised, so
//! `p_for = 1 - prod(1 - w*s)` over hits for, and likewise `p_against`
//! over hits against; `score = p_for * (1 - p_against)`, rounded to four
//! decimals. Independence is an assumption, not a measurement: several hits
//! of one rule on one burst count more than one, which is intended (a burst
//! of odd likes is stronger evidence than one) but can overstate.

use super::Hit;
use crate::rules::{Config, Effect};
use crate::time::Millis;

/// One incident of one account.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// First hit's time.
    pub start: Millis,
    /// Last hit's time.
    pub end: Millis,
    /// Combined score in [0, 1].
    pub score: f64,
    /// Index into the config's tiers.
    pub tier: usize,
    /// Its hits, by time.
    pub hits: Vec<Hit>,
}

/// Rounds to four decimals, the precision alerts carry.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Groups `hits` (sorted by time) into scored incidents; drops incidents
/// below the lowest tier.
pub fn group(hits: Vec<Hit>, weights: &[f64], config: &Config) -> Vec<Incident> {
    let gap = config.incident_gap;
    let mut groups: Vec<Vec<Hit>> = Vec::new();
    let mut against = Vec::new();
    let mut last: Option<Millis> = None;
    for h in hits {
        if h.effect == Effect::Against {
            against.push(h);
            continue;
        }
        match last {
            Some(t) if h.ts - t <= gap => groups.last_mut().expect("a group is open").push(h.clone()),
            _ => groups.push(vec![h.clone()]),
        }
        last = Some(h.ts);
    }
    for h in against {
        // The latest group, before the hit, with a hit for on the same
        // target: an undone tap speaks against that like, not against
        // whatever else the account did that day.
        let best = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g[0].ts <= h.ts && h.ts <= g[g.len() - 1].ts + gap)
            .filter(|(_, g)| h.target.is_some() && g.iter().any(|x| x.effect == Effect::For && x.target == h.target))
            .max_by_key(|(_, g)| g[0].ts);
        if let Some((i, _)) = best {
            groups[i].push(h);
        }
    }
    let mut out = Vec::new();
    for mut g in groups {
        g.sort_by_key(|h| (h.ts, h.rule, h.event));
        let (mut keep_for, mut keep_against) = (1.0, 1.0);
        for h in &g {
            let p = (weights[h.rule as usize] * h.strength).clamp(0.0, 1.0);
            match h.effect {
                Effect::For => keep_for *= 1.0 - p,
                Effect::Against => keep_against *= 1.0 - p,
            }
        }
        let score = round4((1.0 - keep_for) * keep_against);
        if let Some(tier) = config.tier_of(score) {
            out.push(Incident { start: g[0].ts, end: g[g.len() - 1].ts, score, tier, hits: g });
        }
    }
    out
}
