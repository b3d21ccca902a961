//! One account, explained: its timeline with every rule's decision on
//! each event it judged, the hits interleaved, the near misses, and, for
//! lockstep rules, the other accounts to pivot to.
//!
//! It runs the real scorer ([`Scorer::trace_account`]) over the whole
//! dataset, so every number is the one `changeling score` used. A signal
//! that fires says why in its own words (with the numbers); a signal that
//! stays quiet or abstains gives no reason of its own, so this module says
//! what that outcome means for its kind, with the rule's parameters (which
//! check it failed is not known here).
//!
//! A *near miss* is a rule that selected an event where at least one
//! signal fired but the rule did not hit: another signal was quiet, or a
//! required one abstained.
//!
//! The pivots of a lockstep rule are computed from the dataset here: every
//! other account that did one of the rule's actions on one of this
//! account's items within the rule's window of this account's action,
//! ranked by how many of the items it shares.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::data::schema::ev;
use crate::data::{AccountSpan, Dataset};
use crate::intern::Sym;
use crate::plan::{Plan, PlannedSignal};
use crate::score::{EventTrace, Incident, Scorer};
use crate::signals::{Outcome, SignalDef};
use crate::time::{Millis, compact_duration, format_rfc3339};

/// What to show.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Show every event within `window` of this time, with every decision.
    pub around: Option<Millis>,
    /// Half-width of the window around `around`.
    pub window: Millis,
    /// Show every event with every decision (else only events with a hit
    /// or a near miss are shown in full; the others are counted).
    pub all: bool,
    /// At most this many pivot accounts per lockstep rule.
    pub max_pivots: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { around: None, window: 2 * crate::time::HOUR, all: false, max_pivots: 20 }
    }
}

/// An account that cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The account has no events in the dataset.
    #[error("account `{actor}` has no events in {}{}", dir.display(), suggestion.as_ref().map_or(String::new(), |s| format!(" (did you mean `{s}`?)")))]
    NoSuchAccount {
        /// The account asked for.
        actor: String,
        /// The dataset.
        dir: std::path::PathBuf,
        /// A close account id, if any.
        suggestion: Option<String>,
    },
}

/// What one signal said.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Fired, with strength and its reason.
    Fired(f64, String),
    /// Quiet, with what that means for its kind.
    Quiet(String),
    /// Abstained, with what that means for its kind.
    Abstained(String),
}

/// What one rule made of one event.
#[derive(Clone, Debug)]
pub struct RuleDecision {
    /// Rule index in the plan.
    pub rule: usize,
    /// Whether its filters let the event through.
    pub selected: bool,
    /// Each signal's kind and decision (empty when not selected).
    pub signals: Vec<(&'static str, Decision)>,
    /// The hit's strength and why, when it hit.
    pub hit: Option<(f64, String)>,
    /// The exception that keeps the hit out of the alerts, in words
    /// (`ex.toml:3 (actor u1): cleared, case 881`).
    pub suppressed: Option<String>,
}

impl RuleDecision {
    /// Selected, some signal fired, and no hit.
    pub fn near_miss(&self) -> bool {
        self.hit.is_none() && self.signals.iter().any(|(_, d)| matches!(d, Decision::Fired(..)))
    }
}

/// One event of the timeline.
#[derive(Clone, Debug)]
pub struct EventLine {
    /// When.
    pub ts: Millis,
    /// "liked t-905 by pornacct (labels: adult)".
    pub what: String,
    /// Its context: `surface=direct device=d9 country=GB`.
    pub context: String,
    /// Every rule that selects its action.
    pub rules: Vec<RuleDecision>,
}

/// A line of the timeline.
#[derive(Clone, Debug)]
pub enum Entry {
    /// An event shown in full.
    Event(EventLine),
    /// Events not shown, counted per action.
    Skipped {
        /// How many.
        count: usize,
        /// Per action.
        actions: BTreeMap<String, usize>,
        /// First and last time.
        from: Millis,
        /// Last time.
        to: Millis,
    },
}

/// Another account to look at next.
#[derive(Clone, Debug, PartialEq)]
pub struct Pivot {
    /// The other account.
    pub actor: String,
    /// This account's items it acted on in step, sorted.
    pub items: Vec<String>,
    /// The highest tier of its own incidents, when the rules flag it (a
    /// co-acting account that is itself flagged is likely of the same
    /// campaign).
    pub flagged: Option<String>,
}

/// The pivots of one lockstep rule.
#[derive(Clone, Debug)]
pub struct Pivots {
    /// The rule.
    pub rule: String,
    /// Its window.
    pub window: Millis,
    /// Other accounts by items shared, most first (at most `max_pivots`).
    pub accounts: Vec<Pivot>,
    /// How many other accounts acted in step at all.
    pub total: usize,
}

/// One account explained.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The account.
    pub actor: String,
    /// Its events in the dataset.
    pub events: usize,
    /// The time range shown.
    pub range: (Millis, Millis),
    /// Its incidents (as `score` reports them), by start.
    pub incidents: Vec<Incident>,
    /// The timeline.
    pub entries: Vec<Entry>,
    /// Co-acting accounts, per lockstep rule that hit or nearly hit.
    pub pivots: Vec<Pivots>,
    /// Whether every decision on every event shown is to be rendered
    /// (else, per event, only rules that hit or nearly hit).
    pub full: bool,
}

