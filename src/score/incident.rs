//! Grouping an account's hits into incidents, and scoring them.
//!
//! Hits *for* compromise that follow each other within the configured gap
//! form one incident. A hit for on a target that an earlier incident holds
//! a hit on, at most `link` after that incident's latest hit, joins that
//! incident, together with the hits it is grouped with by the gap (the
//! owner removing an intruder's likes the next morning is part of the
//! story, not a new one).
//! A hit *against* compromise (an accidental tap undone
//! in seconds) joins the incident that holds a hit for on the same target
//! (the like it undoes) and ends less than the gap before it; otherwise it
//! is dropped. It never makes an incident on its own.
//!
//! **The score** ([`ScoreModel`], `[score]` in `changeling.toml`). Each hit
//! carries evidence `e = weight * strength` (clamped to [0, 1]) in each of
//! its rule's families. In one family, hits are taken strongest first and
//! the k-th counts `repeat_discount^(k-1)` of its evidence:
//!
//! ```text
//! family_f  = min(cap, 1 - prod_k (1 - e_(k) * d^(k-1)))     d = repeat_discount
//! score     = 1 - prod_f (1 - family_f)                        (rounded to 4 decimals)
//! ```
//!
//! With a `[score.calibration]` (fitted by `changeling fit`), the score is
//! that combination mapped through it ([`ScoreModel::calibrated`]) before
//! rounding; the families keep their own evidence.
//!
//! A hit *against* (weight `w_a`, strength `s_a`: an accidental tap)
//! multiplies the evidence of the hits for on the target it undoes, made
//! before it, by `1 - w_a * s_a`: it speaks against that like, not against
//! the rest of the incident.
//!
//! Repeats of one kind of evidence (four odd likes in one sitting) thus
//! have diminishing returns and never exceed the cap, however many there
//! are; different families combine as independent evidence. With the cap
//! below the top tier, only corroboration by a second family reaches it.
//! The families are not truly independent (an off-pattern like is more
//! often unexposed too); rules say which of their evidence is which, and a
//! rule that needs two kinds of evidence at once counts in one family
//! unless it names two.

use super::Hit;
use crate::intern::Sym;
use crate::rules::config::ScoreModel;
use crate::rules::{Config, Effect};
use crate::signals::Horizon;
use crate::time::Millis;

/// One incident of one account.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Its stable identity ([`incident_id`]): empty until
    /// [`Incident::identify`].
    pub id: String,
    /// First hit's time.
    pub start: Millis,
    /// Last hit's time.
    pub end: Millis,
    /// Combined score in [0, 1].
    pub score: f64,
    /// Index into the config's tiers.
    pub tier: usize,
    /// What each family of evidence contributed, in the config's family
    /// order; families without hits are left out.
    pub families: Vec<FamilyEvidence>,
    /// Its hits, by time.
    pub hits: Vec<Hit>,
    /// After this time no later event can change it: a later hit joins an
    /// incident up to the incident gap or link after its last hit (and a
    /// verdict may become such a hit up to the plan's longest `adds`
    /// horizon after its event), and each of its hits may change up to its
    /// rule's horizon after it.
    pub final_after: Millis,
    /// Where it stands in its lifecycle.
    pub status: Status,
}

/// Where an incident stands, as a run reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// First seen by this run, and later data may still change it.
    #[default]
    New,
    /// Seen before, changed by this run's data, and may still change.
    Updated,
    /// No later event can change it (its `final_after` is past).
    Final,
    /// No longer an incident: later data took its evidence back.
    Withdrawn,
}

impl Status {
    /// The name alerts use.
    pub fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Updated => "updated",
            Status::Final => "final",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// The status named `name`.
    pub fn named(name: &str) -> Option<Status> {
        [Status::New, Status::Updated, Status::Final, Status::Withdrawn].into_iter().find(|s| s.name() == name)
    }
}

