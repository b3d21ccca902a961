//! Planted compromise episodes and their benign look-alikes.
//!
//! [`EpisodePlan::build`] runs once, before any account is simulated: it
//! picks the planted accounts (by a hash of the account number, so the
//! choice does not depend on the order of work), gives them styles
//! round-robin, and fixes everything that involves more than one account:
//! the campaigns (groups of 15 to 40 accounts liking the same items), the
//! followee whose reposts a `lookalike-quiet` account likes, the viral post
//! of a `lookalike-campaign`, the sign-up time of a `lookalike-follow_spree`
//! newcomer, and the posts that must exist for all of these. The world's
//! pure functions consult the plan, so the other accounts' sides of these
//! stories (a followee's repost, a creator's post) come out the same in
//! whichever chunk they are generated.
//!
//! [`play`] then writes one account's episode while that account is
//! simulated, against its follow list at that moment; it returns the label,
//! with the true window for compromised accounts: from the attacker's first
//! action to the last event that belongs to the episode (the owner's clean-up
//! or recovery included).
//!
//! Attackers do not only paste links: each like or repost they make is
//! reached by one of [`ATTACKER_ROUTES`] (a link opened from outside, a
//! search, the author's profile), and in [`HIJACK_SHARE`] of the compromised
//! episodes they act from the owner's own session instead of a device and
//! network of their own: a stolen session cookie replayed through a
//! residential proxy in the owner's country (the owner's device fingerprint
//! and client, another address on a consumer network), or, in
//! [`ON_DEVICE_SHARE`] of hijacks, the owner's device itself (malware, or
//! someone holding the unlocked phone). A hijacked takeover needs no login;
//! a hijacked follow spree clicks through profiles with the owner's client
//! rather than calling the API with a scripting kit.
//!
//! Limits: creators are never planted; each planted account has exactly one
//! episode; when the world lacks what a style needs (no creator of a topic,
//! in a very small world) the episode is skipped and the account gets no
//! label.

use super::account::{Action, Ev, LabelRec, Mark, Net, Output, Sim, Surface, geo_near, ip_in, sec};
use super::population::{Device, ItemKey, World, local_time, travel_destination};
use super::rng::{Rng, Stream, hash, unit};
use super::world::{ADULT, CN_OFFICIAL, COUNTRIES, Client, HOSTING, MAINSTREAM, Network, SCAM, STATE_MEDIA, TOPICS};
use crate::time::{DAY, HOUR, MINUTE, Millis, SECOND};

/// How attackers reach the items they like or repost: weights of a link
/// opened directly (`direct`: pasting a URL is the simplest), a `search`,
/// and the author's `profile`. A guess; nothing published measures it.
pub const ATTACKER_ROUTES: [(Surface, f64); 3] =
    [(Surface::Direct, 0.5), (Surface::Search, 0.25), (Surface::Profile, 0.25)];
/// Share of compromised episodes acted from the owner's own session (a
/// stolen session cookie or the owner's device) rather than the attacker's
/// own device and network. A guess: infostealer logs sell session cookies
/// precisely so that buyers can skip the login and look like the owner.
pub const HIJACK_SHARE: f64 = 0.25;
/// Of hijacked episodes, the share acted on the owner's device itself
/// (same device, network and location) rather than a replayed cookie. A
/// guess.
pub const ON_DEVICE_SHARE: f64 = 0.4;

/// Where an attacker acts from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// A device and network of its own (hosting providers, proxies).
    Own(Net),
    /// The owner's session cookie replayed from a residential address in
    /// the owner's country: the owner's device fingerprint and client.
    Cookie(Net),
    /// The owner's own device and connection.
    OnDevice,
}

impl Origin {
    /// Decides, from the episode's own stream, whether the attacker hijacks
    /// the owner's session; `own` gives its own context otherwise.
    fn draw(sim: &Sim<'_>, t0: Millis, own: impl FnOnce() -> Net) -> Origin {
        let w = sim.world;
        let a = sim.id();
        let mut rng = Rng::stream(w.seed, Stream::Episode, u64::from(a), 3);
        if !rng.chance(HIJACK_SHARE) {
            return Origin::Own(own());
        }
        if rng.chance(ON_DEVICE_SHARE) {
            return Origin::OnDevice;
        }
        let dev = sim.main_device(t0);
        let c = &COUNTRIES[sim.p.country as usize];
        let network = if rng.chance(0.5) { *rng.pick(c.fixed) } else { *rng.pick(c.mobile) };
        let h = hash(&[w.seed, u64::from(a), 13]);
        Origin::Cookie(Net {
            client: dev.client,
            device: dev.id,
            ip: ip_in(network.octet, h),
            country: sim.p.country,
            asn: network.asn,
        })
    }

