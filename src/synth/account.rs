//! One account's month: its follows, posts, reposts, sessions of likes and
//! replies, logins, follows and unfollows, and its planted episode, as
//! events in memory.
//!
//! The simulation walks the account's days in time order, so its follow
//! list is always the one in force at the moment of each action: a like from
//! the `home` feed is of an item its current followees posted or reposted in
//! the last three days (found through the world's pure functions), and an
//! item found by `search` or on a `profile` may be anything recent. What
//! the account does never depends on another account's simulation, only on
//! the world, which is what lets chunks of accounts run in parallel.
//!
//! Besides scrolling the feed, ordinary accounts have habits that take them
//! off their usual path, each at a rate given by a named constant:
//!
//! - **binges** ([`BINGE_DAILY`]): a topic the account never engaged with
//!   (drawn by the topics' popularity, politics and adult included) gets
//!   [`BINGE_LIKES`] likes in half an hour to two hours, found by search, on
//!   a creator's profile, or on the home feed after following a few of its
//!   creators; [`BINGE_KEEPS`] of binges become a lasting interest, the rest
//!   fizzle;
//! - **links from friends** ([`LINK_DAILY`]): an item someone sent is opened
//!   from outside (`direct`, no impression) and liked although it is off the
//!   account's interests and by an author it does not follow; sometimes two
//!   or three in a row ([`LINK_THREAD`]), sometimes removed later
//!   ([`LINK_REGRET`]) after a minute to a month;
//! - **rating sessions** ([`RATING_DAILY`]): [`RATING_LIKES`] likes in one
//!   sitting, across the account's topics and some new ones
//!   ([`RATING_NEW_TOPICS`]), by search, profiles and the feed, of items up
//!   to two weeks old;
//! - **regret**: a like is undone within seconds ([`QUICK_UNDO`]) or
//!   removed an hour to six weeks later ([`LATE_REGRET`], several times as
//!   likely for political and adult items, [`SENSITIVE_REGRET`]); and
//!   sometimes the account goes through its old likes and removes a few
//!   ([`CLEANUP_DAILY`]), including likes made before the log started;
//! - **explorers** (see [`super::population::EXPLORER_SHARE`]) search and
//!   visit profiles of other topics much more than others
//!   ([`EXPLORER_ROUTES`]);
//! - **dormant returners** (see [`super::population::DORMANT_SHARE`]) do
//!   nothing for weeks, then log in again, perhaps on a new phone or abroad,
//!   and catch up in a burst.
//!
//! Limits: one session uses one device; replies do not create items; the
//! feed is sampled (a followee, then one of its recent posts or reposts)
//! rather than ranked; an account binges at most once a day and a binge's
//! lasting interest is not visible to other accounts (items of ordinary
//! accounts are labelled with their initial interests).

use hashbrown::{HashMap, HashSet};

use super::episodes::{self, Planted};
use super::population::PRE_DAYS;
use super::population::{Device, ItemKey, Profile, World, local_time};
use super::rng::{Cumulative, Rng, Stream, hash};
use super::world::{COUNTRIES, Client, SCAM, TOPICS};
use crate::time::{DAY, HOUR, MINUTE, Millis, SECOND};

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `like`
    Like,
    /// `unlike`
    Unlike,
    /// `repost`
    Repost,
    /// `reply`
    Reply,
    /// `post`
    Post,
    /// `follow`
    Follow,
    /// `unfollow`
    Unfollow,
    /// `login`
    Login,
    /// `password_change`
    PasswordChange,
    /// `email_change`
    EmailChange,
}

impl Action {
    /// The value written in `action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Like => "like",
            Action::Unlike => "unlike",
            Action::Repost => "repost",
            Action::Reply => "reply",
            Action::Post => "post",
            Action::Follow => "follow",
            Action::Unfollow => "unfollow",
            Action::Login => "login",
            Action::PasswordChange => "password_change",
            Action::EmailChange => "email_change",
        }
    }
}

/// Where in the product an action happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Surface {
    /// The home feed.
    Home,
    /// Search results.
    Search,
    /// A profile page.
    Profile,
    /// The notifications tab.
    Notifications,
    /// A link opened from outside the product.
    Direct,
    /// The API.
    Api,
    /// The sign-up flow's suggestions.
    Onboarding,
}

impl Surface {
    /// The value written in `surface`.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Home => "home",
            Surface::Search => "search",
            Surface::Profile => "profile",
            Surface::Notifications => "notifications",
            Surface::Direct => "direct",
            Surface::Api => "api",
            Surface::Onboarding => "onboarding",
        }
    }
}

/// What an event acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Nothing (logins, password changes).
    None,
    /// An item.
    Item(ItemKey),
    /// An account (follows).
    Account(u32),
}

/// The network context of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// The client.
    pub client: Client,
    /// Device fingerprint.
    pub device: u64,
    /// IPv4 address.
    pub ip: u32,
    /// Country, index into `COUNTRIES`.
    pub country: u8,
    /// AS number.
    pub asn: u32,
}

/// Who was behind an event, as the generator knows it (not written out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The owner's ordinary activity.
    Normal,
    /// An attacker's action in a planted episode.
    Attacker,
    /// The owner's part of a planted episode (cleaning up, recovering).
    Cleanup,
}

/// One event, before it is written.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// When.
    pub ts: Millis,
    /// Who.
    pub actor: u32,
    /// Order of emission within the account (a tie-breaker).
    pub seq: u32,
    /// What.
    pub action: Action,
    /// On what.
    pub target: Target,
    /// Where in the product.
    pub surface: Option<Surface>,
    /// From where.
    pub net: Net,
    /// Latitude and longitude in 1e-4 degrees (logins only).
    pub geo: Option<(i32, i32)>,
    /// Who was behind it.
    pub mark: Mark,
}

/// An event being described, before it gets its actor and network:
/// `Ev::new(t, Action::Like).item(key).on(Surface::Home)`.
#[derive(Clone, Copy, Debug)]
pub struct Ev {
    ts: Millis,
    action: Action,
    target: Target,
    surface: Option<Surface>,
    geo: Option<(i32, i32)>,
    mark: Mark,
}

impl Ev {
    /// `action` at `ts`, by the owner, on nothing yet.
    pub fn new(ts: Millis, action: Action) -> Ev {
        Ev { ts, action, target: Target::None, surface: None, geo: None, mark: Mark::Normal }
    }

    /// On an item.
    pub fn item(self, key: ItemKey) -> Ev {
        self.target(Target::Item(key))
    }

