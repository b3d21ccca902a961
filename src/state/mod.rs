//! Daily runs: what a run carries to the next, so that each run costs its
//! own batch of events, not the whole history.
//!
//! A [`State`] holds, between two runs:
//!
//! - per account, the bytes the scorer resumes it from ([`codec`]: its
//!   signals' states, its verdicts that may still change and the hits of
//!   its incidents that may, and the last version of each incident it
//!   reported), and when it next has something due without new events of
//!   its own (a look-ahead ending, an incident becoming final);
//! - the population facts' partials, kept by day within their windows;
//! - the item indexes' entries within their readers' reach;
//! - the items and accounts metadata rows seen within the plan's reach, so
//!   that a batch need not carry them again, and each account's impressions
//!   within the impression window;
//! - the watermark (the latest event time seen) and the keys of the plan's
//!   per-account states, facts and indexes it was written for: a run with
//!   rules whose keys differ is refused ([`State::check`]).
//!
//! [`store`] reads and writes it as a directory of generations switched
//! atomically (docs/state.md).

pub mod codec;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::FactRow;
use crate::plan::Plan;
use crate::signals::Need;
use crate::time::Millis;

/// One account's entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    /// The earliest time something of it changes without events of its
    /// own (`None`: nothing until it acts again).
    pub due: Option<Millis>,
    /// Whether it has acted (an account known only as a follower has not):
    /// its first event is not its first any more.
    pub acted: bool,
    /// Whether it has reported incidents not yet final.
    pub open: bool,
    /// What the next run resumes it from ([`codec`]).
    pub payload: Vec<u8>,
}

/// A row of a side table kept between runs: when it was last seen (listed
/// in a batch or acted on), and its fields the rules read, as one JSON
/// object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// When last seen.
    pub seen: Millis,
    /// The row, as a JSON object of the fields read but its id (the key).
    pub json: String,
}

/// An item index's entries kept between runs: (item, time, account).
pub type IndexRows = Vec<(String, Millis, String)>;

/// What a daily run carries to the next. See the module doc.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// The latest event time seen (`None`: nothing seen yet).
    pub watermark: Option<Millis>,
    /// The keys it was written for ([`Keys::of`]).
    pub keys: Keys,
    /// The side tables some batch had (follows, impressions): the rules
    /// know the follow graph, or that impressions are logged, from then on,
    /// whether a later batch carries the table or not.
    pub tables: std::collections::BTreeSet<crate::data::TableKind>,
    /// Accounts, by id.
    pub accounts: BTreeMap<String, Account>,
    /// Each population fact's partial rows, in the order of `keys.facts`.
    pub facts: Vec<Vec<FactRow>>,
    /// Each item index's entries, in the order of `keys.indexes`.
    pub indexes: Vec<IndexRows>,
    /// Items, by id.
    pub items: BTreeMap<String, Kept>,
    /// Accounts metadata, by id.
    pub profiles: BTreeMap<String, Kept>,
    /// Impressions, by account: (item, time).
    pub impressions: BTreeMap<String, Vec<(String, Millis)>>,
}

/// The keys of what a state holds for a plan: its per-account states (one
/// per shared state of the plan, in order), its population facts and its
/// item indexes, each written as text. Two plans with equal keys resume
/// from each other's states; weights, families, tiers and the judging
/// options of signals are not part of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// Per shared per-account state: its key, and the rule:signal pairs
    /// using it.
    pub states: Vec<(String, Vec<String>)>,
    /// Per population fact: its key.
    pub facts: Vec<String>,
    /// Per item index: its action set.
    pub indexes: Vec<String>,
}

impl Keys {
    /// The keys of `plan`.
    pub fn of(plan: &Plan) -> Keys {
        let states = plan
            .slots
            .iter()
            .map(|s| (s.key.stable(), s.users.iter().map(|(r, k)| format!("{r}:{k}")).collect()))
            .collect();
        let agg = crate::facts::Aggregates::for_plan(plan);
        let facts = agg.fact_keys().iter().map(|k| format!("{k:?}")).collect();
        let indexes = agg.item_index_keys().iter().map(|a| a.join(",")).collect();
        Keys { states, facts, indexes }
    }
}

/// Why a state cannot be resumed with a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

impl State {
    /// An empty state for `plan` (a first run).
    pub fn new(plan: &Plan) -> State {
        let keys = Keys::of(plan);
        State {
            facts: vec![Vec::new(); keys.facts.len()],
            indexes: vec![Vec::new(); keys.indexes.len()],
            keys,
            ..State::default()
        }
    }