/// Explains `actor` in `data` under `plan`.
pub fn explain(plan: &Plan, data: &Dataset, actor: &str, opts: &Options) -> Result<Explanation, ExplainError> {
    Explainer::new(plan, data).explain(actor, opts)
}

/// Explains accounts of one dataset one after the other, with the plan
/// bound to the dataset once (its facts computed once), not per account.
pub struct Explainer<'a> {
    plan: &'a Plan,
    data: &'a Dataset,
    scorer: Scorer<'a>,
}

impl<'a> Explainer<'a> {
    /// Binds `plan` to `data`.
    pub fn new(plan: &'a Plan, data: &'a Dataset) -> Explainer<'a> {
        Explainer { plan, data, scorer: Scorer::new(plan, data) }
    }

    /// Every account's incidents, as `score` scores them (for grouping
    /// campaigns).
    pub fn score_all(&self) -> Vec<crate::score::AccountIncidents> {
        self.scorer.run()
    }

    /// Explains one account. With `opts.around`, only the events in the
    /// window are traced and held: memory is bounded by the window, not by
    /// the account's history.
    pub fn explain(&self, actor: &str, opts: &Options) -> Result<Explanation, ExplainError> {
        explain_with(self.plan, self.data, &self.scorer, actor, opts)
    }
}

fn explain_with(
    plan: &Plan,
    data: &Dataset,
    scorer: &Scorer<'_>,
    actor: &str,
    opts: &Options,
) -> Result<Explanation, ExplainError> {
    let s = &data.strings;
    let span = s.get(actor).and_then(|sym| data.events.accounts.iter().find(|a| a.actor == sym)).ok_or_else(|| {
        let ids = data.events.accounts.iter().map(|a| s.resolve(a.actor));
        ExplainError::NoSuchAccount {
            actor: actor.to_string(),
            dir: data.dir.clone(),
            suggestion: crate::rules::diag::did_you_mean(actor, ids).map(str::to_string),
        }
    })?;
    let mut scratch = scorer.scratch();
    let incidents = scorer.score_account(span, &mut scratch);
    let range = match opts.around {
        // Within the times that exist (a window past year 9999 would print
        // the year 10009).
        Some(t) => (
            t.saturating_sub(opts.window).clamp(0, crate::time::MAX_TIME),
            t.saturating_add(opts.window).clamp(0, crate::time::MAX_TIME),
        ),
        None => (data.events.ts(span.start as usize), data.events.ts(span.end as usize - 1)),
    };
    let traces = scorer.trace_account_within(span, &mut scratch, Some(range));
    let full = opts.all || opts.around.is_some();
    let mut entries = Vec::new();
    let mut skipped: Option<(usize, BTreeMap<String, usize>, Millis, Millis)> = None;
    let mut lockstep_rules: BTreeSet<usize> = BTreeSet::new();
    let mut lockstep_events: Vec<usize> = Vec::new();
    for t in &traces {
        let ts = data.events.ts(t.event);
        if ts < range.0 || ts > range.1 {
            continue;
        }
        let rules: Vec<RuleDecision> = t.rules.iter().map(|r| decide(plan, data, r)).collect();
        let interesting = rules.iter().any(|r| r.hit.is_some() || r.near_miss());
        for r in &rules {
            if (r.hit.is_some() || r.near_miss()) && plan.rules[r.rule].signals.iter().any(is_lockstep) {
                lockstep_rules.insert(r.rule);
                lockstep_events.push(t.event);
            }
        }
        if full || interesting {
            if let Some((count, actions, from, to)) = skipped.take() {
                entries.push(Entry::Skipped { count, actions, from, to });
            }
            entries.push(Entry::Event(line(data, t, rules)));
        } else {
            let e = skipped.get_or_insert_with(|| (0, BTreeMap::new(), ts, ts));
            e.0 += 1;
            *e.1.entry(s.resolve(data.events.action(t.event)).to_string()).or_default() += 1;
            e.3 = ts;
        }
    }
    if let Some((count, actions, from, to)) = skipped.take() {
        entries.push(Entry::Skipped { count, actions, from, to });
    }
    let mut pivots: Vec<Pivots> =
        lockstep_rules.iter().filter_map(|&r| pivots(plan, r, data, span, &lockstep_events, opts.max_pivots)).collect();
    // Which co-acting accounts the rules flag themselves: each scored as
    // `score` scores it.
    for p in &mut pivots {
        for a in &mut p.accounts {
            let Some(sym) = s.get(&a.actor) else { continue };
            let Some(other) = data.events.accounts.iter().find(|x| x.actor == sym) else { continue };
            let top = scorer.score_account(other, &mut scratch).iter().map(|i| i.tier).min();
            a.flagged = top.map(|t| plan.config.tiers[t].name.clone());
        }
    }
    Ok(Explanation {
        actor: actor.to_string(),
        events: span.range().len(),
        range,
        incidents: incidents.into_iter().filter(|i| i.end >= range.0 && i.start <= range.1).collect(),
        entries,
        pivots,
        full,
    })
}