    /// On an account.
    pub fn account(self, a: u32) -> Ev {
        self.target(Target::Account(a))
    }

    /// On a target.
    pub fn target(self, target: Target) -> Ev {
        Ev { target, ..self }
    }

    /// From a surface.
    pub fn on(self, surface: Surface) -> Ev {
        Ev { surface: Some(surface), ..self }
    }

    /// At a location, in 1e-4 degrees.
    pub fn geo(self, geo: (i32, i32)) -> Ev {
        Ev { geo: Some(geo), ..self }
    }

    /// By someone other than the owner going about their day.
    pub fn by(self, mark: Mark) -> Ev {
        Ev { mark, ..self }
    }
}

/// An item shown in a feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Impression {
    /// When.
    pub ts: Millis,
    /// To whom.
    pub actor: u32,
    /// Which item.
    pub item: ItemKey,
    /// Where.
    pub surface: Surface,
}

/// A ground-truth label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRec {
    /// The account.
    pub actor: u32,
    /// Compromised (else a benign look-alike).
    pub compromised: bool,
    /// The style name as written.
    pub style: String,
    /// The episode window, for compromised accounts.
    pub window: Option<(Millis, Millis)>,
}

/// What simulating some accounts produced, before formatting.
#[derive(Debug, Default)]
pub struct Output {
    /// Events, in emission order.
    pub events: Vec<Event>,
    /// Impressions, when asked for.
    pub impressions: Vec<Impression>,
    /// Labels of planted accounts.
    pub labels: Vec<LabelRec>,
    /// How often the ordinary habits happened.
    pub habits: Habits,
}

/// Counts of the habits that take ordinary accounts off their usual path
/// (see the module doc), for the run's summary and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Habits {
    /// Binges on a new topic.
    pub binges: u64,
    /// Binges that became a lasting interest.
    pub binges_kept: u64,
    /// Likes made in binges.
    pub binge_likes: u64,
    /// Links from friends opened and liked (a thread of links counts once).
    pub link_shares: u64,
    /// Likes of such links.
    pub link_likes: u64,
    /// Rating sessions.
    pub rating_sessions: u64,
    /// Likes made in rating sessions.
    pub rating_likes: u64,
    /// Likes removed an hour or more after they were made.
    pub late_unlikes: u64,
    /// Sessions going through old likes and removing some.
    pub cleanups: u64,
    /// Likes removed in those sessions.
    pub cleanup_unlikes: u64,
    /// Dormant accounts that came back.
    pub comebacks: u64,
}

impl Habits {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Habits) {
        self.binges += other.binges;
        self.binges_kept += other.binges_kept;
        self.binge_likes += other.binge_likes;
        self.link_shares += other.link_shares;
        self.link_likes += other.link_likes;
        self.rating_sessions += other.rating_sessions;
        self.rating_likes += other.rating_likes;
        self.late_unlikes += other.late_unlikes;
        self.cleanups += other.cleanups;
        self.cleanup_unlikes += other.cleanup_unlikes;
        self.comebacks += other.comebacks;
    }
}

/// How far back the home feed reaches.
const FEED_HORIZON: Millis = 3 * DAY;

/// Chance, on a day the account is active, that it binges on a topic it
/// never engaged with (a new series, a tournament, a game launch, a news
/// story). A guess: with about 30 active days in two months, one account in
/// ten binges once in that time.
pub const BINGE_DAILY: f64 = 0.003;
/// Likes in a binge (inclusive range). A guess; liking a few dozen posts
/// of a newly found creator or topic in an evening is ordinary.
pub const BINGE_LIKES: (i64, i64) = (8, 40);
/// How a binge starts: weights of search, a creator's profile (found by a
/// recommendation or a link), and following a few creators then liking from
/// the home feed. A guess.
pub const BINGE_ROUTES: [f64; 3] = [0.4, 0.35, 0.25];
/// Share of binges that become a lasting interest (the rest fizzle: the
/// topic is never visited again). A guess: "often but not always".
pub const BINGE_KEEPS: f64 = 0.6;
/// Chance per day that a friend sends a link the account opens and likes.
/// A guess: links shared in chats are a large part of traffic to social
/// posts, but liking what was opened is the exception; this gives about
/// two accounts in five at least one such like in two months.
pub const LINK_DAILY: f64 = 0.008;
/// Weights of one, two or three links liked in a row (a group chat
/// thread). A guess.
pub const LINK_THREAD: [f64; 3] = [0.72, 0.2, 0.08];
/// Chance that a like from a link is removed later, after a minute to a
/// month (log-uniform). A guess, higher than for the account's own finds
/// because such likes are impulsive and off-topic.
pub const LINK_REGRET: f64 = 0.12;
/// Chance, on a day the account is active, of a rating session: liking many
/// items in one sitting (catching up, going through a list or a creator's
/// back catalogue). A guess: a few times a year for an active account.
pub const RATING_DAILY: f64 = 0.004;
/// Likes in a rating session (inclusive range).
pub const RATING_LIKES: (i64, i64) = (20, 60);
/// Share of a rating session's likes on topics that are not the account's
/// interests. A guess.
pub const RATING_NEW_TOPICS: f64 = 0.25;
/// Chance that a like is undone within seconds (an accidental tap).
pub const QUICK_UNDO: f64 = 0.015;
/// Chance that a like is removed an hour to six weeks later (log-uniform):
/// regret. A guess; most likes are never removed.
pub const LATE_REGRET: f64 = 0.004;
/// How many times likelier regret is for political and adult items
/// (people tidy what their likes say about them). A guess.
pub const SENSITIVE_REGRET: f64 = 4.0;
/// Chance, on a day the account is active, that it goes through its old
/// likes and removes one to six, sensitive ones first, some made before the
/// log started. A guess.
pub const CLEANUP_DAILY: f64 = 0.002;
/// Where an ordinary account's likes come from: cumulative shares of the
/// home feed, search, profile pages; the rest from notifications.
pub const ORDINARY_ROUTES: [f64; 3] = [0.8, 0.87, 0.94];
/// The same for explorers: far more search and profile visits, of any
/// topic. With their broader, faster-drifting interests this puts about two
/// thirds of an explorer's likes outside its two main topics at the start,
/// against two fifths for others (measured on 3,000 accounts over 30 days;
/// a test keeps it above two fifths and 1.5 times the others'); the shares
/// are a guess.
pub const EXPLORER_ROUTES: [f64; 3] = [0.5, 0.75, 0.93];

/// Rounds down to a whole second.
#[inline]
pub fn sec(t: Millis) -> Millis {
    t.div_euclid(SECOND) * SECOND
}

