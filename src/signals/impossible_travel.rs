//! `impossible_travel`: two consecutive located events of the account too
//! far apart for the time between them.
//!
//! **What it detects.** The account's previous event with a location
//! (`lat`, `lon`) was `d` km away and `t` earlier, and `d / t` exceeds
//! `max_speed_kmh` (default 1000 km/h, faster than an airliner's average
//! door to door), with `d` at least `min_distance_km` (default 500 km, so
//! that coarse geolocation of nearby places does not count).
//!
//! **Why it suggests compromise.** The owner in Beijing at 09:00 and a
//! session in São Paulo at 10:30 cannot both be the owner.
//!
//! **How.** Great-circle (haversine) distance on a 6371 km sphere. The
//! strength grows with the implied speed: `1 - max_speed / speed`. Events
//! without a location are skipped; with no earlier located event it
//! abstains.
//!
//! ```toml
//! [[signal]]
//! kind = "impossible_travel"
//! max_speed_kmh = 1000
//! ```
//!
//! **Known false positives.** VPNs and corporate proxies that exit far
//! away, and geolocation databases that place mobile networks in their
//! operator's headquarters.

use super::spec::{Default as D, Param, ParamReader, Ty, opt};
use super::{Ev, Needs, Outcome, Signal, Universe};
use crate::data::schema::{TableKind, ev};
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{HOUR, Millis, format_rfc3339, human_duration};

/// The kind.
pub struct ImpossibleTravel;

/// The parameters.
pub const PARAMS: &[Param] = &[
    opt(
        "max_speed_kmh",
        Ty::Number { min: 1.0, max: 1e6 },
        D::Number(1000.0),
        "speed above which travel is impossible, km/h",
    ),
    opt(
        "min_distance_km",
        Ty::Number { min: 0.0, max: 20_100.0 },
        D::Number(500.0),
        "distances below this never count, km",
    ),
];

/// The per-account state (the last located event) depends on no parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key;

/// The parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// Speed above which travel is impossible, km/h.
    pub max_speed_kmh: f64,
    /// Distances below this never count, km.
    pub min_distance_km: f64,
}

/// Great-circle distance in km between two (lat, lon) points in degrees.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker;

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
}

/// Per-account state: the last located event.
#[derive(Debug, Default)]
pub struct State {
    last: Option<(Millis, f64, f64, Option<Sym>)>,
}

fn location(e: &Ev<'_>) -> Option<(f64, f64)> {
    let lat = e.data.events.num(ev::LAT, e.i)?;
    let lon = e.data.events.num(ev::LON, e.i)?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

impl Signal for ImpossibleTravel {
    const NAME: &'static str = "impossible_travel";
    const FAMILY: Option<&'static str> = Some("context");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = ();
    type Later = ();

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        (Key, Opts { max_speed_kmh: r.number("max_speed_kmh"), min_distance_km: r.number("min_distance_km") })
    }

    fn needs(_key: &Key, _opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["lat", "lon", "country"]);
        n
    }

    fn tracker(_key: &Key, _u: &Universe<'_>) -> Tracker {
        Tracker
    }

    fn judge(_key: &Key, opts: &Opts, _u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone() }
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.last = None;
    }

    fn save(_t: &Tracker, s: &State, _now: Millis, w: &mut Enc<'_>) {
        w.bool(s.last.is_some());
        if let Some((at, lat, lon, country)) = s.last {
            w.time(at);
            w.f64(lat);
            w.f64(lon);
            w.opt_sym(country);
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        if r.bool()? {
            s.last = Some((r.time()?, r.f64()?, r.f64()?, r.opt_sym()?));
        }
        Ok(())
    }

    fn observe(_t: &Tracker, s: &mut State, e: &Ev<'_>) {
        if let Some((lat, lon)) = location(e) {
            s.last = Some((e.ts, lat, lon, e.data.events.sym(ev::COUNTRY, e.i)));
        }
    }

    fn eval(j: &Judge, _t: &Tracker, s: &State, _scratch: &mut (), e: &Ev<'_>) -> Outcome {
        let o = &j.opts;
        let Some(here) = location(e) else { return Outcome::Abstain };
        let Some((then, lat, lon, country)) = s.last else { return Outcome::Abstain };
        let km = haversine_km((lat, lon), here);
        if km < o.min_distance_km {
            return Outcome::Quiet;
        }
        let hours = (e.ts.saturating_sub(then) as f64 / HOUR as f64).max(1.0 / 60.0);
        let speed = km / hours;
        if speed <= o.max_speed_kmh {
            return Outcome::Quiet;
        }
        let place = |c: Option<Sym>| c.map_or(String::new(), |c| format!(" in {}", e.text(c)));
        Outcome::fire(e, 1.0 - o.max_speed_kmh / speed, || {
            format!(
                "{km:.0} km from the previous located event{} at {} ({} earlier){}: {speed:.0} km/h, above {} km/h",
                place(country),
                format_rfc3339(then),
                human_duration(e.ts.saturating_sub(then)),
                place(e.data.events.sym(ev::COUNTRY, e.i)),
                o.max_speed_kmh
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::haversine_km;

    #[test]
    fn distances() {
        let beijing = (39.9042, 116.4074);
        let london = (51.5074, -0.1278);
        let d = haversine_km(beijing, london);
        assert!((d - 8140.0).abs() < 30.0, "{d}");
        assert!(haversine_km(london, london) < 1e-9);
    }
}
