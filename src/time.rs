//! Timestamps and durations.
//!
//! Every time in changeling is an `i64` of milliseconds since the Unix epoch,
//! UTC. This module parses the two forms the data contract allows (RFC 3339
//! with any offset, or integer epoch milliseconds), formats times back as
//! RFC 3339 in UTC, and parses the human durations rules use (`"90s"`,
//! `"10m"`, `"1h30m"`, `"180d"`).
//!
//! **Bounded by construction.** Every time that enters from data is checked
//! at the border ([`check_time`]) to lie in [`MIN_TIME`, `MAX_TIME`]
//! (1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z), and every duration a
//! rule gives is checked at load ([`parse_duration`]) to be at most
//! [`MAX_DURATION`] (ten years). A time plus or minus a few durations
//! therefore stays far inside `i64` (see the assertion below), so the
//! scorer's time arithmetic cannot overflow, and every time it prints is
//! valid RFC 3339 with a four-digit year.
//!
//! It is hand-written rather than taken from `chrono`/`jiff` because the
//! reader calls it once per record on the hot path and only needs this one
//! grammar; it does not know about time zones by name, leap seconds or
//! calendars other than the proleptic Gregorian one.

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// One second, in milliseconds.
pub const SECOND: Millis = 1_000;
/// One minute, in milliseconds.
pub const MINUTE: Millis = 60 * SECOND;
/// One hour, in milliseconds.
pub const HOUR: Millis = 60 * MINUTE;
/// One day, in milliseconds.
pub const DAY: Millis = 24 * HOUR;

/// The time now, by the system clock (for messages, never for scoring).
pub fn now_millis() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// The UTC day of `t`: days since 1970-01-01 (negative before).
#[inline]
pub fn day_of(t: Millis) -> i64 {
    t.div_euclid(DAY)
}

/// Whole days covering `window` (at least one): the days a fact kept by day
/// reads for a window of that length.
pub fn days_covering(window: Millis) -> u32 {
    u32::try_from(window.div_euclid(DAY) + i64::from(window.rem_euclid(DAY) > 0)).unwrap_or(u32::MAX).max(1)
}

/// The earliest time a record may carry: 1970-01-01T00:00:00Z. Earlier
/// times (negative epoch milliseconds) in an activity log are a placeholder
/// or a unit mistake, not an event.
pub const MIN_TIME: Millis = 0;
/// The latest time a record may carry: 9999-12-31T23:59:59.999Z, the last
/// instant RFC 3339 can write. Epoch microseconds or nanoseconds given
/// where milliseconds are expected land far beyond it.
pub const MAX_TIME: Millis = 253_402_300_799_999;
/// The longest duration a rule or the configuration may give: ten years
/// (3650 days). Longer ones are typos (`"15250284452w"`), and bounding them
/// keeps time arithmetic in range.
pub const MAX_DURATION: Millis = 3650 * DAY;

// Differences of two times, and a time plus or minus a sum of up to a
// thousand durations, stay inside `i64`: the scorer's arithmetic on checked
// times and durations cannot overflow.
const _: () = assert!(MAX_TIME - MIN_TIME + 1000 * MAX_DURATION < i64::MAX / 2);
const _: () = assert!(MIN_TIME - MAX_TIME - 1000 * MAX_DURATION > i64::MIN / 2);

/// The unit of numeric times in the data (`--time-unit`): epoch
/// milliseconds unless told otherwise (the data contract).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds (the default).
    #[default]
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// Every unit, as `--time-unit` names them.
    pub const ALL: [TimeUnit; 4] = [TimeUnit::S, TimeUnit::Ms, TimeUnit::Us, TimeUnit::Ns];

    /// The name `--time-unit` takes: `s`, `ms`, `us`, `ns`.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::S => "s",
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "us",
            TimeUnit::Ns => "ns",
        }
    }

    /// The unit of a name, if it is one.
    pub fn parse(name: &str) -> Option<TimeUnit> {
        TimeUnit::ALL.into_iter().find(|u| u.name() == name)
    }

    /// In words, plural: `seconds`, `milliseconds`, ...
    pub fn plural(self) -> &'static str {
        match self {
            TimeUnit::S => "seconds",
            TimeUnit::Ms => "milliseconds",
            TimeUnit::Us => "microseconds",
            TimeUnit::Ns => "nanoseconds",
        }
    }

    /// `n` of this unit in milliseconds (rounded down; in i128, where no
    /// unit can overflow), to be checked with [`check_time`].
    pub fn to_millis(self, n: i128) -> i128 {
        match self {
            TimeUnit::S => n.saturating_mul(1000),
            TimeUnit::Ms => n,
            TimeUnit::Us => n.div_euclid(1000),
            TimeUnit::Ns => n.div_euclid(1_000_000),
        }
    }
}