/// The state of one account while it is simulated.
pub struct Sim<'w> {
    /// The world.
    pub world: &'w World,
    /// The account's profile.
    pub p: Profile,
    /// Followees at the current moment, sorted.
    pub follows: Vec<u32>,
    /// A followee never unfollowed (a planted episode relies on it).
    pub protected: Option<u32>,
    follow_cum: Option<Cumulative>,
    /// Items liked so far.
    pub liked: HashSet<ItemKey>,
    /// Whether to log impressions.
    pub impressions: bool,
    /// The usual devices (the first is the main one).
    pub devices: Vec<Device>,
    /// A new main device from this time on.
    pub device_switch: Option<(Millis, Device)>,
    /// A trip: from, to, country.
    pub travel: Option<(Millis, Millis, u8)>,
    /// When the account was created.
    pub created_at: Millis,
    seq: u32,
    /// Likes that may still be removed in a clean-up: (time, item).
    history: Vec<(Millis, ItemKey)>,
    /// Interests taken up in binges: (from day, topic, weight).
    taken_up: Vec<(i32, u8, f64)>,
    day_weights: [f64; TOPICS.len()],
    max_weight: f64,
    scratch: Vec<(Millis, ItemKey)>,
    feed_day: i32,
    feed_cache: HashMap<u32, Vec<(Millis, ItemKey)>>,
    reposts: Vec<(Millis, ItemKey)>,
}

enum Slot {
    Action { session: usize },
    Login { session: usize },
    Follow,
    Unfollow,
    NewInterest(u8),
    Binge { session: usize },
    Links,
    Rating { session: usize },
    Cleanup { session: usize },
    PasswordReset { session: usize },
    Episode,
}

impl<'w> Sim<'w> {
    /// Starts simulating account `a`.
    pub fn new(world: &'w World, a: u32, impressions: bool) -> Sim<'w> {
        let p = world.profile(a);
        let follows = world.initial_follows(a, &p.interests);
        let created_at = p.created_at;
        Sim {
            world,
            follows,
            protected: world.plan.forced_follow(a),
            follow_cum: None,
            liked: HashSet::new(),
            impressions,
            devices: p.devices.clone(),
            device_switch: p.comeback.and_then(|c| Some((c.at, c.new_phone?))),
            travel: p.travel,
            created_at,
            seq: 0,
            history: Vec::new(),
            taken_up: Vec::new(),
            day_weights: [0.0; TOPICS.len()],
            max_weight: 1.0,
            scratch: Vec::new(),
            feed_day: i32::MIN,
            feed_cache: HashMap::new(),
            reposts: Vec::new(),
            p,
        }
    }

    /// The account number.
    pub fn id(&self) -> u32 {
        self.p.id
    }

    /// Appends an event of this account, sent from `net`.
    pub fn emit(&mut self, out: &mut Output, net: Net, ev: Ev) {
        self.seq += 1;
        out.events.push(Event {
            ts: sec(ev.ts),
            actor: self.p.id,
            seq: self.seq,
            action: ev.action,
            target: ev.target,
            surface: ev.surface,
            net,
            geo: ev.geo,
            mark: ev.mark,
        });
    }

    /// Logs that `item` was shown in the home feed at `ts`.
    pub fn impression(&self, out: &mut Output, ts: Millis, item: ItemKey) {
        if self.impressions {
            out.impressions.push(Impression { ts: sec(ts), actor: self.p.id, item, surface: Surface::Home });
        }
    }

    /// The country the owner is in at `t`.
    pub fn location_at(&self, t: Millis) -> u8 {
        match self.travel {
            Some((from, to, c)) if t >= from && t < to => c,
            _ => self.p.country,
        }
    }

    /// The owner's main device at `t`.
    pub fn main_device(&self, t: Millis) -> Device {
        match self.device_switch {
            Some((from, d)) if t >= from => d,
            _ => self.devices[0],
        }
    }

    /// A device for a session at `t`: mostly the main one.
    pub fn session_device(&self, t: Millis, rng: &mut Rng) -> Device {
        if self.devices.len() > 1 && rng.chance(0.25) { self.devices[1] } else { self.main_device(t) }
    }

    /// The network context of the owner using `dev` at `t`.
    pub fn net_at(&self, t: Millis, dev: Device) -> Net {
        let country = self.location_at(t);
        let c = &COUNTRIES[country as usize];
        let home = country == self.p.country;
        let day = self.world.day_of(t);
        let h = hash(&[
            self.world.seed,
            Stream::Net as u64,
            u64::from(self.p.id),
            dev.id,
            u64::from(country),
            // Phones change address daily; home broadband every few days.
            if dev.mobile { day as u64 } else { (day / 9) as u64 },
        ]);
        let network = if dev.mobile {
            if home { c.mobile[self.p.mobile_net as usize] } else { c.mobile[(h >> 40) as usize % c.mobile.len()] }
        } else if home {
            c.fixed[self.p.fixed_net as usize]
        } else {
            c.fixed[(h >> 40) as usize % c.fixed.len()]
        };
        Net { client: dev.client, device: dev.id, ip: ip_in(network.octet, h), country, asn: network.asn }
    }

    /// The owner's usual context at `t` (main device).
    pub fn owner_net(&self, t: Millis) -> Net {
        self.net_at(t, self.main_device(t))
    }

    /// Latitude and longitude of the owner at `t`, for a login.
    pub fn geo_at(&self, t: Millis) -> (i32, i32) {
        geo_near(self.city_in(self.location_at(t)), hash(&[u64::from(self.p.id), t as u64]))
    }

    /// The city the owner stays in when in `country`.
    fn city_in(&self, country: u8) -> (f64, f64) {
        let c = &COUNTRIES[country as usize];
        let city = if country == self.p.country {
            self.p.city as usize
        } else {
            (hash(&[self.world.seed, u64::from(self.p.id), u64::from(country)]) % c.cities.len() as u64) as usize
        };
        c.cities[city]
    }

    /// Whether the owner is on the way to a trip at `t` (three hours at the
    /// airport plus the flight at 800 km/h): no sessions then, so logins
    /// never move faster than a plane.
    fn in_transit(&self, t: Millis) -> bool {
        let Some((from, _, dest)) = self.travel else {
            return false;
        };
        let km = distance_km(self.city_in(self.p.country), self.city_in(dest));
        let transit = 3 * HOUR + (km / 800.0 * HOUR as f64) as Millis;
        t >= from - transit && t < from
    }

    /// Follows `f` from now on.
    pub fn add_follow(&mut self, f: u32) -> bool {
        match self.follows.binary_search(&f) {
            Ok(_) => false,
            Err(i) => {
                self.follows.insert(i, f);
                self.follow_cum = None;
                true
            }
        }
    }

    /// Stops following `f`.
    pub fn remove_follow(&mut self, f: u32) {
        if let Ok(i) = self.follows.binary_search(&f) {
            self.follows.remove(i);
            self.follow_cum = None;
        }
    }

    /// Whether `f` is followed now.
    pub fn follows_now(&self, f: u32) -> bool {
        self.follows.binary_search(&f).is_ok()
    }

    /// Whether anything could have shown `item` to the account at `t`: its
    /// author is followed, or a followee reposted it in the last 7 days.
    pub fn exposed(&mut self, item: ItemKey, t: Millis) -> bool {
        if item.author == self.p.id || self.follows_now(item.author) {
            return true;
        }
        let d = self.world.day_of(t);
        let mut buf = std::mem::take(&mut self.reposts);
        let mut found = false;
        'outer: for &f in &self.follows {
            for dd in (d - 7).max(0)..=d {
                buf.clear();
                self.world.reposts(f, dd, &mut buf);
                if buf.iter().any(|&(ts, k)| k == item && ts < t) {
                    found = true;
                    break 'outer;
                }
            }
        }
        self.reposts = buf;
        found
    }