impl Incident {
    /// Sets its identity, from the account and its first hit.
    pub fn identify(&mut self, actor: &str, rule_id: impl Fn(u32) -> String, text: impl Fn(Sym) -> String) {
        let first = &self.hits[0];
        let target = first.target.map(&text);
        self.id = incident_id(actor, first.ts, &rule_id(first.rule), target.as_deref());
    }
}

/// Gives `incidents` of account `actor` their identity, and the status a
/// run over data ending at `data_end` reports: final when no later event
/// can change them, else new.
pub fn settle(
    incidents: &mut [Incident],
    actor: &str,
    plan: &crate::plan::Plan,
    strings: &crate::intern::Interner,
    data_end: Option<Millis>,
) {
    for inc in incidents {
        inc.identify(actor, |r| plan.rules[r as usize].id.clone(), |t| strings.resolve(t).to_string());
        inc.status = if data_end.is_some_and(|end| inc.final_after <= end) { Status::Final } else { Status::New };
    }
}

/// An incident's identity: a deterministic function of the account and its
/// first hit (time, rule, target), the same in every run that sees it: 32
/// hex digits of the 128-bit FNV-1a hash of those fields, each ended by a
/// NUL byte (the time as decimal milliseconds).
pub fn incident_id(actor: &str, ts: Millis, rule: &str, target: Option<&str>) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let ts = ts.to_string();
    for part in [actor, ts.as_str(), rule, target.unwrap_or("")] {
        for &b in part.as_bytes().iter().chain(&[0u8]) {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// One family's contribution to an incident's score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FamilyEvidence {
    /// Index into the config's `score.families`.
    pub family: usize,
    /// The family's evidence after discount and cap, rounded to 4 decimals.
    pub evidence: f64,
    /// How many hits counted in it.
    pub hits: u32,
}

/// What the score needs to know of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleScore {
    /// How much one hit counts.
    pub weight: f64,
    /// Its families, as indices into the config's `score.families`.
    pub families: Vec<usize>,
    /// How long after its event a hit of the rule may change.
    pub horizon: Horizon,
    /// How far back its `after_hit` signals read earlier hits (0 without).
    pub follow_up: Millis,
}

impl RuleScore {
    /// What the score needs of each rule of `plan`, by rule index.
    pub fn of_plan(plan: &crate::plan::Plan) -> Vec<RuleScore> {
        plan.rules
            .iter()
            .map(|r| RuleScore {
                weight: r.weight,
                families: r.families.clone(),
                horizon: r.horizon,
                follow_up: r.signals.iter().map(|s| s.def.follow_up()).max().unwrap_or(0),
            })
            .collect()
    }
}

/// Rounds to four decimals, the precision alerts carry.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// One group of an account's hits, scored: an incident when its score
/// reaches a tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Its hits, as positions in the hits given to [`form`], by time.
    pub members: Vec<usize>,
    /// The combined score.
    pub score: f64,
    /// What each family contributed.
    pub families: Vec<FamilyEvidence>,
    /// The tier the score reaches (`None`: below the lowest, not written).
    pub tier: Option<usize>,
    /// After this time no later event can change it (see
    /// [`Incident::final_after`]).
    pub final_after: Millis,
}

/// How long after a group's last hit a later event may still change it: a
/// later hit joins it up to the incident gap or link after (and a verdict
/// on an event up to the longest `adds` horizon before becomes a hit), and
/// an `after_hit` verdict up to `follow_up` after may still read its hits,
/// which a daily run must keep until then.
pub fn join_horizon(rules: &[RuleScore], config: &Config) -> Millis {
    let adds = rules.iter().map(|r| r.horizon.adds).max().unwrap_or(0);
    let follow_up = rules.iter().map(|r| r.follow_up).max().unwrap_or(0);
    config.incident_gap.max(config.incident_link).max(follow_up).saturating_add(adds)
}

