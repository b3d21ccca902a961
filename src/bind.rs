//! The bind stage: a compiled plan bound to a run.
//!
//! Stage three of the pipeline. [`BoundPlan::new`] takes the plan and what
//! is the same for every partition of a run's events (the strings, the
//! tables other than events, the whole-input facts) and binds every signal
//! once: each shared state's tracker, each rule's judges, the actions each
//! rule selects. The result is read-only and shared by every worker and
//! every partition; scoring a partition then only binds the rules' filters
//! to that partition's columns ([`crate::score::Scorer`]).
//!
//! It does not read data, compute facts or score: facts come in through
//! the [`Universe`] ([`crate::facts`] computes them), and the
//! scorer runs the bound plan.

use std::sync::Arc;

use crate::data::Dataset;
use crate::facts::Aggregates;
use crate::intern::SymMap;
use crate::plan::Plan;
use crate::score::incident::RuleScore;
use crate::signals::{Facts, Judge, Tracker, Universe};

/// One rule, bound.
#[derive(Debug)]
pub struct BoundRule {
    /// Its signals: judge, the state slot it reads, whether the hit needs
    /// it to speak.
    pub signals: Vec<(Judge, usize, bool)>,
}

/// A plan bound to a run. See the module doc.
#[derive(Debug)]
pub struct BoundPlan<'p> {
    /// The plan.
    pub plan: &'p Plan,
    /// Each shared state's tracker, by slot.
    pub trackers: Vec<Tracker>,
    /// Each rule, bound.
    pub rules: Vec<BoundRule>,
    /// Rules selecting each action (by symbol).
    pub by_action: SymMap<Vec<u32>>,
    /// Rules selecting every action.
    pub any_action: Vec<u32>,
    /// What the score needs of each rule.
    pub scoring: Vec<RuleScore>,
    /// Things the user should know about this binding, each said once.
    pub notes: Vec<String>,
    /// When the run's data ends: a look-ahead reaching past it is still
    /// open.
    pub data_end: Option<crate::time::Millis>,
}

impl<'p> BoundPlan<'p> {
    /// Binds `plan` to the run that `u` describes.
    pub fn new(plan: &'p Plan, u: &Universe<'_>) -> BoundPlan<'p> {
        let trackers: Vec<Tracker> = plan
            .slots
            .iter()
            .map(|slot| {
                let (r, s) = slot.owner;
                plan.rules[r].signals[s].def.tracker(u)
            })
            .collect();
        let mut notes = Vec::new();
        for n in trackers.iter().filter_map(Tracker::note) {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        let mut by_action: SymMap<Vec<u32>> = SymMap::default();
        let mut any_action = Vec::new();
        let mut rules = Vec::new();
        for (ri, r) in plan.rules.iter().enumerate() {
            rules.push(BoundRule { signals: r.signals.iter().map(|s| (s.def.judge(u), s.slot, s.require)).collect() });
            if r.actions.is_empty() {
                any_action.push(ri as u32);
            } else {
                for a in &r.actions {
                    if let Some(sym) = u.resolve(a) {
                        let v = by_action.entry(sym).or_default();
                        if !v.contains(&(ri as u32)) {
                            v.push(ri as u32);
                        }
                    }
                }
            }
        }
        BoundPlan {
            plan,
            trackers,
            rules,
            by_action,
            any_action,
            scoring: RuleScore::of_plan(plan),
            notes,
            data_end: u.facts.data_end,
        }
    }

    /// Binds `plan` to `data` alone (the whole run in memory): computes the
    /// whole-input facts over `data`'s events first.
    pub fn for_dataset(plan: &'p Plan, data: &Dataset) -> BoundPlan<'p> {
        let mut agg = Aggregates::for_plan(plan);
        agg.add_all(&data.events, &data.strings, &data.items);
        let facts = agg.finish(&data.strings).expect("aggregates kept in memory read no files");
        BoundPlan::with_facts(plan, data, &facts)
    }

    /// Binds `plan` to the run `data` belongs to, with facts computed
    /// elsewhere (over more events than `data` holds, when `data` is one
    /// partition).
    pub fn with_facts(plan: &'p Plan, data: &Dataset, facts: &Facts) -> BoundPlan<'p> {
        let rule_ids: Vec<String> = plan.rules.iter().map(|r| r.id.clone()).collect();
        let rule_horizons: Vec<crate::signals::Horizon> = plan.rules.iter().map(|r| r.horizon).collect();
        let u = Universe {
            strings: &data.strings,
            items: &data.items,
            follows: data.follows.is_some(),
            impressions: data.impressions.is_some(),
            facts,
            rule_ids: &rule_ids,
            rule_horizons: &rule_horizons,
        };
        BoundPlan::new(plan, &u)
    }

    /// Binds `plan` to a run whose tables other than events are `side`
    /// (with impressions present when `impressions`), with `facts` computed
    /// over all its events.
    pub fn for_run(
        plan: &'p Plan,
        strings: &crate::intern::Interner,
        side: &crate::data::Side,
        impressions: bool,
        facts: &Facts,
    ) -> BoundPlan<'p> {
        let rule_ids: Vec<String> = plan.rules.iter().map(|r| r.id.clone()).collect();
        let rule_horizons: Vec<crate::signals::Horizon> = plan.rules.iter().map(|r| r.horizon).collect();
        let u = Universe {
            strings,
            items: &side.items,
            follows: side.follows.is_some(),
            impressions,
            facts,
            rule_ids: &rule_ids,
            rule_horizons: &rule_horizons,
        };
        BoundPlan::new(plan, &u)
    }

    /// Shares it.
    pub fn shared(self) -> Arc<BoundPlan<'p>> {
        Arc::new(self)
    }
}