    fn set_day_weights(&mut self, d: i32) {
        let mut max = 0.0f64;
        for (t, w) in self.day_weights.iter_mut().enumerate() {
            *w = self.p.interest_on(t as u8, d, self.world.days);
            for &(from, topic, weight) in &self.taken_up {
                if topic as usize == t && d >= from {
                    *w += weight;
                }
            }
            max = max.max(*w);
        }
        self.max_weight = max.max(1e-9);
    }

    /// Recent items (posts and reposts of the last three days) of followee
    /// `f` at `t`, into `self.scratch`. What a followee offers on a day is
    /// kept for the rest of that day, as busy accounts sample the same
    /// followees again and again.
    fn feed_of(&mut self, f: u32, t: Millis) {
        self.scratch.clear();
        let w = self.world;
        let d = w.day_of(t);
        if self.feed_day != d {
            self.feed_day = d;
            self.feed_cache.clear();
        }
        let offer = self.feed_cache.entry(f).or_insert_with(|| {
            let mut offer = Vec::new();
            let mut reposts = Vec::new();
            let rates = w.rates(f);
            for dd in [d - 3, d - 2, d - 1, d] {
                for k in 0..w.posts_with(f, dd, &rates) {
                    let key = ItemKey { author: f, day: dd, k };
                    offer.push((w.created_at(key), key));
                }
                if rates.repost_rate > 0.0 || w.plan.has_extras(f) {
                    w.reposts(f, dd, &mut reposts);
                }
            }
            offer.extend(reposts.into_iter().filter(|r| r.1.author != self.p.id));
            offer
        });
        let horizon = t - FEED_HORIZON;
        self.scratch.extend(offer.iter().filter(|&&(ts, _)| ts < t && ts > horizon));
    }

    /// An item from the home feed at `t`: a followee's recent post or repost,
    /// followees on the account's current interests preferred.
    pub fn feed_pick(&mut self, t: Millis, rng: &mut Rng, avoid_liked: bool) -> Option<ItemKey> {
        if self.follows.is_empty() {
            return None;
        }
        if self.follow_cum.is_none() {
            let w = self.world;
            self.follow_cum = Some(Cumulative::new(self.follows.iter().map(|&f| {
                let r = w.rates(f);
                r.post_rate + 0.7 * r.repost_rate + 0.02
            })));
        }
        for _ in 0..8 {
            let i = self.follow_cum.as_ref()?.draw(rng)?;
            let f = self.follows[i];
            if let Some(c) = self.world.creator(f) {
                let w = c.topics().iter().map(|&t| self.day_weights[t as usize]).fold(0.0, f64::max);
                if !rng.chance(0.2 + 0.8 * (w / self.max_weight).min(1.0)) {
                    continue;
                }
            }
            self.feed_of(f, t);
            if self.scratch.is_empty() {
                continue;
            }
            let (_, key) = self.scratch[rng.index(self.scratch.len())];
            if avoid_liked && self.liked.contains(&key) {
                continue;
            }
            return Some(key);
        }
        None
    }

    /// A recent item (up to 3 days old) by a creator of `topic`, not by the
    /// account itself.
    pub fn recent_item_of_topic(&self, topic: u8, t: Millis, rng: &mut Rng) -> Option<ItemKey> {
        for _ in 0..6 {
            let c = self.world.creator_of_topic(topic, rng)?;
            if let Some(key) = self.recent_item_by(c, t, rng) {
                return Some(key);
            }
        }
        None
    }

    /// A recent item (up to 3 days old) by `c`, created before `t`.
    pub fn recent_item_by(&self, c: u32, t: Millis, rng: &mut Rng) -> Option<ItemKey> {
        self.item_by_within(c, t, 3, rng)
    }

    /// A post of creator `c` from the last `days` days before `t`, not yet
    /// liked by this account.
    pub fn item_by_within(&self, c: u32, t: Millis, days: u64, rng: &mut Rng) -> Option<ItemKey> {
        if c == self.p.id {
            return None;
        }
        let d = self.world.day_of(t);
        for _ in 0..3 {
            let dd = d - rng.below(days) as i32;
            let n = self.world.posts(c, dd);
            if n == 0 {
                continue;
            }
            let key = ItemKey { author: c, day: dd, k: rng.below(u64::from(n)) as u32 };
            if self.world.created_at(key) < t - MINUTE && !self.liked.contains(&key) {
                return Some(key);
            }
        }
        None
    }

    /// An item found by the account's own navigation: on its interests with
    /// probability `on_interest`, else on any topic (off-interest
    /// discovery).
    fn discover(&self, t: Millis, on_interest: f64, rng: &mut Rng) -> Option<ItemKey> {
        let topic = if rng.chance(on_interest) {
            rng.weighted(&self.day_weights) as u8
        } else {
            loop {
                let t = rng.index(TOPICS.len()) as u8;
                if t != SCAM {
                    break t;
                }
            }
        };
        self.recent_item_of_topic(topic, t, rng)
    }

