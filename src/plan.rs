//! The compiled plan: what the scorer will do, independent of any data.
//!
//! Stage two of the pipeline. [`Plan::compile`] takes a validated
//! [`RuleSet`] and decides everything that does not need the data: the
//! order rules run in (by id), which per-account states signals share (one
//! baseline per distinct set of baseline parameters, one follow-graph walk),
//! and which columns of which tables are read. The plan is read-only and
//! `Send + Sync`; `changeling explain-plan` prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::data::Projection;
use crate::data::schema::TableKind;
use crate::rules::filter::{FieldRef, Filter};
use crate::rules::{Config, Effect, RuleSet, Severity, When};
use crate::signals::{Horizon, SignalDef, StateKey};
use crate::time::Millis;

/// One signal of a planned rule.
#[derive(Clone, Debug)]
pub struct PlannedSignal {
    /// The signal and its parameters.
    pub def: SignalDef,
    /// Whether the hit needs this signal to speak.
    pub require: bool,
    /// The shared state slot it reads.
    pub slot: usize,
}

/// A rule as the scorer runs it.
#[derive(Clone, Debug)]
pub struct PlannedRule {
    /// Rule id.
    pub id: String,
    /// Rule version.
    pub version: u64,
    /// Title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Selected actions (empty: all).
    pub actions: Vec<String>,
    /// Filters (macros expanded).
    pub filters: Vec<Filter>,
    /// Signals.
    pub signals: Vec<PlannedSignal>,
    /// How signals combine.
    pub when: When,
    /// Weight of one hit.
    pub weight: f64,
    /// Which way hits count.
    pub effect: Effect,
    /// Its evidence families, as indices into the config's
    /// `score.families`.
    pub families: Vec<usize>,
    /// How long after an event its verdict on it may change: the longest
    /// look-ahead of its signals, and of the rules its `after_hit` signals
    /// follow (their hits may change, and with them this verdict).
    pub horizon: Horizon,
}

/// A per-account state shared by the signals with one state key.
#[derive(Clone, Debug)]
pub struct Slot {
    /// The state key: the signal kind and every parameter its state
    /// depends on.
    pub key: StateKey,
    /// (rule, signal) index of the first user; its binding drives the state.
    pub owner: (usize, usize),
    /// Every (rule id, signal kind) using it.
    pub users: Vec<(String, &'static str)>,
}

/// The compiled plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Incident grouping and tiers.
    pub config: Config,
    /// Rules, by id.
    pub rules: Vec<PlannedRule>,
    /// Shared per-account states.
    pub slots: Vec<Slot>,
    /// Columns read, per table.
    pub reads: BTreeMap<TableKind, BTreeSet<String>>,
    /// Exceptions applied when scoring (`--exceptions`), with their counts.
    pub exceptions: Option<std::sync::Arc<crate::exceptions::Bound>>,
}