    /// The network context of an attacker's action at `t`.
    fn net(&self, sim: &Sim<'_>, t: Millis) -> Net {
        match *self {
            Origin::Own(net) | Origin::Cookie(net) => net,
            Origin::OnDevice => sim.owner_net(t),
        }
    }

    /// Whether this is the owner's session.
    fn hijacked(&self) -> bool {
        !matches!(self, Origin::Own(_))
    }
}

/// The surface an attacker reaches its next target from.
fn route(rng: &mut Rng) -> Surface {
    let w = ATTACKER_ROUTES.map(|r| r.1);
    ATTACKER_ROUTES[rng.weighted(&w)].0
}

/// The five episode styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Style {
    /// Several unexposed, off-pattern likes in minutes, removed one by one
    /// by the owner an hour or more later.
    Story,
    /// A login from a new device and country, a password or e-mail change,
    /// then a burst of scam likes and reposts.
    Takeover,
    /// Two unexposed off-pattern likes, removed within the hour.
    Quiet,
    /// Dozens to hundreds of follows in minutes through an API client.
    FollowSpree,
    /// Many accounts liking the same few items within minutes.
    Campaign,
}

impl Style {
    /// Every style, in round-robin order.
    pub const ALL: [Style; 5] = [Style::Story, Style::Takeover, Style::Quiet, Style::FollowSpree, Style::Campaign];

    /// The style's name as written in `labels.style`.
    pub fn name(self) -> &'static str {
        match self {
            Style::Story => "story",
            Style::Takeover => "takeover",
            Style::Quiet => "quiet",
            Style::FollowSpree => "follow_spree",
            Style::Campaign => "campaign",
        }
    }
}

/// One planted account.
#[derive(Clone, Debug)]
pub struct Planted {
    /// The account.
    pub account: u32,
    /// Compromised (else a benign look-alike).
    pub compromised: bool,
    /// The style.
    pub style: Style,
    /// When the episode begins.
    pub t0: Millis,
    /// The campaign it belongs to (campaign styles).
    pub campaign: Option<u32>,
    /// A followee it must have from the start.
    pub forced_follow: Option<u32>,
    /// Items to like at given times (`lookalike-quiet`).
    pub likes: Vec<(ItemKey, Millis)>,
}

impl Planted {
    /// The label's style: `story`, or `lookalike-story` for a look-alike.
    pub fn style_name(&self) -> String {
        if self.compromised { self.style.name().to_string() } else { format!("lookalike-{}", self.style.name()) }
    }
}

/// A campaign: items many accounts like within minutes.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// When the first member acts.
    pub t0: Millis,
    /// The items, all created before `t0`.
    pub items: Vec<ItemKey>,
    /// The attackers' network (malicious campaigns).
    pub network: Network,
    /// The network's country.
    pub country: u8,
}

/// Everything planned before simulation. See the module doc.
#[derive(Clone, Debug, Default)]
pub struct EpisodePlan {
    /// Planted accounts, sorted by account.
    pub planted: Vec<Planted>,
    /// Campaigns, malicious and benign.
    pub campaigns: Vec<Campaign>,
    /// Reposts the plan adds: (reposter, day, time, item), sorted.
    extras: Vec<(u32, i32, Millis, ItemKey)>,
    /// Minimum posts: (author, day, count), sorted.
    min_posts: Vec<(u32, i32, u32)>,
    /// Per account: 1 planted, 2 has extra reposts, 4 has minimum posts.
    flags: Vec<u8>,
    /// When the log starts.
    start: Millis,
}

const PLANTED: u8 = 1;
const EXTRAS: u8 = 2;
const MIN_POSTS: u8 = 4;