    /// A post on `c`'s profile page at `t`: one of its posts of the last
    /// `days` days not yet liked, the newer ones likelier (a page lists
    /// every post, newest first, unlike [`Sim::item_by_within`], which
    /// samples a few days).
    fn profile_item(&self, c: u32, t: Millis, days: i32, rng: &mut Rng) -> Option<ItemKey> {
        if c == self.p.id {
            return None;
        }
        let d = self.world.day_of(t);
        let rates = self.world.rates(c);
        for dd in (d - days + 1..=d).rev() {
            let n = self.world.posts_with(c, dd, &rates);
            // Scrolling on past a day's posts now and then.
            if n == 0 || rng.chance(0.3) {
                continue;
            }
            let start = rng.below(u64::from(n)) as u32;
            for i in 0..n {
                let key = ItemKey { author: c, day: dd, k: (start + i) % n };
                if self.world.created_at(key) < t - MINUTE && !self.liked.contains(&key) {
                    return Some(key);
                }
            }
        }
        None
    }

    /// A post by a creator of `topic` from the last `days` days, not yet
    /// liked.
    fn item_of_topic_within(&self, topic: u8, t: Millis, days: u64, rng: &mut Rng) -> Option<ItemKey> {
        for _ in 0..6 {
            let c = self.world.creator_of_topic(topic, rng)?;
            if let Some(key) = self.item_by_within(c, t, days, rng) {
                return Some(key);
            }
        }
        None
    }

    /// A topic that is not among the account's interests today, drawn by
    /// the topics' popularity (scams never).
    fn new_topic(&self, rng: &mut Rng) -> Option<u8> {
        let w: Vec<f64> = TOPICS
            .iter()
            .enumerate()
            .map(|(t, topic)| if self.day_weights[t] > 0.0 { 0.0 } else { topic.interest_weight })
            .collect();
        (w.iter().sum::<f64>() > 0.0).then(|| rng.weighted(&w) as u8)
    }

    /// A like of `item` from `surface` (an impression first when it is the
    /// home feed), perhaps undone within seconds or regretted later: with
    /// chance `regret` (more for political and adult items) after a delay
    /// drawn log-uniformly in `regret_delay`. Returns false when the item
    /// was already liked.
    #[allow(clippy::too_many_arguments)]
    fn like(
        &mut self,
        out: &mut Output,
        t: Millis,
        net: Net,
        item: ItemKey,
        surface: Surface,
        regret: f64,
        regret_delay: (Millis, Millis),
        rng: &mut Rng,
    ) -> bool {
        if !self.liked.insert(item) {
            return false;
        }
        if surface == Surface::Home {
            self.impression(out, t - rng.range(2, 90) * SECOND, item);
        }
        let target = Target::Item(item);
        self.emit(out, net, Ev::new(t, Action::Like).target(target).on(surface));
        if rng.chance(QUICK_UNDO) {
            let back = t + rng.range(1, 20) * SECOND;
            self.emit(out, net, Ev::new(back, Action::Unlike).target(target).on(surface));
            return true;
        }
        // Regret is drawn before the item's labels are looked at, which
        // only the few likes that might be regretted need.
        let u = rng.f64();
        if u < regret * SENSITIVE_REGRET && (u < regret || self.sensitive(item)) {
            let back = t + log_uniform(rng, regret_delay.0, regret_delay.1);
            if back < self.world.end() && !self.p.rates.dormant_on(self.world.day_of(back)) {
                let net = self.net_at(back, self.main_device(back));
                self.emit(out, net, Ev::new(back, Action::Unlike).target(target).on(Surface::Profile));
                out.habits.late_unlikes += 1;
            }
            return true;
        }
        self.history.push((t, item));
        true
    }

    /// Whether an item is political or adult (what people tidy away).
    fn sensitive(&self, item: ItemKey) -> bool {
        self.world.item(item).labels().iter().any(|&l| TOPICS[l as usize].far && l != SCAM)
    }

    /// An ordinary like from a session: the home feed mostly, sometimes
    /// search, a profile page or a notification (explorers search and visit
    /// profiles of any topic much more).
    fn like_action(&mut self, out: &mut Output, t: Millis, net: Net, rng: &mut Rng) {
        let explorer = self.p.explorer;
        let [home, search, profile] = if explorer { EXPLORER_ROUTES } else { ORDINARY_ROUTES };
        let on_interest = if explorer { 0.3 } else { 0.55 };
        let r = rng.f64();
        let (item, surface) = if r < home {
            match self.feed_pick(t, rng, true) {
                Some(k) => (Some(k), Surface::Home),
                // Nothing new in the feed: sometimes a search instead.
                None if rng.chance(0.3) => (self.discover(t, on_interest, rng), Surface::Search),
                None => (None, Surface::Home),
            }
        } else if r < search {
            (self.discover(t, on_interest, rng), Surface::Search)
        } else if r < profile {
            let c = if explorer {
                let topic = rng.index(TOPICS.len()) as u8;
                if topic == SCAM { None } else { self.world.creator_of_topic(topic, rng) }
            } else {
                self.world.popular_creator(rng)
            };
            (c.and_then(|c| self.recent_item_by(c, t, rng)), Surface::Profile)
        } else {
            let f = (!self.follows.is_empty()).then(|| self.follows[rng.index(self.follows.len())]);
            (f.and_then(|f| self.recent_item_by(f, t, rng)), Surface::Notifications)
        };
        if let Some(item) = item {
            self.like(out, t, net, item, surface, LATE_REGRET, (HOUR, 42 * DAY), rng);
        }
    }

