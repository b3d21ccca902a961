//! `feed_exposure`: could the target have reached the account at all?
//!
//! **What it detects.** An action on an item that the platform did not
//! push to the account: its author was not followed at that moment, no
//! followee had reposted it, no impression of it was logged. Exposure is
//! graded: an item *pushed* by the feed is exposed (the signal is quiet);
//! an item the account *reached by its own navigation* (a search, a
//! profile visit, a notification, a link opened from outside) is only
//! partly explained, since whoever holds the session navigates too (the
//! signal fires with `navigation_strength`); an item reached by neither is
//! unexposed (strength 1). The `why` says which, and which paths it checked.
//!
//! **Why it suggests compromise.** An account's owner mostly acts on what
//! its feed shows it. Whoever takes an account over arrives with their own
//! targets (links to like, accounts to boost) that the owner's feed never
//! carried; they get there by searching, by opening the target's profile or
//! by pasting a link, exactly as an owner exploring something new would.
//! In the story behind changeling, an account following 14 state media and
//! government accounts liked posts by strangers that no followee had shared.
//!
//! **Paths** (all checked by default, `paths` to choose):
//! - `own`: the account is the item's author (pushed).
//! - `follow`: the author was followed at that moment: the `follows` table
//!   (with `since` when given) updated by the account's own follow and
//!   unfollow events up to this one (pushed).
//! - `repost`: a followee reposted the item within `repost_window` before
//!   (pushed).
//! - `impression`: an impression of the item for the account was logged
//!   in the `impression_window` before (up to `impression_slack` after, for
//!   clock skew between logs) (pushed).
//! - `navigation`: the action's `surface` is one of `navigation_surfaces`
//!   (partly explained). Without this path, navigation explains nothing.
//!
//! **Evidence available.** With neither a `follows` table nor an
//! `impressions` table the dataset says nothing about exposure: the signal
//! then abstains on every event, and the scorer says so once. With only one
//! of the two, a missing path weighs less: strength 0.8 instead of 1.0.
//! When the author is unknown (no `target_author`, item not in `items`) the
//! follow path cannot be checked: it abstains unless impressions are logged.
//!
//! **Parameters** (defaults):
//! - `paths = ["own", "follow", "repost", "impression", "navigation"]`
//! - `navigation_surfaces = ["search", "profile", "notifications", "direct"]`
//! - `navigation_strength = 0.5`: strength when the account navigated to
//!   the item (0: navigation explains fully; 1: it explains nothing)
//! - `repost_actions = ["repost"]`, `repost_window = "7d"`
//! - `follow_action = "follow"`, `unfollow_action = "unfollow"`
//! - `impression_window = "7d"`: an impression older than this explains
//!   nothing (a daily run keeps the impressions of this long)
//! - `impression_slack = "1m"`: an impression logged up to this long after
//!   the action still counts (a verdict that close to the end of the data
//!   waits for the next batch's impressions)
//!
//! ```toml
//! [[signal]]
//! kind = "feed_exposure"
//! navigation_surfaces = "@navigation_surfaces"
//! navigation_strength = 0.5
//! ```
//!
//! **Known false positives.** Recommendation feeds ("for you") show items
//! from strangers: without impression logs those look unexposed. People
//! explore by search and open links friends send: navigation is therefore
//! only partial evidence, and this signal is best used to qualify others
//! (`off_pattern`) rather than alone.

use std::sync::Arc;

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{Cause, Ev, Horizon, Need, Needs, Outcome, Persist, Signal, Universe, Why, sorted};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::facts::item_index::ItemActors;
use crate::intern::{Interner, Sym, SymMap};
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{DAY, MINUTE, Millis, compact_duration};

/// The exposure paths, by name.
pub const PATHS: [&str; 5] = ["own", "follow", "repost", "impression", "navigation"];

/// The kind.
pub struct FeedExposure;

/// The parameters.
pub const PARAMS: &[Param] = &[
    opt("paths", Ty::List, D::List(&PATHS), "which exposure paths count"),
    opt(
        "navigation_surfaces",
        Ty::List,
        D::List(&["search", "profile", "notifications", "direct"]),
        "surfaces reached by the account's own navigation",
    ),
    opt(
        "navigation_strength",
        Ty::Number { min: 0.0, max: 1.0 },
        D::Number(0.5),
        "strength when the account navigated to the item",
    ),
    opt("repost_actions", Ty::List, D::List(&["repost"]), "actions that put an item in followers' feeds"),
    opt("repost_window", Ty::Duration, D::Duration(7 * DAY), "how long a followee's repost keeps the item in the feed"),
    key("follow_action", Ty::Text, D::Text("follow"), "the action that adds a followee"),
    key("unfollow_action", Ty::Text, D::Text("unfollow"), "the action that removes one"),
    opt("impression_window", Ty::Duration, D::Duration(7 * DAY), "how long an impression keeps the item explained"),
    opt("impression_slack", Ty::Duration, D::Duration(MINUTE), "how late an impression may be logged and still count"),
];

