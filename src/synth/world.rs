//! The fixed vocabulary of the synthetic world: topics, countries with their
//! networks and cities, clients, and the words items are written with.
//!
//! Everything here is a constant table; the population model
//! ([`super::population`]) draws from it. Names of networks are real
//! autonomous-system numbers of large access and hosting providers, used
//! only as plausible labels: the IP addresses built on them are made up.

/// A content topic: a label items carry and accounts are interested in.
#[derive(Clone, Copy, Debug)]
pub struct Topic {
    /// The label as written in `items.labels`.
    pub name: &'static str,
    /// Relative share of creators whose main topic this is.
    pub creator_weight: f64,
    /// Relative share of accounts interested in it (0: nobody).
    pub interest_weight: f64,
    /// Whether an attacker's planted content may carry it: content classes
    /// far from most accounts' interests.
    pub far: bool,
    /// Short phrases an item on this topic may say.
    pub phrases: &'static [&'static str],
}

const fn topic(
    name: &'static str,
    creator_weight: f64,
    interest_weight: f64,
    far: bool,
    phrases: &'static [&'static str],
) -> Topic {
    Topic { name, creator_weight, interest_weight, far, phrases }
}

/// Every topic. Indices into this table are the topic ids used throughout.
pub const TOPICS: &[Topic] = &[
    topic("politics/us-left", 6.0, 6.0, true, &["town hall tonight", "call your senator", "healthcare now"]),
    topic("politics/us-right", 6.0, 6.0, true, &["secure the border", "tax relief now", "rally this weekend"]),
    topic(
        "politics/cn-official",
        3.0,
        1.5,
        true,
        &["spokesperson remarks", "win-win cooperation", "press conference today"],
    ),
    topic(
        "politics/cn-critical",
        2.0,
        1.0,
        true,
        &["free speech matters", "what they will not tell you", "censored again"],
    ),
    topic("state-media", 3.0, 1.5, true, &["breaking report", "exclusive interview", "live coverage"]),
    topic("sports/football", 8.0, 10.0, false, &["what a goal", "transfer news", "derby day", "match highlights"]),
    topic("sports/basketball", 5.0, 6.0, false, &["buzzer beater", "playoff picture", "triple double"]),
    topic("music", 10.0, 12.0, false, &["new single out now", "tour dates announced", "studio day"]),
    topic("gaming", 8.0, 9.0, false, &["speedrun attempt", "patch notes", "live on stream"]),
    topic("tech", 7.0, 7.0, false, &["shipping a new release", "benchmarks inside", "hot take on tabs"]),
    topic("cooking", 6.0, 6.0, false, &["sunday bread", "ten minute dinner", "spice rack tour"]),
    topic("fashion", 5.0, 5.0, false, &["fit check", "autumn looks", "thrift haul"]),
    topic("finance", 4.0, 4.0, false, &["rate decision", "earnings recap", "index funds explained"]),
    topic("travel", 4.0, 4.0, false, &["hidden beach", "night train diary", "packing list"]),
    topic("science", 3.0, 3.0, false, &["new paper out", "telescope image", "lab notes"]),
    topic("news", 5.0, 6.0, false, &["developing story", "morning briefing", "what we know so far"]),
    topic("pets", 4.0, 5.0, false, &["cat tax", "good boy update", "adoption day"]),
    topic("adult", 1.5, 0.4, true, &["link in bio", "new set tonight", "subscribers only"]),
    topic("scam/crypto", 1.0, 0.0, true, &["claim your airdrop", "send 1 get 2 back", "giveaway ends soon"]),
];

/// Topic id of `adult`.
pub const ADULT: u8 = 17;
/// Topic id of `scam/crypto`: only attackers ever act on it.
pub const SCAM: u8 = 18;
/// Topic id of `politics/cn-official`.
pub const CN_OFFICIAL: u8 = 2;
/// Topic id of `state-media`.
pub const STATE_MEDIA: u8 = 4;

/// Topics an ordinary account can take up as a new interest or drift to,
/// and a viral post can be about: the everyday ones.
pub const MAINSTREAM: &[u8] = &[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// An autonomous system: a network addresses are taken from.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// AS number, written `AS<n>`.
    pub asn: u32,
    /// First octet of its made-up address block.
    pub octet: u8,
}

