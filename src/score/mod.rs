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
pub mod verdict;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::bind::BoundPlan;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::plan::Plan;
use crate::rules::Effect;
use crate::signals::{Cause, EarlierHit, Ev, Facts, Judge, Later, Outcome, Scratch as SignalScratch, State, Tracker};
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::Millis;
pub use filter::BoundFilter;
pub use incident::{FamilyEvidence, Incident, RuleScore, Status};
use verdict::{Record, Said};

/// The version of what [`Scorer::resume_account`] carries.
const CARRY_VERSION: u8 = 5;

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

/// What [`Scorer::resume_account`] concludes of one account.
#[derive(Clone, Debug)]
pub struct Resumed {
    /// Its incidents, settled as a run over all the data so far reports
    /// them.
    pub incidents: Vec<Incident>,
    /// The earliest time one of its waiting verdicts may change without
    /// events of its own (`None`: none waits).
    pub due: Option<Millis>,
    /// Each hit's record, by the hit's (time, event, rule): the hits'
    /// words are made from it only for the incidents a run writes
    /// ([`Scorer::write_words`]).
    records: Vec<((Millis, u32, u32), usize)>,
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
    /// The account's verdicts that hit or may still change, in event order.
    records: Vec<Record>,
    /// The first record that may still be waiting.
    waiting_from: usize,
    /// The hits so far as the walk sees them, for signals that read them.
    earlier: Vec<EarlierHit>,
    candidates: Vec<u32>,
    /// What the signals of the rule being judged said.
    said: Vec<Said>,
    /// The trace of each selected rule of the event being walked, when
    /// tracing.
    traced: Vec<RuleTrace>,
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
            records: Vec::new(),
            waiting_from: 0,
            earlier: Vec::new(),
            candidates: Vec::new(),
            said: Vec::new(),
            traced: Vec::new(),
        }
    }

    /// Scores one account: its hits grouped into incidents.
    pub fn score_account(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Incident> {
        let mut hits = self.account_hits(span, scratch);
        if let Some(x) = &self.bound.plan.exceptions {
            x.retain::<()>(&mut hits, None, self.data);
        }
        if hits.is_empty() {
            return Vec::new();
        }
        let mut incidents = incident::group(hits, &self.bound.scoring, &self.bound.plan.config);
        let actor = self.data.strings.resolve(span.actor);
        incident::settle(&mut incidents, actor, self.bound.plan, &self.data.strings, self.bound.data_end);
        incidents
    }

    /// When the run's data ends (the latest event of the whole input).
    pub fn data_end(&self) -> Option<Millis> {
        self.bound.data_end
    }

    /// Every rule hit on one account, in event order, before grouping.
    pub fn account_hits(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<Hit> {
        self.walk(span, scratch, None);
        self.finish(scratch)
    }

    /// Every event of one account with what each rule that selects it made
    /// of it: whether its filters let it through, what every one of its
    /// signals said when the event was judged (each is asked, even after
    /// one has ruled the hit out), and the hit it makes once everything
    /// after it is known (a look-ahead may take it back), exactly as scoring
    /// makes it. For `changeling explain`.
    pub fn trace_account(&self, span: &AccountSpan, scratch: &mut Scratch) -> Vec<EventTrace> {
        self.trace_account_within(span, scratch, None)
    }

    /// [`Scorer::trace_account`], keeping only the events within `within`
    /// (from, to, inclusive): every event is still walked, but memory is
    /// bounded by the events kept.
    pub fn trace_account_within(
        &self,
        span: &AccountSpan,
        scratch: &mut Scratch,
        within: Option<(Millis, Millis)>,
    ) -> Vec<EventTrace> {
        let mut trace = Vec::new();
        self.begin(span, scratch);
        self.walk_events(span, scratch, Some(&mut trace), within);
        let hits = self.finish(scratch);
        for t in &mut trace {
            for r in &mut t.rules {
                r.hit = hits.iter().find(|h| h.event as usize == t.event && h.rule == r.rule).cloned();
            }
        }
        trace
    }

    /// Walks one account's events into `scratch.records`, and, when asked,
    /// what every rule made of every event into `trace`.
    fn walk(&self, span: &AccountSpan, scratch: &mut Scratch, trace: Option<&mut Vec<EventTrace>>) {
        self.begin(span, scratch);
        self.walk_events(span, scratch, trace, None);
    }

    /// Starts an account with no history.
    fn begin(&self, span: &AccountSpan, scratch: &mut Scratch) {
        for (t, state) in self.bound.trackers.iter().zip(scratch.states.iter_mut()) {
            t.reset(state, span, self.data);
        }
        scratch.records.clear();
        scratch.earlier.clear();
        scratch.waiting_from = 0;
    }

    /// Walks the events of `span` from where the account's states and
    /// verdicts stand.
    fn walk_events(
        &self,
        span: &AccountSpan,
        scratch: &mut Scratch,
        mut trace: Option<&mut Vec<EventTrace>>,
        within: Option<(Millis, Millis)>,
    ) {
        let data = self.data;
        let trackers = &self.bound.trackers;
        for i in span.range() {
            let e = Ev::at(data, i);
            for (t, state) in trackers.iter().zip(scratch.states.iter_mut()) {
                t.advance(state, &e);
            }
            // What this event changes of verdicts waiting on it.
            self.revise(scratch, &Cause::Event(&e), e.ts);
            let Scratch { states, buffers, records, earlier, candidates, said, traced, .. } = scratch;
            let e = Ev { hits: &earlier[..], ..e };
            candidates.clear();
            if let Some(rs) = self.bound.by_action.get(&e.action) {
                candidates.extend_from_slice(rs);
            }
            candidates.extend_from_slice(&self.bound.any_action);
            let before = records.len();
            for &ri in candidates.iter() {
                let buffers = &mut buffers[ri as usize];
                if let Some(r) = self.judge(ri, &e, states, buffers, said) {
                    records.push(r);
                }
                if trace.is_some() {
                    traced.push(self.trace_rule(ri, &e, states, buffers));
                }
            }
            if let Some(trace) = trace.as_deref_mut() {
                let rules = std::mem::take(traced);
                if within.is_none_or(|(from, to)| e.ts >= from && e.ts <= to) {
                    trace.push(EventTrace { event: i, rules });
                }
            }
            for (t, state) in trackers.iter().zip(states.iter_mut()) {
                t.observe(state, &e);
            }
            // Later events see this one's hits as they stand now.
            for r in &records[before..] {
                earlier.extend(r.earlier(&self.bound.plan.rules[r.rule as usize]));
            }
        }
    }

    /// Scores one account of a daily run: resumes from what an earlier run
    /// carried for it (`carried`; none for an account new to the state),
    /// walks its events of this batch (`span`, if it has any), and
    /// concludes at the run's end (`data_end`, the watermark): returns its
    /// incidents, settled as a run over all the data so far reports them,
    /// and writes into `w` what the next run resumes from (its states, and
    /// the verdicts that hit in a group that may still change or may
    /// themselves still change).
    pub fn resume_account(
        &self,
        actor: Sym,
        carried: Option<&mut Dec<'_>>,
        span: Option<&AccountSpan>,
        scratch: &mut Scratch,
        w: &mut Enc<'_>,
    ) -> Result<Resumed, CodecError> {
        let empty = AccountSpan { actor, start: 0, end: 0 };
        match carried {
            Some(r) => {
                self.restore(scratch, r)?;
                self.revise(scratch, &Cause::Refreshed(self.data), Millis::MIN);
            }
            None => self.begin(span.unwrap_or(&empty), scratch),
        }
        if let Some(span) = span {
            self.walk_events(span, scratch, None, None);
        }
        let now = self.bound.data_end.unwrap_or(Millis::MIN);
        if let Some(end) = self.bound.data_end {
            self.revise(scratch, &Cause::End(end), end.saturating_add(1));
        }
        let (hits, from) = verdict::derive_from(
            &mut scratch.records,
            &self.bound.plan.rules,
            &*self.bound,
            &self.data.strings,
            now.saturating_add(1),
            false,
        );
        let (mut hits, mut from) = (hits, from);
        if let Some(x) = &self.bound.plan.exceptions {
            x.retain(&mut hits, Some(&mut from), self.data);
        }
        let mut records: Vec<((Millis, u32, u32), usize)> =
            hits.iter().zip(&from).map(|(h, &r)| ((h.ts, h.event, h.rule), r)).collect();
        records.sort_unstable();
        let groups = incident::form(&hits, &self.bound.scoring, &self.bound.plan.config);
        // The verdicts the next run needs: those that may still change, and
        // the hits of groups that may (or that a later hit may still join).
        let join = incident::join_horizon(&self.bound.scoring, &self.bound.plan.config);
        let mut keep: Vec<bool> = scratch.records.iter().map(Record::waiting).collect();
        for (h, &r) in hits.iter().zip(&from) {
            keep[r] |= h.ts.saturating_add(join) > now;
        }
        for g in groups.iter().filter(|g| g.final_after > now) {
            for &m in &g.members {
                keep[from[m]] = true;
            }
        }
        self.carry(scratch, &keep, now, w);
        let due = scratch
            .records
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .flat_map(|(r, _)| r.said.iter().filter_map(|s| s.later.as_ref()))
            .map(|l| l.due(now))
            .min();
        let mut incidents = incident::incidents(&hits, groups);
        let actor = self.data.strings.resolve(actor);
        incident::settle(&mut incidents, actor, self.bound.plan, &self.data.strings, self.bound.data_end);
        Ok(Resumed { incidents, due, records })
    }

    /// The record `hit` of `resumed` comes from, in `scratch` (as
    /// [`Scorer::resume_account`] left it).
    fn record_of<'s>(&self, resumed: &Resumed, scratch: &'s Scratch, hit: &Hit) -> &'s Record {
        let key = (hit.ts, hit.event, hit.rule);
        let at = resumed.records.binary_search_by(|(k, _)| k.cmp(&key)).expect("every hit comes from a record");
        &scratch.records[resumed.records[at].1]
    }

    /// Feeds what the words of `hit` (of `resumed`) say to `eat`, without
    /// making them ([`Record::feed_words`]): for a fingerprint.
    pub fn feed_words(&self, resumed: &Resumed, scratch: &Scratch, hit: &Hit, eat: &mut dyn FnMut(&[u8])) {
        let r = self.record_of(resumed, scratch, hit);
        r.feed_words(&self.bound.plan.rules[r.rule as usize], &self.data.strings, eat);
    }

    /// Makes the words of the hits of `incident` (of `resumed`), which
    /// [`Scorer::resume_account`] leaves empty: only the incidents a run
    /// writes need them.
    pub fn write_words(&self, resumed: &Resumed, scratch: &Scratch, incident: &mut Incident) {
        for hit in &mut incident.hits {
            let r = self.record_of(resumed, scratch, hit);
            hit.why = r.why(&self.bound.plan.rules[r.rule as usize], &self.data.strings);
        }
    }

    /// What [`Scorer::resume_account`] carries for an account that has
    /// nothing to remember (fresh states, no verdicts): a daily state need
    /// not keep it.
    pub fn fresh_payload(&self, now: Millis) -> Vec<u8> {
        let mut scratch = self.scratch();
        for (t, state) in self.bound.trackers.iter().zip(scratch.states.iter_mut()) {
            *state = t.new_state();
        }
        let mut w = Enc::new(&self.data.strings);
        self.carry(&scratch, &[], now, &mut w);
        crate::run::daily::finish_fresh(&mut w);
        w.finish()
    }

    /// Writes the account's states and the verdicts `keep` marks.
    fn carry(&self, scratch: &Scratch, keep: &[bool], now: Millis, w: &mut Enc<'_>) {
        w.u8(CARRY_VERSION);
        for (t, state) in self.bound.trackers.iter().zip(&scratch.states) {
            t.save(state, now, w);
        }
        let kept: Vec<&Record> = scratch.records.iter().zip(keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
        w.count(kept.len());
        let mut ordinal = 0u32;
        let mut last = None;
        for r in kept {
            if last.is_some_and(|l| l != (r.ts, r.event)) {
                ordinal += 1;
            }
            last = Some((r.ts, r.event));
            w.u64(u64::from(ordinal));
            w.text(&self.bound.plan.rules[r.rule as usize].id);
            w.time(r.ts);
            w.sym(r.action);
            w.opt_sym(r.target);
            r.head.save(w);
            w.count(r.said.len());
            for said in &r.said {
                w.outcome(&said.outcome);
                w.bool(said.later.is_some());
                if let Some(l) = &said.later {
                    l.save(w);
                }
            }
        }
    }

    /// Reads what [`Scorer::carry`] wrote into `scratch`. A verdict of a
    /// rule the plan no longer has, or whose signals changed, is left out.
    fn restore(&self, scratch: &mut Scratch, r: &mut Dec<'_>) -> Result<(), CodecError> {
        let version = r.u8()?;
        if !(1..=CARRY_VERSION).contains(&version) {
            return Err(CodecError(format!(
                "an account state of version {version} (this build reads 1 to {CARRY_VERSION})"
            )));
        }
        r.set_carry_version(version);
        for (t, state) in self.bound.trackers.iter().zip(scratch.states.iter_mut()) {
            *state = t.new_state();
            t.load(state, r, self.data)?;
        }
        scratch.records.clear();
        scratch.earlier.clear();
        scratch.waiting_from = 0;
        for _ in 0..r.count()? {
            let event = r.u32()?;
            let id = r.text()?;
            let (ts, action, target) = (r.time()?, r.sym()?, r.opt_sym()?);
            let head = verdict::Head::load(r)?;
            let mut said = Vec::new();
            for _ in 0..r.count()? {
                let outcome = r.outcome()?;
                let later = if r.bool()? { Some(Later::load(r)?) } else { None };
                said.push(Said { outcome, later });
            }
            let rule = self.bound.plan.rules.iter().position(|p| p.id == id);
            let fits = |p: &crate::plan::PlannedRule| {
                p.signals.len() == said.len()
                    && p.signals
                        .iter()
                        .zip(&said)
                        .all(|(s, x)| x.later.as_ref().is_none_or(|l| l.kind() == s.def.kind()))
            };
            let Some(rule) = rule.filter(|&k| fits(&self.bound.plan.rules[k])) else { continue };
            let record = Record { rule: rule as u32, event, ts, action, target, head, said };
            scratch.earlier.extend(record.earlier(&self.bound.plan.rules[rule]));
            scratch.records.push(record);
        }
        Ok(())
    }

    /// Revises the waiting verdicts with `cause`, at time `now`.
    fn revise(&self, scratch: &mut Scratch, cause: &Cause<'_>, now: Millis) {
        let from = scratch.waiting_from;
        verdict::revise(&mut scratch.records, from, &*self.bound, cause, now);
        while scratch.records.get(scratch.waiting_from).is_some_and(|r| !r.waiting()) {
            scratch.waiting_from += 1;
        }
    }

    /// The end of an account's events: the look-ahead is settled as far as
    /// the data reaches, and the hits are derived from the verdicts.
    fn finish(&self, scratch: &mut Scratch) -> Vec<Hit> {
        if let Some(end) = self.bound.data_end {
            self.revise(scratch, &Cause::End(end), end.saturating_add(1));
        }
        let now = self.bound.data_end.map_or(Millis::MAX, |end| end.saturating_add(1));
        verdict::derive(&mut scratch.records, &self.bound.plan.rules, &*self.bound, &self.data.strings, now)
    }

    /// What rule `ri` made of one event, every signal asked.
    fn trace_rule(&self, ri: u32, e: &Ev<'_>, states: &[State], buffers: &mut [SignalScratch]) -> RuleTrace {
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
        RuleTrace { rule: ri, selected, outcomes, hit: None }
    }

    /// Runs one rule on one event: its verdict, if it hits or may still
    /// change. Signals are asked without words first, and again with words
    /// only when the rule may hit.
    fn judge(
        &self,
        ri: u32,
        e: &Ev<'_>,
        states: &[State],
        buffers: &mut [SignalScratch],
        said: &mut Vec<Said>,
    ) -> Option<Record> {
        let planned = &self.bound.plan.rules[ri as usize];
        let rule = &self.bound.rules[ri as usize];
        if !self.filters[ri as usize].iter().all(|f| f.test(self.data, e.i)) {
            return None;
        }
        let quiet = Ev { words: false, ..*e };
        said.clear();
        let waits = planned.horizon.longest() > 0;
        for ((judge, slot, _), buffer) in rule.signals.iter().zip(buffers.iter_mut()) {
            let (tracker, state) = (&self.bound.trackers[*slot], &states[*slot]);
            let outcome = judge.eval(tracker, state, buffer, &quiet);
            let later = if waits { judge.later(tracker, state, &quiet, &outcome) } else { None };
            said.push(Said { outcome, later });
            if verdict::dead(planned, said) {
                return None;
            }
        }
        if !said.iter().any(|s| s.later.is_some())
            && verdict::combine(planned, said.iter().map(|s| &s.outcome)).is_none()
        {
            return None;
        }
        // It hits or may: the words of the signals that fired, asked for
        // now (and how each may change, with them).
        for (si, ((judge, slot, _), buffer)) in rule.signals.iter().zip(buffers.iter_mut()).enumerate() {
            if !matches!(said[si].outcome, Outcome::Fire { .. }) {
                continue;
            }
            let (tracker, state) = (&self.bound.trackers[*slot], &states[*slot]);
            let worded = judge.eval(tracker, state, buffer, e);
            debug_assert!(
                matches!(worded, Outcome::Fire { .. }),
                "a signal's verdict does not depend on words: {worded:?}"
            );
            if said[si].later.is_some() {
                said[si].later = judge.later(tracker, state, e, &worded);
            }
            said[si].outcome = worded;
        }
        Some(Record {
            rule: ri,
            event: e.i as u32,
            ts: e.ts,
            action: e.action,
            target: e.target(),
            head: event_head(e),
            said: said.clone(),
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

impl verdict::Judges for BoundPlan<'_> {
    fn judge(&self, rule: u32, si: usize) -> (&Judge, &Tracker) {
        let (judge, slot, _) = &self.rules[rule as usize].signals[si];
        (judge, &self.trackers[*slot])
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

/// The parts of `e`'s words ([`verdict::Head::words`] makes them: "liked
/// t-905 by acct-77 (labels: adult)"): its target's author, and its
/// labels when the target is a listed item.
fn event_head(e: &Ev<'_>) -> verdict::Head {
    if e.target().is_none() {
        return verdict::Head::Parts { author: None, labels: Vec::new() };
    }
    let labels = e.item_row().map(|r| e.data.items.labels(r).to_vec()).unwrap_or_default();
    verdict::Head::Parts { author: e.author(), labels }
}