/// The parameters the per-account state (whom the account follows, since
/// when) depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The action that adds a followee.
    pub follow_action: String,
    /// The action that removes one.
    pub unfollow_action: String,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// Which of [`PATHS`] count as exposure.
    pub paths: Vec<String>,
    /// Surfaces reached by the account's own navigation.
    pub navigation_surfaces: Vec<String>,
    /// Strength when the account reached the item by its own navigation.
    pub navigation_strength: f64,
    /// Actions that put an item into followers' feeds.
    pub repost_actions: Vec<String>,
    /// How long a followee's repost keeps the item in the feed.
    pub repost_window: Millis,
    /// How long an impression keeps the item explained.
    pub impression_window: Millis,
    /// How late an impression may be logged and still count.
    pub impression_slack: Millis,
}

/// A fired verdict waiting for impressions logged after the data's end: an
/// impression of `item` for `actor` up to `until` takes it back.
#[derive(Clone, Debug)]
pub struct Unshown {
    actor: Sym,
    item: Sym,
    from: Millis,
    until: Millis,
}

impl Persist for Unshown {
    fn save(&self, w: &mut Enc<'_>) {
        w.sym(self.actor);
        w.sym(self.item);
        w.time(self.from);
        w.time(self.until);
    }

    fn load(r: &mut Dec<'_>) -> Result<Unshown, CodecError> {
        Ok(Unshown { actor: r.sym()?, item: r.sym()?, from: r.time()?, until: r.time()? })
    }
}

/// What a fired verdict says, as numbers: made into words only when a hit
/// is written ([`Words::text`]), so that a verdict a daily state keeps
/// (waiting on a later impression, or beside a waiting off_pattern verdict)
/// takes a few bytes, not a sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct Words {
    /// With `follow`: the item's author, and whether the graph was known.
    follow: Option<(Option<Sym>, bool)>,
    /// With `repost`: the window looked back.
    repost: Option<Millis>,
    /// With `impression`: whether impressions were logged at all.
    impression: Option<bool>,
    /// The event's surface.
    surface: Option<Sym>,
    /// The strength's factor, when the surface is the account's own
    /// navigation.
    navigated: Option<f64>,
}

impl Words {
    /// The words, as the verdict says them.
    pub fn text(&self, strings: &Interner) -> String {
        let mut why = Vec::new();
        match self.follow {
            Some((Some(a), true)) => why.push(format!("author {} not followed", strings.resolve(a))),
            Some((Some(a), false)) => {
                why.push(format!("author {} not followed by any follow event (no follows table)", strings.resolve(a)))
            }
            Some((None, _)) => why.push("author unknown".to_string()),
            None => {}
        }
        if let Some(window) = self.repost {
            why.push(format!("no followee reposted it in the {} before", compact_duration(window)));
        }
        match self.impression {
            Some(true) => why.push("no impression".into()),
            Some(false) => why.push("no impressions logged in this dataset".into()),
            None => {}
        }
        match (self.navigated, self.surface) {
            (Some(factor), Some(sf)) => why.push(format!(
                "reached by the account's own navigation (surface '{}'): partly explained, strength x{factor}",
                strings.resolve(sf),
            )),
            (_, Some(sf)) => why.push(format!("surface '{}' is not navigation", strings.resolve(sf))),
            (_, None) => why.push("no surface recorded".into()),
        }
        why.join(", ")
    }