    /// A binge on a topic the account never engaged with (see
    /// [`BINGE_DAILY`]), starting at `t` on `dev`.
    fn binge(&mut self, out: &mut Output, t: Millis, dev: Device, rng: &mut Rng) {
        let Some(topic) = self.new_topic(rng) else { return };
        let goal = rng.range(BINGE_LIKES.0, BINGE_LIKES.1) as u64;
        let until = t + rng.range(30, 120) * MINUTE;
        // 0: search, 1: a creator's profile, 2: the home feed after
        // following some of the topic's creators.
        let mut phase = rng.weighted(&BINGE_ROUTES);
        let mut creator: Option<u32> = None;
        let mut followed: Vec<u32> = Vec::new();
        let mut at = t;
        if phase == 2 {
            self.binge_follows(out, topic, &mut at, dev, Surface::Search, &mut followed, rng);
            if followed.is_empty() {
                phase = 0;
            }
        }
        let (mut n, mut tries) = (0, 0);
        while n < goal && at < until && tries < goal * 4 {
            tries += 1;
            let (item, surface) = match phase {
                0 => (self.item_of_topic_within(topic, at, 7, rng), Surface::Search),
                1 => {
                    if creator.is_none() || rng.chance(0.2) {
                        creator = self.world.creator_of_topic(topic, rng).filter(|&c| c != self.p.id);
                    }
                    let item = creator.and_then(|c| self.profile_item(c, at, 14, rng));
                    if item.is_none() {
                        // Nothing (more) on this page: another creator.
                        creator = None;
                    }
                    (item, Surface::Profile)
                }
                _ => {
                    let c = followed[rng.index(followed.len())];
                    self.feed_of(c, at);
                    let fresh: Vec<ItemKey> =
                        self.scratch.iter().map(|&(_, k)| k).filter(|k| !self.liked.contains(k)).collect();
                    if fresh.is_empty() {
                        (self.profile_item(c, at, 14, rng), Surface::Profile)
                    } else {
                        (Some(fresh[rng.index(fresh.len())]), Surface::Home)
                    }
                }
            };
            if let Some(item) = item {
                let net = self.net_at(at, dev);
                if self.like(out, at, net, item, surface, LATE_REGRET, (HOUR, 42 * DAY), rng) {
                    n += 1;
                }
            }
            at += rng.range(15, 200) * SECOND;
            if phase < 2 && rng.chance(0.1) {
                phase += 1;
                if phase == 2 {
                    self.binge_follows(out, topic, &mut at, dev, Surface::Profile, &mut followed, rng);
                    if followed.is_empty() {
                        phase = 1;
                    }
                }
            }
        }
        if n == 0 {
            return;
        }
        out.habits.binges += 1;
        out.habits.binge_likes += n;
        if rng.chance(BINGE_KEEPS) {
            // A lasting interest from the next day on, and some of its
            // creators followed so that the feed brings more.
            let day = self.world.day_of(t) + 1;
            self.taken_up.push((day, topic, 0.3 + 0.9 * rng.f64()));
            if followed.is_empty() && rng.chance(0.6) {
                self.binge_follows(out, topic, &mut at, dev, Surface::Profile, &mut followed, rng);
            }
            out.habits.binges_kept += 1;
        }
    }

    /// Follows one to three creators of `topic` during a binge, from `at`.
    #[allow(clippy::too_many_arguments)]
    fn binge_follows(
        &mut self,
        out: &mut Output,
        topic: u8,
        at: &mut Millis,
        dev: Device,
        surface: Surface,
        followed: &mut Vec<u32>,
        rng: &mut Rng,
    ) {
        for _ in 0..rng.range(1, 3) {
            let net = self.net_at(*at, dev);
            if let Some(c) = self.follow_creator_of(out, topic, *at, surface, net, rng) {
                followed.push(c);
            }
            *at += rng.range(10, 90) * SECOND;
        }
    }

    /// Likes of one to three links a friend sent (see [`LINK_DAILY`]),
    /// opened from outside on the account's phone.
    fn link_likes(&mut self, out: &mut Output, t: Millis, rng: &mut Rng) {
        let links = 1 + rng.weighted(&LINK_THREAD);
        let mut at = t;
        let mut n = 0;
        for _ in 0..links {
            let item = self.new_topic(rng).and_then(|topic| {
                (0..6).find_map(|_| {
                    let c = self.world.creator_of_topic(topic, rng)?;
                    if c == self.p.id || self.follows_now(c) {
                        return None;
                    }
                    self.item_by_within(c, at, 7, rng)
                })
            });
            if let Some(item) = item {
                let net = self.owner_net(at);
                if self.like(out, at, net, item, Surface::Direct, LINK_REGRET, (MINUTE, 30 * DAY), rng) {
                    n += 1;
                }
            }
            at += rng.range(30, 600) * SECOND;
        }
        if n > 0 {
            out.habits.link_shares += 1;
            out.habits.link_likes += n;
        }
    }

    /// A rating session (see [`RATING_DAILY`]) from `t` on `dev`.
    fn rating_session(&mut self, out: &mut Output, t: Millis, dev: Device, rng: &mut Rng) {
        let goal = rng.range(RATING_LIKES.0, RATING_LIKES.1) as u64;
        let mut at = t;
        // A creator whose page is being gone through, and how many more of
        // its posts to like.
        let mut run: Option<(u32, u32)> = None;
        let (mut n, mut tries) = (0, 0);
        while n < goal && tries < goal * 3 {
            tries += 1;
            let (item, surface) = match run {
                Some((c, left)) if left > 0 => {
                    run = Some((c, left - 1));
                    (self.profile_item(c, at, 14, rng), Surface::Profile)
                }
                _ => {
                    run = None;
                    let topic = if rng.chance(RATING_NEW_TOPICS) {
                        self.new_topic(rng)
                    } else {
                        Some(rng.weighted(&self.day_weights) as u8)
                    };
                    let Some(topic) = topic.filter(|&t| t != SCAM) else { continue };
                    let r = rng.f64();
                    if r < 0.45 {
                        (self.item_of_topic_within(topic, at, 14, rng), Surface::Search)
                    } else if r < 0.85 {
                        let c = self.world.creator_of_topic(topic, rng).filter(|&c| c != self.p.id);
                        if let Some(c) = c {
                            run = Some((c, rng.range(0, 4) as u32));
                        }
                        (c.and_then(|c| self.profile_item(c, at, 14, rng)), Surface::Profile)
                    } else {
                        (self.feed_pick(at, rng, true), Surface::Home)
                    }
                }
            };
            if let Some(item) = item {
                let net = self.net_at(at, dev);
                if self.like(out, at, net, item, surface, LATE_REGRET, (HOUR, 42 * DAY), rng) {
                    n += 1;
                }
            }
            at += rng.range(4, 45) * SECOND;
        }
        if n > 0 {
            out.habits.rating_sessions += 1;
            out.habits.rating_likes += n;
        }
    }

    /// Goes through old likes and removes one to six (see
    /// [`CLEANUP_DAILY`]): likes of the log at least three days old,
    /// political and adult ones first, or likes made in the week before the
    /// log (not in it).
    fn cleanup(&mut self, out: &mut Output, t: Millis, dev: Device, rng: &mut Rng) {
        let mut at = t;
        let mut n = 0;
        for _ in 0..rng.range(1, 6) {
            let item = if !self.history.is_empty() && rng.chance(0.6) {
                let mut pick = None;
                for _ in 0..8 {
                    let i = rng.index(self.history.len());
                    let (liked_at, item) = self.history[i];
                    if liked_at > t - 3 * DAY {
                        continue;
                    }
                    if pick.is_none() || self.sensitive(item) {
                        pick = Some(i);
                    }
                    if self.sensitive(item) {
                        break;
                    }
                }
                pick.map(|i| self.history.swap_remove(i).1)
            } else {
                self.liked_before_the_log(rng)
            };
            let Some(item) = item else { continue };
            let net = self.net_at(at, dev);
            self.emit(out, net, Ev::new(at, Action::Unlike).item(item).on(Surface::Profile));
            n += 1;
            at += rng.range(5, 90) * SECOND;
        }
        if n > 0 {
            out.habits.cleanups += 1;
            out.habits.cleanup_unlikes += n;
        }
    }