impl EpisodePlan {
    /// Plans the episodes of `world` (whose own plan is still empty).
    pub fn build(world: &World, compromise_rate: f64, lookalike_rate: f64) -> EpisodePlan {
        let seed = world.seed;
        let mut compromised = Vec::new();
        let mut lookalike = Vec::new();
        for a in 0..world.n {
            if world.is_creator(a) {
                continue;
            }
            let u = unit(hash(&[seed, Stream::Plant as u64, u64::from(a)]));
            if u < compromise_rate {
                compromised.push(a);
            } else if u < compromise_rate + lookalike_rate {
                lookalike.push(a);
            }
        }
        let mut plan = EpisodePlan { flags: vec![0; world.n as usize], start: world.start, ..EpisodePlan::default() };
        let style_of = |i: usize| Style::ALL[i % Style::ALL.len()];
        // Newcomers first (sorted, as the list is): other accounts must not
        // have them as friends or followees before they exist.
        let newcomers: Vec<u32> =
            lookalike.iter().enumerate().filter(|(i, _)| style_of(*i) == Style::FollowSpree).map(|(_, &a)| a).collect();
        let (lo, hi) = episode_days(world.days);
        let mut planted = Vec::new();
        for (list, bad) in [(&compromised, true), (&lookalike, false)] {
            let mut campaign_members = Vec::new();
            for (i, &a) in list.iter().enumerate() {
                let style = style_of(i);
                let mut rng = Rng::stream(seed, Stream::Episode, u64::from(a), 0);
                let day = rng.range(i64::from(lo), i64::from(hi)) as i32;
                let offset = COUNTRIES[world.home_country(a) as usize].utc_offset_min;
                let t0 = world.day_start(day) + local_time(&mut rng, offset);
                let mut p = Planted {
                    account: a,
                    compromised: bad,
                    style,
                    t0,
                    campaign: None,
                    forced_follow: None,
                    likes: Vec::new(),
                };
                match (style, bad) {
                    (Style::Campaign, _) => {
                        campaign_members.push(a);
                        continue;
                    }
                    (Style::Quiet, false) if !plan.plan_lookalike_quiet(world, &mut p, &newcomers, &mut rng) => {
                        continue;
                    }
                    _ => {}
                }
                planted.push(p);
            }
            // Campaign groups: consecutive members, 15 to 40 each.
            let mut at = 0;
            while at < campaign_members.len() {
                let g = plan.campaigns.len() as u64;
                let mut rng = Rng::stream(seed, Stream::Campaign, g, u64::from(bad));
                // A remainder too small to be a campaign joins this group.
                let left = campaign_members.len() - at;
                let mut size = (rng.range(15, 40) as usize).min(left);
                if left - size < 15 {
                    size = left;
                }
                let members = &campaign_members[at..at + size];
                at += size;
                let Some(c) = plan.plan_campaign(world, bad, &mut rng) else {
                    continue;
                };
                let t0 = plan.campaigns[c as usize].t0;
                let viral = plan.campaigns[c as usize].items[0].author;
                for &a in members {
                    planted.push(Planted {
                        account: a,
                        compromised: bad,
                        style: Style::Campaign,
                        t0,
                        campaign: Some(c),
                        forced_follow: (!bad).then_some(viral),
                        likes: Vec::new(),
                    });
                }
            }
        }
        planted.sort_by_key(|p| p.account);
        for p in &planted {
            plan.flags[p.account as usize] |= PLANTED;
        }
        plan.planted = planted;
        plan.extras.sort_unstable();
        plan.min_posts.sort_unstable();
        plan.min_posts.dedup_by(|b, a| {
            if (a.0, a.1) == (b.0, b.1) {
                a.2 = a.2.max(b.2);
                true
            } else {
                false
            }
        });
        for e in &plan.extras {
            plan.flags[e.0 as usize] |= EXTRAS;
        }
        for m in &plan.min_posts {
            plan.flags[m.0 as usize] |= MIN_POSTS;
        }
        plan
    }

    /// Picks the followee, items and times of a `lookalike-quiet` account.
    fn plan_lookalike_quiet(&mut self, world: &World, p: &mut Planted, newcomers: &[u32], rng: &mut Rng) -> bool {
        let a = p.account;
        let n = world.n;
        // The followee: an ordinary account nearby.
        let mut b = None;
        for _ in 0..20 {
            let c = ((u64::from(a) + 1 + rng.below(50)) % u64::from(n)) as u32;
            if c != a && !world.is_creator(c) && newcomers.binary_search(&c).is_err() {
                b = Some(c);
                break;
            }
        }
        let Some(b) = b else { return false };
        let interests = world.interests(a);
        let topic = off_interest_topic(&interests, rng, false);
        let Some(c) = world.creator_of_topic(topic, rng).filter(|&c| c != a && c != b) else {
            return false;
        };
        let day = world.day_of(p.t0);
        let mut latest = Millis::MIN;
        let mut reposted = Vec::new();
        for k in 0..2 {
            let key = ItemKey { author: c, day, k };
            let r = world.created_at(key) + rng.range(10 * 60, 90 * 60) * SECOND;
            latest = latest.max(r);
            reposted.push((key, r));
        }
        let mut like_at = latest + rng.range(5 * 60, 40 * 60) * SECOND;
        for (key, r) in reposted {
            self.extras.push((b, world.day_of(r), r / SECOND * SECOND, key));
            p.likes.push((key, like_at));
            like_at += rng.range(60, 10 * 60) * SECOND;
        }
        self.min_posts.push((c, day, 2));
        p.forced_follow = Some(b);
        p.t0 = latest;
        true
    }