/// Each rule's horizon: its signals' own, and the horizons of the rules its
/// `after_hit` signals follow, to a fixed point (horizons only grow, and
/// never beyond the longest signal's, so it ends).
fn settle_horizons(rules: &mut [PlannedRule]) {
    let own: Vec<Horizon> =
        rules.iter().map(|r| r.signals.iter().fold(Horizon::default(), |h, s| h.max(s.def.horizon()))).collect();
    let follows: Vec<Vec<usize>> = rules
        .iter()
        .map(|r| r.signals.iter().flat_map(|s| s.def.followed_rules()).map(|n| n as usize).collect())
        .collect();
    let mut horizon = own.clone();
    loop {
        let mut changed = false;
        for r in 0..rules.len() {
            let h = follows[r].iter().filter_map(|&f| horizon.get(f)).fold(own[r], |h, &f| h.max(f)).max(horizon[r]);
            if h != horizon[r] {
                horizon[r] = h;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (r, h) in rules.iter_mut().zip(horizon) {
        r.horizon = h;
    }
}

impl Plan {
    /// Compiles a validated rule set.
    pub fn compile(set: &RuleSet) -> Plan {
        let mut slots: Vec<Slot> = Vec::new();
        let mut rules = Vec::new();
        let mut reads: BTreeMap<TableKind, BTreeSet<String>> = BTreeMap::new();
        let mut read = |t: TableKind, c: &str| {
            reads.entry(t).or_default().insert(c.to_string());
        };
        // Always read: what alerts are made of. (Ground truth is for
        // evaluation, which reads it itself.)
        for c in ["ts", "actor", "action", "target", "target_author"] {
            read(TableKind::Events, c);
        }
        for c in ["id", "author", "labels"] {
            read(TableKind::Items, c);
        }
        // Rule references are resolved here, once: signals see rule numbers.
        let ids: Vec<String> = set.rules.iter().map(|r| r.id.value.clone()).collect();
        for (ri, rule) in set.rules.iter().enumerate() {
            let mut signals = Vec::new();
            for (si, s) in rule.signals.iter().enumerate() {
                let mut def = s.def.clone();
                def.resolve(&ids);
                let key = def.state_key();
                let slot = match slots.iter().position(|sl| sl.key == key) {
                    Some(i) => i,
                    None => {
                        slots.push(Slot { key, owner: (ri, si), users: Vec::new() });
                        slots.len() - 1
                    }
                };
                slots[slot].users.push((rule.id.value.clone(), def.kind()));
                for (t, c) in def.needs().reads {
                    read(t, &c);
                }
                signals.push(PlannedSignal { def, require: s.require, slot });
            }
            let mut fields: Vec<FieldRef> = Vec::new();
            rule.filters.iter().for_each(|f| f.fields(&mut fields));
            for f in fields {
                read(f.scope.table(), &f.name);
                match f.scope {
                    crate::rules::filter::Scope::Item => read(TableKind::Items, "id"),
                    crate::rules::filter::Scope::Account | crate::rules::filter::Scope::Author => {
                        read(TableKind::Accounts, "id")
                    }
                    crate::rules::filter::Scope::Event => {}
                }
            }
            rules.push(PlannedRule {
                id: rule.id.value.clone(),
                version: rule.version,
                title: rule.title.clone(),
                severity: rule.severity,
                actions: rule.actions.iter().map(|a| a.value.clone()).collect(),
                filters: rule.filters.clone(),
                signals,
                when: rule.when,
                weight: rule.weight,
                effect: rule.effect,
                families: rule
                    .families
                    .iter()
                    .map(|f| set.config.score.family(f).expect("rule families are validated against the config"))
                    .collect(),
                horizon: Horizon::default(),
            });
        }
        settle_horizons(&mut rules);
        Plan { config: set.config.clone(), rules, slots, reads, exceptions: None }
    }

    /// The plan with `exceptions` applied when scoring (see
    /// [`crate::exceptions`]); it reads the event columns they match on.
    pub fn with_exceptions(mut self, exceptions: crate::exceptions::Bound) -> Plan {
        for c in exceptions.reads() {
            self.reads.entry(TableKind::Events).or_default().insert(c.to_string());
        }
        self.exceptions = (!exceptions.is_empty()).then(|| std::sync::Arc::new(exceptions));
        self
    }

    /// How long after its last hit an incident may still change: a later
    /// hit joins it up to the incident gap or link after, and a verdict may
    /// turn into such a hit up to the longest `adds` horizon after its
    /// event. (Each hit may also change up to its rule's horizon after it;
    /// see [`crate::score::incident`].)
    pub fn join_horizon(&self) -> Millis {
        let adds = self.rules.iter().map(|r| r.horizon.adds).max().unwrap_or(0);
        self.config.incident_gap.max(self.config.incident_link).saturating_add(adds)
    }

    /// The columns to read, for readers that can skip the rest: of a table
    /// the plan reads nothing from, only its required fields (which are
    /// still checked).
    pub fn projection(&self) -> Projection {
        let mut tables = self.reads.clone();
        for kind in crate::data::TableKind::ALL {
            tables.entry(kind).or_default();
        }
        Projection { tables }
    }

    /// The plan in words: rules, their selection, signals with every
    /// parameter (defaults filled in), shared states, columns read, tiers.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(out, "plan: {} rules, {} shared states", self.rules.len(), self.slots.len());
        let _ = writeln!(
            out,
            "incidents: hits closer than {} join one incident; a later hit on a target it holds joins it up to {} after",
            crate::time::compact_duration(c.incident_gap),
            crate::time::compact_duration(c.incident_link)
        );
        let m = &c.score;
        let _ = writeln!(
            out,
            "score: per family, raw = 1 - prod(1 - weight*strength * {}^(k-1)) over its hits for, strongest first, \
             saturated below its cap as cap * (1 - (1 - raw)^(1/cap)); families combine as 1 - prod(1 - family); \
             a hit against discounts the likes it undoes",
            m.repeat_discount
        );
        let families: Vec<String> =
            (0..m.families.len()).map(|f| format!("{} (cap {})", m.families[f], m.cap(f))).collect();
        let _ = writeln!(out, "families: {}", families.join(", "));
        let tiers: Vec<String> = c.tiers.iter().map(|t| format!("{} >= {}", t.name, t.min_score)).collect();
        let _ = writeln!(out, "tiers: {} (below the last: not written)", tiers.join(", "));
        for r in &self.rules {
            let _ = writeln!(out);
            let _ = writeln!(out, "rule {} v{} [{}]", r.id, r.version, r.severity.name());
            let _ = writeln!(out, "  title: {}", r.title);
            let actions = if r.actions.is_empty() { "any".to_string() } else { r.actions.join(", ") };
            let _ = writeln!(out, "  on: {actions}");
            for f in &r.filters {
                let _ = writeln!(out, "  where: {}", f.describe());
            }
            let when = match r.when {
                When::All => "all signals that speak must fire; strength = product",
                When::Any => "any signal may fire; strength = noisy-OR",
            };
            let families: Vec<&str> = r.families.iter().map(|&f| c.score.families[f].as_str()).collect();
            let _ = writeln!(
                out,
                "  hit: weight {} {} ({when}); families: {}",
                r.weight,
                r.effect.name(),
                families.join(", ")
            );
            if r.signals.is_empty() {
                let _ = writeln!(out, "  (no signals: every selected event hits with strength 1)");
            }
            for s in &r.signals {
                let req = if s.require { ", required" } else { "" };
                let _ = writeln!(out, "  signal {} (state #{}{req})", s.def.kind(), s.slot);
                for (k, v) in s.def.describe() {
                    let _ = writeln!(out, "    {k} = {v}");
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "shared per-account states:");
        for (i, s) in self.slots.iter().enumerate() {
            let users: Vec<String> = s.users.iter().map(|(r, k)| format!("{r}:{k}")).collect();
            let _ = writeln!(out, "  #{i} used by {}", users.join(", "));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "columns read:");
        for (t, cols) in &self.reads {
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            let _ = writeln!(out, "  {t}: {}", cols.join(", "));
        }
        out
    }
}