    /// An item the account liked before the log started (so its like is
    /// not in the log): a post of the week before, political or adult a
    /// third of the time, else on its interests.
    fn liked_before_the_log(&mut self, rng: &mut Rng) -> Option<ItemKey> {
        let topic = if rng.chance(0.35) {
            let far: Vec<u8> = (0..TOPICS.len() as u8).filter(|&t| TOPICS[t as usize].far && t != SCAM).collect();
            *rng.pick(&far)
        } else {
            rng.weighted(&self.day_weights) as u8
        };
        let c = self.world.creator_of_topic(topic, rng).filter(|&c| c != self.p.id)?;
        let day = -(rng.range(1, i64::from(PRE_DAYS)) as i32);
        let m = self.world.posts(c, day);
        if m == 0 {
            return None;
        }
        let item = ItemKey { author: c, day, k: rng.below(u64::from(m)) as u32 };
        self.liked.insert(item).then_some(item)
    }

    fn reply_action(&mut self, out: &mut Output, t: Millis, net: Net, rng: &mut Rng) {
        if let Some(item) = self.feed_pick(t, rng, false) {
            self.impression(out, t - rng.range(5, 120) * SECOND, item);
            let surface = if rng.chance(0.8) { Surface::Home } else { Surface::Notifications };
            self.emit(out, net, Ev::new(t, Action::Reply).item(item).on(surface));
        }
    }

    /// Follows a creator of `topic` not yet followed, from `surface`.
    pub fn follow_creator_of(
        &mut self,
        out: &mut Output,
        topic: u8,
        t: Millis,
        surface: Surface,
        net: Net,
        rng: &mut Rng,
    ) -> Option<u32> {
        for _ in 0..6 {
            let c = self.world.creator_of_topic(topic, rng)?;
            if c != self.p.id && self.add_follow(c) {
                self.emit(out, net, Ev::new(t, Action::Follow).account(c).on(surface));
                return Some(c);
            }
        }
        None
    }

    /// Emits a login with location.
    pub fn login(&mut self, out: &mut Output, t: Millis, net: Net, mark: Mark) {
        let geo = self.geo_at(t);
        self.emit(out, net, Ev::new(t, Action::Login).geo(geo).by(mark));
    }

