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
//!   before (up to `impression_slack` after, for clock skew between logs)
//!   (pushed).
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
//! - `impression_slack = "1m"`
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

use super::aggregate::ItemActors;
use super::{BindCache, Ev, Outcome, actions_param};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::rules::diag::{Code, unknown_name_help};
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{DAY, MINUTE, Millis, compact_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("exposure");

/// The exposure paths, by name.
pub const PATHS: [&str; 5] = ["own", "follow", "repost", "impression", "navigation"];

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
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
    /// The action that adds a followee.
    pub follow_action: String,
    /// The action that removes one.
    pub unfollow_action: String,
    /// How late an impression may be logged and still count.
    pub impression_slack: Millis,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        let mut paths = Vec::new();
        match r.str_list(ctx, "paths") {
            Some(list) => {
                for p in list.value {
                    if PATHS.contains(&p.value.as_str()) {
                        paths.push(p.value);
                    } else {
                        let help = unknown_name_help(&p.value, &PATHS);
                        ctx.report(Code::BadValue, p.span, format!("unknown exposure path `{}`", p.value)).help = help;
                    }
                }
            }
            None => paths = PATHS.iter().map(|p| p.to_string()).collect(),
        }
        Params {
            paths,
            navigation_surfaces: actions_param(
                r,
                ctx,
                "navigation_surfaces",
                &["search", "profile", "notifications", "direct"],
            ),
            navigation_strength: r.num_in(ctx, "navigation_strength", 0.0, 1.0, 0.5),
            repost_actions: actions_param(r, ctx, "repost_actions", &["repost"]),
            repost_window: r.duration_or(ctx, "repost_window", 7 * DAY),
            follow_action: r.str(ctx, "follow_action").map_or_else(|| "follow".into(), |s| s.value),
            unfollow_action: r.str(ctx, "unfollow_action").map_or_else(|| "unfollow".into(), |s| s.value),
            impression_slack: r.duration_or(ctx, "impression_slack", MINUTE),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("paths", format!("{:?}", self.paths)),
            ("navigation_surfaces", format!("{:?}", self.navigation_surfaces)),
            ("navigation_strength", self.navigation_strength.to_string()),
            ("repost_actions", format!("{:?}", self.repost_actions)),
            ("repost_window", compact_duration(self.repost_window)),
            ("follow_action", self.follow_action.clone()),
            ("unfollow_action", self.unfollow_action.clone()),
            ("impression_slack", compact_duration(self.impression_slack)),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{}/{}", self.follow_action, self.unfollow_action)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        [
            (TableKind::Events, "action"),
            (TableKind::Events, "target"),
            (TableKind::Events, "target_author"),
            (TableKind::Events, "surface"),
            (TableKind::Items, "id"),
            (TableKind::Items, "author"),
            (TableKind::Follows, "follower"),
            (TableKind::Follows, "followee"),
            (TableKind::Follows, "since"),
            (TableKind::Impressions, "actor"),
            (TableKind::Impressions, "item"),
            (TableKind::Impressions, "ts"),
        ]
        .into_iter()
        .map(|(t, c)| (t, c.to_string()))
        .collect()
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    own: bool,
    follow: bool,
    repost: bool,
    impression: bool,
    navigation: Vec<Sym>,
    follow_action: Option<Sym>,
    unfollow_action: Option<Sym>,
    reposts: Arc<ItemActors>,
    graph_known: bool,
    impressions_known: bool,
}