/// A country: where accounts live, travel to, or attackers come from.
#[derive(Clone, Copy, Debug)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code.
    pub code: &'static str,
    /// Offset of local time from UTC, in minutes (no daylight saving).
    pub utc_offset_min: i32,
    /// Main language of its creators.
    pub lang: &'static str,
    /// Relative share of the population living there (0: none).
    pub weight: f64,
    /// Relative share of trips going there.
    pub travel_weight: f64,
    /// Home broadband networks.
    pub fixed: &'static [Network],
    /// Mobile networks.
    pub mobile: &'static [Network],
    /// Cities, as (latitude, longitude).
    pub cities: &'static [(f64, f64)],
}

const fn net(asn: u32, octet: u8) -> Network {
    Network { asn, octet }
}

/// Every country. Indices into this table are the country ids.
pub const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        utc_offset_min: -300,
        lang: "en",
        weight: 25.0,
        travel_weight: 8.0,
        fixed: &[net(7922, 73), net(7018, 99), net(22773, 68)],
        mobile: &[net(21928, 172), net(22394, 174)],
        cities: &[(40.71, -74.01), (34.05, -118.24), (41.88, -87.63), (29.76, -95.37)],
    },
    Country {
        code: "GB",
        utc_offset_min: 0,
        lang: "en",
        weight: 6.0,
        travel_weight: 6.0,
        fixed: &[net(2856, 86), net(5089, 82)],
        mobile: &[net(12576, 31), net(25135, 92)],
        cities: &[(51.51, -0.13), (53.48, -2.24), (55.95, -3.19)],
    },
    Country {
        code: "DE",
        utc_offset_min: 60,
        lang: "de",
        weight: 6.0,
        travel_weight: 5.0,
        fixed: &[net(3320, 87), net(6805, 95)],
        mobile: &[net(3209, 109), net(6805, 176)],
        cities: &[(52.52, 13.40), (48.14, 11.58), (53.55, 9.99)],
    },
    Country {
        code: "FR",
        utc_offset_min: 60,
        lang: "fr",
        weight: 5.0,
        travel_weight: 8.0,
        fixed: &[net(3215, 90), net(12322, 82)],
        mobile: &[net(15557, 80), net(5410, 37)],
        cities: &[(48.86, 2.35), (45.76, 4.84), (43.30, 5.37)],
    },
    Country {
        code: "ES",
        utc_offset_min: 60,
        lang: "es",
        weight: 4.0,
        travel_weight: 7.0,
        fixed: &[net(3352, 88), net(12479, 83)],
        mobile: &[net(12430, 93)],
        cities: &[(40.42, -3.70), (41.39, 2.17)],
    },
    Country {
        code: "BR",
        utc_offset_min: -180,
        lang: "pt",
        weight: 8.0,
        travel_weight: 2.0,
        fixed: &[net(28573, 177), net(18881, 179)],
        mobile: &[net(26599, 189), net(26615, 187)],
        cities: &[(-23.55, -46.63), (-22.91, -43.17)],
    },
    Country {
        code: "MX",
        utc_offset_min: -360,
        lang: "es",
        weight: 4.0,
        travel_weight: 3.0,
        fixed: &[net(8151, 187)],
        mobile: &[net(28403, 189)],
        cities: &[(19.43, -99.13), (20.66, -103.35)],
    },
    Country {
        code: "IN",
        utc_offset_min: 330,
        lang: "en",
        weight: 10.0,
        travel_weight: 2.0,
        fixed: &[net(9829, 117), net(24560, 122)],
        mobile: &[net(55836, 49), net(45609, 106)],
        cities: &[(19.08, 72.88), (28.61, 77.21), (12.97, 77.59)],
    },
    Country {
        code: "JP",
        utc_offset_min: 540,
        lang: "ja",
        weight: 6.0,
        travel_weight: 4.0,
        fixed: &[net(4713, 153), net(2516, 106)],
        mobile: &[net(2516, 49), net(9605, 126)],
        cities: &[(35.68, 139.69), (34.69, 135.50)],
    },
    Country {
        code: "KR",
        utc_offset_min: 540,
        lang: "ko",
        weight: 3.0,
        travel_weight: 2.0,
        fixed: &[net(4766, 121)],
        mobile: &[net(9644, 211)],
        cities: &[(37.57, 126.98), (35.18, 129.08)],
    },
    Country {
        code: "TW",
        utc_offset_min: 480,
        lang: "zh",
        weight: 3.0,
        travel_weight: 1.0,
        fixed: &[net(3462, 114)],
        mobile: &[net(24158, 101)],
        cities: &[(25.03, 121.57), (22.63, 120.30)],
    },
    Country {
        code: "HK",
        utc_offset_min: 480,
        lang: "zh",
        weight: 2.0,
        travel_weight: 2.0,
        fixed: &[net(4760, 112)],
        mobile: &[net(9231, 223)],
        cities: &[(22.32, 114.17)],
    },
    Country {
        code: "NG",
        utc_offset_min: 60,
        lang: "en",
        weight: 3.0,
        travel_weight: 0.5,
        fixed: &[net(37148, 105)],
        mobile: &[net(29465, 102)],
        cities: &[(6.52, 3.38), (9.08, 7.40)],
    },
    Country {
        code: "ID",
        utc_offset_min: 420,
        lang: "id",
        weight: 5.0,
        travel_weight: 3.0,
        fixed: &[net(7713, 36)],
        mobile: &[net(23693, 114)],
        cities: &[(-6.21, 106.85), (-8.65, 115.22)],
    },
    Country {
        code: "TR",
        utc_offset_min: 180,
        lang: "tr",
        weight: 3.0,
        travel_weight: 3.0,
        fixed: &[net(9121, 78)],
        mobile: &[net(16135, 188)],
        cities: &[(41.01, 28.98), (39.93, 32.86)],
    },
    Country {
        code: "CA",
        utc_offset_min: -300,
        lang: "en",
        weight: 3.0,
        travel_weight: 3.0,
        fixed: &[net(812, 99)],
        mobile: &[net(577, 142)],
        cities: &[(43.65, -79.38), (49.28, -123.12)],
    },
    Country {
        code: "AU",
        utc_offset_min: 600,
        lang: "en",
        weight: 3.0,
        travel_weight: 2.0,
        fixed: &[net(1221, 110)],
        mobile: &[net(4804, 1)],
        cities: &[(-33.87, 151.21), (-37.81, 144.96)],
    },
    Country {
        code: "NL",
        utc_offset_min: 60,
        lang: "nl",
        weight: 0.0,
        travel_weight: 4.0,
        fixed: &[net(1136, 77)],
        mobile: &[net(33915, 31)],
        cities: &[(52.37, 4.90)],
    },
    Country {
        code: "RU",
        utc_offset_min: 180,
        lang: "ru",
        weight: 0.0,
        travel_weight: 0.3,
        fixed: &[net(12389, 95)],
        mobile: &[net(8359, 83)],
        cities: &[(55.76, 37.62)],
    },
    Country {
        code: "VN",
        utc_offset_min: 420,
        lang: "vi",
        weight: 0.0,
        travel_weight: 1.0,
        fixed: &[net(7552, 27)],
        mobile: &[net(45899, 113)],
        cities: &[(21.03, 105.85)],
    },
];

