//! Exceptions: what an analyst has cleared, kept from coming back.
//!
//! An exceptions file (`--exceptions FILE`, repeatable; else the files
//! listed in `CHANGELING_EXCEPTIONS`, a list like `PATH`) holds
//! `[[exception]]` tables, each naming one thing (an account, a device, an
//! IP range, an ASN, an item or an author), optionally the rules it covers
//! (ids, `*` globs or tags), why, and when it expires:
//!
//! ```toml
//! [[exception]]
//! actor = "u123"            # or device, ip (CIDR), asn, item, author
//! rules = ["likes/*"]       # optional: rule ids or globs, or tags
//! reason = "cleared after review, case 881"
//! expires = "2027-01-01"
//! ```
//!
//! Files are read like rule files: strict keys, every error of every file
//! at `file:line:col` with a code. An exception that has expired by the
//! clock is a warning (W105); it still covers the hits before it expired,
//! so that a run over old data gives the same alerts whatever the day it
//! runs on (the expiry is compared with each hit's time, never the clock).
//!
//! Applied when scoring ([`Bound::retain`]): a rule's hit on an event the
//! exception matches is dropped before hits are grouped into incidents, and
//! counted for the exception. What a hit's verdict reads of earlier hits
//! (`after_hit`) still sees it: an exception hides alerts, it does not
//! change the evidence. Counts are sums over accounts, the same for any
//! thread count.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::alerts::RuleInfo;
use crate::data::Dataset;
use crate::data::schema::ev;
use crate::rules::diag::{self, Code, Diagnostics, Source};
use crate::rules::reader::{Ctx, TableReader};
use crate::score::Hit;
use crate::time::{Millis, format_rfc3339};

/// The environment variable that lists exceptions files when no
/// `--exceptions` is given (separated like `PATH`).
pub const ENV: &str = "CHANGELING_EXCEPTIONS";

/// What an exception matches, on the event a hit is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum On {
    /// The account that acted.
    Actor(String),
    /// The event's `device`.
    Device(String),
    /// The event's `ip`, within a network.
    Ip(Cidr),
    /// The event's `asn`.
    Asn(String),
    /// The event's target item.
    Item(String),
    /// The author of the event's target (`target_author`, else the item's).
    Author(String),
}

impl On {
    /// The key and the value, as the file writes them.
    pub fn describe(&self) -> String {
        match self {
            On::Actor(v) => format!("actor {v}"),
            On::Device(v) => format!("device {v}"),
            On::Ip(c) => format!("ip {c}"),
            On::Asn(v) => format!("asn {v}"),
            On::Item(v) => format!("item {v}"),
            On::Author(v) => format!("author {v}"),
        }
    }
}