/// Groups `hits` (sorted by time) and scores each group, those below the
/// lowest tier included. See the module doc for how hits group.
pub fn form(hits: &[Hit], rules: &[RuleScore], config: &Config) -> Vec<Group> {
    let (gap, link) = (config.incident_gap, config.incident_link);
    // Groups in order of their first hit; a group merged into an earlier
    // one is left empty.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut against = Vec::new();
    // The group gap grouping extends, and the time of its latest hit.
    let mut open: Option<(usize, Millis)> = None;
    for (i, h) in hits.iter().enumerate() {
        if h.effect == Effect::Against {
            against.push(i);
            continue;
        }
        let by_gap = open.filter(|&(_, t)| h.ts.saturating_sub(t) <= gap).map(|(g, _)| g);
        // Follow-up on a target an earlier incident holds (the owner
        // removing an intruder's likes hours later) belongs to it.
        let by_link = h.target.filter(|_| link > 0).and_then(|target| {
            groups.iter().enumerate().rev().find_map(|(g, hs)| {
                let holds = Some(g) != by_gap
                    && hs.iter().any(|&x| hits[x].target == Some(target))
                    && hs.iter().map(|&x| hits[x].ts).max().is_some_and(|last| h.ts.saturating_sub(last) <= link);
                holds.then_some(g)
            })
        });
        let g = match (by_gap, by_link) {
            (Some(a), Some(b)) => {
                // The open group is part of the earlier one: merge them.
                let (keep, gone) = (a.min(b), a.max(b));
                let moved = std::mem::take(&mut groups[gone]);
                groups[keep].extend(moved);
                keep
            }
            (Some(g), None) | (None, Some(g)) => g,
            (None, None) => {
                groups.push(Vec::new());
                groups.len() - 1
            }
        };
        groups[g].push(i);
        open = Some((g, h.ts));
    }
    groups.retain(|g| !g.is_empty());
    let order = |x: &usize| (hits[*x].ts, hits[*x].rule, hits[*x].event);
    for g in &mut groups {
        g.sort_by_key(order);
    }
    for i in against {
        let h = &hits[i];
        // The latest group, before the hit, with a hit for on the same
        // target: an undone tap speaks against that like, not against
        // whatever else the account did that day.
        let best = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| hits[g[0]].ts <= h.ts && h.ts <= hits[g[g.len() - 1]].ts.saturating_add(gap))
            .filter(|(_, g)| {
                h.target.is_some() && g.iter().any(|&x| hits[x].effect == Effect::For && hits[x].target == h.target)
            })
            .max_by_key(|(_, g)| hits[g[0]].ts);
        if let Some((k, _)) = best {
            groups[k].push(i);
        }
    }
    let join = join_horizon(rules, config);
    groups
        .into_iter()
        .map(|mut members| {
            members.sort_by_key(order);
            let g: Vec<&Hit> = members.iter().map(|&x| &hits[x]).collect();
            let (score, families) = score(g.iter().copied(), rules, &config.score);
            let end = g[g.len() - 1].ts;
            let changes =
                g.iter().map(|h| h.ts.saturating_add(rules[h.rule as usize].horizon.longest())).max().unwrap_or(end);
            Group {
                members,
                score,
                families,
                tier: config.tier_of(score),
                final_after: end.saturating_add(join).max(changes),
            }
        })
        .collect()
}

/// Groups `hits` (sorted by time) into scored incidents; drops incidents
/// below the lowest tier.
pub fn group(hits: Vec<Hit>, rules: &[RuleScore], config: &Config) -> Vec<Incident> {
    incidents(&hits, form(&hits, rules, config))
}

/// The groups of `hits` that reach a tier, as incidents.
pub fn incidents(hits: &[Hit], groups: Vec<Group>) -> Vec<Incident> {
    groups
        .into_iter()
        .filter_map(|g| {
            let tier = g.tier?;
            let hits: Vec<Hit> = g.members.iter().map(|&x| hits[x].clone()).collect();
            Some(Incident {
                id: String::new(),
                start: hits[0].ts,
                end: hits[hits.len() - 1].ts,
                score: g.score,
                tier,
                families: g.families,
                hits,
                final_after: g.final_after,
                status: Status::New,
            })
        })
        .collect()
}