/// Per-account state: whom the account follows, since when.
#[derive(Debug, Default)]
pub struct State {
    followees: SymMap<Millis>,
}

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, cache: &mut BindCache) -> Bound {
        let has = |name: &str| p.paths.iter().any(|x| x == name);
        let reposts = cache.item_actors.get(&super::aggregate::key(&p.repost_actions)).cloned().unwrap_or_default();
        Bound {
            params: p.clone(),
            own: has("own"),
            follow: has("follow"),
            repost: has("repost"),
            impression: has("impression"),
            navigation: if has("navigation") { super::resolve_all(data, &p.navigation_surfaces) } else { Vec::new() },
            follow_action: data.strings.get(&p.follow_action),
            unfollow_action: data.strings.get(&p.unfollow_action),
            reposts,
            graph_known: data.follows.is_some(),
            impressions_known: data.impressions.is_some(),
        }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn note(&self) -> Option<String> {
        (!self.graph_known && !self.impressions_known).then(|| {
            "feed_exposure abstains on this dataset: it has neither a follows table nor an impressions table, \
             so nothing tells whether an item could have reached an account"
                .to_string()
        })
    }

    pub(crate) fn reset(&self, s: &mut State, span: &AccountSpan, data: &Dataset) {
        s.followees.clear();
        if let Some(f) = &data.follows {
            s.followees.extend(f.followees(span.actor));
        }
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        if Some(e.action) == self.follow_action {
            if let Some(t) = e.target() {
                s.followees.entry(t).or_insert(e.ts);
            }
        } else if Some(e.action) == self.unfollow_action
            && let Some(t) = e.target()
        {
            s.followees.remove(&t);
        }
    }

    fn followed(&self, s: &State, who: Sym, at: Millis) -> bool {
        s.followees.get(&who).is_some_and(|&since| since <= at)
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        if !self.graph_known && !self.impressions_known {
            return Outcome::Abstain;
        }
        let Some(target) = e.target() else {
            return Outcome::Quiet;
        };
        let author = e.author();
        if self.own && author == Some(e.actor) {
            return Outcome::Quiet;
        }
        if self.follow
            && let Some(a) = author
            && self.followed(s, a, e.ts)
        {
            return Outcome::Quiet;
        }
        if self.repost {
            let from = e.ts - self.params.repost_window;
            // Visit whichever is smaller: the item's reposters in the window,
            // or the account's followees.
            let reposted = if self.reposts.count_between(target, from, e.ts) <= 2 * s.followees.len() {
                self.reposts.between(target, from, e.ts).any(|(_, who)| who != e.actor && self.followed(s, who, e.ts))
            } else {
                s.followees.iter().any(|(&who, &since)| {
                    since <= e.ts && who != e.actor && self.reposts.acted(target, who, from, e.ts)
                })
            };
            if reposted {
                return Outcome::Quiet;
            }
        }
        if self.impression
            && let Some(imp) = &e.data.impressions
            && imp.first_shown(e.actor, target).is_some_and(|t| t <= e.ts + self.params.impression_slack)
        {
            return Outcome::Quiet;
        }
        if author.is_none() && !self.impressions_known {
            return Outcome::Abstain;
        }
        let mut why = Vec::new();
        let mut strength = 1.0;
        if self.follow {
            match author {
                Some(a) if self.graph_known => why.push(format!("author {} not followed", e.text(a))),
                Some(a) => {
                    why.push(format!("author {} not followed by any follow event (no follows table)", e.text(a)));
                    strength = 0.8;
                }
                None => {
                    why.push("author unknown".to_string());
                    strength = 0.8;
                }
            }
        }
        if self.repost {
            why.push(format!("no followee reposted it in the {} before", compact_duration(self.params.repost_window)));
        }
        if self.impression {
            if self.impressions_known {
                why.push("no impression".into());
            } else {
                why.push("no impressions logged in this dataset".into());
                strength = 0.8_f64.min(strength);
            }
        }
        let surface = e.surface();
        match surface {
            Some(sf) if self.navigation.contains(&sf) => {
                strength *= self.params.navigation_strength;
                why.push(format!(
                    "reached by the account's own navigation (surface '{}'): partly explained, strength x{}",
                    e.text(sf),
                    self.params.navigation_strength
                ));
            }
            Some(sf) => why.push(format!("surface '{}' is not navigation", e.text(sf))),
            None => why.push("no surface recorded".into()),
        }
        if strength <= 0.0 {
            return Outcome::Quiet;
        }
        Outcome::Fire { strength, why: why.join(", ") }
    }
}