/// An IP network: an address and a prefix length (`10.1.0.0/16`,
/// `2001:db8::/32`; an address alone is the one address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, an IPv6 network, or one address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` (text from the data) is in the network.
    pub fn contains(&self, ip: &str) -> bool {
        let Ok(ip) = ip.trim().parse::<IpAddr>() else { return false };
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let prefix = u32::from(self.prefix);
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        // IPv4 sits in the top 32 bits, so a /n of it is a /n of the u128.
        bits(ip) & mask == bits(self.addr) & mask
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One exception, as read.
#[derive(Clone, Debug)]
pub struct Exception {
    /// Where it is defined, `file:line`: how summaries and `explain` name it.
    pub name: String,
    /// What it matches.
    pub on: On,
    /// The rules it covers: ids, `*` globs or tags (empty: every rule).
    pub rules: Vec<String>,
    /// Why it was made.
    pub reason: String,
    /// Hits at or after this time are not covered.
    pub expires: Option<Millis>,
}

/// The keys that name what an exception matches.
const ON_KEYS: [&str; 6] = ["actor", "device", "ip", "asn", "item", "author"];

/// Reads exceptions from the files `paths`, in order. Every problem is a
/// diagnostic; `None` when there is an error.
pub fn load(paths: &[PathBuf], now: Millis) -> (Option<Vec<Exception>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut out = Vec::new();
    for p in paths {
        let Some(src) = crate::rules::read_source(p, &mut diags) else { continue };
        out.extend(read(&src, now, &mut diags));
    }
    let ok = !diags.has_errors();
    (ok.then_some(out), diags)
}

/// Why the exceptions a run was given cannot be applied.
#[derive(Debug)]
pub enum GivenError {
    /// A file that does not exist: the message names it and where it was
    /// given.
    Missing(String),
    /// Files with errors: their diagnostics (file, line, column).
    Invalid(Diagnostics),
    /// Exceptions naming rules the plan does not have.
    Unbound(String),
}

/// The exceptions files `given` (none: those of $CHANGELING_EXCEPTIONS,
/// given as `flag` names them otherwise) read and bound to the rules
/// `info`, with the files' diagnostics (warnings, such as an exception
/// that expired); `Ok(None)` when there are none.
pub fn given(
    given: &[PathBuf],
    flag: &str,
    info: &[RuleInfo],
    now: Millis,
) -> Result<Option<(Bound, Diagnostics)>, GivenError> {
    let paths = paths(given);
    if paths.is_empty() {
        return Ok(None);
    }
    if let Some(p) = paths.iter().find(|p| !p.is_file()) {
        let from = if given.is_empty() { format!("${ENV}") } else { flag.to_string() };
        return Err(GivenError::Missing(format!(
            "exceptions file {} does not exist (from {from}); give a TOML file of [[exception]] tables",
            p.display()
        )));
    }
    let (read, diags) = load(&paths, now);
    let Some(read) = read else { return Err(GivenError::Invalid(diags)) };
    let bound = Bound::new(read, info).map_err(GivenError::Unbound)?;
    Ok(Some((bound, diags)))
}

/// Reads the exceptions of one file's text (for rule test cases, which
/// carry them inline).
pub fn read(src: &Arc<Source>, now: Millis, diags: &mut Diagnostics) -> Vec<Exception> {
    let Some(root) = crate::rules::parse(src, diags) else { return Vec::new() };
    let lists = Default::default();
    let mut ctx = Ctx { source: src, diags, lists: &lists };
    let mut top = TableReader::new(root.get_ref(), root.span(), "exceptions file");
    let tables = top.tables(&mut ctx, "exception", "exception");
    top.finish(&mut ctx);
    let mut out = Vec::new();
    for t in tables {
        if let Some(e) = read_one(t, &mut ctx, now) {
            out.push(e);
        }
    }
    out
}

fn read_one(mut t: TableReader<'_, '_>, ctx: &mut Ctx<'_>, now: Millis) -> Option<Exception> {
    let span = t.span.clone();
    let mut on: Vec<(&str, crate::rules::reader::Sp<String>)> = Vec::new();
    for key in ON_KEYS {
        if let Some(v) = t.str(ctx, key) {
            on.push((key, v));
        }
    }
    let rules = t.str_list(ctx, "rules").map(|l| l.value.into_iter().map(|s| s.value).collect()).unwrap_or_default();
    let reason = t.req_str(ctx, "reason");
    let expires = t.str(ctx, "expires").and_then(|e| {
        let at = crate::time::parse_timestamp(&e.value)
            .or_else(|| crate::time::parse_timestamp(&format!("{}T00:00:00Z", e.value)));
        match at {
            None => {
                ctx.report(
                    Code::BadValue,
                    e.span.clone(),
                    format!("`{}` is not a date (2027-01-01) or an RFC 3339 time", e.value),
                );
                None
            }
            Some(at) => {
                if at <= now {
                    ctx.report(
                        Code::ExpiredException,
                        e.span.clone(),
                        format!(
                            "this exception expired on {}: it covers only hits before then; renew or remove it",
                            format_rfc3339(at)
                        ),
                    );
                }
                Some(at)
            }
        }
    });
    t.finish(ctx);
    let (key, value) = match on.len() {
        1 => on.pop().expect("one"),
        0 => {
            ctx.report(
                Code::MissingKey,
                span,
                "an exception needs what it matches: one of `actor`, `device`, `ip`, `asn`, `item`, `author`",
            );
            return None;
        }
        _ => {
            let names: Vec<&str> = on.iter().map(|(k, _)| *k).collect();
            ctx.report(
                Code::Inconsistent,
                on[1].1.span.clone(),
                format!(
                    "an exception matches one thing; this one gives {}: write one exception each",
                    names.join(", ")
                ),
            );
            return None;
        }
    };
    let on = match key {
        "actor" => On::Actor(value.value),
        "device" => On::Device(value.value),
        "asn" => On::Asn(value.value),
        "item" => On::Item(value.value),
        "author" => On::Author(value.value),
        _ => match Cidr::parse(&value.value) {
            Ok(c) => On::Ip(c),
            Err(why) => {
                ctx.report(Code::BadValue, value.span, why);
                return None;
            }
        },
    };
    let (line, _) = ctx.source.line_col(span.start);
    Some(Exception { name: format!("{}:{line}", ctx.source.path.display()), on, rules, reason: reason?.value, expires })
}

/// The exceptions files of `args`, else of [`ENV`], else none.
pub fn paths(args: &[PathBuf]) -> Vec<PathBuf> {
    if !args.is_empty() {
        return args.to_vec();
    }
    std::env::var_os(ENV).filter(|v| !v.is_empty()).map(|v| std::env::split_paths(&v).collect()).unwrap_or_default()
}

/// One exception bound to a plan: the rules it covers, by plan index, and
/// its count.
#[derive(Debug)]
pub struct BoundException {
    /// As read.
    pub exception: Exception,
    /// Per rule of the plan: covered.
    covers: Vec<bool>,
    /// Hits suppressed so far.
    suppressed: AtomicU64,
}

/// Exceptions bound to a plan, counting what they suppress.
#[derive(Debug, Default)]
pub struct Bound {
    /// In file order.
    pub items: Vec<BoundException>,
}

/// What an exception suppressed in a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Suppressed {
    /// `file:line`.
    pub exception: String,
    /// What it matches (`actor u123`).
    pub on: String,
    /// The rules it covers (empty: all).
    pub rules: Vec<String>,
    /// Why.
    pub reason: String,
    /// When it expires.
    pub expires: Option<String>,
    /// Hits suppressed.
    pub hits: u64,
}