    /// Simulates the whole log of this account into `out`, and returns its
    /// label if it is planted.
    pub fn run(mut self, out: &mut Output) -> Option<LabelRec> {
        let w = self.world;
        let a = self.p.id;
        let planted: Option<&Planted> = w.plan.episode(a);
        if let Some(ep) = planted {
            episodes::prepare(&mut self, ep);
        }
        let rates = self.p.rates;
        let first_day = rates.first_day.max(0);

        // Own posts, as they happen.
        for d in first_day..w.days {
            for k in 0..w.posts_with(a, d, &rates) {
                let key = ItemKey { author: a, day: d, k };
                let t = w.created_at(key);
                if t < self.created_at {
                    continue;
                }
                let dev = self.device_by_hash(t);
                let net = self.net_at(t, dev);
                self.emit(out, net, Ev::new(t, Action::Post).item(key));
            }
        }
        // Reposts: exactly what the world says, as followers' feeds see them.
        let mut reposts = Vec::new();
        for d in first_day..w.days {
            reposts.clear();
            w.reposts(a, d, &mut reposts);
            for &(t, key) in &reposts {
                let dev = self.device_by_hash(t);
                let net = self.net_at(t, dev);
                self.emit(out, net, Ev::new(t, Action::Repost).item(key).on(Surface::Home));
            }
        }
        // A trip starts with a login from abroad on the usual device (a
        // dormant account's trip is the one it comes back on: its return
        // login is the first from abroad).
        if let Some((from, _, _)) = self.travel
            && self.p.comeback.is_none()
            && from >= w.start
            && from < w.end()
        {
            let net = self.owner_net(from);
            self.login(out, from, net, Mark::Normal);
        }

        let mut label = None;
        let mut slots: Vec<(Millis, Slot)> = Vec::new();
        let mut sessions: Vec<(Millis, Device)> = Vec::new();
        for d in first_day..w.days {
            if rates.dormant_on(d) {
                continue;
            }
            // A dormant account's return: a login, a burst of activity.
            let comeback = self.p.comeback.filter(|c| w.day_of(c.at) == d);
            let mut rng = Rng::stream(w.seed, Stream::Day, u64::from(a), d as u64);
            self.set_day_weights(d);
            let day0 = w.day_start(d);
            let offset = COUNTRIES[self.location_at(day0 + 12 * HOUR) as usize].utc_offset_min;
            let noise = (0.6 * rng.normal() - 0.18).exp();
            let burst = comeback.map_or(1.0, |c| c.burst);
            let mut n = rng.poisson(rates.activity * noise * burst * super::population::weekday_factor(d));
            if comeback.is_some() {
                n = n.max(2);
                out.habits.comebacks += 1;
            }
            slots.clear();
            sessions.clear();
            if n > 0 {
                let ns = (1 + rng.poisson(f64::from(n) / 8.0)).min(n).min(8) as usize;
                for s in 0..ns {
                    let mut t0 = day0 + local_time(&mut rng, offset);
                    let mut dev = self.session_device(t0, &mut rng);
                    let mut p_login = if s == 0 { 0.12 } else { 0.03 };
                    if let Some(c) = comeback {
                        // Back on the main device (a new phone, maybe),
                        // then on and off for the rest of the day.
                        t0 = if s == 0 { c.at } else { c.at + rng.range(10, 8 * 60) * MINUTE };
                        if s == 0 {
                            dev = self.main_device(t0);
                            p_login = 1.0;
                        }
                    }
                    sessions.push((t0, dev));
                    if rng.chance(p_login) {
                        slots.push((t0 - rng.range(5, 60) * SECOND, Slot::Login { session: s }));
                    }
                }
                let mut cursor: Vec<Millis> = sessions.iter().map(|s| s.0).collect();
                for _ in 0..n {
                    let s = rng.index(ns);
                    cursor[s] += rng.range(8, 150) * SECOND;
                    slots.push((cursor[s], Slot::Action { session: s }));
                }
            }
            // Habits that take the account off its usual path, from their
            // own stream (drawn whether or not they happen, so that one
            // habit's rate never shifts another's draws).
            let mut habit = Rng::stream(w.seed, Stream::Habits, u64::from(a), d as u64);
            let draws = [BINGE_DAILY, RATING_DAILY, CLEANUP_DAILY].map(|p| habit.chance(p));
            let session = habit.index(sessions.len().max(1));
            let delay = habit.range(1, 40) * MINUTE;
            if !sessions.is_empty() {
                let t0 = sessions[session].0 + delay;
                if draws[0] {
                    slots.push((t0, Slot::Binge { session }));
                }
                if draws[1] {
                    slots.push((t0, Slot::Rating { session }));
                }
                if draws[2] {
                    slots.push((t0, Slot::Cleanup { session }));
                }
            }
            let link_at = day0 + local_time(&mut habit, offset);
            if habit.chance(LINK_DAILY) {
                slots.push((link_at, Slot::Links));
            }
            if let Some(c) = comeback
                && c.password_reset
            {
                slots.push((c.at + habit.range(1, 10) * MINUTE, Slot::PasswordReset { session: 0 }));
            }
            if rng.chance((0.02 + rates.activity * 0.01).min(0.2)) {
                slots.push((day0 + local_time(&mut rng, offset), Slot::Follow));
            }
            if rng.chance(0.008) {
                slots.push((day0 + local_time(&mut rng, offset), Slot::Unfollow));
            }
            if let Some((nd, topic)) = self.p.new_interest
                && nd == d
            {
                slots.push((day0 + local_time(&mut rng, offset), Slot::NewInterest(topic)));
            }
            if let Some(ep) = planted
                && w.day_of(ep.t0) == d
            {
                slots.push((ep.t0, Slot::Episode));
            }
            slots.sort_by_key(|s| s.0);
            let mut imp_rng =
                self.impressions.then(|| Rng::stream(w.seed, Stream::Impressions, u64::from(a), d as u64));
            for (t, slot) in slots.drain(..) {
                let asleep = t < self.created_at || t >= w.end() || self.in_transit(t);
                if asleep && !matches!(slot, Slot::Episode) {
                    continue;
                }
                match slot {
                    Slot::Action { session } => {
                        let net = self.net_at(t, sessions[session].1);
                        if rng.chance(0.93) {
                            self.like_action(out, t, net, &mut rng);
                        } else {
                            self.reply_action(out, t, net, &mut rng);
                        }
                        // Items scrolled past, not acted on.
                        if let Some(ir) = imp_rng.as_mut()
                            && ir.chance(0.5)
                        {
                            for _ in 0..ir.poisson(1.5) {
                                if let Some(item) = self.feed_pick(t, ir, false) {
                                    let ts = t - ir.range(1, 60) * SECOND;
                                    self.impression(out, ts, item);
                                }
                            }
                        }
                    }
                    Slot::Login { session } => {
                        let net = self.net_at(t, sessions[session].1);
                        self.login(out, t, net, Mark::Normal);
                    }
                    Slot::Follow => {
                        let net = self.owner_net(t);
                        if let Some(topic) = self.p.interests.draw(&mut rng) {
                            let surface = *rng.pick(&[Surface::Profile, Surface::Search, Surface::Home]);
                            self.follow_creator_of(out, topic, t, surface, net, &mut rng);
                        }
                    }
                    Slot::Unfollow => {
                        if !self.follows.is_empty() {
                            let f = self.follows[rng.index(self.follows.len())];
                            if Some(f) != self.protected {
                                self.remove_follow(f);
                                let net = self.owner_net(t);
                                self.emit(out, net, Ev::new(t, Action::Unfollow).account(f).on(Surface::Profile));
                            }
                        }
                    }
                    Slot::NewInterest(topic) => {
                        // Follows first, then (on later days) likes of
                        // their posts through the feed.
                        let mut at = t;
                        for i in 0..rng.range(2, 6) {
                            let net = self.owner_net(at);
                            let surface = if i == 0 { Surface::Search } else { Surface::Profile };
                            self.follow_creator_of(out, topic, at, surface, net, &mut rng);
                            at += rng.range(20, 240) * SECOND;
                        }
                    }
                    Slot::Binge { session } => self.binge(out, t, sessions[session].1, &mut habit),
                    Slot::Rating { session } => self.rating_session(out, t, sessions[session].1, &mut habit),
                    Slot::Cleanup { session } => self.cleanup(out, t, sessions[session].1, &mut habit),
                    Slot::Links => self.link_likes(out, t, &mut habit),
                    Slot::PasswordReset { session } => {
                        let net = self.net_at(t, sessions[session].1);
                        self.emit(out, net, Ev::new(t, Action::PasswordChange));
                    }
                    Slot::Episode => {
                        if let Some(ep) = planted {
                            label = episodes::play(&mut self, out, ep);
                        }
                    }
                }
            }
        }
        label
    }

    /// A device for an action outside sessions (posts, reposts), by hash.
    fn device_by_hash(&self, t: Millis) -> Device {
        let h = hash(&[self.world.seed, u64::from(self.p.id), t as u64]);
        if self.devices.len() > 1 && h.is_multiple_of(4) { self.devices[1] } else { self.main_device(t) }
    }
}

/// A delay drawn log-uniformly between `lo` and `hi` (both positive):
/// minutes, hours and weeks equally likely in ratio.
pub fn log_uniform(rng: &mut Rng, lo: Millis, hi: Millis) -> Millis {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    (l + (h - l) * rng.f64()).exp() as Millis
}

/// An address in the made-up block `octet.x.y.z`, never ending in 0 or 255.
pub fn ip_in(octet: u8, h: u64) -> u32 {
    let mid = (h as u32) & 0x00ff_ff00;
    let last = 1 + ((h >> 32) % 254) as u32;
    (u32::from(octet) << 24) | mid | last
}

/// Great-circle distance between two (latitude, longitude) points.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// A point within a few kilometres of a city, in 1e-4 degrees.
pub fn geo_near(city: (f64, f64), h: u64) -> (i32, i32) {
    let dlat = ((h & 0xffff) as f64 / 65536.0 - 0.5) * 0.1;
    let dlon = (((h >> 16) & 0xffff) as f64 / 65536.0 - 0.5) * 0.1;
    (((city.0 + dlat) * 1e4).round() as i32, ((city.1 + dlon) * 1e4).round() as i32)
}
