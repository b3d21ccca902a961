//! The scorer: a plan bound to a dataset, run over every account.
//!
//! Stage three of the pipeline. [`Scorer::new`] binds the plan (action names
//! to symbols, filters to columns, signals to shared indexes); it is then
//! read-only and shared by reference. Each worker owns a [`Scratch`] (the
//! signals' per-account states, a hit buffer) that it resets per account,
//! so the hot loop takes no lock and allocates little.
//!
//! For each account, events are walked in time order. Each event is first
//! judged by the rules that select it, against state built from earlier
//! events only; then every state observes it. Hits are grouped into
//! incidents per account. [`Scorer::run`] does this in parallel over
//! accounts with rayon; [`Scorer::run_sequential`] is the one-thread
//! reference. Both return incidents ordered by account id, then start, so
//! output is byte-identical whatever the thread count.

pub mod filter;
pub mod incident;

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::plan::Plan;
use crate::rules::{Effect, When};
use crate::signals::aggregate::Aggregates;
use crate::signals::{BindCache, Bound, Ev, Outcome, State};
use crate::time::Millis;
pub use filter::BoundFilter;
pub use incident::{FamilyEvidence, Incident, RuleScore};

/// One rule firing on one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Index of the rule in the plan.
    pub rule: u32,
    /// Index of the event in the dataset.
    pub event: u32,
    /// Event time.
    pub ts: Millis,
    /// The event's action.
    pub action: Sym,
    /// The event's target, if any.
    pub target: Option<Sym>,
    /// Strength in (0, 1].
    pub strength: f64,
    /// Which way it counts.
    pub effect: Effect,
    /// The evidence, in words.
    pub why: String,
    /// Kinds of the signals that fired.
    pub signals: Vec<&'static str>,
}

/// An account's incidents.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountIncidents {
    /// The account.
    pub actor: Sym,
    /// Its incidents, by start.
    pub incidents: Vec<Incident>,
}

struct BoundRule {
    filters: Vec<BoundFilter>,
    signals: Vec<(Bound, usize)>,
    when: When,
    effect: Effect,
}

/// A plan bound to a dataset, ready to score.
pub struct Scorer<'a> {
    plan: &'a Plan,
    data: &'a Dataset,
    rules: Vec<BoundRule>,
    /// Rules selecting each action, and rules selecting every action.
    by_action: SymMap<Vec<u32>>,
    any_action: Vec<u32>,
    /// For each state slot: (rule, signal) whose binding drives it.
    slot_owner: Vec<(usize, usize)>,
    scoring: Vec<RuleScore>,
    notes: Vec<String>,
}

/// Per-worker scratch space, reused from account to account.
pub struct Scratch {
    states: Vec<State>,
    hits: Vec<Hit>,
    /// Hits of the event being judged, added to `hits` after it.
    fresh: Vec<Hit>,
    candidates: Vec<u32>,
}