impl Bound {
    /// Binds `exceptions` to the rules of a plan (`info`, in plan order).
    /// A `rules` entry that matches no rule id and no tag is an error
    /// naming the exception.
    pub fn new(exceptions: Vec<Exception>, info: &[RuleInfo]) -> Result<Bound, String> {
        let mut items = Vec::new();
        for e in exceptions {
            for p in &e.rules {
                if !info.iter().any(|r| covers(p, r)) {
                    let ids = info.iter().map(|r| r.id.as_str());
                    let hint = diag::did_you_mean(p, ids).map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                    return Err(format!(
                        "exception at {}: `{p}` in `rules` matches no rule id and no tag{hint}",
                        e.name
                    ));
                }
            }
            let covers = info.iter().map(|r| e.rules.is_empty() || e.rules.iter().any(|p| covers(p, r))).collect();
            items.push(BoundException { exception: e, covers, suppressed: AtomicU64::new(0) });
        }
        Ok(Bound { items })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The event columns the exceptions read, beyond those alerts need.
    pub fn reads(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .items
            .iter()
            .filter_map(|b| match b.exception.on {
                On::Device(_) => Some("device"),
                On::Ip(_) => Some("ip"),
                On::Asn(_) => Some("asn"),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The first exception that covers `hit` (on an event of `data`).
    pub fn covering(&self, hit: &Hit, data: &Dataset) -> Option<&BoundException> {
        self.items.iter().find(|b| b.covers_hit(hit, data))
    }

    /// Drops the hits an exception covers, counting each for the first
    /// exception that covers it. `beside` runs beside `hits` (as the daily
    /// run's record indices do) and is kept in step.
    pub fn retain<T>(&self, hits: &mut Vec<Hit>, beside: Option<&mut Vec<T>>, data: &Dataset) {
        if self.items.is_empty() {
            return;
        }
        let keep: Vec<bool> = hits
            .iter()
            .map(|h| {
                let covered = self.covering(h, data);
                if let Some(b) = covered {
                    b.suppressed.fetch_add(1, Ordering::Relaxed);
                }
                covered.is_none()
            })
            .collect();
        let mut at = keep.iter();
        hits.retain(|_| *at.next().expect("one flag a hit"));
        if let Some(b) = beside {
            let mut at = keep.iter();
            b.retain(|_| *at.next().expect("one flag a hit"));
        }
    }

    /// What each exception suppressed so far, in file order.
    pub fn suppressed(&self) -> Vec<Suppressed> {
        self.items
            .iter()
            .map(|b| Suppressed {
                exception: b.exception.name.clone(),
                on: b.exception.on.describe(),
                rules: b.exception.rules.clone(),
                reason: b.exception.reason.clone(),
                expires: b.exception.expires.map(format_rfc3339),
                hits: b.suppressed.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// Whether pattern `p` (an id, a `*` glob, or a tag) covers rule `r`.
fn covers(p: &str, r: &RuleInfo) -> bool {
    crate::alerts::select::matches(p, &r.id) || r.tags.iter().any(|t| t == p)
}

impl BoundException {
    /// Whether this exception covers `hit`.
    pub fn covers_hit(&self, hit: &Hit, data: &Dataset) -> bool {
        if !self.covers.get(hit.rule as usize).copied().unwrap_or(false) {
            return false;
        }
        if self.exception.expires.is_some_and(|x| hit.ts >= x) {
            return false;
        }
        let e = &data.events;
        let i = hit.event as usize;
        let s = &data.strings;
        let is = |sym: Option<crate::intern::Sym>, v: &str| sym.is_some_and(|x| s.resolve(x) == v);
        match &self.exception.on {
            On::Actor(v) => is(Some(e.actor(i)), v),
            On::Device(v) => is(e.sym(ev::DEVICE, i), v),
            On::Asn(v) => is(e.sym(ev::ASN, i), v),
            On::Ip(c) => e.sym(ev::IP, i).is_some_and(|x| c.contains(s.resolve(x))),
            On::Item(v) => is(e.target(i), v),
            On::Author(v) => {
                let author = e
                    .sym(ev::TARGET_AUTHOR, i)
                    .or_else(|| e.target(i).and_then(|t| data.items.row(t)).and_then(|r| data.items.author(r)));
                is(author, v)
            }
        }
    }
}

/// The name of an exceptions file as diagnostics show it.
pub fn shown(p: &Path) -> PathBuf {
    diag::display_path(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_networks_contain_their_addresses_only() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3") && !c.contains("10.2.0.1") && !c.contains("::1") && !c.contains("x"));
        assert!(Cidr::parse("192.168.1.7").unwrap().contains("192.168.1.7"));
        assert!(!Cidr::parse("192.168.1.7").unwrap().contains("192.168.1.8"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8"));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5") && !v6.contains("2001:db9::1") && !v6.contains("10.0.0.1"));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("ten").is_err());
    }

    fn read_text(text: &str) -> (Vec<Exception>, String) {
        let src = Source::new("ex.toml", text);
        let mut diags = Diagnostics::default();
        let out = read(&src, 1_000 * crate::time::DAY, &mut diags);
        (out, diags.render())
    }

    #[test]
    fn a_malformed_exception_is_an_error_at_its_place() {
        let (_, d) = read_text("[[exception]]\nactor = \"u1\"\nreason = \"r\"\nrulez = [\"x\"]\n");
        assert!(d.contains("E002") && d.contains("ex.toml:4:1"), "{d}");
        let (_, d) = read_text("[[exception]]\nreason = \"r\"\n");
        assert!(d.contains("E004") && d.contains("one of `actor`"), "{d}");
        let (_, d) = read_text("[[exception]]\nactor = \"u1\"\ndevice = \"d\"\nreason = \"r\"\n");
        assert!(d.contains("matches one thing"), "{d}");
        let (_, d) = read_text("[[exception]]\nip = \"10.0.0.0/40\"\nreason = \"r\"\n");
        assert!(d.contains("E006") && d.contains("ex.toml:2:6"), "{d}");
        let (_, d) = read_text("[[exception]]\nactor = \"u1\"\nreason = \"r\"\nexpires = \"soon\"\n");
        assert!(d.contains("not a date"), "{d}");
        let (_, d) = read_text("[[exception]]\nactor = \"u1\"\n");
        assert!(d.contains("E004") && d.contains("reason"), "{d}");
    }

    #[test]
    fn an_expired_exception_warns_and_is_kept() {
        let (ex, d) = read_text("[[exception]]\nactor = \"u1\"\nreason = \"r\"\nexpires = \"1970-01-02\"\n");
        assert!(d.contains("W105") && d.contains("expired on 1970-01-02T00:00:00Z"), "{d}");
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].name, "ex.toml:1");
        assert_eq!(ex[0].expires, Some(crate::time::DAY));
    }
}
