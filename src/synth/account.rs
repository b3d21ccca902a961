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
//! Limits: one session uses one device; replies do not create items; the
//! feed is sampled (a followee, then one of its recent posts or reposts)
//! rather than ranked.

use hashbrown::{HashMap, HashSet};

use super::episodes::{self, Planted};
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
}

/// How far back the home feed reaches.
const FEED_HORIZON: Millis = 3 * DAY;

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
            device_switch: None,
            travel: p.travel,
            created_at,
            seq: 0,
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

    /// An item found by the account's own navigation: mostly on its
    /// interests, sometimes anything (off-interest discovery).
    fn discover(&self, t: Millis, rng: &mut Rng) -> Option<ItemKey> {
        let topic = if rng.chance(0.55) {
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

    /// A like (with its possible quick undo or late regret) from a session.
    fn like_action(&mut self, out: &mut Output, t: Millis, net: Net, rng: &mut Rng) {
        let r = rng.f64();
        let (item, surface) = if r < 0.8 {
            match self.feed_pick(t, rng, true) {
                Some(k) => (Some(k), Surface::Home),
                // Nothing new in the feed: sometimes a search instead.
                None if rng.chance(0.3) => (self.discover(t, rng), Surface::Search),
                None => (None, Surface::Home),
            }
        } else if r < 0.87 {
            (self.discover(t, rng), Surface::Search)
        } else if r < 0.94 {
            let c = self.world.popular_creator(rng);
            (c.and_then(|c| self.recent_item_by(c, t, rng)), Surface::Profile)
        } else {
            let f = (!self.follows.is_empty()).then(|| self.follows[rng.index(self.follows.len())]);
            (f.and_then(|f| self.recent_item_by(f, t, rng)), Surface::Notifications)
        };
        let Some(item) = item else { return };
        if !self.liked.insert(item) {
            return;
        }
        if surface == Surface::Home {
            self.impression(out, t - rng.range(2, 90) * SECOND, item);
        }
        let target = Target::Item(item);
        self.emit(out, net, Ev::new(t, Action::Like).target(target).on(surface));
        if rng.chance(0.015) {
            let back = t + rng.range(1, 20) * SECOND;
            self.emit(out, net, Ev::new(back, Action::Unlike).target(target).on(surface));
        } else if rng.chance(0.004) {
            let back = t + rng.range(2 * HOUR / MINUTE, 4 * DAY / MINUTE) * MINUTE;
            if back < self.world.end() {
                let net = self.net_at(back, self.main_device(back));
                self.emit(out, net, Ev::new(back, Action::Unlike).target(target).on(Surface::Profile));
            }
        }
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
        // A trip starts with a login from abroad on the usual device.
        if let Some((from, _, _)) = self.travel
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
            let mut rng = Rng::stream(w.seed, Stream::Day, u64::from(a), d as u64);
            self.set_day_weights(d);
            let day0 = w.day_start(d);
            let offset = COUNTRIES[self.location_at(day0 + 12 * HOUR) as usize].utc_offset_min;
            let noise = (0.6 * rng.normal() - 0.18).exp();
            let n = rng.poisson(rates.activity * noise * super::population::weekday_factor(d));
            slots.clear();
            sessions.clear();
            if n > 0 {
                let ns = (1 + rng.poisson(f64::from(n) / 8.0)).min(n).min(8) as usize;
                for s in 0..ns {
                    let t0 = day0 + local_time(&mut rng, offset);
                    let dev = self.session_device(t0, &mut rng);
                    sessions.push((t0, dev));
                    let p_login = if s == 0 { 0.12 } else { 0.03 };
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
