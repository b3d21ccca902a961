//! `changeling report`: alerts as one self-contained HTML page.
//!
//! The page needs nothing but itself: styles are inline, plots are inline
//! SVG drawn with plotters' SVG backend (no fonts, bitmaps or scripts), and
//! nothing is fetched, so it can be mailed or archived and opened offline.
//! It holds the counts per tier, hits and accounts per rule, the score
//! histogram, incidents per day, and the top accounts with their incidents
//! and hits (folded with `<details>`). With ground truth (a dataset with a
//! `labels` table) it adds precision and recall per tier, the ROC and
//! precision-recall curves, the reliability table of incident scores with
//! its expected calibration error, and per rule the true- and
//! false-positive accounts at each tier, measured as `changeling eval`
//! measures them.
//!
//! The same alerts give the same bytes: nothing depends on the time of
//! writing or on hash order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::alerts::read::ReadAlert;
use crate::eval::{self, AlertFile, Curves, Report as EvalReport, Settings, TierSource, Truth};
use crate::time::{DAY, Millis, format_rfc3339};

/// Ground truth for the labelled sections.
pub struct Labels<'a> {
    /// What the dataset is called in the page.
    pub dataset: String,
    /// The truth.
    pub truth: &'a Truth,
    /// Account-days of every account with events.
    pub days: &'a BTreeMap<String, u64>,
    /// How far compromise windows are widened.
    pub slack: Millis,
}

/// What the page is made of.
pub struct Input<'a> {
    /// What the alerts are called in the page (their file).
    pub alerts_name: String,
    /// The alerts.
    pub alerts: &'a [ReadAlert],
    /// Tier names, highest first.
    pub tiers: Vec<String>,
    /// Where the tier names came from.
    pub tier_source: TierSource,
    /// Ground truth, if any.
    pub labels: Option<Labels<'a>>,
    /// How many top accounts to show.
    pub top: usize,
}

/// An error while building the page.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Measuring against the labels failed (an alert's tier unknown, say).
    #[error(transparent)]
    Eval(#[from] eval::EvalError),
    /// A plot could not be drawn (an engine bug: the SVG backend writes to
    /// memory).
    #[error("drawing a plot: {0}")]
    Plot(String),
}

/// Colours of the tiers, highest first; further tiers are grey.
const TIER_COLOURS: [RGBColor; 4] =
    [RGBColor(0xc0, 0x39, 0x2b), RGBColor(0xe6, 0x7e, 0x22), RGBColor(0xd4, 0xac, 0x0d), RGBColor(0x7f, 0x8c, 0x8d)];

fn tier_colour(t: usize) -> RGBColor {
    TIER_COLOURS[t.min(TIER_COLOURS.len() - 1)]
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Text escaped for HTML, with control and invisible characters shown as
/// escapes (`\u{200b}`, as on a terminal: see `crate::terminal`), so that
/// two distinct values never look the same.
fn esc(s: &str) -> String {
    let s = crate::terminal::escape(s, true);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Draws with plotters into an SVG string of `size`.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<String, ReportError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| ReportError::Plot(e.to_string()))?;
        draw(&root).map_err(ReportError::Plot)?;
        root.present().map_err(|e| ReportError::Plot(e.to_string()))?;
    }
    Ok(buf)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// An axis label of a count: whole numbers without decimals.
fn count_label(y: &f64) -> String {
    if y.fract() == 0.0 { format!("{y:.0}") } else { format!("{y:.1}") }
}

/// Incident scores in 20 bins of 0.05, stacked by tier.
fn histogram(alerts: &[ReadAlert], tiers: &[String]) -> Result<String, ReportError> {
    const BINS: usize = 20;
    let mut counts = vec![vec![0u64; tiers.len() + 1]; BINS];
    for a in alerts {
        let bin = ((a.score * BINS as f64).floor() as usize).min(BINS - 1);
        let t = tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len());
        counts[bin][t] += 1;
    }
    let max = counts.iter().map(|c| c.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let present: Vec<usize> = (0..=tiers.len()).filter(|&t| counts.iter().any(|c| c[t] > 0)).collect();
    svg((PLOT_WIDTH + LEGEND_WIDTH, 320), |root| {
        let (root, key) = root.split_horizontally(PLOT_WIDTH);
        legend(&key, tiers, &present, Swatch::Box)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("incidents by score", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..(max as f64 * 1.1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("score")
            .y_desc("incidents")
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&count_label)
            .draw()
            .map_err(err)?;
        for (b, c) in counts.iter().enumerate() {
            let (x0, x1) = (b as f64 / BINS as f64, (b + 1) as f64 / BINS as f64);
            let mut y = 0.0;
            for (t, n) in c.iter().enumerate().rev() {
                if *n == 0 {
                    continue;
                }
                let top = y + *n as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0 + 0.002, y), (x1 - 0.002, top)],
                        tier_colour(t).filled(),
                    )))
                    .map_err(err)?;
                y = top;
            }
        }
        Ok(())
    })
}