    /// Plans one campaign; returns its index.
    fn plan_campaign(&mut self, world: &World, bad: bool, rng: &mut Rng) -> Option<u32> {
        let (lo, hi) = episode_days(world.days);
        let day = rng.range(i64::from(lo), i64::from(hi)) as i32;
        let mut items = Vec::new();
        if bad {
            let scam = world.creator_of_topic(SCAM, rng)?;
            let total = rng.range(2, 5) as u32;
            let (from_scam, other) = if rng.chance(0.3) {
                (total - 1, world.creator_of_topic(*rng.pick(&[3u8, 1, 0]), rng))
            } else {
                (total, None)
            };
            for k in 0..from_scam {
                items.push(ItemKey { author: scam, day, k });
            }
            self.min_posts.push((scam, day, from_scam));
            if let Some(o) = other.filter(|&o| o != scam) {
                items.push(ItemKey { author: o, day, k: 0 });
                self.min_posts.push((o, day, 1));
            }
        } else {
            let topic = *rng.pick(&[5u8, 7, 7, 15, 8, 16]);
            let viral = world.creator_of_topic(topic, rng)?;
            items.push(ItemKey { author: viral, day, k: 0 });
            self.min_posts.push((viral, day, 1));
        }
        let created = items.iter().map(|&k| world.created_at(k)).max().unwrap_or(world.day_start(day));
        let (network, country) = *rng.pick(HOSTING);
        self.campaigns.push(Campaign { t0: created + rng.range(5 * 60, 30 * 60) * SECOND, items, network, country });
        Some(self.campaigns.len() as u32 - 1)
    }

    /// The planted episode of account `a`, if any.
    pub fn episode(&self, a: u32) -> Option<&Planted> {
        if self.flags.get(a as usize).is_none_or(|f| f & PLANTED == 0) {
            return None;
        }
        self.planted.binary_search_by_key(&a, |p| p.account).ok().map(|i| &self.planted[i])
    }

    /// Whether `a` is planted (compromised or look-alike).
    pub fn is_planted(&self, a: u32) -> bool {
        self.flags.get(a as usize).is_some_and(|f| f & PLANTED != 0)
    }

    /// The first day account `a` exists: a newcomer's sign-up day, else
    /// `i32::MIN`.
    pub fn first_day(&self, a: u32) -> i32 {
        match self.created_at(a) {
            Some(t) => (t - self.start).div_euclid(DAY) as i32,
            None => i32::MIN,
        }
    }

    fn newcomer_signup(&self, a: u32) -> Option<Millis> {
        let p = self.episode(a)?;
        (!p.compromised && p.style == Style::FollowSpree).then_some(p.t0)
    }

    /// When a newcomer signed up (a few minutes before its spree).
    pub fn created_at(&self, a: u32) -> Option<Millis> {
        self.newcomer_signup(a).map(|t0| t0 - MINUTE - (hash(&[u64::from(a), t0 as u64]) % 9) as Millis * MINUTE)
    }

    /// The followee account `a` must start with, if any.
    pub fn forced_follow(&self, a: u32) -> Option<u32> {
        self.episode(a).and_then(|p| p.forced_follow)
    }

    /// The fewest posts `a` makes on day `d`.
    pub fn min_posts(&self, a: u32, d: i32) -> u32 {
        if self.flags.get(a as usize).is_none_or(|f| f & MIN_POSTS == 0) {
            return 0;
        }
        match self.min_posts.binary_search_by_key(&(a, d), |m| (m.0, m.1)) {
            Ok(i) => self.min_posts[i].2,
            Err(_) => 0,
        }
    }

    /// Whether `b` has reposts added by the plan.
    pub fn has_extras(&self, b: u32) -> bool {
        self.flags.get(b as usize).is_some_and(|f| f & EXTRAS != 0)
    }

    /// Appends the reposts the plan adds for `b` on day `d`.
    pub fn extra_reposts(&self, b: u32, d: i32, out: &mut Vec<(Millis, ItemKey)>) {
        if !self.has_extras(b) {
            return;
        }
        let from = self.extras.partition_point(|e| (e.0, e.1) < (b, d));
        for e in &self.extras[from..] {
            if (e.0, e.1) != (b, d) {
                break;
            }
            out.push((e.2, e.3));
        }
    }
}

