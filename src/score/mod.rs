//! The scorer: a plan bound to a dataset, run over every account.
//!
//! Stage four of the pipeline. A [`Scorer`] runs a plan bound once for the
//! run ([`crate::bind::BoundPlan`]) over one dataset (the whole run, or one
//! partition of its events), binding only the rules' filters to that
//! dataset's columns; it is read-only and shared by reference. Each worker
//! owns a [`Scratch`] (the signals' per-account states, their buffers, a
//! hit buffer) that it resets per account, so the hot loop takes no lock
//! and allocates little.
//!
//! For each account, events are walked in time order. Every state is
//! first moved to the event's time; the event is then judged by the rules
//! that select it, against state built from earlier events only (judging
//! cannot change a state); then every state observes it. Hits are grouped into
//! incidents per account. [`Scorer::run`] does this in parallel over
//! accounts with rayon; [`Scorer::run_sequential`] is the one-thread
//! reference. Both return incidents ordered by account id, then start, so
//! output is byte-identical whatever the thread count.

pub mod filter;
pub mod incident;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::bind::BoundPlan;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::plan::Plan;
use crate::rules::{Effect, When};
use crate::signals::{EarlierHit, Ev, Facts, Outcome, Scratch as SignalScratch, State};
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

impl Hit {
    /// The hit as signals see it on later events.
    pub fn earlier(&self) -> EarlierHit {
        EarlierHit {
            rule: self.rule,
            ts: self.ts,
            action: self.action,
            target: self.target,
            strength: self.strength,
            effect: self.effect,
        }
    }
}

/// What one rule made of one event (see [`Scorer::trace_account`]).
#[derive(Clone, Debug)]
pub struct RuleTrace {
    /// Index of the rule in the plan.
    pub rule: u32,
    /// Whether the rule's filters let the event through.
    pub selected: bool,
    /// Each signal's kind and what it said, in the rule's order (empty when
    /// not selected).
    pub outcomes: Vec<(&'static str, Outcome)>,
    /// The hit, if the rule hit.
    pub hit: Option<Hit>,
}

/// What the rules that select one event made of it.
#[derive(Clone, Debug)]
pub struct EventTrace {
    /// Index of the event in the dataset.
    pub event: usize,
    /// One entry per rule selecting the event's action, in plan order.
    pub rules: Vec<RuleTrace>,
}

/// An account's incidents.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountIncidents {
    /// The account.
    pub actor: Sym,
    /// Its incidents, by start.
    pub incidents: Vec<Incident>,
}

/// A bound plan over one dataset (the whole run in memory, or one
/// partition of it), ready to score.
pub struct Scorer<'a> {
    bound: Arc<BoundPlan<'a>>,
    data: &'a Dataset,
    /// Each rule's filters, bound to this dataset's columns.
    filters: Vec<Vec<BoundFilter>>,
}

/// Per-worker scratch space, reused from account to account.
pub struct Scratch {
    states: Vec<State>,
    /// Per rule, per signal: the judge's buffers.
    buffers: Vec<Vec<SignalScratch>>,
    hits: Vec<Hit>,
    /// The hits so far, as signals see them.
    earlier: Vec<EarlierHit>,
    /// Hits of the event being judged, added to `hits` after it.
    fresh: Vec<Hit>,
    candidates: Vec<u32>,
    /// The signals that fired on the rule being judged: (index, strength).
    fired: Vec<(usize, f64)>,
}

