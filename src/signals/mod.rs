//! Signal kinds: the contract every kind implements, and the registry.
//!
//! A signal is one piece of evidence about one event of one account: "this
//! like is far from the account's history", "nothing could have shown it
//! this item", "this unlike came an hour after the like". Each kind lives in
//! its own file with its documentation, parameter table, binding and
//! evaluator, and implements [`Signal`]; the `registry!` list below is the
//! only other place a new kind touches.
//!
//! Life of a signal:
//! 1. **parse** (rule loading): parameters read against the kind's table
//!    ([`spec`]), range-checked, with diagnostics. They come in two typed
//!    halves: the [`Signal::Key`], every parameter the per-account state
//!    depends on, and the [`Signal::Opts`], the rest. The key *is* the
//!    sharing key: signals of one kind with equal keys share one state (one
//!    baseline, one walk of the follow graph), and nothing else can make
//!    them share.
//! 2. **needs** (compile): the columns, whole-input facts ([`Need`]) and
//!    rule references a signal needs, declared by the signal itself.
//! 3. **bind** (once per run): the key becomes a [`Signal::Tracker`] (it
//!    drives the per-account state and sees nothing of the options), the
//!    options a [`Signal::Judge`]; both are read-only and shared by every
//!    worker and every partition.
//! 4. **per account**: a state (per worker, reset per account) is moved to
//!    each event's time ([`Signal::advance`]), asked about the events rules
//!    select ([`Signal::eval`], which cannot change it), then fed the event
//!    ([`Signal::observe`]). A signal never sees an event's future, except
//!    through what its tracker says it reads ahead (look-ahead, lockstep).
//!
//! Evaluation cannot fail: every check that can fail happens when parsing
//! or binding.

pub mod after_hit;
pub mod feed_exposure;
pub mod impossible_travel;
pub mod lockstep;
pub mod new_context;
pub mod off_pattern;
pub mod rate_spike;
pub mod sequence;
pub mod spec;
pub mod unlike_latency;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use crate::data::schema::{TableKind, ev};
use crate::data::{AccountSpan, Dataset, Items};
pub use crate::facts::Facts;
use crate::facts::item_index::ItemActors;
use crate::facts::{FactKey, Registered};
use crate::intern::{Interner, Sym};
use crate::rules::Effect;
use crate::rules::reader::Sp;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::Millis;
pub use spec::{Param, ParamReader};