/// Networks attackers act from: hosting providers and proxies, with the
/// country each is in (an index into [`COUNTRIES`]).
pub const HOSTING: &[(Network, u8)] = &[
    (net(14061, 167), 0),  // DigitalOcean, US
    (net(16276, 51), 3),   // OVH, FR
    (net(24940, 116), 2),  // Hetzner, DE
    (net(60781, 185), 17), // LeaseWeb, NL
    (net(9009, 89), 1),    // M247, GB
    (net(20473, 45), 0),   // Choopa, US
    (net(12389, 188), 18), // Rostelecom, RU
    (net(7552, 14), 19),   // Viettel, VN
];

/// A client application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// The iOS app.
    Ios,
    /// The Android app.
    Android,
    /// The website.
    Web,
    /// A scripting kit talking to the API.
    AutomationKit,
}

impl Client {
    /// The value written in `client`.
    pub fn name(self) -> &'static str {
        match self {
            Client::Ios => "ios",
            Client::Android => "android",
            Client::Web => "web",
            Client::AutomationKit => "automation-kit",
        }
    }
}

/// Local-time activity by hour of day (relative weights): quiet at night,
/// peaks at lunch and in the evening.
pub const DIURNAL: [f64; 24] = [
    0.6, 0.35, 0.2, 0.12, 0.1, 0.15, 0.4, 0.9, 1.2, 1.1, 1.0, 1.1, 1.4, 1.3, 1.1, 1.1, 1.2, 1.4, 1.7, 2.0, 2.2, 2.1,
    1.7, 1.1,
];

/// Syllables handles are made of.
pub const SYLLABLES: &[&str] = &[
    "ka", "mi", "ro", "lu", "zen", "ta", "vi", "no", "sa", "rei", "jo", "an", "el", "mar", "ko", "li", "da", "fe",
    "gu", "ho", "ni", "pa", "qi", "ra", "su", "to", "ul", "ve", "wi", "xo", "ya", "zu", "bo", "ce", "di", "fa",
];