    /// Writes it.
    pub fn save(&self, w: &mut Enc<'_>) {
        w.bool(self.follow.is_some());
        if let Some((author, known)) = self.follow {
            w.opt_sym(author);
            w.bool(known);
        }
        w.bool(self.repost.is_some());
        if let Some(window) = self.repost {
            w.time(window);
        }
        w.u8(match self.impression {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        w.opt_sym(self.surface);
        w.bool(self.navigated.is_some());
        if let Some(factor) = self.navigated {
            w.f64(factor);
        }
    }

    /// Reads what [`Words::save`] wrote.
    pub fn load(r: &mut Dec<'_>) -> Result<Words, CodecError> {
        let follow = if r.bool()? { Some((r.opt_sym()?, r.bool()?)) } else { None };
        let repost = if r.bool()? { Some(r.time()?) } else { None };
        let impression = match r.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            k => return Err(CodecError(format!("a feed_exposure impression clause of kind {k}"))),
        };
        let surface = r.opt_sym()?;
        let navigated = if r.bool()? { Some(r.f64()?) } else { None };
        Ok(Words { follow, repost, impression, surface, navigated })
    }
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    follow_action: Option<Sym>,
    unfollow_action: Option<Sym>,
    graph_known: bool,
    impressions_known: bool,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
    own: bool,
    follow: bool,
    repost: bool,
    impression: bool,
    navigation: Vec<Sym>,
    reposts: Arc<ItemActors>,
    /// When the run's data ends (impressions after it may still come).
    data_end: Option<Millis>,
}

/// Per-account state: whom the account follows, since when.
#[derive(Debug, Default)]
pub struct State {
    followees: SymMap<Millis>,
    /// The followees in the order a saved state listed them (by name),
    /// while none was added or removed since: saving them again then needs
    /// no sort by name.
    by_name: Option<Vec<Sym>>,
}

fn followed(s: &State, who: Sym, at: Millis) -> bool {
    s.followees.get(&who).is_some_and(|&since| since <= at)
}

impl Signal for FeedExposure {
    const NAME: &'static str = "feed_exposure";
    const FAMILY: Option<&'static str> = Some("exposure");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = Unshown;

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let listed = r.spanned_list("paths");
        let mut paths = Vec::new();
        for p in &listed.value {
            if PATHS.contains(&p.value.as_str()) {
                paths.push(p.value.clone());
            } else {
                r.unknown_name(p, "exposure path", &PATHS);
            }
        }
        let opts = Opts {
            paths,
            navigation_surfaces: r.list("navigation_surfaces"),
            navigation_strength: r.number("navigation_strength"),
            repost_actions: r.list("repost_actions"),
            repost_window: r.duration("repost_window"),
            impression_window: r.duration("impression_window"),
            impression_slack: r.duration("impression_slack"),
        };
        let key = Key { follow_action: r.text("follow_action"), unfollow_action: r.text("unfollow_action") };
        (key, opts)
    }

    fn needs(_key: &Key, opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action", "target", "target_author", "surface"])
            .read(TableKind::Items, &["id", "author"])
            .read(TableKind::Follows, &["follower", "followee", "since"])
            .read(TableKind::Impressions, &["actor", "item", "ts"]);
        n.facts.push(Need::ItemIndex {
            actions: sorted(&opts.repost_actions),
            every_entry: true,
            lockstep_window: None,
            reach: (opts.repost_window, 0),
            read_at: None,
            keep: opts.repost_window,
        });
        n.reach = opts.repost_window.max(opts.impression_window);
        if opts.paths.iter().any(|p| p == "impression") {
            n.impressions = opts.impression_window;
        }
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        Tracker {
            follow_action: u.resolve(&key.follow_action),
            unfollow_action: u.resolve(&key.unfollow_action),
            graph_known: u.follows,
            impressions_known: u.impressions,
        }
    }

    fn judge(_key: &Key, opts: &Opts, u: &Universe<'_>) -> Judge {
        let has = |name: &str| opts.paths.iter().any(|x| x == name);
        Judge {
            own: has("own"),
            follow: has("follow"),
            repost: has("repost"),
            impression: has("impression"),
            navigation: if has("navigation") { u.resolve_all(&opts.navigation_surfaces) } else { Vec::new() },
            reposts: u.item_index(&sorted(&opts.repost_actions)),
            data_end: u.facts.data_end,
            opts: opts.clone(),
        }
    }

    /// A logged impression may come up to `impression_slack` after the
    /// action and take a fired verdict back.
    fn horizon(_key: &Key, opts: &Opts) -> Horizon {
        let impression = opts.paths.iter().any(|p| p == "impression");
        Horizon { adds: 0, revokes: if impression { opts.impression_slack } else { 0 } }
    }

    /// A fired verdict less than `impression_slack` before the data's end
    /// waits for the impressions of the next batch.
    fn later(j: &Judge, t: &Tracker, _s: &State, e: &Ev<'_>, said: &Outcome) -> Option<Unshown> {
        let until = e.ts.saturating_add(j.opts.impression_slack);
        let waits = matches!(said, Outcome::Fire { .. })
            && j.impression
            && t.impressions_known
            && j.data_end.is_some_and(|end| until > end);
        let from = e.ts.saturating_sub(j.opts.impression_window);
        let item = e.target().filter(|_| waits)?;
        Some(Unshown { actor: e.actor, item, from, until })
    }