/// The score of one incident's hits, and each family's share of it.
pub fn score<'h, I>(hits: I, rules: &[RuleScore], model: &ScoreModel) -> (f64, Vec<FamilyEvidence>)
where
    I: IntoIterator<Item = &'h Hit>,
    I::IntoIter: Clone,
{
    let hits = hits.into_iter();
    let evidence = |h: &Hit| (rules[h.rule as usize].weight * h.strength).clamp(0.0, 1.0);
    // A hit against (an accidental tap undone) discounts the hits for on
    // the target it undoes, made before it: that like, not the rest.
    let against = |h: &Hit| -> f64 {
        hits.clone()
            .filter(|a| a.effect == Effect::Against && a.target.is_some() && a.target == h.target && a.ts >= h.ts)
            .map(|a| 1.0 - evidence(a))
            .product()
    };
    let mut keep_for = 1.0;
    let mut families = Vec::new();
    let mut es: Vec<f64> = Vec::new();
    for f in 0..model.families.len() {
        es.clear();
        es.extend(
            hits.clone()
                .filter(|h| h.effect == Effect::For && rules[h.rule as usize].families.contains(&f))
                .map(|h| evidence(h) * against(h)),
        );
        if es.is_empty() {
            continue;
        }
        let e = family_evidence(&mut es, model.repeat_discount, model.cap(f));
        keep_for *= 1.0 - e;
        families.push(FamilyEvidence { family: f, evidence: round4(e), hits: es.len() as u32 });
    }
    (round4(model.calibrated(1.0 - keep_for)), families)
}

