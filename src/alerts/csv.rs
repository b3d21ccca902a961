//! Alerts as CSV, for spreadsheets and triage queues: one row per incident
//! or one row per hit (a timeline), with a header row. List values are
//! joined with `|`, as the data contract's CSV does; times are RFC 3339
//! UTC; numbers are those of the JSON alerts.
//!
//! Per incident: `actor, start, end, score, tier, id, status, final_after,
//! campaign` (empty when the incident belongs to none), `families`
//! (`name=value` pairs), `hits` (how many), `rules` (the distinct rule ids,
//! in order of first hit), `severity` (the highest of its rules'), `tags`
//! (of its rules, sorted), `why` (the strongest hit's).
//!
//! Per hit: `actor, incident_start, incident_end, score, tier, id, status,
//! final_after, campaign` (of its incident), then the hit's `rule, title,
//! severity, tags, version, ts, action, target, strength, effect, signals,
//! why`.
//!
//! A spreadsheet opening the file runs a cell that starts with `=`, `+`,
//! `-` or `@` (or a tab or carriage return before one) as a formula, and
//! actors, targets, actions and `why` come from the logs: a cell that
//! starts with one of those characters, or with their full-width forms
//! (`＝＋－＠`), is written with a `'` before it, as the common guidance
//! for CSV injection says ([`neutralise`]). The raw values stay in the
//! JSON Lines and Parquet alerts.

use std::collections::BTreeSet;
use std::io::{self, Write};

use super::Context;
use crate::rules::Severity;
use crate::score::AccountIncidents;
use crate::time::format_rfc3339;

/// What one CSV row is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rows {
    /// One row per incident.
    #[default]
    Incident,
    /// One row per hit, with its incident's fields.
    Hit,
}

const INCIDENT_HEADER: [&str; 15] = [
    "actor",
    "start",
    "end",
    "score",
    "tier",
    "id",
    "status",
    "final_after",
    "campaign",
    "families",
    "hits",
    "rules",
    "severity",
    "tags",
    "why",
];

const HIT_HEADER: [&str; 21] = [
    "actor",
    "incident_start",
    "incident_end",
    "score",
    "tier",
    "id",
    "status",
    "final_after",
    "campaign",
    "rule",
    "title",
    "severity",
    "tags",
    "version",
    "ts",
    "action",
    "target",
    "strength",
    "effect",
    "signals",
    "why",
];

/// The writer's error as the I/O error it is, when it is one (so that a
/// closed pipe is still seen as one), else wrapped.
fn io_error(e: ::csv::Error) -> io::Error {
    if !matches!(e.kind(), ::csv::ErrorKind::Io(_)) {
        return io::Error::other(e);
    }
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
        _ => unreachable!("checked above"),
    }
}

/// `cell` as written to the CSV file: with a `'` before it when it starts
/// with a character that makes a spreadsheet read it as a formula (`=`,
/// `+`, `-`, `@`, tab, carriage return, or the full-width `＝＋－＠`).
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}') => {
            std::borrow::Cow::Owned(format!("'{cell}"))
        }
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

/// Writes one record, each cell through [`neutralise`].
fn record<W: Write, const N: usize>(w: &mut ::csv::Writer<W>, cells: [&str; N]) -> io::Result<()> {
    w.write_record(cells.map(neutralise).iter().map(|c| c.as_bytes())).map_err(io_error)
}

/// Writes the incidents as CSV rows of kind `rows`; returns how many
/// incidents were written.
pub fn write_csv(out: &mut impl Write, accounts: &[AccountIncidents], cx: Context<'_>, rows: Rows) -> io::Result<u64> {
    let mut w = CsvAlerts::new(out, rows)?;
    let n = w.write(accounts, cx)?;
    w.finish()?;
    Ok(n)
}

/// A CSV alert file written a chunk of accounts at a time: the header
/// first, then each chunk's rows.
pub struct CsvAlerts<W: Write> {
    w: ::csv::Writer<W>,
    rows: Rows,
}

impl<W: Write> CsvAlerts<W> {
    /// Starts the file: writes the header of `rows`.
    pub fn new(out: W, rows: Rows) -> io::Result<CsvAlerts<W>> {
        let mut w = ::csv::WriterBuilder::new().from_writer(out);
        match rows {
            Rows::Incident => w.write_record(INCIDENT_HEADER).map_err(io_error)?,
            Rows::Hit => w.write_record(HIT_HEADER).map_err(io_error)?,
        }
        Ok(CsvAlerts { w, rows })
    }

    /// Writes the incidents of `accounts`; returns how many.
    pub fn write(&mut self, accounts: &[AccountIncidents], cx: Context<'_>) -> io::Result<u64> {
        write_rows(&mut self.w, accounts, cx, self.rows)
    }

    /// Flushes what is buffered and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

fn write_rows<W: Write>(
    w: &mut ::csv::Writer<W>,
    accounts: &[AccountIncidents],
    cx: Context<'_>,
    rows: Rows,
) -> io::Result<u64> {
    let (plan, s) = (cx.plan, cx.strings);
    let mut n = 0;
    for a in accounts {
        let actor = s.resolve(a.actor);
        for inc in &a.incidents {
            n += 1;
            let (start, end) = (format_rfc3339(inc.start), format_rfc3339(inc.end));
            let score = inc.score.to_string();
            let tier = plan.config.tiers[inc.tier].name.as_str();
            let (id, status, final_after) = (inc.id.as_str(), inc.status.name(), format_rfc3339(inc.final_after));
            let campaign = "";
            match rows {
                Rows::Incident => {
                    let families: Vec<String> = inc
                        .families
                        .iter()
                        .map(|f| format!("{}={}", plan.config.score.families[f.family], f.evidence))
                        .collect();
                    let mut rules: Vec<&str> = Vec::new();
                    let mut tags = BTreeSet::new();
                    let mut severity: Option<Severity> = None;
                    for h in &inc.hits {
                        let info = &cx.rules[h.rule as usize];
                        if !rules.contains(&info.id.as_str()) {
                            rules.push(&info.id);
                        }
                        tags.extend(info.tags.iter().map(String::as_str));
                        severity = severity.max(Some(info.severity));
                    }
                    let strongest = inc
                        .hits
                        .iter()
                        .filter(|h| h.effect == crate::rules::Effect::For)
                        .reduce(|a, b| if b.strength > a.strength { b } else { a });
                    record(
                        w,
                        [
                            actor,
                            &start,
                            &end,
                            &score,
                            tier,
                            id,
                            status,
                            &final_after,
                            campaign,
                            &families.join("|"),
                            &inc.hits.len().to_string(),
                            &rules.join("|"),
                            severity.map_or("", Severity::name),
                            &tags.into_iter().collect::<Vec<_>>().join("|"),
                            strongest.map_or("", |h| h.why.as_str()),
                        ],
                    )?;
                }
                Rows::Hit => {
                    for h in &inc.hits {
                        let info = &cx.rules[h.rule as usize];
                        record(
                            w,
                            [
                                actor,
                                &start,
                                &end,
                                &score,
                                tier,
                                id,
                                status,
                                &final_after,
                                campaign,
                                &info.id,
                                &info.title,
                                info.severity.name(),
                                &info.tags.join("|"),
                                &info.version.to_string(),
                                &format_rfc3339(h.ts),
                                s.resolve(h.action),
                                h.target.map_or("", |t| s.resolve(t)),
                                &h.strength.to_string(),
                                h.effect.name(),
                                &h.signals.join("|"),
                                &h.why,
                            ],
                        )?;
                    }
                }
            }
        }
    }
    Ok(n)
}