/// The contract of a signal kind. See the module doc for the life of a
/// signal; each kind's file documents what it detects and why.
pub trait Signal: 'static {
    /// Its name, as rules write it.
    const NAME: &'static str;
    /// The evidence family of a rule led by this signal (see `[score]`), or
    /// `None` when it takes its family from the rule's other signals.
    const FAMILY: Option<&'static str>;
    /// Its parameters.
    const PARAMS: &'static [Param];

    /// Every parameter the per-account state depends on: signals of this
    /// kind with equal keys share one state.
    type Key: Clone + Debug + PartialEq + Eq + Hash + Send + Sync;
    /// The other parameters: how an event is judged.
    type Opts: Clone + Debug + PartialEq + Send + Sync;
    /// The key bound to a run; it alone drives the per-account state.
    type Tracker: Debug + Send + Sync;
    /// The options bound to a run.
    type Judge: Debug + Send + Sync;
    /// Per-account state.
    type State: Debug + Send;
    /// Buffers one worker reuses in [`Signal::eval`]; they carry nothing
    /// from one event to the next.
    type Scratch: Debug + Default + Send;
    /// How a verdict of this kind may still change after it is given
    /// ([`Signal::later`]); `()` for a kind whose verdicts are final.
    type Later: Debug + Clone + Send + Sync + Persist;

    /// Reads the parameters of a `[[signal]]` table.
    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Self::Key, Self::Opts);

    /// What the signal needs: columns, whole-input facts, rules.
    fn needs(key: &Self::Key, opts: &Self::Opts) -> Needs;

    /// Resolves the rule ids the signal refers to (at compile time). Most
    /// kinds refer to none.
    fn resolve(_key: &mut Self::Key, _opts: &mut Self::Opts, _rules: &[String]) {}

    /// Binds the key to a run.
    fn tracker(key: &Self::Key, u: &Universe<'_>) -> Self::Tracker;

    /// Binds the options to a run.
    fn judge(key: &Self::Key, opts: &Self::Opts, u: &Universe<'_>) -> Self::Judge;

    /// A note for the user about this binding (for example, that the signal
    /// abstains on this dataset), said once per run.
    fn note(_t: &Self::Tracker) -> Option<String> {
        None
    }

    /// A fresh per-account state.
    fn new_state(t: &Self::Tracker) -> Self::State;

    /// Resets `s` for a new account, whose events are `span` of `data`.
    fn reset(t: &Self::Tracker, s: &mut Self::State, span: &AccountSpan, data: &Dataset);

    /// Moves `s` to the time of `e`, before any rule judges `e`: once per
    /// event, whatever the number of rules.
    fn advance(_t: &Self::Tracker, _s: &mut Self::State, _e: &Ev<'_>) {}

    /// Judges one event given the state before it.
    fn eval(j: &Self::Judge, t: &Self::Tracker, s: &Self::State, scratch: &mut Self::Scratch, e: &Ev<'_>) -> Outcome;

    /// Feeds one event of the account to `s` (after every rule judged it).
    fn observe(t: &Self::Tracker, s: &mut Self::State, e: &Ev<'_>);

    /// Writes `s`, after an account's events up to `now`, for a later run
    /// to resume from ([`Signal::load`]). What no event after `now` can
    /// read any more (a window's old end) may be left out.
    fn save(t: &Self::Tracker, s: &Self::State, now: Millis, w: &mut Enc<'_>);

    /// Reads a state [`Signal::save`] wrote into `s` (fresh from
    /// [`Signal::new_state`]), for an account whose next events are in
    /// `data`.
    fn load(t: &Self::Tracker, s: &mut Self::State, r: &mut Dec<'_>, data: &Dataset) -> Result<(), CodecError>;

    /// How long after an event a verdict of a signal with these parameters
    /// may still change: its declared look-ahead. Final at once by default.
    fn horizon(_key: &Self::Key, _opts: &Self::Opts) -> Horizon {
        Horizon::default()
    }

    /// After [`Signal::eval`] said `said` on `e`: how the verdict may still
    /// change, or `None` when it is final. Called only on verdicts that
    /// matter (their rule may hit), with the state `eval` saw.
    fn later(
        _j: &Self::Judge,
        _t: &Self::Tracker,
        _s: &Self::State,
        _e: &Ev<'_>,
        _said: &Outcome,
    ) -> Option<Self::Later> {
        None
    }

    /// Revises a verdict that was waiting (`said`, with `later`) given
    /// `cause`; returns the new verdict when it changed. The words of a
    /// revised verdict are always written.
    fn revise(
        _j: &Self::Judge,
        _t: &Self::Tracker,
        _later: &mut Self::Later,
        _cause: &Cause<'_>,
        _said: &Outcome,
    ) -> Option<Outcome> {
        None
    }

    /// The time after which `later` can no longer change its verdict.
    fn deadline(_later: &Self::Later) -> Millis {
        Millis::MIN
    }
}

/// What can be written for a later run and read back: a signal's
/// [`Signal::Later`].
pub trait Persist: Sized {
    /// Writes it.
    fn save(&self, w: &mut Enc<'_>);
    /// Reads what [`Persist::save`] wrote.
    fn load(r: &mut Dec<'_>) -> Result<Self, CodecError>;
}

impl Persist for () {
    fn save(&self, _w: &mut Enc<'_>) {}
    fn load(_r: &mut Dec<'_>) -> Result<(), CodecError> {
        Ok(())
    }
}

/// How long after an event a signal's verdict on it may change (see
/// [`Signal::horizon`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Horizon {
    /// Later data may turn the verdict on, or change its strength (lockstep:
    /// other accounts acting on the item within the window after).
    pub adds: Millis,
    /// Later data may only take a fired verdict back (off_pattern's
    /// look-ahead: the account engaging with the value again).
    pub revokes: Millis,
}

impl Horizon {
    /// The longer of the two.
    pub fn longest(&self) -> Millis {
        self.adds.max(self.revokes)
    }

    /// Each the longer of `self`'s and `other`'s.
    pub fn max(self, other: Horizon) -> Horizon {
        Horizon { adds: self.adds.max(other.adds), revokes: self.revokes.max(other.revokes) }
    }
}

/// What may change a waiting verdict (see [`Signal::revise`]).
#[derive(Clone, Copy)]
pub enum Cause<'a> {
    /// A later event of the same account, before the states observe it.
    Event(&'a Ev<'a>),
    /// The data of the run ends at this time: what the look-ahead could
    /// see is known up to here (a verdict whose deadline is past is
    /// final).
    End(Millis),
    /// A daily run's next batch: the facts across accounts were computed
    /// again over later data (other accounts' actions after the verdict's
    /// event are known now), and the account's later impressions are in
    /// this dataset (with the run's strings, for words).
    Refreshed(&'a Dataset),
    /// The account's rule hits on events before the verdict's, as they
    /// stand (for verdicts on earlier hits: `after_hit`), with the run's
    /// strings for words.
    Hits(&'a [EarlierHit], &'a Interner),
}

/// A signal as declared in a rule, parameters validated.
pub struct Def<K: Signal> {
    /// The parameters the state depends on.
    pub key: K::Key,
    /// The others.
    pub opts: K::Opts,
    /// Every parameter with its effective value, for `explain-plan`.
    pub described: Vec<(&'static str, String)>,
}

impl<K: Signal> Clone for Def<K> {
    fn clone(&self) -> Self {
        Def { key: self.key.clone(), opts: self.opts.clone(), described: self.described.clone() }
    }
}

impl<K: Signal> PartialEq for Def<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.opts == other.opts
    }
}

impl<K: Signal> Debug for Def<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Def").field("kind", &K::NAME).field("key", &self.key).field("opts", &self.opts).finish()
    }
}

/// A whole-input fact a signal needs, computed before scoring (see
/// [`crate::facts`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Need {
    /// A population fact ([`crate::facts::Fact`]).
    Fact(FactKey),
    /// Who did which of `actions` on each item, when.
    ItemIndex {
        /// The actions, sorted.
        actions: Vec<String>,
        /// Whether every entry is needed (exposure), not only those with
        /// another account near them.
        every_entry: bool,
        /// The lockstep window the index serves, if any.
        lockstep_window: Option<Millis>,
        /// How far before and after an account's own event the signal
        /// reads the entries of that event's target: a partitioned run
        /// sends each partition only the entries within this reach of its
        /// events (the item phase).
        reach: (Millis, Millis),
        /// The actions of the account's own events around which the signal
        /// reads the index (sorted), or `None` for the events its rule
        /// selects. Only events with these actions ask the item phase.
        read_at: Option<Vec<String>>,
        /// How far before a later event of the account it may read an
        /// entry: a daily run keeps the entries of this long.
        keep: Millis,
    },
}

/// What one signal needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    /// Columns read, by table.
    pub reads: Vec<(TableKind, String)>,
    /// Whole-input facts.
    pub facts: Vec<Need>,
    /// Rule ids referred to, with where they are written.
    pub rules: Vec<Sp<String>>,
    /// How far before an event the signal reads anything (its longest
    /// window): a daily run keeps the items and accounts seen within the
    /// plan's longest.
    pub reach: Millis,
    /// How far before an event it reads the account's impressions.
    pub impressions: Millis,
}

impl Needs {
    /// Adds `columns` of `table` to the columns read.
    pub fn read(&mut self, table: TableKind, columns: &[&str]) -> &mut Self {
        self.reads.extend(columns.iter().map(|c| (table, c.to_string())));
        self
    }
}

/// What binding sees of a run: everything that is the same for every
/// partition of the events.
#[derive(Clone, Copy)]
pub struct Universe<'a> {
    /// Every string of the run.
    pub strings: &'a Interner,
    /// The items table.
    pub items: &'a Items,
    /// Whether the run has a follows table.
    pub follows: bool,
    /// Whether the run has an impressions table.
    pub impressions: bool,
    /// The whole-input facts.
    pub facts: &'a Facts,
    /// Every rule id of the plan, by number.
    pub rule_ids: &'a [String],
    /// Every rule's horizon ([`crate::plan::PlannedRule::horizon`]), by
    /// number.
    pub rule_horizons: &'a [Horizon],
}

impl Universe<'_> {
    /// The run's symbols of `names` (names the data never uses are dropped:
    /// no event can have them), sorted.
    pub fn resolve_all(&self, names: &[String]) -> Vec<Sym> {
        let mut v: Vec<Sym> = names.iter().filter_map(|n| self.strings.get(n)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The run's symbol of `name`, if any event can have it.
    pub fn resolve(&self, name: &str) -> Option<Sym> {
        self.strings.get(name)
    }

    /// The population fact of kind `F` with key `key`. Binding checks
    /// that every fact the plan's signals declare ([`Needs::facts`]) was
    /// computed, so a signal asks only for what it declared: a key it did
    /// not declare is an engine bug, and stops the run rather than give an
    /// empty answer.
    pub fn fact<F: Registered>(&self, key: &F::Key) -> Arc<F::Value> {
        match self.facts.get::<F>(key) {
            Some(v) => v.clone(),
            None => panic!("internal error: a signal asked for the {} fact {key:?}, which it did not declare", F::NAME),
        }
    }

    /// The item index of `actions` (sorted), under the same contract as
    /// [`Universe::fact`].
    pub fn item_index(&self, actions: &[String]) -> Arc<ItemActors> {
        match self.facts.item_actors.get(actions) {
            Some(v) => v.clone(),
            None => {
                panic!("internal error: a signal asked for the item index of {actions:?}, which it did not declare")
            }
        }
    }
}

/// What a signal says about an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Evidence, with a strength in (0, 1] and the reason in plain words.
    Fire {
        /// How strong, in (0, 1].
        strength: f64,
        /// Which evidence, with the numbers.
        why: Why,
    },
    /// Looked, and found nothing.
    Quiet,
    /// Cannot tell (too little history, no data to judge by).
    Abstain,
}

impl Outcome {
    /// A firing outcome whose words are written only when `e` asks for
    /// them.
    pub fn fire(e: &Ev<'_>, strength: f64, why: impl FnOnce() -> String) -> Outcome {
        Outcome::Fire { strength, why: Why::Text(if e.words { why() } else { String::new() }) }
    }
}

/// Which evidence a fired verdict found: its words, or the numbers they are
/// made of. The kinds whose verdicts a daily state keeps longest (they wait
/// on a look-ahead) keep numbers, made into words when a hit is written:
/// tens of bytes a verdict where words took hundreds.
#[derive(Clone, Debug, PartialEq)]
pub enum Why {
    /// Words, made when the verdict was given (empty when it was given
    /// without words).
    Text(String),
    /// off_pattern's numbers.
    OffPattern(Box<off_pattern::Words>),
    /// feed_exposure's numbers.
    FeedExposure(Box<feed_exposure::Words>),
}

impl Default for Why {
    fn default() -> Why {
        Why::Text(String::new())
    }
}

impl Why {
    /// The words (symbols resolved in `strings`).
    pub fn text(&self, strings: &Interner) -> std::borrow::Cow<'_, str> {
        match self {
            Why::Text(text) => text.as_str().into(),
            Why::OffPattern(w) => w.text(strings).into(),
            Why::FeedExposure(w) => w.text(strings).into(),
        }
    }

    /// Feeds what it says to `eat` (for a fingerprint), without making
    /// the words: text as it is, numbers as [`Why::save`] writes them
    /// (symbols as their text), so a fingerprint reads every number kept.
    pub fn feed(&self, strings: &Interner, eat: &mut dyn FnMut(&[u8])) {
        match self {
            Why::Text(text) => eat(text.as_bytes()),
            numbers => {
                let mut w = Enc::new(strings);
                numbers.save(&mut w);
                w.feed(eat);
            }
        }
    }

    /// Writes it, its kind first.
    pub fn save(&self, w: &mut Enc<'_>) {
        match self {
            Why::Text(text) => {
                w.u8(0);
                w.text(text);
            }
            Why::OffPattern(words) => {
                w.u8(1);
                words.save(w);
            }
            Why::FeedExposure(words) => {
                w.u8(2);
                words.save(w);
            }
        }
    }

    /// Reads what [`Why::save`] wrote.
    pub fn load(r: &mut Dec<'_>) -> Result<Why, CodecError> {
        Ok(match r.u8()? {
            0 => Why::Text(r.text()?.to_string()),
            1 => Why::OffPattern(Box::new(off_pattern::Words::load(r)?)),
            2 => Why::FeedExposure(Box::new(feed_exposure::Words::load(r)?)),
            k => return Err(CodecError(format!("the words of a verdict of kind {k}"))),
        })
    }
}

/// An earlier rule hit of the account, as signals see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlierHit {
    /// Index of the rule in the plan.
    pub rule: u32,
    /// When.
    pub ts: Millis,
    /// The event's action.
    pub action: Sym,
    /// The event's target.
    pub target: Option<Sym>,
    /// The hit's strength.
    pub strength: f64,
    /// Which way it counts.
    pub effect: Effect,
}