/// One family's evidence from its hits' evidence `es` (reordered):
/// strongest first, the k-th discounted by `repeat_discount^(k-1)`, then
/// saturated below the cap: `cap * (1 - keep^(1/cap))` where `keep =
/// prod(1 - e_k d^(k-1))`. Near zero it is the plain noisy-OR; it stays
/// below the cap (at most `cap - 0.0001`); and it keeps order (more
/// evidence, more score), so incidents of one kind still rank among
/// themselves.
pub fn family_evidence(es: &mut [f64], repeat_discount: f64, cap: f64) -> f64 {
    es.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut keep = 1.0;
    let mut discount = 1.0;
    for &e in es.iter() {
        keep *= 1.0 - e * discount;
        discount *= repeat_discount;
    }
    if cap <= 0.0 {
        return 0.0;
    }
    // At most one step of the alerts' precision below the cap, so that a
    // cap equal to a tier's threshold stays under it after rounding.
    (cap * (1.0 - keep.powf(1.0 / cap))).min(cap - 1e-4).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Interner;
    use crate::time::MINUTE;

    fn model() -> ScoreModel {
        ScoreModel::default()
    }

    /// A family's evidence from its noisy-OR `raw`, under cap `cap`.
    fn sat(raw: f64, cap: f64) -> f64 {
        cap * (1.0 - (1.0 - raw).powf(1.0 / cap))
    }

    fn hit(rule: u32, minute: i64, strength: f64, effect: Effect) -> Hit {
        Hit {
            rule,
            event: minute as u32,
            ts: minute * MINUTE,
            action: Interner::sym_at(0),
            target: Some(Interner::sym_at(minute as usize)),
            strength,
            effect,
            why: String::new(),
            signals: Vec::new(),
        }
    }

    fn on(mut h: Hit, target: usize) -> Hit {
        h.target = Some(Interner::sym_at(target));
        h
    }

    /// Rules 0 and 1 are content, 2 cleanup, 3 both context and automation, 4 against.
    fn rules() -> Vec<RuleScore> {
        vec![
            RuleScore { weight: 0.5, families: vec![0], horizon: Horizon::default(), follow_up: 0 },
            RuleScore { weight: 1.0, families: vec![0], horizon: Horizon::default(), follow_up: 0 },
            RuleScore { weight: 0.5, families: vec![2], horizon: Horizon::default(), follow_up: 0 },
            RuleScore { weight: 0.5, families: vec![3, 4], horizon: Horizon::default(), follow_up: 0 },
            RuleScore { weight: 0.8, families: vec![0], horizon: Horizon::default(), follow_up: 0 },
        ]
    }

    #[test]
    fn one_hit_counts_its_weight_times_strength_saturated() {
        let (s, f) = score(&[hit(0, 0, 0.8, Effect::For)], &rules(), &model());
        assert_eq!(s, round4(sat(0.4, 0.8)));
        assert_eq!(f, vec![FamilyEvidence { family: 0, evidence: round4(sat(0.4, 0.8)), hits: 1 }]);
        // Small evidence is nearly untouched by the saturation.
        assert!((sat(0.05, 0.8) - 0.05).abs() < 0.001);
    }

    #[test]
    fn repeats_of_one_family_have_diminishing_returns() {
        // 0.4, then 0.4 * 0.5, then 0.4 * 0.25: 1 - 0.6 * 0.8 * 0.9 = 0.568.
        let hits: Vec<Hit> = (0..3).map(|m| hit(0, m, 0.8, Effect::For)).collect();
        let (s, _) = score(&hits, &rules(), &model());
        assert_eq!(s, round4(sat(0.568, 0.8)));
        // The strongest counts fully whatever the order of the hits.
        let hits = [hit(0, 0, 0.2, Effect::For), hit(0, 1, 1.0, Effect::For)];
        let (s, _) = score(&hits, &rules(), &model());
        assert_eq!(s, round4(sat(1.0 - 0.5 * (1.0 - 0.1 * 0.5), 0.8)));
    }

    #[test]
    fn one_family_stays_below_its_cap_and_keeps_order() {
        let hits: Vec<Hit> = (0..50).map(|m| hit(1, m, 1.0, Effect::For)).collect();
        let (s, f) = score(&hits, &rules(), &model());
        assert_eq!(s, 0.7999);
        assert_eq!(f[0].hits, 50);
        let config = Config::default();
        assert_eq!(config.tiers[config.tier_of(s).unwrap()].name, "medium", "one family alone stays below high");
        // More evidence of one kind still scores more.
        let a = score(&[hit(1, 0, 0.6, Effect::For)], &rules(), &model()).0;
        let b = score(&[hit(1, 0, 0.9, Effect::For)], &rules(), &model()).0;
        assert!(a < b && b < 0.8, "{a} {b}");
    }

    #[test]
    fn a_family_may_have_a_cap_of_its_own() {
        let mut m = model();
        m.caps.insert("content".into(), 0.45);
        let hits: Vec<Hit> = (0..5).map(|k| hit(1, k, 1.0, Effect::For)).collect();
        assert_eq!(score(&hits, &rules(), &m).0, 0.4499);
        // Cleanup keeps the general cap.
        let cleanup = RuleScore { weight: 1.0, families: vec![2], horizon: Horizon::default(), follow_up: 0 };
        let hits: Vec<Hit> = (0..5).map(|k| hit(0, k, 1.0, Effect::For)).collect();
        assert_eq!(score(&hits, &[cleanup], &m).0, 0.7999);
    }

    #[test]
    fn families_corroborate() {
        // content 0.5 and cleanup 0.5, each saturated, combined.
        let hits = [hit(1, 0, 0.5, Effect::For), hit(2, 1, 1.0, Effect::For)];
        let (s, f) = score(&hits, &rules(), &model());
        let one = sat(0.5, 0.8);
        assert_eq!(s, round4(1.0 - (1.0 - one) * (1.0 - one)));
        assert_eq!(f.iter().map(|x| x.family).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn a_rule_of_two_families_counts_in_both() {
        let (s, f) = score(&[hit(3, 0, 1.0, Effect::For)], &rules(), &model());
        let one = sat(0.5, 0.8);
        assert_eq!(s, round4(1.0 - (1.0 - one) * (1.0 - one)));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn evidence_against_discounts_the_like_it_undoes() {
        // The tap undoes the like of target 0 only: its evidence 0.5 falls
        // to 0.5 * 0.6; the like of target 2 keeps its 0.4, discounted as
        // the second of its family.
        let undone = on(hit(1, 0, 0.5, Effect::For), 0);
        let other = on(hit(0, 2, 0.8, Effect::For), 2);
        let tap = on(hit(4, 1, 0.5, Effect::Against), 0);
        let (s, f) = score(&[undone, other.clone(), tap.clone()], &rules(), &model());
        assert_eq!(s, round4(sat(1.0 - (1.0 - 0.4) * (1.0 - 0.3 * 0.5), 0.8)));
        assert_eq!(f.len(), 1, "against hits are not a family");
        // A tap on another target changes nothing.
        let elsewhere = on(tap, 7);
        let (alone, _) = score(std::slice::from_ref(&other), &rules(), &model());
        assert_eq!(score(&[other, elsewhere], &rules(), &model()).0, alone);
    }

    #[test]
    fn no_discount_and_no_cap_is_noisy_or() {
        let m = ScoreModel { repeat_discount: 1.0, family_cap: 1.0, ..model() };
        let hits: Vec<Hit> = (0..3).map(|k| hit(0, k, 0.8, Effect::For)).collect();
        assert_eq!(score(&hits, &rules(), &m).0, round4(1.0 - 0.6f64.powi(3)));
    }

    #[test]
    fn removals_the_next_day_join_the_incident_of_the_likes() {
        let config = Config::default();
        let day = 24 * 60;
        let hits = vec![
            on(hit(1, 0, 0.9, Effect::For), 1),
            // Ten hours later (beyond the 6h gap): a removal of an item the
            // incident did not hit opens a group, then a removal of the
            // liked item links that group to the incident.
            on(hit(2, 600, 0.5, Effect::For), 2),
            on(hit(2, 601, 0.5, Effect::For), 1),
            // Three days later: beyond the 48h link, a new incident.
            on(hit(2, 601 + 3 * day, 1.0, Effect::For), 1),
        ];
        let out = group(hits, &rules(), &config);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].hits.len(), 3);
        assert_eq!(out[0].end, 601 * MINUTE);
        assert_eq!(out[0].families.len(), 2, "content and cleanup together");
        assert_eq!(out[1].hits.len(), 1);
        // Without the link, the removals are an incident of their own.
        let unlinked = Config { incident_link: 0, ..Config::default() };
        let hits = vec![
            on(hit(1, 0, 0.9, Effect::For), 1),
            on(hit(2, 600, 1.0, Effect::For), 2),
            on(hit(2, 601, 1.0, Effect::For), 1),
        ];
        assert_eq!(group(hits, &rules(), &unlinked).len(), 2);
    }

    #[test]
    fn grouping_splits_at_the_gap_and_drops_low_incidents() {
        let config = Config::default();
        let hits = vec![
            hit(1, 0, 0.9, Effect::For),
            hit(2, 10, 1.0, Effect::For),
            // Seven hours later: a new incident, weak, below `low`.
            hit(0, 10 + 7 * 60, 0.2, Effect::For),
        ];
        let out = group(hits, &rules(), &config);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].hits.len(), 2);
        assert_eq!(out[0].score, round4(1.0 - (1.0 - sat(0.9, 0.8)) * (1.0 - sat(0.5, 0.8))));
        assert_eq!(config.tiers[out[0].tier].name, "high");
    }
}