/// Incidents per UTC day of their start, one line per tier.
fn over_time(alerts: &[ReadAlert], tiers: &[String]) -> Result<String, ReportError> {
    let first = alerts.iter().map(|a| a.start.div_euclid(DAY)).min().unwrap_or(0);
    let last = alerts.iter().map(|a| a.start.div_euclid(DAY)).max().unwrap_or(0);
    let days = (last - first + 1) as usize;
    let mut counts = vec![vec![0u64; days]; tiers.len() + 1];
    for a in alerts {
        let t = tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len());
        counts[t][(a.start.div_euclid(DAY) - first) as usize] += 1;
    }
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    let day_label = |d: &f64| format_rfc3339((first + d.round() as i64) * DAY)[..10].to_string();
    let present: Vec<usize> = (0..=tiers.len()).filter(|&t| counts[t].iter().any(|n| *n > 0)).collect();
    svg((PLOT_WIDTH + LEGEND_WIDTH, 320), |root| {
        // The legend beside the plot, never over a line (inside the plot
        // it hid the `low` line).
        let (root, key) = root.split_horizontally(PLOT_WIDTH);
        legend(&key, tiers, &present, Swatch::Line)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("incidents per day (by start, UTC)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..(days as f64 - 0.5).max(0.5), 0f64..(max as f64 * 1.1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("day")
            .y_desc("incidents")
            .x_labels(days.clamp(2, 8))
            .x_label_formatter(&day_label)
            .y_label_formatter(&count_label)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        for (t, c) in counts.iter().enumerate() {
            if c.iter().all(|n| *n == 0) {
                continue;
            }
            let colour = tier_colour(t);
            let points: Vec<(f64, f64)> = c.iter().enumerate().map(|(d, n)| (d as f64, *n as f64)).collect();
            chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2))).map_err(err)?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
        }
        Ok(())
    })
}

/// Width of the plotting part of the score and time plots.
const PLOT_WIDTH: u32 = 640;
/// Width of the tier legend to the right of a plot.
const LEGEND_WIDTH: u32 = 110;

/// How a legend entry shows its colour.
#[derive(Clone, Copy)]
enum Swatch {
    /// A filled box, for bars.
    Box,
    /// A line, for line plots.
    Line,
}

/// The legend of the tiers `present` (indexes into `tiers`; `tiers.len()`
/// is an alert whose tier is not among them, `other`), drawn in its own
/// area beside the plot.
fn legend(
    area: &DrawingArea<SVGBackend, Shift>,
    tiers: &[String],
    present: &[usize],
    swatch: Swatch,
) -> Result<(), String> {
    let (mut y, x) = (44, 8);
    area.draw(&Text::new("tier", (x, y - 20), ("sans-serif", 13).into_font().color(&BLACK))).map_err(err)?;
    for &t in present {
        let colour = tier_colour(t);
        match swatch {
            Swatch::Box => area.draw(&Rectangle::new([(x, y - 5), (x + 14, y + 7)], colour.filled())).map_err(err)?,
            Swatch::Line => {
                area.draw(&PathElement::new(vec![(x, y + 1), (x + 16, y + 1)], colour.stroke_width(2))).map_err(err)?
            }
        }
        let name = tiers.get(t).map_or("other".to_string(), |n| crate::terminal::escape(n, true).into_owned());
        area.draw(&Text::new(name, (x + 22, y - 5), ("sans-serif", 13))).map_err(err)?;
        y += 20;
    }
    Ok(())
}

/// A curve from (0, 0) to (1, 1) axes, with a reference line.
fn curve(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: Vec<(f64, f64)>,
    reference: Vec<(f64, f64)>,
) -> Result<String, ReportError> {
    svg((420, 400), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .map_err(err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).light_line_style(TRANSPARENT).draw().map_err(err)?;
        chart.draw_series(LineSeries::new(reference, RGBColor(0xbb, 0xbb, 0xbb).stroke_width(1))).map_err(err)?;
        chart.draw_series(LineSeries::new(points, RGBColor(0x1f, 0x6f, 0xb4).stroke_width(2))).map_err(err)?;
        Ok(())
    })
}