    /// Whether this state was written for rules with `plan`'s keys: an
    /// error naming the signals whose states, facts or indexes differ
    /// (they need the state rebuilt from history: `changeling state
    /// rebuild`).
    pub fn check(&self, plan: &Plan) -> Result<(), Mismatch> {
        let want = Keys::of(plan);
        if want == self.keys {
            return Ok(());
        }
        let mut why = Vec::new();
        let have: Vec<&String> = self.keys.states.iter().map(|(k, _)| k).collect();
        for (k, users) in &want.states {
            if !have.contains(&k) {
                why.push(format!("{} keep a state this one does not have ({k})", users.join(", ")));
            }
        }
        for (k, users) in &self.keys.states {
            if !want.states.iter().any(|(w, _)| w == k) {
                why.push(format!(
                    "the state holds a per-account state no rule uses now (used by {})",
                    users.join(", ")
                ));
            }
        }
        if why.is_empty() && want.states != self.keys.states {
            why.push("the rules' per-account states are in another order".into());
        }
        for k in want.facts.iter().filter(|k| !self.keys.facts.contains(k)) {
            why.push(format!("a population fact the state does not keep: {k}"));
        }
        for k in want.indexes.iter().filter(|k| !self.keys.indexes.contains(k)) {
            why.push(format!("an item index of actions the state does not keep: {k}"));
        }
        if why.is_empty() {
            why.push("the population facts or item indexes differ".into());
        }
        Err(Mismatch(why.join("; ")))
    }
}

/// Where a daily run reads the state from: the in-memory [`State`] (tests,
/// the Python package) or a state directory ([`store::Store`]).
pub trait Source: Sync {
    /// Everything but the keyed rows (accounts, items, profiles), which
    /// the run asks for by key.
    fn head(&self) -> &State;
    /// Accounts with something due (when) or incidents open.
    fn timers(&self) -> Vec<(String, Option<Millis>, bool)>;
    /// The entries of `ids` the state has.
    fn accounts(&self, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Account>, store::StoreError>;
    /// The items (or, with `profiles`, accounts metadata) rows of `ids` the
    /// state has.
    fn kept(&self, profiles: bool, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Kept>, store::StoreError>;
}

/// What a daily run changes of the state.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// The new watermark.
    pub watermark: Option<Millis>,
    /// The side tables some batch had.
    pub tables: BTreeSet<crate::data::TableKind>,
    /// The population facts' rows, whole.
    pub facts: Vec<Vec<FactRow>>,
    /// The item indexes' entries, whole.
    pub indexes: Vec<IndexRows>,
    /// The impressions, whole.
    pub impressions: BTreeMap<String, Vec<(String, Millis)>>,
    /// Accounts resumed: their new entry, or `None` when nothing of them
    /// needs keeping.
    pub accounts: BTreeMap<String, Option<Account>>,
    /// Items and accounts metadata rows seen by the run.
    pub items: BTreeMap<String, Kept>,
    /// See `items`.
    pub profiles: BTreeMap<String, Kept>,
    /// Rows not seen since this time may be forgotten.
    pub since: Millis,
    /// Accounts the state gains (added less removed).
    pub accounts_added: i64,
}

impl Source for State {
    fn head(&self) -> &State {
        self
    }

    fn timers(&self) -> Vec<(String, Option<Millis>, bool)> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.due.is_some() || a.open)
            .map(|(k, a)| (k.clone(), a.due, a.open))
            .collect()
    }

    fn accounts(&self, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Account>, store::StoreError> {
        Ok(ids.iter().filter_map(|id| self.accounts.get(id).map(|a| (id.clone(), a.clone()))).collect())
    }

    fn kept(&self, profiles: bool, ids: &BTreeSet<String>) -> Result<BTreeMap<String, Kept>, store::StoreError> {
        let table = if profiles { &self.profiles } else { &self.items };
        Ok(ids.iter().filter_map(|id| table.get(id).map(|k| (id.clone(), k.clone()))).collect())
    }
}

impl State {
    /// Applies what a run changed.
    pub fn apply(&mut self, u: Update) {
        self.watermark = u.watermark;
        self.tables = u.tables;
        self.facts = u.facts;
        self.indexes = u.indexes;
        self.impressions = u.impressions;
        for (k, a) in u.accounts {
            match a {
                Some(a) => self.accounts.insert(k, a),
                None => self.accounts.remove(&k),
            };
        }
        self.items.extend(u.items);
        self.profiles.extend(u.profiles);
        self.items.retain(|_, k| k.seen >= u.since);
        self.profiles.retain(|_, k| k.seen >= u.since);
    }
}

/// How far back a plan's signals read (their longest window): a daily
/// state keeps the items and accounts seen within it.
pub fn reach(plan: &Plan) -> Millis {
    plan.rules.iter().flat_map(|r| &r.signals).map(|s| s.def.needs().reach).max().unwrap_or(0)
}

/// How far back the plan's signals read an account's impressions.
pub fn impressions_reach(plan: &Plan) -> Millis {
    plan.rules.iter().flat_map(|r| &r.signals).map(|s| s.def.needs().impressions).max().unwrap_or(0)
}

/// How far back before a later event each item index of the plan is read,
/// by action set.
pub fn index_keep(plan: &Plan) -> Vec<(Vec<String>, Millis)> {
    let mut out: Vec<(Vec<String>, Millis)> = Vec::new();
    for n in plan.rules.iter().flat_map(|r| &r.signals).flat_map(|s| s.def.needs().facts) {
        if let Need::ItemIndex { actions, keep, .. } = n {
            match out.iter_mut().find(|(a, _)| *a == actions) {
                Some((_, k)) => *k = (*k).max(keep),
                None => out.push((actions, keep)),
            }
        }
    }
    out
}
