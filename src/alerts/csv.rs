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
//! final_after, campaign, families` (of its incident), then the hit's `rule, title,
//! severity, tags, version, ts, action, target, strength, effect, signals,
//! why`.
//!
//! A spreadsheet opening the file runs a cell that starts with `=`, `+`,
//! `-` or `@` (or a tab, carriage return or line feed before one) as a formula, and
//! actors, targets, actions and `why` come from the logs: a cell that
//! starts with one of those characters, or with their full-width forms
//! (`＝＋－＠`), is written with a `'` before it, as the common guidance
//! for CSV injection says ([`neutralise`]); so is a cell that starts with
//! `'`, so that the file reads back exactly. The raw values stay in the
//! JSON Lines and Parquet alerts.
//!
//! Read back ([`read_csv`], for `eval`, `diff` and `report`): a cell that
//! starts with `'` is read without it ([`restore`]), so `'=cmd` reads as
//! `=cmd` and `''x` as `'x`. A file of hit rows gives each incident whole
//! (of a file written before hit rows had `families`, without them); a
//! file of incident rows gives only the incidents and their rule ids, which
//! is what `eval` needs.

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

const HIT_HEADER: [&str; 22] = [
    "actor",
    "incident_start",
    "incident_end",
    "score",
    "tier",
    "id",
    "status",
    "final_after",
    "campaign",
    "families",
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
/// `+`, `-`, `@`, tab, carriage return, line feed, or the full-width `＝＋－＠`), or
/// with `'` itself, so that reading back ([`restore`]) is exact: a cell that
/// starts with `'` lost one, and no other did.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}' | '\'') => {
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
            let campaign = cx.campaigns.and_then(|m| m.get(&inc.id)).map_or("", String::as_str);
            let families: Vec<String> = inc
                .families
                .iter()
                .map(|f| format!("{}={}", plan.config.score.families[f.family], f.evidence))
                .collect();
            let families = families.join("|");
            match rows {
                Rows::Incident => {
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
                            &families,
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
                                &families,
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

// ---------------------------------------------------------------------------
// Read back

/// `cell` as it was before [`neutralise`]: a cell that starts with `'` has
/// that `'` removed (the writer puts one before every cell that starts with
/// a formula character or with `'` itself, so this is exact).
pub fn restore(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// What a reader of CSV alerts needs of each incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The whole alert with its hits (`diff`, `report`): only a file of hit
    /// rows has them.
    Hits,
    /// The incident and the ids of its rules (`eval`): a file of incident
    /// rows will do too.
    Rules,
}

/// Reads CSV alerts, as [`write_csv`] writes them, from `reader`; `path`
/// names them in errors, which give the line a record starts on.
///
/// The kind of rows is told by the header. A file of hit rows
/// (`--csv-rows hit`) gives each incident whole, its hits in file order
/// (the rows with the same incident fields, wherever they are: a
/// spreadsheet may have sorted them; a row repeated whole is an error);
/// one written before
/// hit rows had `families` reads without them. A file of incident
/// rows carries only each incident's rule ids: with [`Need::Rules`] each
/// alert gets one hit per rule id, of which only `rule` is meaningful
/// (`ts` is the incident's start, the rest empty); with [`Need::Hits`] it
/// is refused, saying what to write instead. Every cell goes through
/// [`restore`]; an empty cell of an optional field is the field absent.
/// Columns are found by name, so a file without the fields for daily runs
/// reads too; unknown columns are ignored.
pub fn read_csv(
    path: &std::path::Path,
    reader: impl io::Read,
    need: Need,
) -> Result<Vec<super::read::ReadAlert>, super::read::ReadError> {
    use super::read::{ReadAlert, ReadError, ReadHit};
    let bad = |line: u64, message: String| ReadError::BadAlert { path: path.to_path_buf(), line, message };
    let mut r = ::csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
    let header: Vec<String> = match r.headers() {
        Ok(h) => h.iter().map(|c| restore(c).to_string()).collect(),
        Err(e) => return Err(bad(1, format!("not a CSV alerts file: {}", csv_message(&e)))),
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let rows = if col("incident_start").is_some() || col("rule").is_some() { Rows::Hit } else { Rows::Incident };
    let names: &[&str] = match rows {
        Rows::Incident => &["actor", "start", "end", "score", "tier", "rules"],
        Rows::Hit => &["actor", "incident_start", "incident_end", "score", "tier", "rule", "ts"],
    };
    if header.is_empty() {
        return Err(bad(
            1,
            "not a CSV alerts file: it is empty (`changeling score --format csv` writes at least the header)".into(),
        ));
    }
    let missing: Vec<&str> = names.iter().copied().filter(|n| col(n).is_none()).collect();
    if !missing.is_empty() {
        return Err(bad(
            1,
            format!(
                "not a CSV alerts file: the header lacks {} (it reads {:?}); `changeling score --format csv` writes \
                 one",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                crate::terminal::shorten(&crate::terminal::escape(&header.join(","), false), 200)
            ),
        ));
    }
    if rows == Rows::Incident && need == Need::Hits {
        return Err(bad(
            1,
            "CSV alerts with one row per incident (`--csv-rows incident`, the default) do not hold the hits that \
             diff and report read; write the alerts with `--csv-rows hit` (a CSV that reads back whole), or as \
             JSON Lines or Parquet"
                .into(),
        ));
    }
    let at = |name: &str| col(name).expect("checked above");
    let (actor, score, tier) = (at("actor"), at("score"), at("tier"));
    let (start, end) = match rows {
        Rows::Incident => (at("start"), at("end")),
        Rows::Hit => (at("incident_start"), at("incident_end")),
    };
    let (id, status, final_after, campaign) = (col("id"), col("status"), col("final_after"), col("campaign"));
    let mut alerts: Vec<ReadAlert> = Vec::new();
    // Hit rows with the same incident fields are hits of one incident,
    // wherever they are in the file (a spreadsheet may have sorted them):
    // the incident's index by its fields, and the line of each of its hits.
    let mut incidents: std::collections::HashMap<Vec<Option<String>>, usize> = Default::default();
    let mut hit_lines: Vec<Vec<u64>> = Vec::new();
    let mut record = ::csv::StringRecord::new();
    loop {
        match r.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(bad(line, format!("not an alert: {}", csv_message(&e))));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| restore(record.get(i).unwrap_or(""));
        let optional = |i: Option<usize>| i.map(cell).filter(|c| !c.is_empty()).map(str::to_string);
        let time = |field: &str, i: usize| {
            crate::time::parse_timestamp(cell(i))
                .ok_or_else(|| bad(line, format!("`{field}` is not a timestamp: {:?}", cell(i))))
        };
        let number = |field: &str, i: usize| {
            cell(i).parse::<f64>().map_err(|_| bad(line, format!("`{field}` is not a number: {:?}", cell(i))))
        };
        let list = |i: Option<usize>| -> Vec<String> {
            i.map(cell).filter(|c| !c.is_empty()).map_or_else(Vec::new, |c| c.split('|').map(str::to_string).collect())
        };
        let key: Vec<Option<String>> = [Some(actor), Some(start), Some(end), Some(score), Some(tier), id, status]
            .into_iter()
            .chain([final_after, campaign, col("families")])
            .map(|i| i.map(|i| cell(i).to_string()))
            .collect();
        let known = match rows {
            Rows::Hit => incidents.get(&key).copied(),
            Rows::Incident => None,
        };
        let index = if let Some(i) = known {
            i
        } else {
            let (start_ms, end_ms) = (time(&header[start], start)?, time(&header[end], end)?);
            let families = match col("families") {
                Some(f) => {
                    let mut out = Vec::new();
                    for pair in list(Some(f)) {
                        let value =
                            pair.rsplit_once('=').and_then(|(n, v)| Some((n.to_string(), v.parse::<f64>().ok()?)));
                        out.push(value.ok_or_else(|| {
                            bad(line, format!("`families` holds {pair:?}, not a `family=number` pair"))
                        })?);
                    }
                    out
                }
                None => Vec::new(),
            };
            let alert = ReadAlert {
                line,
                actor: cell(actor).to_string(),
                start: start_ms,
                end: end_ms,
                score: number("score", score)?,
                tier: cell(tier).to_string(),
                id: optional(id),
                status: optional(status),
                final_after: final_after
                    .filter(|&i| !cell(i).is_empty())
                    .map(|i| time("final_after", i))
                    .transpose()?,
                campaign: optional(campaign),
                families,
                hits: Vec::new(),
            };
            super::read::check(&alert).map_err(|m| bad(line, m))?;
            alerts.push(alert);
            hit_lines.push(Vec::new());
            if rows == Rows::Hit {
                incidents.insert(key, alerts.len() - 1);
            }
            alerts.len() - 1
        };
        let alert = &mut alerts[index];
        match rows {
            Rows::Incident => {
                for rule in list(Some(at("rules"))) {
                    alert.hits.push(ReadHit {
                        rule,
                        ts: alert.start,
                        action: String::new(),
                        target: None,
                        strength: 0.0,
                        why: String::new(),
                        effect: "for".into(),
                        title: None,
                        severity: None,
                        tags: Vec::new(),
                        signals: Vec::new(),
                    });
                }
            }
            Rows::Hit => {
                let rule = cell(at("rule")).to_string();
                if rule.is_empty() {
                    return Err(bad(line, "`rule` is empty".into()));
                }
                let strength = match col("strength").map(cell) {
                    None | Some("") => 0.0,
                    Some(_) => number("strength", at("strength"))?,
                };
                let hit = ReadHit {
                    rule,
                    ts: time("ts", at("ts"))?,
                    action: col("action").map(cell).unwrap_or_default().to_string(),
                    target: optional(col("target")),
                    strength,
                    why: col("why").map(cell).unwrap_or_default().to_string(),
                    effect: optional(col("effect")).unwrap_or_else(|| "for".into()),
                    title: col("title").map(|i| cell(i).to_string()),
                    severity: col("severity").map(|i| cell(i).to_string()),
                    tags: list(col("tags")),
                    signals: list(col("signals")),
                };
                // Two files joined without the second header would give each
                // incident its hits twice.
                if let Some(j) = alert.hits.iter().position(|h| *h == hit) {
                    return Err(bad(
                        line,
                        format!(
                            "repeats the hit of line {} (actor {:?}, rule {}): every hit is written once; were two \
                             files joined into one?",
                            hit_lines[index][j], alert.actor, hit.rule
                        ),
                    ));
                }
                alert.hits.push(hit);
                hit_lines[index].push(line);
            }
        }
    }
    Ok(alerts)
}

/// The CSV reader's message without the position it repeats.
fn csv_message(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} cells where the header has {expected_len}")
        }
        ::csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::read::ReadAlert;

    #[test]
    fn a_neutralised_cell_is_restored_exactly() {
        for raw in
            ["=1+1", "+x", "-1", "@SUM(A1)", "\tx", "\rx", "\n=1", "＝x", "'x", "''", "'=x", "x'", "", "plain", "1e3"]
        {
            let written = neutralise(raw);
            assert!(!written.starts_with(['=', '+', '-', '@', '\t', '\r', '\n', '＝']), "{raw:?} -> {written:?}");
            assert_eq!(restore(&written), raw, "{written:?}");
        }
        assert_eq!(neutralise("'x"), "''x");
        assert_eq!(neutralise("plain"), "plain");
    }

    #[test]
    fn csv_alerts_that_are_not_alerts_are_errors_at_their_line() {
        let path = std::path::Path::new("a.csv");
        let read = |text: &str, need| read_csv(path, text.as_bytes(), need).map_err(|e| e.to_string());
        let e = read("", Need::Rules).unwrap_err();
        assert!(e.contains("a.csv:1: not a CSV alerts file: it is empty"), "{e}");
        let e = read("a,b\n1,2\n", Need::Rules).unwrap_err();
        assert!(e.contains("a.csv:1: not a CSV alerts file: the header lacks `actor`"), "{e}");
        let head = "actor,incident_start,incident_end,score,tier,rule,ts\n";
        let e = read(
            &format!("{head}u,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,2,high,r,2024-01-01T00:00:00Z\n"),
            Need::Hits,
        )
        .unwrap_err();
        assert!(e.contains("a.csv:2: `score` is 2"), "{e}");
        let e =
            read(&format!("{head}u,x,2024-01-01T00:00:00Z,0.5,high,r,2024-01-01T00:00:00Z\n"), Need::Hits).unwrap_err();
        assert!(e.contains("a.csv:2: `incident_start` is not a timestamp"), "{e}");
        let e = read(&format!("{head}u,1\n"), Need::Hits).unwrap_err();
        assert!(e.contains("a.csv:2: not an alert: 2 cells where the header has 7"), "{e}");
        // Two hits of one incident, then another incident.
        let t = "2024-01-01T00:00:00Z";
        let ok = read(
            &format!("{head}'=u,{t},{t},0.5,high,r1,{t}\n'=u,{t},{t},0.5,high,r2,{t}\nv,{t},{t},0.5,high,r1,{t}\n"),
            Need::Hits,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].actor.as_str(), ok[0].hits.len(), ok[1].line), ("=u", 2, 4));
        // Sorted by a spreadsheet: the rows of an incident apart.
        let sorted = read(
            &format!("{head}'=u,{t},{t},0.5,high,r1,{t}\nv,{t},{t},0.5,high,r1,{t}\n'=u,{t},{t},0.5,high,r2,{t}\n"),
            Need::Hits,
        )
        .unwrap();
        assert_eq!(
            sorted,
            ok.into_iter().map(|a| ReadAlert { line: 2 + u64::from(a.actor == "v"), ..a }).collect::<Vec<_>>()
        );
        // Two files joined without the second header: each hit twice.
        let rows = format!("'=u,{t},{t},0.5,high,r1,{t}\n'=u,{t},{t},0.5,high,r2,{t}\n");
        let e = read(&format!("{head}{rows}{rows}"), Need::Hits).unwrap_err();
        assert!(e.contains("a.csv:4: repeats the hit of line 2 (actor \"=u\", rule r1)"), "{e}");
        let ok = read(&format!("{head}{rows}"), Need::Hits).unwrap();
        // As a spreadsheet saves it again: a byte order mark, CRLF line ends.
        let saved = format!("\u{feff}{head}'=u,{t},{t},0.5,high,r1,{t}\n").replace('\n', "\r\n");
        let again = read(&saved, Need::Hits).unwrap();
        assert_eq!((again[0].actor.as_str(), again[0].hits[0].ts), ("=u", ok[0].hits[0].ts));
    }
}