fn roc_plot(c: &Curves, auc: Option<f64>) -> Result<String, ReportError> {
    let points = c.roc.iter().map(|p| (p.fpr, p.tpr)).collect();
    let title = format!("ROC curve (AUC {})", auc.map_or("-".into(), |a| format!("{a:.3}")));
    curve(&title, "false-positive rate", "true-positive rate", points, vec![(0.0, 0.0), (1.0, 1.0)])
}

fn pr_plot(c: &Curves, auc: Option<f64>, base: f64) -> Result<String, ReportError> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    if let Some(first) = c.pr.first() {
        points.push((0.0, first.precision));
    }
    points.extend(c.pr.iter().map(|p| (p.recall, p.precision)));
    let title = format!("precision-recall (AP {})", auc.map_or("-".into(), |a| format!("{a:.3}")));
    curve(&title, "recall", "precision", points, vec![(0.0, base), (1.0, base)])
}

/// Per rule: hits, accounts, incidents per tier, and what the hits say of
/// the rule (title, severity).
struct RuleRow {
    title: String,
    severity: String,
    hits: u64,
    accounts: BTreeSet<String>,
    incidents: Vec<u64>,
}

fn rule_rows(alerts: &[ReadAlert], tiers: &[String]) -> BTreeMap<String, RuleRow> {
    let mut rows: BTreeMap<String, RuleRow> = BTreeMap::new();
    for a in alerts {
        let t = tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len());
        let mut seen = BTreeSet::new();
        for h in &a.hits {
            let row = rows.entry(h.rule.clone()).or_insert_with(|| RuleRow {
                title: h.title.clone().unwrap_or_default(),
                severity: h.severity.clone().unwrap_or_default(),
                hits: 0,
                accounts: BTreeSet::new(),
                incidents: vec![0; tiers.len() + 1],
            });
            row.hits += 1;
            row.accounts.insert(a.actor.clone());
            if seen.insert(h.rule.as_str()) {
                row.incidents[t] += 1;
            }
        }
    }
    rows
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}th{background:#f4f4f4}
td.l,th.l{text-align:left}.tier{display:inline-block;padding:1px 8px;border-radius:8px;color:#fff;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:110px}
.card .n{font-size:1.8em;font-weight:700}.plots{display:flex;flex-wrap:wrap;gap:12px}.plot svg{display:block;max-width:100%;height:auto}
details{margin:4px 0}summary{cursor:pointer}td.why{text-align:left;font-size:.85em;max-width:520px}
.note{color:#666;font-size:.9em}";

fn tier_badge(tiers: &[String], name: &str) -> String {
    let t = tiers.iter().position(|t| t == name).unwrap_or(tiers.len());
    format!("<span class=\"tier\" style=\"background:{}\">{}</span>", hex(tier_colour(t)), esc(name))
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

/// The page.
pub fn render(input: &Input<'_>) -> Result<String, ReportError> {
    let (alerts, tiers) = (input.alerts, &input.tiers);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>changeling report: {}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>",
        esc(&input.alerts_name)
    );
    let _ = writeln!(out, "<h1>changeling report</h1>");
    let mut meta = format!("alerts <code>{}</code>", esc(&input.alerts_name));
    if let Some(l) = &input.labels {
        let _ = write!(meta, "; ground truth from <code>{}</code>", esc(&l.dataset));
    }
    let source = match input.tier_source {
        TierSource::Rules => "from the rules",
        TierSource::Alerts => "from the alerts",
    };
    let _ = write!(meta, "; tiers {} ({source}); changeling {}", esc(&tiers.join(", ")), env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "<p class=\"meta\">{meta}</p>");

    // Counts.
    let accounts: BTreeSet<&str> = alerts.iter().map(|a| a.actor.as_str()).collect();
    let mut best: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for a in alerts {
        let t = tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len());
        let e = best.entry(&a.actor).or_insert((t, a.score));
        *e = (e.0.min(t), e.1.max(a.score));
    }
    let _ = writeln!(out, "<h2 id=\"counts\">Counts</h2>\n<div class=\"cards\">");
    let _ = writeln!(out, "<div class=\"card\"><div class=\"n\">{}</div>incidents</div>", alerts.len());
    let _ = writeln!(out, "<div class=\"card\"><div class=\"n\">{}</div>accounts</div>", accounts.len());
    let hits: usize = alerts.iter().map(|a| a.hits.len()).sum();
    let _ = writeln!(out, "<div class=\"card\"><div class=\"n\">{hits}</div>hits</div>\n</div>");
    let _ =
        writeln!(out, "<table><tr><th class=\"l\">tier</th><th>incidents</th><th>accounts (highest tier)</th></tr>");
    for (t, name) in tiers.iter().enumerate() {
        let incidents = alerts.iter().filter(|a| a.tier == *name).count();
        let accts = best.values().filter(|b| b.0 == t).count();
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td>{incidents}</td><td>{accts}</td></tr>",
            tier_badge(tiers, name)
        );
    }
    let _ = writeln!(out, "</table>");

    // Plots.
    let _ = writeln!(out, "<h2 id=\"plots\">Scores and time</h2>\n<div class=\"plots\">");
    let _ = writeln!(out, "<div class=\"plot\" id=\"score-histogram\">{}</div>", histogram(alerts, tiers)?);
    let _ = writeln!(out, "<div class=\"plot\" id=\"incidents-over-time\">{}</div>", over_time(alerts, tiers)?);
    let _ = writeln!(out, "</div>");

    // Rules.
    let rows = rule_rows(alerts, tiers);
    let _ = writeln!(out, "<h2 id=\"rules\">Rules</h2>");
    let _ = write!(
        out,
        "<table><tr><th class=\"l\">rule</th><th class=\"l\">title</th><th class=\"l\">severity</th><th>hits</th><th>accounts</th>"
    );
    for t in tiers {
        let _ = write!(out, "<th>incidents {}</th>", esc(t));
    }
    let _ = writeln!(out, "</tr>");
    let mut ordered: Vec<(&String, &RuleRow)> = rows.iter().collect();
    ordered.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then_with(|| a.0.cmp(b.0)));
    for (rule, r) in &ordered {
        let _ = write!(
            out,
            "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
            esc(rule),
            esc(&r.title),
            esc(&r.severity),
            r.hits,
            r.accounts.len()
        );
        for n in &r.incidents[..tiers.len()] {
            let _ = write!(out, "<td>{n}</td>");
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");

    // Campaigns: the alerts' `campaign` ids.
    let mut campaigns: BTreeMap<&str, Vec<&ReadAlert>> = BTreeMap::new();
    for a in alerts {
        if let Some(c) = &a.campaign {
            campaigns.entry(c.as_str()).or_default().push(a);
        }
    }
    if !campaigns.is_empty() {
        let _ = writeln!(out, "<h2 id=\"campaigns\">Campaigns</h2>");
        let _ = writeln!(
            out,
            "<p class=\"note\">Incidents of several accounts that share cross-account evidence: lockstep items, or \
             a network or client new to each of them in one window. <em>Evidence</em> is the kinds of it their \
             hits in this file show.</p>"
        );
        let _ = write!(
            out,
            "<table><tr><th class=\"l\">campaign</th><th>accounts</th><th class=\"l\">evidence</th><th \
             class=\"l\">span</th>"
        );
        for t in tiers {
            let _ = write!(out, "<th>incidents {}</th>", esc(t));
        }
        let _ = writeln!(out, "<th class=\"l\">members</th></tr>");
        for (id, members) in &campaigns {
            let actors: BTreeSet<&str> = members.iter().map(|a| a.actor.as_str()).collect();
            let start = members.iter().map(|a| a.start).min().unwrap_or(0);
            let end = members.iter().map(|a| a.end).max().unwrap_or(0);
            let evidence = crate::campaigns::evidence_of(members.iter().map(|a| {
                (a.actor.as_str(), a.hits.iter().map(|h| (h.signals.as_slice(), h.target.as_deref(), h.why.as_str())))
            }));
            let evidence: Vec<&str> = evidence.iter().map(|e| e.name()).collect();
            let _ = write!(
                out,
                "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td class=\"l\">{}</td><td \
                 class=\"l\">{} to {}</td>",
                esc(id),
                actors.len(),
                esc(&evidence.join(", ")),
                format_rfc3339(start),
                format_rfc3339(end)
            );
            for t in tiers {
                let _ = write!(out, "<td>{}</td>", members.iter().filter(|a| a.tier == *t).count());
            }
            let names: Vec<&str> = actors.into_iter().collect();
            let _ = writeln!(out, "<td class=\"l\">{}</td></tr>", esc(&names.join(", ")));
        }
        let _ = writeln!(out, "</table>");
    }

    // Ground truth.
    if let Some(l) = &input.labels {
        labelled(&mut out, input, l)?;
    }

    // Top accounts.
    let mut ranked: Vec<(&str, (usize, f64))> = best.into_iter().collect();
    ranked.sort_by(|a, b| b.1.1.total_cmp(&a.1.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(input.top);
    let _ = writeln!(out, "<h2 id=\"top-accounts\">Top {} accounts</h2>", ranked.len());
    let _ = writeln!(
        out,
        "<p class=\"note\">By their highest incident score; open an account for its incidents and their hits.</p>"
    );
    for (actor, (_, score)) in &ranked {
        let incidents: Vec<&ReadAlert> = alerts.iter().filter(|a| a.actor == *actor).collect();
        let top_tier = incidents.iter().min_by_key(|a| tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len()));
        let label = input.labels.as_ref().map(|l| match l.truth.accounts.get(*actor) {
            Some(t) if t.compromised => " — labelled compromised".to_string(),
            Some(_) => " — labelled benign".to_string(),
            None => " — unlabelled".to_string(),
        });
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> {} score {score} — {} incident{}{}</summary>",
            esc(actor),
            top_tier.map_or(String::new(), |a| tier_badge(tiers, &a.tier)),
            incidents.len(),
            if incidents.len() == 1 { "" } else { "s" },
            label.unwrap_or_default()
        );
        for a in incidents {
            let families: Vec<String> = a.families.iter().map(|(f, e)| format!("{f} {e}")).collect();
            let _ = writeln!(
                out,
                "<p>{} to {}: score {} {} {}</p>",
                format_rfc3339(a.start),
                format_rfc3339(a.end),
                a.score,
                tier_badge(tiers, &a.tier),
                if families.is_empty() { String::new() } else { format!("({})", esc(&families.join(", "))) }
            );
            let _ = writeln!(
                out,
                "<table><tr><th class=\"l\">time</th><th class=\"l\">rule</th><th class=\"l\">action</th><th class=\"l\">target</th><th>strength</th><th class=\"l\">why</th></tr>"
            );
            for h in &a.hits {
                let _ = writeln!(
                    out,
                    "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"why\">{}</td></tr>",
                    format_rfc3339(h.ts),
                    esc(&h.rule),
                    if h.is_for() { "" } else { " (against)" },
                    esc(&h.action),
                    esc(h.target.as_deref().unwrap_or("")),
                    h.strength,
                    esc(&h.why)
                );
            }
            let _ = writeln!(out, "</table>");
        }
        let _ = writeln!(out, "</details>");
    }
    let _ = writeln!(out, "</body>\n</html>");
    Ok(out)
}

/// The sections that need ground truth.
fn labelled(out: &mut String, input: &Input<'_>, l: &Labels<'_>) -> Result<(), ReportError> {
    let tiers = &input.tiers;
    let file = AlertFile::from_read(std::path::Path::new(&input.alerts_name), input.alerts);
    let settings = |tier: Option<String>| Settings {
        tiers: tiers.clone(),
        tier_source: input.tier_source,
        slack: l.slack,
        rules_tier: tier,
    };
    let report: EvalReport = eval::evaluate(l.truth, l.days, &file, &settings(None))?;
    let curves = eval::curves(l.truth, l.days, &file, &settings(None))?;
    let a = &report.accounts;
    let _ = writeln!(out, "<h2 id=\"ground-truth\">Against the labels</h2>");
    let _ = writeln!(
        out,
        "<p>{} accounts: {} compromised, {} benign; alerts on compromised accounts count when they overlap the labelled window widened by {} ({} counted, {} outside).</p>",
        a.total,
        a.compromised,
        a.benign,
        esc(&report.slack),
        report.alerts.counted,
        report.alerts.outside_window
    );
    let _ = writeln!(
        out,
        "<table><tr><th class=\"l\">tier or higher</th><th>flagged</th><th>TP</th><th>FP</th><th>FN</th><th>precision</th><th>recall</th><th>F1</th></tr>"
    );
    for t in &report.by_tier {
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            tier_badge(tiers, &t.tier),
            t.flagged,
            t.true_positives,
            t.false_positives,
            t.false_negatives,
            ratio(t.precision),
            ratio(t.recall),
            ratio(t.f1)
        );
    }
    let _ = writeln!(out, "</table>");
    let _ = writeln!(out, "<div class=\"plots\">");
    if curves.roc.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">No curves: the labels need both compromised and benign accounts.</p>");
    } else {
        let base = a.compromised as f64 / a.total.max(1) as f64;
        let _ =
            writeln!(out, "<div class=\"plot\" id=\"roc-curve\">{}</div>", roc_plot(&curves, report.ranking.roc_auc)?);
        let _ = writeln!(
            out,
            "<div class=\"plot\" id=\"pr-curve\">{}</div>",
            pr_plot(&curves, report.ranking.pr_auc, base)?
        );
    }
    let _ = writeln!(out, "</div>");
    // Scores read as probabilities: the reliability table and ECE.
    let c = &report.calibration;
    let _ = writeln!(out, "<h3 id=\"reliability\">Reliability of incident scores</h3>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Incidents by score: each bin's mean score against the share of its incidents that are compromises (in the window of a compromised account); {} incidents, expected calibration error (ECE) {}. Scores fitted by <code>changeling fit</code> are calibrated; the shipped rules' are ordinal.</p>",
        c.incidents,
        ratio(c.ece)
    );
    let _ = writeln!(
        out,
        "<table><tr><th class=\"l\">scores</th><th>mean score</th><th>observed share</th><th>incidents</th></tr>"
    );
    for b in &c.bins {
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{:.1}-{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            b.from, b.to, b.mean_score, b.observed, b.count
        );
    }
    let _ = writeln!(out, "</table>");
    // Per rule, TP and FP accounts at each tier.
    let mut per_rule: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for (t, name) in tiers.iter().enumerate() {
        let r = eval::evaluate(l.truth, l.days, &file, &settings(Some(name.clone())))?;
        for c in &r.rules.true_positives {
            per_rule.entry(c.rule.clone()).or_insert_with(|| vec![(0, 0); tiers.len()])[t].0 = c.accounts;
        }
        for c in &r.rules.false_positives {
            per_rule.entry(c.rule.clone()).or_insert_with(|| vec![(0, 0); tiers.len()])[t].1 = c.accounts;
        }
    }
    let _ = writeln!(out, "<h3>True and false positives per rule</h3>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Accounts flagged at each tier or higher whose counting alerts hold a hit of the rule: TP labelled compromised, FP benign.</p>"
    );
    let _ = write!(out, "<table><tr><th class=\"l\">rule</th>");
    for t in tiers {
        let _ = write!(out, "<th>TP {0}</th><th>FP {0}</th>", esc(t));
    }
    let _ = writeln!(out, "</tr>");
    let mut rows: Vec<(String, Vec<(u64, u64)>)> = per_rule.into_iter().collect();
    rows.sort_by(|a, b| {
        let key = |v: &Vec<(u64, u64)>| v.last().map_or(0, |x| x.0);
        key(&b.1).cmp(&key(&a.1)).then_with(|| a.0.cmp(&b.0))
    });
    for (rule, counts) in rows {
        let _ = write!(out, "<tr><td class=\"l\"><code>{}</code></td>", esc(&rule));
        for (tp, fp) in counts {
            let _ = write!(out, "<td>{tp}</td><td>{fp}</td>");
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::read::ReadHit;

    fn alert(actor: &str, day: i64, score: f64, tier: &str) -> ReadAlert {
        ReadAlert {
            line: 1,
            actor: actor.into(),
            start: day * DAY,
            end: day * DAY + 60_000,
            score,
            tier: tier.into(),
            id: None,
            status: None,
            final_after: None,
            campaign: None,
            families: vec![("content".into(), 0.4)],
            hits: vec![ReadHit {
                rule: "likes/<odd>".into(),
                ts: day * DAY,
                action: "like".into(),
                target: Some("t1".into()),
                strength: 0.5,
                why: "liked t1 & more".into(),
                effect: "for".into(),
                title: Some("A title".into()),
                severity: Some("high".into()),
                tags: vec![],
                signals: vec![],
            }],
        }
    }

    #[test]
    fn a_page_without_labels_is_self_contained_and_escaped() {
        let alerts =
            vec![alert("a", 18000, 0.9, "high"), alert("b", 18001, 0.45, "low"), alert("a", 18002, 0.6, "medium")];
        let input = Input {
            alerts_name: "alerts.jsonl".into(),
            alerts: &alerts,
            tiers: vec!["high".into(), "medium".into(), "low".into()],
            tier_source: TierSource::Rules,
            labels: None,
            top: 10,
        };
        let page = render(&input).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 2, "histogram and time plot");
        assert!(page.contains("likes/&lt;odd&gt;") && page.contains("liked t1 &amp; more"));
        assert!(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"));
        assert_eq!(render(&input).unwrap(), page, "same alerts, same bytes");
    }

    /// The x of the SVG text element that reads `text`.
    fn text_x(svg: &str, text: &str) -> Option<f64> {
        svg.split("<text ").skip(1).find_map(|el| {
            let (attrs, rest) = el.split_once('>')?;
            let content = rest.split("</text>").next()?;
            if content.trim() != text {
                return None;
            }
            let x = attrs.split("x=\"").nth(1)?;
            x[..x.find('"')?].parse().ok()
        })
    }

    #[test]
    fn score_and_time_plots_have_a_tier_legend_beside_the_plot() {
        let alerts =
            vec![alert("a", 18000, 0.9, "high"), alert("b", 18001, 0.45, "low"), alert("c", 18002, 0.6, "medium")];
        let tiers: Vec<String> = vec!["high".into(), "medium".into(), "low".into()];
        for (name, svg) in
            [("histogram", histogram(&alerts, &tiers).unwrap()), ("time", over_time(&alerts, &tiers).unwrap())]
        {
            for t in &tiers {
                let x = text_x(&svg, t).unwrap_or_else(|| panic!("{name}: no legend entry `{t}`"));
                // Right of the plotting area: it covers no bar and no line.
                assert!(x >= f64::from(PLOT_WIDTH), "{name}: `{t}` at x {x}, inside the plot");
            }
        }
    }

    #[test]
    fn labels_add_curves_and_per_rule_counts() {
        let alerts = vec![alert("a", 18000, 0.9, "high"), alert("b", 18001, 0.45, "low")];
        let mut truth = Truth::default();
        truth.add("a", true, eval::Window::default(), None).add("c", false, eval::Window::default(), None);
        let days: BTreeMap<String, u64> =
            [("a", 3), ("b", 4), ("c", 2)].iter().map(|(a, d)| (a.to_string(), *d)).collect();
        let input = Input {
            alerts_name: "alerts.jsonl".into(),
            alerts: &alerts,
            tiers: vec!["high".into(), "medium".into(), "low".into()],
            tier_source: TierSource::Rules,
            labels: Some(Labels { dataset: "d".into(), truth: &truth, days: &days, slack: 0 }),
            top: 10,
        };
        let page = render(&input).unwrap();
        assert_eq!(page.matches("<svg").count(), 4, "histogram, time, ROC, PR");
        assert!(page.contains("id=\"roc-curve\"") && page.contains("id=\"pr-curve\""));
        assert!(page.contains("labelled compromised"));
    }

    #[test]
    fn labels_add_a_reliability_table() {
        // a: compromised, alert 0.9; b: benign, alert 0.45: two bins, ECE
        // (0.1 + 0.45) / 2.
        let alerts = vec![alert("a", 18000, 0.9, "high"), alert("b", 18001, 0.45, "low")];
        let mut truth = Truth::default();
        truth.add("a", true, eval::Window::default(), None);
        let days: BTreeMap<String, u64> = [("a", 3), ("b", 4)].iter().map(|(a, d)| (a.to_string(), *d)).collect();
        let input = Input {
            alerts_name: "alerts.jsonl".into(),
            alerts: &alerts,
            tiers: vec!["high".into(), "medium".into(), "low".into()],
            tier_source: TierSource::Rules,
            labels: Some(Labels { dataset: "d".into(), truth: &truth, days: &days, slack: 0 }),
            top: 10,
        };
        let page = render(&input).unwrap();
        assert!(page.contains("id=\"reliability\""));
        assert!(page.contains("expected calibration error (ECE) 0.275"), "{page}");
        assert!(page.contains("<td class=\"l\">0.4-0.5</td><td>0.450</td><td>0.000</td><td>1</td>"));
        assert!(page.contains("<td class=\"l\">0.9-1.0</td><td>0.900</td><td>1.000</td><td>1</td>"));
    }
}