impl<'a> Scorer<'a> {
    /// Binds `plan` to `data` as a whole run: first computes the whole-input
    /// facts its signals need from `data`'s events.
    pub fn new(plan: &'a Plan, data: &'a Dataset) -> Scorer<'a> {
        Scorer::bound(BoundPlan::for_dataset(plan, data).shared(), data)
    }

    /// Binds `plan` to `data` with facts computed elsewhere (over more
    /// events than `data` holds, when `data` is one partition).
    pub fn with_facts(plan: &'a Plan, data: &'a Dataset, facts: &Facts) -> Scorer<'a> {
        Scorer::bound(BoundPlan::with_facts(plan, data, facts).shared(), data)
    }

    /// A plan bound once for the run, over one dataset of it: only the
    /// rules' filters are bound here.
    pub fn bound(bound: Arc<BoundPlan<'a>>, data: &'a Dataset) -> Scorer<'a> {
        let filters =
            bound.plan.rules.iter().map(|r| r.filters.iter().map(|f| BoundFilter::bind(f, data)).collect()).collect();
        Scorer { bound, data, filters }
    }

    /// Things the user should know about this binding, each said once (for
    /// example, a signal that abstains on this dataset).
    pub fn notes(&self) -> &[String] {
        &self.bound.notes
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        self.bound.plan
    }

    /// The dataset being scored.
    pub fn data(&self) -> &Dataset {
        self.data
    }

    /// A fresh scratch space for one worker.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            states: self.bound.trackers.iter().map(|t| t.new_state()).collect(),
            buffers: self
                .bound
                .rules
                .iter()
                .map(|r| r.signals.iter().map(|(j, _, _)| j.new_scratch()).collect())
                .collect(),
            hits: Vec::new(),
            earlier: Vec::new(),
            fresh: Vec::new(),
            candidates: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// Scores one account: its hits grouped into incidents.
    pub fn score_account(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Incident> {
        self.collect_hits(span, scratch);
        if scratch.hits.is_empty() {
            return Vec::new();
        }
        incident::group(std::mem::take(&mut scratch.hits), &self.bound.scoring, &self.bound.plan.config)
    }

    /// Every rule hit on one account, in event order, before grouping.
    pub fn account_hits(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Hit> {
        self.collect_hits(span, scratch);
        std::mem::take(&mut scratch.hits)
    }

    /// Every event of one account with what each rule that selects it made
    /// of it: whether its filters let it through, what every one of its
    /// signals said (each is asked, even after one has ruled the hit out),
    /// and the hit, exactly as scoring makes it. For `changeling explain`.
    pub fn trace_account(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<EventTrace> {
        let mut trace = Vec::new();
        self.walk(span, scratch, Some(&mut trace));
        trace
    }

    fn collect_hits(&self, span: &AccountSpan, scratch: &mut Scratch) {
        self.walk(span, scratch, None);
    }

    /// Walks one account's events: hits into `scratch.hits`, and, when
    /// asked, what every rule made of every event into `trace`.
    fn walk(&self, span: &AccountSpan, scratch: &mut Scratch, mut trace: Option<&mut Vec<EventTrace>>) {
        let data = self.data;
        let trackers = &self.bound.trackers;
        for (t, state) in trackers.iter().zip(scratch.states.iter_mut()) {
            t.reset(state, span, data);
        }
        let Scratch { states, buffers, hits, earlier, candidates, fresh, fired } = scratch;
        hits.clear();
        earlier.clear();
        for i in span.range() {
            let e = Ev { hits: &earlier[..], ..Ev::at(data, i) };
            for (t, state) in trackers.iter().zip(states.iter_mut()) {
                t.advance(state, &e);
            }
            candidates.clear();
            if let Some(rs) = self.bound.by_action.get(&e.action) {
                candidates.extend_from_slice(rs);
            }
            candidates.extend_from_slice(&self.bound.any_action);
            let mut rules = Vec::new();
            for &ri in candidates.iter() {
                let hit = self.judge(ri, &e, states, &mut buffers[ri as usize], fired);
                if trace.is_some() {
                    rules.push(self.trace_rule(ri, &e, states, &mut buffers[ri as usize], hit.clone()));
                }
                if let Some(hit) = hit {
                    fresh.push(hit);
                }
            }
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(EventTrace { event: i, rules });
            }
            for (t, state) in trackers.iter().zip(states.iter_mut()) {
                t.observe(state, &e);
            }
            earlier.extend(fresh.iter().map(Hit::earlier));
            hits.append(fresh);
        }
    }

    /// What rule `ri` made of one event, every signal asked.
    fn trace_rule(
        &self,
        ri: u32,
        e: &Ev<'_>,
        states: &[State],
        buffers: &mut [SignalScratch],
        hit: Option<Hit>,
    ) -> RuleTrace {
        let planned = &self.bound.plan.rules[ri as usize];
        let selected = self.filters[ri as usize].iter().all(|f| f.test(self.data, e.i));
        let outcomes = if selected {
            self.bound.rules[ri as usize]
                .signals
                .iter()
                .zip(buffers.iter_mut())
                .enumerate()
                .map(|(si, ((judge, slot, _), buffer))| {
                    (planned.signals[si].def.kind(), judge.eval(&self.bound.trackers[*slot], &states[*slot], buffer, e))
                })
                .collect()
        } else {
            Vec::new()
        };
        RuleTrace { rule: ri, selected, outcomes, hit }
    }

    /// Runs one rule on one event: its signals are asked without words
    /// first, and again with words only when the rule hits.
    fn judge(
        &self,
        ri: u32,
        e: &Ev<'_>,
        states: &[State],
        buffers: &mut [SignalScratch],
        fired: &mut Vec<(usize, f64)>,
    ) -> Option<Hit> {
        let planned = &self.bound.plan.rules[ri as usize];
        let rule = &self.bound.rules[ri as usize];
        if !self.filters[ri as usize].iter().all(|f| f.test(self.data, e.i)) {
            return None;
        }
        let quiet = Ev { words: false, ..*e };
        fired.clear();
        let mut spoke = 0;
        for (si, ((judge, slot, require), buffer)) in rule.signals.iter().zip(buffers.iter_mut()).enumerate() {
            match judge.eval(&self.bound.trackers[*slot], &states[*slot], buffer, &quiet) {
                Outcome::Fire { strength, .. } => {
                    spoke += 1;
                    fired.push((si, strength));
                }
                Outcome::Quiet => {
                    spoke += 1;
                    if planned.when == When::All {
                        return None;
                    }
                }
                Outcome::Abstain if *require => return None,
                Outcome::Abstain => {}
            }
        }
        let strength = if rule.signals.is_empty() {
            1.0
        } else if fired.is_empty() || spoke == 0 {
            return None;
        } else {
            match planned.when {
                When::All => fired.iter().map(|f| f.1).product(),
                When::Any => 1.0 - fired.iter().map(|f| 1.0 - f.1).product::<f64>(),
            }
        };
        let mut why = describe_event(e);
        if fired.is_empty() {
            why.push_str(": matched the rule's selection");
        } else {
            // The words of the signals that fired, asked for now.
            let words: Vec<String> = fired
                .iter()
                .map(|&(si, _)| {
                    let (judge, slot, _) = &rule.signals[si];
                    match judge.eval(&self.bound.trackers[*slot], &states[*slot], &mut buffers[si], e) {
                        Outcome::Fire { why, .. } => why,
                        other => unreachable!("a signal's verdict does not depend on words: {other:?}"),
                    }
                })
                .collect();
            why.push_str(": ");
            why.push_str(&words.join("; "));
        }
        Some(Hit {
            rule: ri,
            event: e.i as u32,
            ts: e.ts,
            action: e.action,
            target: e.target(),
            strength: incident::round4(strength),
            effect: planned.effect,
            why,
            signals: fired.iter().map(|&(si, _)| planned.signals[si].def.kind()).collect(),
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
pub(crate) fn verb(action: &str) -> String {
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