/// One event as signals see it.
#[derive(Clone, Copy)]
pub struct Ev<'a> {
    /// The dataset (one partition of the run's events, with the run's
    /// other tables).
    pub data: &'a Dataset,
    /// The event's index in `data.events`.
    pub i: usize,
    /// When.
    pub ts: Millis,
    /// Who.
    pub actor: Sym,
    /// What.
    pub action: Sym,
    /// The account's rule hits on earlier events (empty outside the scorer).
    pub hits: &'a [EarlierHit],
    /// Whether signals should say why in words. The scorer first asks
    /// without words and asks again with words only the signals of rules
    /// that hit, so that texts are written for hits only (a signal's
    /// verdict and strength must not depend on this).
    pub words: bool,
}

impl<'a> Ev<'a> {
    /// The event at index `i`.
    #[inline]
    pub fn at(data: &'a Dataset, i: usize) -> Ev<'a> {
        let e = &data.events;
        Ev { data, i, ts: e.ts(i), actor: e.actor(i), action: e.action(i), hits: &[], words: true }
    }

    /// The target item or account.
    #[inline]
    pub fn target(&self) -> Option<Sym> {
        self.data.events.target(self.i)
    }

    /// The target's row in `items`, if it is a known item.
    #[inline]
    pub fn item_row(&self) -> Option<usize> {
        self.target().and_then(|t| self.data.items.row(t))
    }

    /// The target's author: the event's `target_author`, else the item's.
    #[inline]
    pub fn author(&self) -> Option<Sym> {
        self.data
            .events
            .sym(ev::TARGET_AUTHOR, self.i)
            .or_else(|| self.item_row().and_then(|r| self.data.items.author(r)))
    }

    /// The event's `surface`.
    #[inline]
    pub fn surface(&self) -> Option<Sym> {
        self.data.events.sym(ev::SURFACE, self.i)
    }

    /// A symbol's text.
    #[inline]
    pub fn text(&self, s: Sym) -> &'a str {
        self.data.strings.resolve(s)
    }
}