fn is_lockstep(s: &PlannedSignal) -> bool {
    matches!(s.def, SignalDef::Lockstep(_))
}

fn decide(plan: &Plan, data: &Dataset, r: &crate::score::RuleTrace) -> RuleDecision {
    let planned = &plan.rules[r.rule as usize];
    let signals = r
        .outcomes
        .iter()
        .zip(&planned.signals)
        .map(|((kind, outcome), s)| {
            let d = match outcome {
                Outcome::Fire { strength, why } => Decision::Fired(*strength, why.text(&data.strings).into_owned()),
                Outcome::Quiet => Decision::Quiet(quiet_reason(&s.def)),
                Outcome::Abstain => Decision::Abstained(abstain_reason(&s.def, s.require)),
            };
            (*kind, d)
        })
        .collect();
    RuleDecision {
        rule: r.rule as usize,
        selected: r.selected,
        signals,
        hit: r.hit.as_ref().map(|h| (h.strength, h.why.clone())),
        suppressed: r.hit.as_ref().and_then(|h| {
            let b = plan.exceptions.as_ref()?.covering(h, data)?;
            let e = &b.exception;
            Some(format!("{} ({}): {}", e.name, e.on.describe(), e.reason))
        }),
    }
}

/// A parameter's effective value, as `explain-plan` shows it.
fn param(def: &SignalDef, name: &str) -> String {
    def.describe().iter().find(|(n, _)| *n == name).map_or_else(|| "?".into(), |(_, v)| v.clone())
}

/// What a quiet signal of this kind means, with its parameters.
fn quiet_reason(def: &SignalDef) -> String {
    let p = |n: &str| param(def, n);
    match def.kind() {
        "off_pattern" => format!(
            "within the account's pattern: the target's {} have a probability above {} in its {} history, or the burst is \
             what its own novelty rate explains, or it came back to them later (look-ahead {})",
            p("features"),
            p("max_probability"),
            p("window"),
            p("return_window")
        ),
        "feed_exposure" => format!(
            "the feed could have shown the item: the account's own, its author followed, a followee's repost within {}, \
             or a logged impression",
            p("repost_window")
        ),
        "unlike_latency" => {
            format!("no earlier like of this item, or the time since it is outside {}..{}", p("min"), p("max"))
        }
        "after_hit" => {
            format!("no earlier hit of {} within {} (same target: {})", p("rules"), p("within"), p("same_target"))
        }
        "new_context" => {
            format!("every value of {} was used by the account before (more than {} ago)", p("fields"), p("recent"))
        }
        "sequence" => format!("the steps {} did not happen in order within {} before it", p("steps"), p("within")),
        "impossible_travel" => format!(
            "less than {} km from the previous located event, or reachable at {} km/h",
            p("min_distance_km"),
            p("max_speed_kmh")
        ),
        "rate_spike" => format!(
            "the count of {} in the last {} is within the account's own rate (tail above {}), below {}, or in the cooldown",
            p("actions"),
            p("window"),
            p("max_tail"),
            p("min_count")
        ),
        "lockstep" => format!(
            "fewer than {} other accounts acted within {} of it on {} of its items of the last {}",
            p("min_accounts"),
            p("window"),
            p("min_items"),
            p("lookback")
        ),
        other => format!("{other} found nothing"),
    }
}