    fn revise(_j: &Judge, _t: &Tracker, u: &mut Unshown, cause: &Cause<'_>, _said: &Outcome) -> Option<Outcome> {
        let Cause::Refreshed(data) = *cause else { return None };
        let shown = data.impressions.as_ref().is_some_and(|i| i.shown_between(u.actor, u.item, u.from, u.until));
        shown.then_some(Outcome::Quiet)
    }

    fn deadline(u: &Unshown) -> Millis {
        u.until
    }

    fn note(t: &Tracker) -> Option<String> {
        (!t.graph_known && !t.impressions_known).then(|| {
            "feed_exposure abstains on this dataset: it has neither a follows table nor an impressions table, \
             so nothing tells whether an item could have reached an account"
                .to_string()
        })
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, span: &AccountSpan, data: &Dataset) {
        s.followees.clear();
        s.by_name = None;
        if let Some(f) = &data.follows {
            s.followees.extend(f.followees(span.actor));
        }
    }

    /// The followees, by name (so that the bytes do not depend on the
    /// run's numbering of strings).
    fn save(_t: &Tracker, s: &State, _now: Millis, w: &mut Enc<'_>) {
        // By name, so that the bytes do not depend on the run's symbols.
        w.count(s.followees.len());
        if let Some(order) = &s.by_name {
            for who in order {
                w.sym(*who);
                w.time(s.followees[who]);
            }
            return;
        }
        let mut followees: Vec<(&str, Sym, Millis)> = s.followees.iter().map(|(&k, &v)| (w.text_of(k), k, v)).collect();
        followees.sort_unstable();
        for (_, who, since) in followees {
            w.sym(who);
            w.time(since);
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        let n = r.count()?;
        let mut order = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let who = r.sym()?;
            s.followees.insert(who, r.time()?);
            order.push(who);
        }
        // A followee listed twice (not as this build writes) is sorted
        // again when saved.
        s.by_name = (order.len() == s.followees.len()).then_some(order);
        Ok(())
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        if Some(e.action) == t.follow_action {
            if let Some(target) = e.target()
                && !s.followees.contains_key(&target)
            {
                s.followees.insert(target, e.ts);
                s.by_name = None;
            }
        } else if Some(e.action) == t.unfollow_action
            && let Some(target) = e.target()
            && s.followees.remove(&target).is_some()
        {
            s.by_name = None;
        }
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        if !t.graph_known && !t.impressions_known {
            return Outcome::Abstain;
        }
        let Some(target) = e.target() else {
            return Outcome::Quiet;
        };
        let author = e.author();
        if j.own && author == Some(e.actor) {
            return Outcome::Quiet;
        }
        if j.follow
            && let Some(a) = author
            && followed(s, a, e.ts)
        {
            return Outcome::Quiet;
        }
        if j.repost {
            let from = e.ts.saturating_sub(j.opts.repost_window);
            // Visit whichever is smaller: the item's reposters in the window,
            // or the account's followees.
            let reposted = if j.reposts.count_between(target, from, e.ts) <= 2 * s.followees.len() {
                j.reposts.between(target, from, e.ts).any(|(_, who)| who != e.actor && followed(s, who, e.ts))
            } else {
                s.followees
                    .iter()
                    .any(|(&who, &since)| since <= e.ts && who != e.actor && j.reposts.acted(target, who, from, e.ts))
            };
            if reposted {
                return Outcome::Quiet;
            }
        }
        if j.impression
            && let Some(imp) = &e.data.impressions
            && imp.shown_between(
                e.actor,
                target,
                e.ts.saturating_sub(j.opts.impression_window),
                e.ts.saturating_add(j.opts.impression_slack),
            )
        {
            return Outcome::Quiet;
        }
        if author.is_none() && !t.impressions_known {
            return Outcome::Abstain;
        }
        let mut strength: f64 = 1.0;
        if j.follow && (!t.graph_known || author.is_none()) {
            strength = 0.8;
        }
        if j.impression && !t.impressions_known {
            strength = strength.min(0.8);
        }
        let navigated = e.surface().filter(|sf| j.navigation.contains(sf));
        if navigated.is_some() {
            strength *= j.opts.navigation_strength;
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        if !e.words {
            return Outcome::Fire { strength, why: Why::default() };
        }
        let words = Words {
            follow: j.follow.then_some((author, t.graph_known)),
            repost: j.repost.then_some(j.opts.repost_window),
            impression: j.impression.then_some(t.impressions_known),
            surface: e.surface(),
            navigated: navigated.map(|_| j.opts.navigation_strength),
        };
        Outcome::Fire { strength, why: Why::FeedExposure(Box::new(words)) }
    }
}