/// The days episodes may start on: after a third of the log (so accounts
/// have history), and early enough for their clean-up to fit.
fn episode_days(days: i32) -> (i32, i32) {
    let hi = (days - 2).max(0);
    let lo = (days / 3).max(1).min(hi);
    (lo, hi)
}

/// A topic far from the account's interests: political, state media or
/// adult content it never showed interest in (`scam` allowed only when
/// asked).
fn far_topics(interests: &[super::population::Interest], scam: bool) -> Vec<u8> {
    let has = |t: u8| interests.iter().any(|i| i.topic == t);
    TOPICS
        .iter()
        .enumerate()
        .map(|(i, _)| i as u8)
        .filter(|&t| TOPICS[t as usize].far && !has(t))
        .filter(|&t| scam || t != SCAM)
        .filter(|&t| {
            // State media and official politics are one interest.
            !(t == STATE_MEDIA && has(CN_OFFICIAL) || t == CN_OFFICIAL && has(STATE_MEDIA))
        })
        .collect()
}

/// An off-interest topic: usually a far one, sometimes an everyday topic the
/// account does not follow.
fn off_interest_topic(interests: &[super::population::Interest], rng: &mut Rng, scam: bool) -> u8 {
    let far = far_topics(interests, scam);
    if !far.is_empty() && rng.chance(0.7) {
        return *rng.pick(&far);
    }
    for _ in 0..20 {
        let t = *rng.pick(MAINSTREAM);
        if !interests.iter().any(|i| i.topic == t) {
            return t;
        }
    }
    ADULT
}

/// Sets up what an episode changes about the account before anything is
/// generated (a trip, a new phone).
pub fn prepare(sim: &mut Sim<'_>, ep: &Planted) {
    if ep.compromised || ep.style != Style::Takeover {
        return;
    }
    let mut rng = Rng::stream(sim.world.seed, Stream::Episode, u64::from(ep.account), 1);
    let variant = rng.index(3);
    if variant != 1 {
        let dest = travel_destination(&mut rng, sim.p.country);
        let len = rng.range(2, 6) * DAY;
        sim.travel = Some((ep.t0, ep.t0 + len, dest));
    }
    if variant != 0 {
        let old = sim.main_device(ep.t0);
        let client = match old.client {
            Client::Ios if rng.chance(0.3) => Client::Android,
            Client::Android if rng.chance(0.3) => Client::Ios,
            Client::Web => Client::Android,
            c => c,
        };
        let dev = Device {
            id: hash(&[sim.world.seed, Stream::Device as u64, u64::from(ep.account), 99]) >> 16,
            client,
            mobile: true,
        };
        sim.device_switch = Some((ep.t0 + HOUR, dev));
    }
}

/// An attacker's network context: `network` in `country`, a fresh device.
fn attacker_net(seed: u64, a: u32, network: Network, country: u8, client: Client, salt: u64) -> Net {
    let h = hash(&[seed, Stream::Device as u64, u64::from(a), 1000 + salt]);
    Net { client, device: h >> 16, ip: ip_in(network.octet, hash(&[h, 7])), country, asn: network.asn }
}

/// A hosting network, preferably in `country` (or anywhere but it, when
/// `abroad`).
fn hosting(rng: &mut Rng, country: u8, abroad: bool) -> (Network, u8) {
    let pool: Vec<(Network, u8)> = HOSTING.iter().copied().filter(|&(_, c)| (c == country) != abroad).collect();
    if pool.is_empty() { *rng.pick(HOSTING) } else { *rng.pick(&pool) }
}

/// An item by a stranger on `topic`: author not followed, no followee
/// reposted it in the last week, not already liked, created before `t`.
fn stranger_item(sim: &mut Sim<'_>, topic: u8, t: Millis, rng: &mut Rng) -> Option<ItemKey> {
    for attempt in 0..40 {
        let c = sim.world.creator_of_topic(topic, rng)?;
        if c == sim.id() || sim.follows_now(c) {
            continue;
        }
        // Recent posts first; attackers link older ones when they must
        // (few creators post scams, and an account likes a post once).
        let days = if attempt < 20 { 3 } else { 14 };
        let Some(key) = sim.item_by_within(c, t, days, rng) else {
            continue;
        };
        if !sim.exposed(key, t) {
            return Some(key);
        }
    }
    None
}