/// What an abstaining signal of this kind means.
fn abstain_reason(def: &SignalDef, require: bool) -> String {
    let p = |n: &str| param(def, n);
    let reason = match def.kind() {
        "off_pattern" => format!(
            "fewer than {} history events in the {} before it, or the target has none of the features {}",
            p("min_history"),
            p("window"),
            p("features")
        ),
        "feed_exposure" => {
            "no follows nor impressions table to judge exposure by, or the item's author is unknown".into()
        }
        "new_context" => {
            format!(
                "fewer than {} earlier events with {}, or the event has no {}",
                p("min_history"),
                p("fields"),
                p("fields")
            )
        }
        "impossible_travel" => "this event or the previous one has no location (lat, lon)".into(),
        "sequence" => "the rule gives no steps".into(),
        other => format!("{other} could not tell"),
    };
    if require { format!("{reason}; required, so the rule cannot hit") } else { reason }
}

/// Past tense of an action: the scorer's words for `why`, and the account
/// changes a timeline shows besides.
fn verb(action: &str) -> String {
    match action {
        "password_change" => "changed the password".into(),
        "email_change" => "changed the e-mail".into(),
        "profile_change" => "changed the profile".into(),
        other => crate::score::verb(other),
    }
}

fn line(data: &Dataset, t: &EventTrace, rules: Vec<RuleDecision>) -> EventLine {
    let (s, e, i) = (&data.strings, &data.events, t.event);
    let mut what = verb(s.resolve(e.action(i)));
    if let Some(target) = e.target(i) {
        what.push(' ');
        what.push_str(s.resolve(target));
        let row = data.items.row(target);
        let author = e.sym(ev::TARGET_AUTHOR, i).or_else(|| row.and_then(|r| data.items.author(r)));
        if let Some(a) = author {
            let _ = write!(what, " by {}", s.resolve(a));
        }
        if let Some(r) = row {
            let labels: Vec<&str> = data.items.labels(r).iter().map(|&l| s.resolve(l)).collect();
            if !labels.is_empty() {
                let _ = write!(what, " (labels: {})", labels.join(", "));
            }
        }
    }
    let mut context = Vec::new();
    for (name, col) in [
        ("surface", ev::SURFACE),
        ("client", ev::CLIENT),
        ("device", ev::DEVICE),
        ("country", ev::COUNTRY),
        ("asn", ev::ASN),
        ("ip", ev::IP),
    ] {
        if let Some(v) = e.sym(col, i) {
            context.push(format!("{name}={}", s.resolve(v)));
        }
    }
    if let (Some(lat), Some(lon)) = (e.num(ev::LAT, i), e.num(ev::LON, i)) {
        context.push(format!("at {lat:.2},{lon:.2}"));
    }
    EventLine { ts: e.ts(i), what, context: context.join(" "), rules }
}