/// The first time after 1970: numeric times read as milliseconds that fall
/// before it are epoch seconds, almost surely (1.6e9 seconds is January
/// 1970 in milliseconds), and a log of 1970 is no activity log.
pub const END_OF_1970: Millis = 365 * DAY;

/// Checks that `ms` lies in [`MIN_TIME`, `MAX_TIME`]; the error (to follow
/// "`<value>` is ") says the range, and suggests the unit mistake when one fits (seconds, microseconds
/// or nanoseconds where milliseconds are expected).
pub fn check_time(ms: i128) -> Result<Millis, String> {
    if (i128::from(MIN_TIME)..=i128::from(MAX_TIME)).contains(&ms) {
        return Ok(ms as Millis);
    }
    let in_range = |x: i128| (i128::from(MIN_TIME)..=i128::from(MAX_TIME)).contains(&x);
    let hint = if ms > 0 && in_range(ms / 1_000) && ms / 1_000 >= 946_684_800_000 {
        " (epoch microseconds? numbers are read as epoch milliseconds unless told: pass --time-unit us)"
    } else if ms > 0 && in_range(ms / 1_000_000) && ms / 1_000_000 >= 946_684_800_000 {
        " (epoch nanoseconds? numbers are read as epoch milliseconds unless told: pass --time-unit ns)"
    } else {
        ""
    };
    Err(format!("outside 1970-01-01T00:00:00Z..=9999-12-31T23:59:59.999Z{hint}"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses an RFC 3339 timestamp such as `2020-09-09T14:03:00Z` or
/// `2020-09-09T16:03:00.250+02:00` into UTC milliseconds.
///
/// Accepts `t`/`T`/space between date and time and `z`/`Z`, and, beyond
/// RFC 3339, the offsets `+0200` and `+02`, and no offset at all (read as UTC, as Spark and DuckDB write
/// timestamps without a time zone); fractional
/// seconds beyond milliseconds are truncated. Returns `None` for anything
/// else, including out-of-range fields (month 13, Feb 30, hour 24).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(b, 0, 4)?);
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        let n = at - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    // No offset at all: read as UTC, as Spark and DuckDB write timestamps
    // without a time zone (an extension of RFC 3339, which requires one).
    if at == b.len() {
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        return Some(secs * 1000 + millis);
    }
    let offset_minutes: i64 = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        // `+02:00`, and beyond RFC 3339 the ISO 8601 forms `+0200` and
        // `+02` that PostgreSQL and DuckDB write.
        sign @ (b'+' | b'-') if matches!(b.len() - at, 3 | 5 | 6) => {
            let h = i64::from(digits(b, at + 1, 2)?);
            let m = match b.len() - at {
                3 => 0,
                5 => i64::from(digits(b, at + 3, 2)?),
                _ if b[at + 3] == b':' => i64::from(digits(b, at + 4, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some((secs - offset_minutes * 60) * 1000 + millis)
}

/// Parses a timestamp in either contract form: RFC 3339 text, or an integer
/// of epoch milliseconds (optionally as text, as CSV cells are). `None`
/// when it is neither, or outside [`MIN_TIME`, `MAX_TIME`]; see
/// [`parse_timestamp_checked`] for the reason.
pub fn parse_timestamp(s: &str) -> Option<Millis> {
    parse_timestamp_checked(s).ok()
}

/// As [`parse_timestamp`], with the reason a text is not a time in range.
pub fn parse_timestamp_checked(s: &str) -> Result<Millis, String> {
    parse_timestamp_in(s, TimeUnit::Ms)
}

/// As [`parse_timestamp_checked`], with a number taken in `unit`.
pub fn parse_timestamp_in(s: &str, unit: TimeUnit) -> Result<Millis, String> {
    let not_time = || format!("`{s}` is not an RFC 3339 timestamp or epoch {}", unit.plural());
    let t = s.trim();
    if t.is_empty() {
        return Err(not_time());
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        // Any run of digits is a number of the unit; one too long for
        // i128 is out of range all the same.
        let n = t.parse::<i128>().unwrap_or(if t.starts_with('-') { i128::MIN } else { i128::MAX });
        return check_time(unit.to_millis(n)).map_err(|why| format!("`{t}` is {why}"));
    }
    let ms = parse_rfc3339(t).ok_or_else(not_time)?;
    check_time(i128::from(ms)).map_err(|why| format!("`{t}` is {why}"))
}

/// Appends `ms` as RFC 3339 in UTC: `2020-09-09T14:03:00Z`, with `.mmm` only
/// when the time has a millisecond part.
pub fn write_rfc3339(out: &mut String, ms: Millis) {
    use std::fmt::Write;
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod % 3600 / 60, sod % 60);
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
    out.push('Z');
}

/// `ms` as an RFC 3339 string in UTC.
pub fn format_rfc3339(ms: Millis) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339(&mut s, ms);
    s
}

/// Parses a duration: one or more `<integer><unit>` terms, units `ms`, `s`,
/// `m`, `h`, `d`, `w` or their words (`min`, `minutes`, `hours`, `days`,
/// ...), spaces allowed between terms (e.g. `"90s"`, `"1h30m"`,
/// `"10 minutes"`, `"180d"`). A bare `0` is also accepted. A duration longer
/// than [`MAX_DURATION`] (ten years) is an error. The error says what was
/// wrong, for a diagnostic.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let b = t.as_bytes();
    let mut total: i64 = 0;
    let mut at = 0;
    while at < b.len() {
        while at < b.len() && b[at] == b' ' {
            at += 1;
        }
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        if start == at {
            return Err(format!("expected a number at `{}`", &t[start..]));
        }
        let n: i64 = t[start..at]
            .parse()
            .map_err(|_| format!("longer than the maximum of {} (ten years)", compact_duration(MAX_DURATION)))?;
        while at < b.len() && b[at] == b' ' {
            at += 1;
        }
        let ustart = at;
        while at < b.len() && b[at].is_ascii_alphabetic() {
            at += 1;
        }
        let unit = match t[ustart..at].to_ascii_lowercase().as_str() {
            "ms" | "millis" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
            "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
            "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
            "d" | "day" | "days" => DAY,
            "w" | "week" | "weeks" => 7 * DAY,
            "" => return Err(format!("`{n}` has no unit (use ms, s, m, h, d or w)")),
            other => return Err(format!("unknown unit `{other}` (use ms, s, m, h, d or w)")),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|&v| v <= MAX_DURATION)
            .ok_or_else(|| format!("longer than the maximum of {} (ten years)", compact_duration(MAX_DURATION)))?;
    }
    Ok(total)
}

/// A duration for people: `4 s`, `12 min`, `1 h 04 min`, `3 d 2 h`.
pub fn human_duration(ms: Millis) -> String {
    let ms = ms.max(0);
    if ms < SECOND {
        return format!("{ms} ms");
    }
    let s = ms / SECOND;
    if s < 60 {
        return format!("{s} s");
    }
    if s < 3600 {
        let (m, r) = (s / 60, s % 60);
        return if r == 0 { format!("{m} min") } else { format!("{m} min {r:02} s") };
    }
    if s < 86_400 {
        let (h, m) = (s / 3600, s % 3600 / 60);
        return if m == 0 { format!("{h} h") } else { format!("{h} h {m:02} min") };
    }
    let (d, h) = (s / 86_400, s % 86_400 / 3600);
    if h == 0 { format!("{d} d") } else { format!("{d} d {h} h") }
}

/// A duration as the shortest exact string `parse_duration` reads back
/// (`"10m"`, `"48h"`, `"1h30m"`), for `explain-plan`.
pub fn compact_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s"), (1, "ms")] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2020-09-09T14:03:00Z"), Some(1_599_660_180_000));
        assert_eq!(parse_rfc3339("2020-09-09T16:03:00+02:00"), Some(1_599_660_180_000));
        assert_eq!(parse_rfc3339("2020-09-09T09:03:00.5-05:00"), Some(1_599_660_180_500));
        assert_eq!(parse_rfc3339("2020-09-09 14:03:00.123456z"), Some(1_599_660_180_123));
        // Without an offset (as Spark and DuckDB write them): UTC.
        assert_eq!(parse_rfc3339("2020-09-09 14:03:00"), Some(1_599_660_180_000));
        assert_eq!(parse_rfc3339("2020-09-09 16:03:00+02"), Some(1_599_660_180_000));
        assert_eq!(parse_rfc3339("2020-09-09 16:03:00+0200"), Some(1_599_660_180_000));
        assert_eq!(parse_rfc3339("2020-09-09T14:03:00.5"), Some(1_599_660_180_500));
    }

    #[test]
    fn rejects_malformed_and_out_of_range() {
        for bad in [
            "",
            "2020-09-09",
            "2020-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2020-09-09T24:00:00Z",
            "2020-09-09T14:03:00+020",
            "2020-09-09T14:03:00.Z",
            "2020-09-09T14:03:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2020-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn timestamp_accepts_epoch_millis() {
        assert_eq!(parse_timestamp("1599660180000"), Some(1_599_660_180_000));
        assert_eq!(parse_timestamp(" 0 "), Some(0));
        assert_eq!(parse_timestamp("-1000"), None);
        assert_eq!(parse_timestamp("-9223372036854775808"), None);
        assert_eq!(parse_timestamp("99999999999999999999999999999999999999999"), None);
        assert_eq!(parse_timestamp("253402300799999"), Some(MAX_TIME));
        assert_eq!(parse_timestamp("253402300800000"), None);
        assert_eq!(parse_timestamp("0000-01-01T00:00:00Z"), None);
        assert!(parse_timestamp_checked("1599660180000000").unwrap_err().contains("microseconds"));
        assert!(parse_timestamp_checked("1599660180000000000").unwrap_err().contains("nanoseconds"));
        assert_eq!(parse_timestamp("12ab"), None);
        assert_eq!(parse_timestamp("2020-09-09T14:03:00Z"), Some(1_599_660_180_000));
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_599_660_180_000, 1_599_660_180_123, -86_400_000, 951_782_400_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(format_rfc3339(1_599_660_180_000), "2020-09-09T14:03:00Z");
        assert_eq!(format_rfc3339(1_599_660_180_007), "2020-09-09T14:03:00.007Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90 * SECOND));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MINUTE));
        assert_eq!(parse_duration("180d"), Ok(180 * DAY));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
        assert_eq!(parse_duration("10 minutes"), Ok(10 * MINUTE));
        assert_eq!(parse_duration("1 h 30 m"), Ok(90 * MINUTE));
        assert_eq!(compact_duration(90 * MINUTE), "1h30m");
        assert_eq!(parse_duration(&compact_duration(3 * DAY + 5 * SECOND)), Ok(3 * DAY + 5 * SECOND));
        assert_eq!(human_duration(64 * MINUTE), "1 h 04 min");
        assert_eq!(human_duration(4 * SECOND), "4 s");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
        assert!(parse_duration("3650d1ms").unwrap_err().contains("maximum"));
        assert!(parse_duration("15250284452w").unwrap_err().contains("maximum"));
        assert!(parse_duration("99999999999999999999999d").unwrap_err().contains("maximum"));
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_round_trips(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            proptest::prop_assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }

        #[test]
        fn durations_round_trip(ms in 0i64..=MAX_DURATION) {
            proptest::prop_assert_eq!(parse_duration(&compact_duration(ms)), Ok(ms));
        }
    }
}