impl<'a> Scorer<'a> {
    /// Binds `plan` to `data`, first computing the whole-input aggregates
    /// its signals need from `data`'s events.
    pub fn new(plan: &'a Plan, data: &'a Dataset) -> Scorer<'a> {
        let mut agg = Aggregates::for_plan(plan);
        agg.add_all(&data.events, &data.strings, &data.items);
        let cache = agg.finish(&data.strings).expect("aggregates kept in memory read no files");
        Scorer::with_aggregates(plan, data, cache)
    }

    /// Binds `plan` to `data` with aggregates computed elsewhere (over more
    /// events than `data` holds, when `data` is one partition).
    pub fn with_aggregates(plan: &'a Plan, data: &'a Dataset, mut cache: BindCache) -> Scorer<'a> {
        cache.rule_ids = plan.rules.iter().map(|r| r.id.clone()).collect();
        let mut rules = Vec::new();
        let mut by_action: SymMap<Vec<u32>> = SymMap::default();
        let mut any_action = Vec::new();
        let mut notes = Vec::new();
        for (ri, r) in plan.rules.iter().enumerate() {
            let signals: Vec<(Bound, usize)> =
                r.signals.iter().map(|s| (s.def.bind(data, &mut cache), s.slot)).collect();
            for (b, _) in &signals {
                if let Some(n) = b.note()
                    && !notes.contains(&n)
                {
                    notes.push(n);
                }
            }
            rules.push(BoundRule {
                filters: r.filters.iter().map(|f| BoundFilter::bind(f, data)).collect(),
                signals,
                when: r.when,
                effect: r.effect,
            });
            if r.actions.is_empty() {
                any_action.push(ri as u32);
            } else {
                for a in &r.actions {
                    if let Some(s) = data.strings.get(a) {
                        let v = by_action.entry(s).or_default();
                        if !v.contains(&(ri as u32)) {
                            v.push(ri as u32);
                        }
                    }
                }
            }
        }
        Scorer {
            plan,
            data,
            rules,
            by_action,
            any_action,
            slot_owner: plan.slots.iter().map(|s| s.owner).collect(),
            scoring: RuleScore::of_plan(plan),
            notes,
        }
    }

    /// Things the user should know about this binding, each said once (for
    /// example, a signal that abstains on this dataset).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        self.plan
    }

    /// The dataset being scored.
    pub fn data(&self) -> &Dataset {
        self.data
    }

    fn owner_bound(&self, slot: usize) -> &Bound {
        let (r, s) = self.slot_owner[slot];
        &self.rules[r].signals[s].0
    }

    /// A fresh scratch space for one worker.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            states: (0..self.slot_owner.len()).map(|s| self.owner_bound(s).new_state()).collect(),
            hits: Vec::new(),
            fresh: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// Scores one account: its hits grouped into incidents.
    pub fn score_account(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Incident> {
        self.collect_hits(span, scratch);
        if scratch.hits.is_empty() {
            return Vec::new();
        }
        incident::group(std::mem::take(&mut scratch.hits), &self.scoring, &self.plan.config)
    }

    /// Every rule hit on one account, in event order, before grouping.
    pub fn account_hits(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Hit> {
        self.collect_hits(span, scratch);
        std::mem::take(&mut scratch.hits)
    }

    fn collect_hits(&self, span: &AccountSpan, scratch: &mut Scratch) {
        let data = self.data;
        for (slot, state) in scratch.states.iter_mut().enumerate() {
            self.owner_bound(slot).reset(state, span, data);
        }
        let Scratch { states, hits, candidates, fresh } = scratch;
        hits.clear();
        for i in span.range() {
            let e = Ev { hits: &hits[..], ..Ev::at(data, i) };
            candidates.clear();
            if let Some(rs) = self.by_action.get(&e.action) {
                candidates.extend_from_slice(rs);
            }
            candidates.extend_from_slice(&self.any_action);
            for &ri in candidates.iter() {
                if let Some(hit) = self.judge(ri, &e, states) {
                    fresh.push(hit);
                }
            }
            for (slot, state) in states.iter_mut().enumerate() {
                self.owner_bound(slot).observe(state, &e);
            }
            hits.append(fresh);
        }
    }

    /// Runs one rule on one event.
    fn judge(&self, ri: u32, e: &Ev<'_>, states: &mut [State]) -> Option<Hit> {
        let rule = &self.rules[ri as usize];
        if !rule.filters.iter().all(|f| f.test(self.data, e.i)) {
            return None;
        }
        let mut fired: Vec<(&'static str, f64, String)> = Vec::new();
        let mut spoke = 0;
        for (si, (bound, slot)) in rule.signals.iter().enumerate() {
            match bound.eval(&mut states[*slot], e) {
                Outcome::Fire { strength, why } => {
                    spoke += 1;
                    fired.push((self.plan.rules[ri as usize].signals[si].def.kind(), strength, why));
                }
                Outcome::Quiet => {
                    spoke += 1;
                    if rule.when == When::All {
                        return None;
                    }
                }
                Outcome::Abstain if self.plan.rules[ri as usize].signals[si].require => return None,
                Outcome::Abstain => {}
            }
        }
        let strength = if rule.signals.is_empty() {
            1.0
        } else if fired.is_empty() || spoke == 0 {
            return None;
        } else {
            match rule.when {
                When::All => fired.iter().map(|f| f.1).product(),
                When::Any => 1.0 - fired.iter().map(|f| 1.0 - f.1).product::<f64>(),
            }
        };
        let mut why = describe_event(e);
        if fired.is_empty() {
            why.push_str(": matched the rule's selection");
        } else {
            why.push_str(": ");
            why.push_str(&fired.iter().map(|f| f.2.as_str()).collect::<Vec<_>>().join("; "));
        }
        Some(Hit {
            rule: ri,
            event: e.i as u32,
            ts: e.ts,
            action: e.action,
            target: e.target(),
            strength: incident::round4(strength),
            effect: rule.effect,
            why,
            signals: fired.iter().map(|f| f.0).collect(),
        })
    }

    /// Scores every account on the current rayon pool. Accounts come back
    /// ordered by id (as text); only accounts with incidents are listed.
    pub fn run(&self) -> Vec<AccountIncidents> {
        self.run_counting(&AtomicU64::new(0))
    }

    /// [`Scorer::run`], counting accounts scored into `done` as it goes.
    pub fn run_counting(&self, done: &AtomicU64) -> Vec<AccountIncidents> {
        let mut out: Vec<AccountIncidents> = self
            .data
            .events
            .accounts
            .par_iter()
            .map_init(
                || self.scratch(),
                |scratch, span| {
                    done.fetch_add(1, Ordering::Relaxed);
                    AccountIncidents { actor: span.actor, incidents: self.score_account(span, scratch) }
                },
            )
            .filter(|a| !a.incidents.is_empty())
            .collect();
        self.sort(&mut out);
        out
    }

    /// The one-thread reference: same result as [`Scorer::run`].
    pub fn run_sequential(&self) -> Vec<AccountIncidents> {
        let mut scratch = self.scratch();
        let mut out: Vec<AccountIncidents> = self
            .data
            .events
            .accounts
            .iter()
            .map(|span| AccountIncidents { actor: span.actor, incidents: self.score_account(span, &mut scratch) })
            .filter(|a| !a.incidents.is_empty())
            .collect();
        self.sort(&mut out);
        out
    }

    fn sort(&self, out: &mut [AccountIncidents]) {
        let s = &self.data.strings;
        out.sort_by(|a, b| s.resolve(a.actor).cmp(s.resolve(b.actor)));
    }
}

/// Past tense of common actions, for `why`.
fn verb(action: &str) -> String {
    match action {
        "like" => "liked".into(),
        "unlike" => "unliked".into(),
        "repost" => "reposted".into(),
        "unrepost" => "unreposted".into(),
        "reply" => "replied to".into(),
        "post" => "posted".into(),
        "follow" => "followed".into(),
        "unfollow" => "unfollowed".into(),
        "login" => "logged in".into(),
        "logout" => "logged out".into(),
        other => other.to_string(),
    }
}

/// "liked t-905 by acct-77 (labels: adult)".
fn describe_event(e: &Ev<'_>) -> String {
    let mut s = verb(e.text(e.action));
    if let Some(t) = e.target() {
        s.push(' ');
        s.push_str(e.text(t));
        if let Some(r) = e.item_row() {
            if let Some(a) = e.author() {
                s.push_str(" by ");
                s.push_str(e.text(a));
            }
            let labels = e.data.items.labels(r);
            if !labels.is_empty() {
                let names: Vec<&str> = labels.iter().map(|&l| e.text(l)).collect();
                s.push_str(&format!(" (labels: {})", names.join(", ")));
            }
        } else if let Some(a) = e.author() {
            s.push_str(" by ");
            s.push_str(e.text(a));
        }
    }
    s
}