/// An explanation as data, for `explain --json`: the account, its
/// incidents exactly as `score` writes them, the timeline with every
/// decision of every rule on each event shown, and the pivots.
pub fn to_json(x: &Explanation, cx: crate::alerts::Context<'_>) -> serde_json::Value {
    use serde_json::json;
    let plan = cx.plan;
    let mut lines = Vec::new();
    if let Some(actor) = cx.strings.get(&x.actor) {
        let accounts = [crate::score::AccountIncidents { actor, incidents: x.incidents.clone() }];
        // Writing to memory cannot fail.
        let _ = crate::alerts::write_jsonl(&mut lines, &accounts, cx);
    }
    let incidents: Vec<serde_json::Value> =
        lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| serde_json::from_slice(l).ok()).collect();
    let decision = |d: &Decision| match d {
        Decision::Fired(strength, why) => json!({"decision": "fired", "strength": strength, "why": why}),
        Decision::Quiet(why) => json!({"decision": "quiet", "why": why}),
        Decision::Abstained(why) => json!({"decision": "abstained", "why": why}),
    };
    let timeline: Vec<serde_json::Value> = x
        .entries
        .iter()
        .map(|e| match e {
            Entry::Skipped { count, actions, from, to } => json!({
                "skipped": {"count": count, "actions": actions, "from": format_rfc3339(*from), "to": format_rfc3339(*to)}
            }),
            Entry::Event(e) => json!({
                "ts": format_rfc3339(e.ts),
                "what": e.what,
                "context": e.context,
                "rules": e.rules.iter().map(|r| {
                    let verdict = match (&r.hit, r.near_miss(), r.selected) {
                        (_, _, false) => "not selected",
                        (Some(_), _, _) => "hit",
                        (None, true, _) => "near miss",
                        (None, false, _) => "no hit",
                    };
                    json!({
                        "rule": plan.rules[r.rule].id,
                        "verdict": verdict,
                        "strength": r.hit.as_ref().map(|h| h.0),
                        "why": r.hit.as_ref().map(|h| h.1.clone()),
                        "suppressed_by": r.suppressed,
                        "signals": r.signals.iter().map(|(kind, d)| {
                            let mut v = decision(d);
                            v["signal"] = json!(kind);
                            v
                        }).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            }),
        })
        .collect();
    let pivots: Vec<serde_json::Value> = x
        .pivots
        .iter()
        .map(|p| {
            json!({
                "rule": p.rule,
                "window": compact_duration(p.window),
                "total": p.total,
                "accounts": p
                    .accounts
                    .iter()
                    .map(|a| json!({"actor": a.actor, "items": a.items, "flagged": a.flagged}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "actor": x.actor,
        "events": x.events,
        "from": format_rfc3339(x.range.0),
        "to": format_rfc3339(x.range.1),
        "incidents": incidents,
        "timeline": timeline,
        "pivots": pivots,
    })
}

/// The co-acting accounts of lockstep rule `rule` on the items of `events`
/// (this account's events it hit or nearly hit).
fn pivots(
    plan: &Plan,
    rule: usize,
    data: &Dataset,
    span: &AccountSpan,
    events: &[usize],
    max: usize,
) -> Option<Pivots> {
    let SignalDef::Lockstep(def) = &plan.rules[rule].signals.iter().find(|s| is_lockstep(s))?.def else {
        return None;
    };
    let (s, e) = (&data.strings, &data.events);
    let actions: BTreeSet<Sym> = def.key.actions.iter().filter_map(|a| s.get(a)).collect();
    let window = def.opts.window;
    // This account's actions on the items of the judged events, and on the
    // other items of the lookback before each (what lockstep compares).
    let mut mine: BTreeMap<Sym, Vec<Millis>> = BTreeMap::new();
    for &i in events {
        let (at, from) = (e.ts(i), e.ts(i).saturating_sub(def.key.lookback));
        for j in span.range() {
            let t = e.ts(j);
            if t >= from
                && t <= at
                && actions.contains(&e.action(j))
                && let Some(item) = e.target(j)
            {
                mine.entry(item).or_default().push(t);
            }
        }
    }
    let mut shared: BTreeMap<Sym, BTreeSet<Sym>> = BTreeMap::new();
    for j in 0..e.len() {
        let who = e.actor(j);
        if who == span.actor || !actions.contains(&e.action(j)) {
            continue;
        }
        let Some(item) = e.target(j) else { continue };
        let Some(times) = mine.get(&item) else { continue };
        let t = e.ts(j);
        if times.iter().any(|&m| (t - m).abs() <= window) {
            shared.entry(who).or_default().insert(item);
        }
    }
    let total = shared.len();
    let mut accounts: Vec<Pivot> = shared
        .into_iter()
        .map(|(who, items)| {
            let mut items: Vec<String> = items.iter().map(|&i| s.resolve(i).to_string()).collect();
            items.sort();
            Pivot { actor: s.resolve(who).to_string(), items, flagged: None }
        })
        .collect();
    accounts.sort_by(|a, b| b.items.len().cmp(&a.items.len()).then_with(|| a.actor.cmp(&b.actor)));
    accounts.truncate(max);
    Some(Pivots { rule: plan.rules[rule].id.clone(), window, accounts, total })
}

/// The explanation as text for a terminal.
pub fn render(x: &Explanation, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "account {}: {} events; showing {} to {}",
        x.actor,
        x.events,
        format_rfc3339(x.range.0),
        format_rfc3339(x.range.1)
    );
    if x.incidents.is_empty() {
        let _ = writeln!(out, "incidents: none reach a tier");
    } else {
        let _ = writeln!(out, "incidents:");
        for inc in &x.incidents {
            let families: Vec<String> = inc
                .families
                .iter()
                .map(|f| format!("{} {}", plan.config.score.families[f.family], f.evidence))
                .collect();
            let _ = writeln!(
                out,
                "  {} .. {}  score {}  {}  ({} hits; {})",
                format_rfc3339(inc.start),
                format_rfc3339(inc.end),
                inc.score,
                plan.config.tiers[inc.tier].name,
                inc.hits.len(),
                families.join(", ")
            );
        }
    }
    let _ = writeln!(out, "\ntimeline:");
    for entry in &x.entries {
        match entry {
            Entry::Skipped { count, actions, from, to } => {
                let list: Vec<String> = actions.iter().map(|(a, n)| format!("{a} {n}")).collect();
                let _ = writeln!(
                    out,
                    "  ... {count} event{} without hits or near misses, {} to {}: {}",
                    if *count == 1 { "" } else { "s" },
                    format_rfc3339(*from),
                    format_rfc3339(*to),
                    list.join(", ")
                );
            }
            Entry::Event(e) => {
                let ctx = if e.context.is_empty() { String::new() } else { format!("  [{}]", e.context) };
                let _ = writeln!(out, "  {}  {}{ctx}", format_rfc3339(e.ts), e.what);
                let shown = |r: &&RuleDecision| x.full || r.hit.is_some() || r.near_miss();
                for r in e.rules.iter().filter(shown) {
                    let id = &plan.rules[r.rule].id;
                    if !r.selected {
                        let _ = writeln!(out, "      {id}: not selected (its `where` filters exclude this event)");
                        continue;
                    }
                    let verdict = match (&r.hit, r.near_miss()) {
                        (Some((strength, _)), _) => match &r.suppressed {
                            Some(by) => format!("HIT strength {strength}, suppressed by {by}"),
                            None => format!("HIT strength {strength}"),
                        },
                        (None, true) => "near miss".to_string(),
                        (None, false) => "no hit".to_string(),
                    };
                    let _ = writeln!(out, "      {id}: {verdict}");
                    if r.signals.is_empty() {
                        let _ = writeln!(out, "        (no signals: every selected event hits)");
                    }
                    for (kind, d) in &r.signals {
                        let _ = match d {
                            Decision::Fired(strength, why) => {
                                writeln!(out, "        {kind}: fired {strength:.4}: {why}")
                            }
                            Decision::Quiet(why) => writeln!(out, "        {kind}: quiet: {why}"),
                            Decision::Abstained(why) => writeln!(out, "        {kind}: abstained: {why}"),
                        };
                    }
                }
                let hidden = e.rules.len() - e.rules.iter().filter(shown).count();
                if hidden > 0 {
                    let _ = writeln!(
                        out,
                        "      ({hidden} other rule{} judged it: no hit, no signal fired; --all or --around shows them)",
                        if hidden == 1 { "" } else { "s" }
                    );
                }
            }
        }
    }
    for p in &x.pivots {
        let _ = writeln!(
            out,
            "\npivot ({}): {} other account{} acted on this account's items within {} of it{}",
            p.rule,
            p.total,
            if p.total == 1 { "" } else { "s" },
            compact_duration(p.window),
            if p.accounts.len() < p.total {
                format!("; the {} sharing most items:", p.accounts.len())
            } else {
                ":".into()
            }
        );
        let width = p.accounts.iter().map(|a| a.actor.chars().count()).max().unwrap_or(0);
        for a in &p.accounts {
            let _ = writeln!(
                out,
                "  {:<width$}  {} item{}: {}{}",
                a.actor,
                a.items.len(),
                if a.items.len() == 1 { "" } else { "s" },
                a.items.join(", "),
                a.flagged.as_ref().map_or(String::new(), |t| format!("  [flagged {t}]"))
            );
        }
    }
    out
}