/// Generates the registry: one enum variant per kind for the definition,
/// the sharing key, the tracker, the judge, the state and the scratch, and
/// the dispatch over them.
macro_rules! registry {
    ($( $variant:ident => $module:ident :: $kind:ident; )*) => {
        /// Every signal kind, by the name rules use.
        pub const KINDS: &[&str] = &[$( <$module::$kind as Signal>::NAME, )*];

        /// The parameter table of kind `name`.
        pub fn params_of(name: &str) -> Option<&'static [Param]> {
            $( if name == <$module::$kind as Signal>::NAME { return Some(<$module::$kind as Signal>::PARAMS); } )*
            None
        }

        /// A signal as declared in a rule, parameters validated.
        #[derive(Clone, Debug, PartialEq)]
        pub enum SignalDef {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(Def<$module::$kind>),
            )*
        }

        /// The sharing key of a signal: its kind and every parameter its
        /// per-account state depends on.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum StateKey {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::Key),
            )*
        }

        impl StateKey {
            /// The key as text that does not depend on the plan it is in
            /// (rule numbers left out): what a daily state records.
            pub fn stable(&self) -> String {
                match self {
                    StateKey::AfterHit(k) => format!("{:?}", StateKey::AfterHit(after_hit::Key { numbers: Vec::new(), ..k.clone() })),
                    other => format!("{other:?}"),
                }
            }
        }

        /// A key bound to a run: drives one per-account state.
        #[derive(Debug)]
        pub enum Tracker {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::Tracker),
            )*
        }

        /// A signal's options bound to a run.
        #[derive(Debug)]
        pub enum Judge {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::Judge),
            )*
        }

        /// Per-account state of one tracker.
        #[derive(Debug)]
        pub enum State {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::State),
            )*
        }

        /// How a waiting verdict of one signal may still change.
        #[derive(Clone, Debug)]
        pub enum Later {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::Later),
            )*
        }

        /// Buffers a worker reuses for one signal of one rule.
        #[derive(Debug)]
        pub enum Scratch {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Signal>::Scratch),
            )*
        }

        /// Parses a `[[signal]]` table of kind `kind`; `None` for an unknown
        /// kind (the caller reports it).
        pub fn parse(kind: &str, r: &mut ParamReader<'_, '_, '_, '_>) -> Option<SignalDef> {
            $(
                if kind == <$module::$kind as Signal>::NAME {
                    let (key, opts) = <$module::$kind as Signal>::parse(r);
                    return Some(SignalDef::$variant(Def { key, opts, described: Vec::new() }));
                }
            )*
            None
        }

        impl SignalDef {
            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self { $( SignalDef::$variant(_) => <$module::$kind as Signal>::NAME, )* }
            }

            /// The evidence family this kind's evidence belongs to, if any
            /// (a rule's default family is its first signal's).
            pub fn family(&self) -> Option<&'static str> {
                match self { $( SignalDef::$variant(_) => <$module::$kind as Signal>::FAMILY, )* }
            }

            /// Parameters with their effective values, for `explain-plan`.
            pub fn describe(&self) -> &[(&'static str, String)] {
                match self { $( SignalDef::$variant(d) => &d.described, )* }
            }

            /// Records the effective values read by the parser.
            pub fn set_described(&mut self, described: Vec<(&'static str, String)>) {
                match self { $( SignalDef::$variant(d) => d.described = described, )* }
            }

            /// The sharing key.
            pub fn state_key(&self) -> StateKey {
                match self { $( SignalDef::$variant(d) => StateKey::$variant(d.key.clone()), )* }
            }

            /// What the signal needs.
            pub fn needs(&self) -> Needs {
                match self { $( SignalDef::$variant(d) => <$module::$kind as Signal>::needs(&d.key, &d.opts), )* }
            }

            /// Resolves the rule ids the signal refers to, given every rule
            /// id of the plan by index.
            pub fn resolve(&mut self, rules: &[String]) {
                match self {
                    $( SignalDef::$variant(d) => <$module::$kind as Signal>::resolve(&mut d.key, &mut d.opts, rules), )*
                }
            }

            /// Binds the key to a run.
            pub fn tracker(&self, u: &Universe<'_>) -> Tracker {
                match self {
                    $( SignalDef::$variant(d) => Tracker::$variant(<$module::$kind as Signal>::tracker(&d.key, u)), )*
                }
            }

            /// Binds the options to a run.
            pub fn judge(&self, u: &Universe<'_>) -> Judge {
                match self {
                    $( SignalDef::$variant(d) => Judge::$variant(<$module::$kind as Signal>::judge(&d.key, &d.opts, u)), )*
                }
            }

            /// The plan numbers of the rules whose hits it follows
            /// (`after_hit`), once resolved.
            pub fn followed_rules(&self) -> Vec<u32> {
                match self {
                    SignalDef::AfterHit(d) => d.key.numbers.clone(),
                    _ => Vec::new(),
                }
            }

            /// How far back it reads the account's earlier hits
            /// (`after_hit`'s `within`; 0 for the others).
            pub fn follow_up(&self) -> Millis {
                match self {
                    SignalDef::AfterHit(d) => d.key.within,
                    _ => 0,
                }
            }

            /// How long after an event its verdict may change.
            pub fn horizon(&self) -> Horizon {
                match self { $( SignalDef::$variant(d) => <$module::$kind as Signal>::horizon(&d.key, &d.opts), )* }
            }
        }

        impl Tracker {
            /// A fresh per-account state.
            pub fn new_state(&self) -> State {
                match self { $( Tracker::$variant(t) => State::$variant(<$module::$kind as Signal>::new_state(t)), )* }
            }

            /// Resets `state` for a new account.
            pub fn reset(&self, state: &mut State, span: &AccountSpan, data: &Dataset) {
                match (self, state) {
                    $( (Tracker::$variant(t), State::$variant(s)) => <$module::$kind as Signal>::reset(t, s, span, data), )*
                    _ => unreachable!("a state is always used with the tracker that made it"),
                }
            }

            /// Moves `state` to the time of `e`.
            pub fn advance(&self, state: &mut State, e: &Ev<'_>) {
                match (self, state) {
                    $( (Tracker::$variant(t), State::$variant(s)) => <$module::$kind as Signal>::advance(t, s, e), )*
                    _ => unreachable!("a state is always used with the tracker that made it"),
                }
            }

            /// Feeds one event of the account to `state`.
            pub fn observe(&self, state: &mut State, e: &Ev<'_>) {
                match (self, state) {
                    $( (Tracker::$variant(t), State::$variant(s)) => <$module::$kind as Signal>::observe(t, s, e), )*
                    _ => unreachable!("a state is always used with the tracker that made it"),
                }
            }

            /// Writes `state` for a later run (see [`Signal::save`]).
            pub fn save(&self, state: &State, now: Millis, w: &mut Enc<'_>) {
                match (self, state) {
                    $( (Tracker::$variant(t), State::$variant(s)) => <$module::$kind as Signal>::save(t, s, now, w), )*
                    _ => unreachable!("a state is always used with the tracker that made it"),
                }
            }

            /// Reads a state written by [`Tracker::save`] into `state`.
            pub fn load(&self, state: &mut State, r: &mut Dec<'_>, data: &Dataset) -> Result<(), CodecError> {
                match (self, state) {
                    $( (Tracker::$variant(t), State::$variant(s)) => <$module::$kind as Signal>::load(t, s, r, data), )*
                    _ => unreachable!("a state is always used with the tracker that made it"),
                }
            }

            /// A note for the user about this binding, said once per run.
            pub fn note(&self) -> Option<String> {
                match self { $( Tracker::$variant(t) => <$module::$kind as Signal>::note(t), )* }
            }
        }

        impl Later {
            /// The kind of signal that made it.
            pub fn kind(&self) -> &'static str {
                match self { $( Later::$variant(_) => <$module::$kind as Signal>::NAME, )* }
            }

            /// Whether it follows the account's earlier hits (decided when
            /// the hits are derived, not as events pass).
            pub fn follows_hits(&self) -> bool {
                matches!(self, Later::AfterHit(_))
            }

            /// Writes it, its kind first.
            pub fn save(&self, w: &mut Enc<'_>) {
                let mut kind = 0u8;
                $(
                    if let Later::$variant(l) = self {
                        w.u8(kind);
                        Persist::save(l, w);
                        return;
                    }
                    kind += 1;
                )*
                let _ = kind;
            }

            /// Reads what [`Later::save`] wrote.
            pub fn load(r: &mut Dec<'_>) -> Result<Later, CodecError> {
                let want = r.u8()?;
                let mut kind = 0u8;
                $(
                    if want == kind {
                        return Ok(Later::$variant(Persist::load(r)?));
                    }
                    kind += 1;
                )*
                let _ = kind;
                Err(CodecError(format!("a waiting verdict of unknown kind {want}")))
            }

            /// When a run must look at it again, though the account has no
            /// events of its own then: the next run, for a verdict that
            /// waits for other accounts' later actions or the account's
            /// later impressions (lockstep, feed exposure); its deadline
            /// for one that only becomes final then.
            pub fn due(&self, now: Millis) -> Millis {
                match self {
                    Later::Lockstep(_) | Later::FeedExposure(_) => now.saturating_add(1),
                    other => other.deadline(),
                }
            }

            /// The time after which it can no longer change its verdict.
            pub fn deadline(&self) -> Millis {
                match self { $( Later::$variant(l) => <$module::$kind as Signal>::deadline(l), )* }
            }
        }

        impl Judge {
            /// How the verdict `said` on `e` may still change, if it may.
            pub fn later(&self, tracker: &Tracker, state: &State, e: &Ev<'_>, said: &Outcome) -> Option<Later> {
                match (self, tracker, state) {
                    $(
                        (Judge::$variant(j), Tracker::$variant(t), State::$variant(s)) => {
                            <$module::$kind as Signal>::later(j, t, s, e, said).map(Later::$variant)
                        }
                    )*
                    _ => unreachable!("a judge is always used with a tracker and state of its kind"),
                }
            }

            /// Revises a waiting verdict given `cause`: the new verdict, if
            /// it changed.
            pub fn revise(&self, tracker: &Tracker, later: &mut Later, cause: &Cause<'_>, said: &Outcome) -> Option<Outcome> {
                match (self, tracker, later) {
                    $(
                        (Judge::$variant(j), Tracker::$variant(t), Later::$variant(l)) => {
                            <$module::$kind as Signal>::revise(j, t, l, cause, said)
                        }
                    )*
                    _ => unreachable!("a later is always revised by the judge that made it"),
                }
            }

            /// Fresh buffers for this judge.
            pub fn new_scratch(&self) -> Scratch {
                match self { $( Judge::$variant(_) => Scratch::$variant(Default::default()), )* }
            }

            /// Judges one event, given the account's state before it.
            pub fn eval(&self, tracker: &Tracker, state: &State, scratch: &mut Scratch, e: &Ev<'_>) -> Outcome {
                match (self, tracker, state, scratch) {
                    $(
                        (Judge::$variant(j), Tracker::$variant(t), State::$variant(s), Scratch::$variant(x)) => {
                            <$module::$kind as Signal>::eval(j, t, s, x, e)
                        }
                    )*
                    _ => unreachable!("a judge is always used with a tracker and state of its kind"),
                }
            }
        }
    };
}

registry! {
    AfterHit => after_hit::AfterHit;
    FeedExposure => feed_exposure::FeedExposure;
    ImpossibleTravel => impossible_travel::ImpossibleTravel;
    Lockstep => lockstep::Lockstep;
    NewContext => new_context::NewContext;
    OffPattern => off_pattern::OffPattern;
    RateSpike => rate_spike::RateSpike;
    Sequence => sequence::Sequence;
    UnlikeLatency => unlike_latency::UnlikeLatency;
}

/// Sorted, deduplicated action names: the key of a whole-input fact.
pub fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A probability for a `why`: 4 significant digits, no exponent above 1e-6.
pub fn fmt_prob(p: f64) -> String {
    if p == 0.0 {
        return "0".into();
    }
    if p < 1e-6 {
        return format!("{p:.1e}");
    }
    let digits = (-p.log10()).floor() as i32 + 2;
    format!("{p:.*}", digits.max(2) as usize)
}

/// An `f64` parameter that can be part of a sharing key (compared and
/// hashed by its bits; parameters are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num(pub f64);

impl Eq for Num {}

impl Hash for Num {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h);
    }
}

#[cfg(test)]
mod tests;
