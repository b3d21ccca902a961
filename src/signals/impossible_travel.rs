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

use super::{BindCache, Ev, Outcome};
use crate::data::schema::{TableKind, ev};
use crate::data::{AccountSpan, Dataset};
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{HOUR, Millis, format_rfc3339, human_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("context");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Speed above which travel is impossible, km/h.
    pub max_speed_kmh: f64,
    /// Distances below this never count, km.
    pub min_distance_km: f64,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        Params {
            max_speed_kmh: r.num_in(ctx, "max_speed_kmh", 1.0, 1e6, 1000.0),
            min_distance_km: r.num_in(ctx, "min_distance_km", 0.0, 20_100.0, 500.0),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("max_speed_kmh", self.max_speed_kmh.to_string()), ("min_distance_km", self.min_distance_km.to_string())]
    }

    pub(crate) fn state_key(&self) -> String {
        String::new()
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![
            (TableKind::Events, "lat".into()),
            (TableKind::Events, "lon".into()),
            (TableKind::Events, "country".into()),
        ]
    }
}

/// Great-circle distance in km between two (lat, lon) points in degrees.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
}

/// Per-account state: the last located event.
#[derive(Debug, Default)]
pub struct State {
    last: Option<(Millis, f64, f64, usize)>,
}

fn location(e: &Ev<'_>) -> Option<(f64, f64)> {
    let lat = e.data.events.num(ev::LAT, e.i)?;
    let lon = e.data.events.num(ev::LON, e.i)?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

impl Bound {
    pub(crate) fn new(p: &Params, _data: &Dataset, _cache: &mut BindCache) -> Bound {
        Bound { params: p.clone() }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.last = None;
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        if let Some((lat, lon)) = location(e) {
            s.last = Some((e.ts, lat, lon, e.i));
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let Some(here) = location(e) else { return Outcome::Abstain };
        let Some((then, lat, lon, i)) = s.last else { return Outcome::Abstain };
        let km = haversine_km((lat, lon), here);
        if km < self.params.min_distance_km {
            return Outcome::Quiet;
        }
        let hours = ((e.ts - then) as f64 / HOUR as f64).max(1.0 / 60.0);
        let speed = km / hours;
        if speed <= self.params.max_speed_kmh {
            return Outcome::Quiet;
        }
        let place =
            |i: usize| e.data.events.sym(ev::COUNTRY, i).map_or(String::new(), |c| format!(" in {}", e.text(c)));
        Outcome::Fire {
            strength: 1.0 - self.params.max_speed_kmh / speed,
            why: format!(
                "{km:.0} km from the previous located event{} at {} ({} earlier){}: {speed:.0} km/h, above {} km/h",
                place(i),
                format_rfc3339(then),
                human_duration(e.ts - then),
                place(e.i),
                self.params.max_speed_kmh
            ),
        }
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