/// Unexposed likes of far-off items at the given times, from `net`.
fn injected_likes(
    sim: &mut Sim<'_>,
    out: &mut Output,
    times: &[Millis],
    origin: Origin,
    rng: &mut Rng,
) -> Vec<(Millis, ItemKey)> {
    let far = far_topics(&sim.p.interests, true);
    let mut done = Vec::new();
    for (i, &t) in times.iter().enumerate() {
        let topic = if i == 0 && far.contains(&ADULT) && rng.chance(0.6) {
            ADULT
        } else if far.is_empty() {
            SCAM
        } else {
            // Scams are rarer than politics in this style.
            let t = *rng.pick(&far);
            if t == SCAM && rng.chance(0.5) { *rng.pick(&far) } else { t }
        };
        let Some(item) = stranger_item(sim, topic, t, rng).or_else(|| stranger_item(sim, SCAM, t, rng)) else {
            continue;
        };
        sim.liked.insert(item);
        let net = origin.net(sim, t);
        sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(route(rng)).by(Mark::Attacker));
        done.push((t, item));
    }
    done
}

/// Writes the episode of a planted account; returns its label (`None` when
/// the world lacked what it needed).
pub fn play(sim: &mut Sim<'_>, out: &mut Output, ep: &Planted) -> Option<LabelRec> {
    let w = sim.world;
    let mut rng = Rng::stream(w.seed, Stream::Episode, u64::from(ep.account), 2);
    let a = ep.account;
    let t0 = ep.t0;
    let end = w.end();
    let mut first = Millis::MAX;
    let mut last = Millis::MIN;
    // Events are written in whole seconds; so is the window.
    let mut span = |t: Millis| {
        first = first.min(sec(t));
        last = last.max(sec(t));
    };
    let ok = match (ep.compromised, ep.style) {
        (true, Style::Story) | (true, Style::Quiet) => {
            let story = ep.style == Style::Story;
            let (network, country) = hosting(&mut rng, sim.p.country, false);
            let origin = Origin::draw(sim, t0, || attacker_net(w.seed, a, network, country, Client::Web, 0));
            let n = if story { rng.range(3, 6) } else { 2 };
            let mut times: Vec<Millis> = (0..n)
                .map(|i| {
                    if i == 0 {
                        t0
                    } else if story {
                        t0 + rng.range(20, 15 * 60) * SECOND
                    } else {
                        t0 + rng.range(20, 5 * 60) * SECOND
                    }
                })
                .collect();
            times.sort_unstable();
            let likes = injected_likes(sim, out, &times, origin, &mut rng);
            for &(t, _) in &likes {
                span(t);
            }
            // The owner removes them: in the story an hour or more later,
            // one by one in roughly the order they were made; in the quiet
            // style within the hour.
            let mut order: Vec<usize> = (0..likes.len()).collect();
            if story && order.len() > 2 && rng.chance(0.3) {
                let i = rng.index(order.len() - 1);
                order.swap(i, i + 1);
            }
            let mut at =
                if story && !likes.is_empty() { likes[order[0]].0 + rng.range(40 * 60, 90 * 60) * SECOND } else { 0 };
            for (n, &i) in order.iter().enumerate() {
                let (liked_at, item) = likes[i];
                let t = if story {
                    if n > 0 {
                        at += rng.range(2 * 60, 25 * 60) * SECOND;
                    }
                    at.clamp(liked_at + 40 * MINUTE, liked_at + 3 * HOUR)
                } else {
                    liked_at + rng.range(10 * 60, 55 * 60) * SECOND
                };
                let net = sim.owner_net(t);
                sim.emit(out, net, Ev::new(t, Action::Unlike).item(item).on(Surface::Profile).by(Mark::Cleanup));
                span(t);
            }
            !likes.is_empty()
        }
        (true, Style::Takeover) => {
            let (network, country) = hosting(&mut rng, sim.p.country, true);
            let origin = Origin::draw(sim, t0, || attacker_net(w.seed, a, network, country, Client::Web, 1));
            // With the owner's session there is no login to make.
            let mut t = t0;
            if !origin.hijacked() {
                let net = origin.net(sim, t0);
                let geo = geo_near(COUNTRIES[country as usize].cities[0], hash(&[u64::from(a), 3]));
                sim.emit(out, net, Ev::new(t0, Action::Login).geo(geo).by(Mark::Attacker));
                span(t0);
                t += rng.range(60, 6 * 60) * SECOND;
            }
            let pw = rng.chance(0.7);
            if pw {
                let net = origin.net(sim, t);
                sim.emit(out, net, Ev::new(t, Action::PasswordChange).by(Mark::Attacker));
                span(t);
                t += rng.range(20, 120) * SECOND;
            }
            if !pw || rng.chance(0.5) {
                let net = origin.net(sim, t);
                sim.emit(out, net, Ev::new(t, Action::EmailChange).by(Mark::Attacker));
                span(t);
            }
            t += rng.range(5 * 60, 50 * 60) * SECOND;
            let mut scam_likes = Vec::new();
            for _ in 0..rng.range(5, 20) {
                let Some(item) = stranger_item(sim, SCAM, t, &mut rng) else {
                    continue;
                };
                let action = if rng.chance(0.7) {
                    sim.liked.insert(item);
                    scam_likes.push(item);
                    Action::Like
                } else {
                    Action::Repost
                };
                let net = origin.net(sim, t);
                sim.emit(out, net, Ev::new(t, action).item(item).on(route(&mut rng)).by(Mark::Attacker));
                span(t);
                t += rng.range(10, 180) * SECOND;
            }
            // The owner gets back in, resets the password and removes some
            // of the likes.
            let mut r = t + rng.range(2 * 3600, 30 * 3600) * SECOND;
            if r < end {
                let net = sim.owner_net(r);
                sim.login(out, r, net, Mark::Cleanup);
                span(r);
                r += rng.range(60, 5 * 60) * SECOND;
                sim.emit(out, net, Ev::new(r, Action::PasswordChange).by(Mark::Cleanup));
                span(r);
                if rng.chance(0.5) {
                    for item in scam_likes {
                        r += rng.range(5, 90) * SECOND;
                        sim.emit(
                            out,
                            net,
                            Ev::new(r, Action::Unlike).item(item).on(Surface::Profile).by(Mark::Cleanup),
                        );
                        span(r);
                    }
                }
            }
            true
        }
        (true, Style::FollowSpree) => {
            let abroad = rng.chance(0.5);
            let (network, country) = hosting(&mut rng, sim.p.country, abroad);
            let origin = Origin::draw(sim, t0, || attacker_net(w.seed, a, network, country, Client::AutomationKit, 2));
            // A script on the API, or clicks through profiles in the
            // owner's hijacked session.
            let surface = if origin.hijacked() { Surface::Profile } else { Surface::Api };
            let mut t = t0;
            let mut n = 0;
            let goal = rng.range(30, 200);
            let mut tries = 0;
            while n < goal && tries < goal * 3 {
                tries += 1;
                let target = if rng.chance(0.6) {
                    rng.below(u64::from(w.n)) as u32
                } else {
                    let topic = *rng.pick(&[0u8, 1, 2, 3, 4, 12]);
                    match w.creator_of_topic(topic, &mut rng) {
                        Some(c) => c,
                        None => continue,
                    }
                };
                if target == a || w.plan.first_day(target) > i32::MIN || !sim.add_follow(target) {
                    continue;
                }
                let net = origin.net(sim, t);
                sim.emit(out, net, Ev::new(t, Action::Follow).account(target).on(surface).by(Mark::Attacker));
                span(t);
                n += 1;
                t += rng.range(500, 6000);
            }
            n > 0
        }
        (true, Style::Campaign) => {
            let c = &w.plan.campaigns[ep.campaign? as usize];
            let origin = Origin::draw(sim, c.t0, || {
                let mut net = attacker_net(w.seed, a, c.network, c.country, Client::Web, 3);
                net.ip = ip_in(c.network.octet, hash(&[w.seed, u64::from(a), 11]));
                net
            });
            let mut t = c.t0 + rng.range(0, 240) * SECOND;
            let mut liked = Vec::new();
            for &item in &c.items {
                sim.liked.insert(item);
                let net = origin.net(sim, t);
                sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(route(&mut rng)).by(Mark::Attacker));
                span(t);
                liked.push(item);
                t += rng.range(5, 40) * SECOND;
            }
            if rng.chance(0.4) {
                let mut r = t + rng.range(3600, 30 * 3600) * SECOND;
                for item in liked {
                    if r >= end {
                        break;
                    }
                    let net = sim.owner_net(r);
                    sim.emit(out, net, Ev::new(r, Action::Unlike).item(item).on(Surface::Profile).by(Mark::Cleanup));
                    span(r);
                    r += rng.range(10, 120) * SECOND;
                }
            }
            true
        }
        (false, Style::Story) => {
            // Discovery: searches off-interest content, likes several, visits
            // a profile, maybe regrets one hours later.
            let topic = off_interest_topic(&sim.p.interests, &mut rng, false);
            let mut t = t0;
            let mut liked = Vec::new();
            let mut authors = Vec::new();
            for _ in 0..rng.range(2, 4) {
                if let Some(item) = sim.recent_item_of_topic(topic, t, &mut rng)
                    && sim.liked.insert(item)
                {
                    let net = sim.owner_net(t);
                    sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(Surface::Search));
                    liked.push((t, item));
                    authors.push(item.author);
                }
                t += rng.range(20, 240) * SECOND;
            }
            if let Some(&author) = authors.first() {
                for _ in 0..rng.range(1, 2) {
                    if let Some(item) = sim.recent_item_by(author, t, &mut rng)
                        && sim.liked.insert(item)
                    {
                        let net = sim.owner_net(t);
                        sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(Surface::Profile));
                        liked.push((t, item));
                    }
                    t += rng.range(20, 120) * SECOND;
                }
                if rng.chance(0.3) {
                    let net = sim.owner_net(t);
                    if sim.add_follow(author) {
                        sim.emit(out, net, Ev::new(t, Action::Follow).account(author).on(Surface::Profile));
                    }
                }
            }
            if !liked.is_empty() && rng.chance(0.5) {
                let (lt, item) = liked[rng.index(liked.len())];
                let r = lt + rng.range(2 * 3600, 10 * 3600) * SECOND;
                if r < end {
                    let net = sim.owner_net(r);
                    sim.emit(out, net, Ev::new(r, Action::Unlike).item(item).on(Surface::Profile));
                }
            }
            !liked.is_empty()
        }
        (false, Style::Takeover) => {
            // A trip or a new phone (set up by `prepare`), then a password
            // change from the usual device; ordinary activity goes on.
            if let Some((_, dev)) = sim.device_switch {
                let net = sim.net_at(t0, dev);
                sim.login(out, t0, net, Mark::Normal);
            }
            let t = t0 + rng.range(2 * 60, 30 * 60) * SECOND;
            let dev = sim.devices[0];
            let net = sim.net_at(t, dev);
            sim.emit(out, net, Ev::new(t, Action::PasswordChange));
            true
        }
        (false, Style::Quiet) => {
            // Two off-interest items a followee reposted, liked from the
            // home feed and removed within the hour.
            for &(item, t) in &ep.likes {
                if t >= end || !sim.liked.insert(item) {
                    continue;
                }
                sim.impression(out, t - rng.range(3, 60) * SECOND, item);
                let net = sim.owner_net(t);
                sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(Surface::Home));
                let r = t + rng.range(10 * 60, 55 * 60) * SECOND;
                let net = sim.owner_net(r);
                sim.emit(out, net, Ev::new(r, Action::Unlike).item(item).on(Surface::Home));
            }
            true
        }
        (false, Style::FollowSpree) => {
            // A newcomer: signs up, then follows 30 to 100 accounts from the
            // onboarding suggestions and search, in minutes, from its phone.
            let signup = sim.created_at;
            let net = sim.owner_net(signup);
            sim.login(out, signup, net, Mark::Normal);
            let mut t = t0;
            let goal = rng.range(30, 100);
            let mut n = 0;
            let mut tries = 0;
            while n < goal && tries < goal * 4 {
                tries += 1;
                let c = if rng.chance(0.7) {
                    sim.p.interests.draw(&mut rng).and_then(|topic| w.creator_of_topic(topic, &mut rng))
                } else {
                    w.popular_creator(&mut rng)
                };
                let Some(c) = c else { continue };
                if c == a || !sim.add_follow(c) {
                    continue;
                }
                let surface = if n < goal * 7 / 10 { Surface::Onboarding } else { Surface::Search };
                let net = sim.owner_net(t);
                sim.emit(out, net, Ev::new(t, Action::Follow).account(c).on(surface));
                n += 1;
                t += rng.range(1, 8) * SECOND;
            }
            true
        }
        (false, Style::Campaign) => {
            // A viral post of a followed creator, liked from the home feed
            // within minutes of everyone else.
            let c = &w.plan.campaigns[ep.campaign? as usize];
            let item = c.items[0];
            let t = c.t0 + rng.range(0, 300) * SECOND;
            if t < end && sim.follows_now(item.author) && sim.liked.insert(item) {
                sim.impression(out, t - rng.range(3, 60) * SECOND, item);
                let net = sim.owner_net(t);
                sim.emit(out, net, Ev::new(t, Action::Like).item(item).on(Surface::Home));
            }
            true
        }
    };
    if !ok {
        return None;
    }
    Some(LabelRec {
        actor: a,
        compromised: ep.compromised,
        style: ep.style_name(),
        window: ep.compromised.then_some((first, last)),
    })
}
