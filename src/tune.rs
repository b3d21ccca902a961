//! Tuning: rule settings measured against ground truth, every dataset read
//! once for all of them.
//!
//! `changeling sweep` scores datasets under a grid of settings (the rules
//! with `--set` overrides, see [`crate::rules::overrides`]), and
//! `changeling eval` without `--alerts` under one; both then evaluate each
//! result with [`crate::eval::evaluate`]. A setting's figures are those that
//! `changeling score` with that setting followed by `changeling eval` gives:
//! the incidents are the scorer's own, turned into alerts in memory
//! ([`AlertFile::from_incidents`]) instead of through a file.
//!
//! **One read.** [`Loaded::read`] reads a dataset once, in memory, with
//! the union of the columns that every setting's plan and the evaluation
//! read ([`union`]); every setting is scored on it. A column that one
//! setting does not read changes nothing it computes, with two narrow
//! exceptions, both about events of one account at the same millisecond:
//! such events are ordered by their content, column by column, so two that
//! agree on every column before the first extra one may be taken in the
//! other order than in a `changeling score` run that reads fewer columns;
//! and exact duplicates are judged on the parsed value of a column read
//! but on the text of one not read (`1` and `1.0` differ only as text).
//! Settings that read the same columns (a grid over numbers, say) are not
//! affected at all.
//!
//! **Hits reused.** A rule's hits do not depend on its weight or families,
//! on `[incident]`, `[score]` or on the tiers: those only group and score hits into
//! incidents. Settings whose plans differ in nothing else share one pass
//! over the accounts ([`score_plans`]): each account's hits are found
//! once and grouped under each of these settings. Whether two plans
//! differ in anything else is decided on their whole printed (`Debug`)
//! form, so a part of the plan added later counts as different until it
//! is known not to matter.
//!
//! Everything is held in memory: there is no `--memory` partitioning
//! here; one dataset at a time is held, with its incidents per setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::data::{DataError, Dataset, Projection, ReadOptions, ReadProgress, TableKind};
use crate::eval::{self, AlertFile, EvalError, Report, Settings, TierSource, Truth};
use crate::plan::Plan;
use crate::rules::config::ScoreModel;
use crate::rules::{Assignment, Config, Overrides};
use crate::score::{AccountIncidents, Incident, RuleScore, Scorer, incident};
use crate::time::Millis;

/// An error that stops a measurement.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// It could not be evaluated (no labels, say).
    #[error(transparent)]
    Eval(#[from] EvalError),
}

// ---------------------------------------------------------------------------
// The grid

/// A grid of settings: one axis per parameter path, each with its values
/// (TOML text, see [`crate::rules::overrides::parse_set`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grid {
    /// (path, values), in the order given.
    pub axes: Vec<(String, Vec<String>)>,
}

/// The most settings a grid may have. Every setting is compiled and its
/// incidents held until all are evaluated (about 0.5 MB a setting on a
/// 3,000-account population, measured with a 50 x 50 grid that reached
/// 2 GB), so a grid past this is refused before anything is read.
pub const MAX_SETTINGS: usize = 400;

impl Grid {
    /// A grid of `axes`; a path given twice, or with no value, is an error,
    /// and so is a grid of more than [`MAX_SETTINGS`] settings.
    pub fn new(axes: Vec<(String, Vec<String>)>) -> Result<Grid, String> {
        let mut settings: usize = 1;
        for (i, (path, values)) in axes.iter().enumerate() {
            if values.is_empty() {
                return Err(format!("--set {path}: no value"));
            }
            if axes[..i].iter().any(|(p, _)| p == path) {
                return Err(format!("--set {path} is given twice: give every value in one --set, comma-separated"));
            }
            settings = settings.saturating_mul(values.len());
        }
        if settings > MAX_SETTINGS {
            let sizes: Vec<String> = axes.iter().map(|(_, v)| v.len().to_string()).collect();
            return Err(format!(
                "the grid has {} settings ({}), more than {MAX_SETTINGS}: every setting is held in memory until \
                 all are measured; sweep fewer values at a time, or the parameters one by one",
                if settings == usize::MAX { "too many".to_string() } else { settings.to_string() },
                sizes.join(" x ")
            ));
        }
        Ok(Grid { axes })
    }

    /// Every setting: the cartesian product of the axes, the first axis
    /// varying slowest (as nested loops in the order given). No axes give
    /// one setting, the rules as they are.
    pub fn settings(&self) -> Vec<Overrides> {
        let mut out = vec![Overrides::default()];
        for (path, values) in &self.axes {
            out = out
                .into_iter()
                .flat_map(|o| {
                    values.iter().map(move |v| {
                        let mut o = o.clone();
                        o.assignments.push(Assignment { path: path.clone(), value: v.clone() });
                        o
                    })
                })
                .collect();
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Reading once

/// The columns to read for all of `projections`: per table, the union of
/// their columns, or all of it when one of them reads it whole.
pub fn union(projections: impl IntoIterator<Item = Projection>) -> Projection {
    let mut tables: Option<BTreeMap<TableKind, BTreeSet<String>>> = None;
    for p in projections {
        tables = Some(match tables {
            None => p.tables,
            Some(mut acc) => {
                // A table absent from either is read whole.
                acc.retain(|k, _| p.tables.contains_key(k));
                for (k, cols) in p.tables {
                    if let Some(a) = acc.get_mut(&k) {
                        a.extend(cols);
                    }
                }
                acc
            }
        });
    }
    Projection { tables: tables.unwrap_or_default() }
}

/// A dataset held in memory with its ground truth, to score under many
/// plans.
#[derive(Debug)]
pub struct Loaded {
    /// The dataset.
    pub data: Dataset,
    /// Its labels.
    pub truth: Truth,
    /// Account-days per account with events.
    pub days: BTreeMap<String, u64>,
    /// What the reader should know about the data (skipped labels).
    pub notes: Vec<String>,
}

impl Loaded {
    /// Reads the dataset in `dir` once, with `projection` (see [`union`]),
    /// in the order `changeling score` reads it: the other tables, the
    /// events, then the impressions. Fails without a labels table.
    /// Numeric times are in `time_unit` (milliseconds when `None`; see
    /// [`ReadOptions::time_unit`]).
    pub fn read(
        dir: &Path,
        projection: Projection,
        time_unit: Option<crate::time::TimeUnit>,
        progress: &ReadProgress,
    ) -> Result<Loaded, TuneError> {
        let opts = ReadOptions { projection: Some(projection), time_unit, ..ReadOptions::default() };
        let data = Dataset::open_with_progress(dir, &opts, progress)?;
        let truth = Truth::from_dataset(&data)?;
        let days = eval::account_days(&data);
        let mut notes = Vec::new();
        if let Some(r) = data.report.table(TableKind::Labels)
            && r.skipped > 0
        {
            let first = r.samples.first().map_or_else(String::new, |s| format!("; first: {s}"));
            notes.push(format!("{} bad labels records were skipped{first}", r.skipped));
        }
        Ok(Loaded { data, truth, days, notes })
    }
}

// ---------------------------------------------------------------------------
// Scoring under many plans

/// One plan's result on one dataset.
#[derive(Clone, Debug)]
pub struct Scored {
    /// Accounts with incidents, ordered by id: what [`Scorer::run`] gives.
    pub accounts: Vec<AccountIncidents>,
    /// The scorer's notes (a signal abstaining on this dataset, say).
    pub notes: Vec<String>,
}

/// What of a plan its hits depend on: everything but the rules' weights
/// and families, and the incident grouping, score model and tiers of its
/// configuration.
fn hits_key(plan: &Plan) -> String {
    let mut rules = plan.rules.clone();
    for r in &mut rules {
        r.weight = 0.0;
        r.families.clear();
    }
    let config = Config {
        source: None,
        incident_gap: 0,
        incident_link: 0,
        tiers: Vec::new(),
        score: ScoreModel::default(),
        ..plan.config.clone()
    };
    format!("{rules:?}\n{config:?}")
}

/// Plans grouped by [`hits_key`], in order of first appearance.
fn hit_groups(plans: &[&Plan]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let key = hits_key(plan);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, m)| m).collect()
}

/// How many passes over the accounts [`score_plans`] makes for `plans`.
pub fn passes(plans: &[&Plan]) -> usize {
    hit_groups(plans).len()
}

/// Scores `data` under every plan, as [`Scorer::run`] would under each,
/// on the current rayon pool. Plans that differ only in weights,
/// `[incident]` and tiers share one pass: each account's hits are found
/// once and grouped into incidents under each of them. `done` counts
/// accounts as passes go.
pub fn score_plans(data: &Dataset, plans: &[&Plan], done: &AtomicU64) -> Vec<Scored> {
    let mut out: Vec<Option<Scored>> = vec![None; plans.len()];
    for members in hit_groups(plans) {
        let scorer = Scorer::new(plans[members[0]], data);
        let scoring: Vec<Vec<RuleScore>> = members.iter().map(|&i| RuleScore::of_plan(plans[i])).collect();
        let mut flagged: Vec<(crate::intern::Sym, Vec<Vec<Incident>>)> = data
            .events
            .accounts
            .par_iter()
            .map_init(
                || scorer.scratch(),
                |scratch, span| {
                    done.fetch_add(1, Ordering::Relaxed);
                    let hits = scorer.account_hits(span, scratch);
                    let incidents: Vec<Vec<Incident>> = if hits.is_empty() {
                        vec![Vec::new(); members.len()]
                    } else {
                        members
                            .iter()
                            .zip(&scoring)
                            .map(|(&i, r)| {
                                let mut incidents = incident::group(hits.clone(), r, &plans[i].config);
                                let actor = data.strings.resolve(span.actor);
                                incident::settle(&mut incidents, actor, plans[i], &data.strings, scorer.data_end());
                                incidents
                            })
                            .collect()
                    };
                    (span.actor, incidents)
                },
            )
            .filter(|(_, incidents)| incidents.iter().any(|v| !v.is_empty()))
            .collect();
        let strings = &data.strings;
        flagged.sort_by(|a, b| strings.resolve(a.0).cmp(strings.resolve(b.0)));
        for (j, &i) in members.iter().enumerate() {
            let accounts = flagged
                .iter_mut()
                .filter(|(_, incidents)| !incidents[j].is_empty())
                .map(|(actor, incidents)| AccountIncidents {
                    actor: *actor,
                    incidents: std::mem::take(&mut incidents[j]),
                })
                .collect();
            out[i] = Some(Scored { accounts, notes: scorer.notes().to_vec() });
        }
    }
    out.into_iter().map(|s| s.expect("every plan is in a group")).collect()
}

/// Evaluates one plan's result: [`eval::evaluate`] on its incidents as
/// alerts, with the plan's tiers, `slack`, and the rule table at
/// `rules_tier` (default: the highest). Notes: the data's, the
/// evaluation's, then the scorer's.
pub fn evaluate(
    loaded: &Loaded,
    plan: &Plan,
    scored: &Scored,
    slack: Millis,
    rules_tier: Option<&str>,
) -> Result<Report, EvalError> {
    let alerts =
        AlertFile::from_incidents(Path::new("<scored in memory>"), &scored.accounts, plan, &loaded.data.strings);
    let settings = Settings {
        tiers: plan.config.tiers.iter().map(|t| t.name.clone()).collect(),
        tier_source: TierSource::Rules,
        slack,
        rules_tier: rules_tier.map(str::to_string),
    };
    let mut report = eval::evaluate(&loaded.truth, &loaded.days, &alerts, &settings)?;
    let mut notes = loaded.notes.clone();
    notes.append(&mut report.notes);
    notes.extend(scored.notes.iter().cloned());
    report.notes = notes;
    Ok(report)
}

// ---------------------------------------------------------------------------
// Summaries

/// The recall of one style of compromise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StyleFigure {
    /// The style.
    pub style: String,
    /// Its recall.
    pub recall: f64,
}

/// A report in one row: the figures that tuning compares, per tier
/// (highest first) unless said otherwise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Tier names.
    pub tiers: Vec<String>,
    /// Precision at each tier.
    pub precision: Vec<Option<f64>>,
    /// Recall at each tier.
    pub recall: Vec<Option<f64>>,
    /// Benign accounts flagged at each tier.
    pub benign_flagged: Vec<u64>,
    /// Their share of the benign accounts.
    pub benign_flagged_share: Vec<Option<f64>>,
    /// False-positive accounts per million benign account-days at the
    /// highest tier.
    pub fp_per_million_account_days: Option<f64>,
    /// The compromise style with the lowest recall at the highest tier
    /// (the first by name among equals).
    pub worst_style: Option<StyleFigure>,
    /// ROC AUC.
    pub roc_auc: Option<f64>,
    /// PR AUC (average precision).
    pub pr_auc: Option<f64>,
    /// Expected calibration error of the incident scores.
    pub ece: Option<f64>,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The lowest of the values present.
fn lowest(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    xs.flatten().reduce(f64::min)
}

/// The highest of the values present.
fn highest(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    xs.flatten().reduce(f64::max)
}

impl Summary {
    /// The summary of a report.
    pub fn of(r: &Report) -> Summary {
        let benign = r.accounts.benign;
        let top = r.by_tier.first();
        Summary {
            tiers: r.tiers.clone(),
            precision: r.by_tier.iter().map(|t| t.precision).collect(),
            recall: r.by_tier.iter().map(|t| t.recall).collect(),
            benign_flagged: r.by_tier.iter().map(|t| t.false_positives).collect(),
            benign_flagged_share: r
                .by_tier
                .iter()
                .map(|t| (benign > 0).then(|| round6(t.false_positives as f64 / benign as f64)))
                .collect(),
            fp_per_million_account_days: top.and_then(|t| t.fp_per_million_account_days),
            worst_style: top.and_then(|t| {
                t.compromised_styles
                    .iter()
                    .min_by(|a, b| a.recall.total_cmp(&b.recall))
                    .map(|s| StyleFigure { style: s.style.clone(), recall: s.recall })
            }),
            roc_auc: r.ranking.roc_auc,
            pr_auc: r.ranking.pr_auc,
            ece: r.calibration.ece,
        }
    }

    /// The worst of each figure across `all` (which have the same tiers):
    /// the lowest precision, recall, style recall and AUCs; the most benign
    /// accounts flagged (count and share, each on its own) and false
    /// positives per million account-days, and the highest ECE. Figures absent from every
    /// summary stay absent.
    pub fn worst(all: &[Summary]) -> Summary {
        let tiers = all.first().map(|s| s.tiers.clone()).unwrap_or_default();
        let per_tier = |f: &dyn Fn(&Summary, usize) -> Option<f64>, low: bool| -> Vec<Option<f64>> {
            (0..tiers.len())
                .map(|t| {
                    let xs = all.iter().map(|s| f(s, t));
                    if low { lowest(xs) } else { highest(xs) }
                })
                .collect()
        };
        Summary {
            precision: per_tier(&|s, t| s.precision.get(t).copied().flatten(), true),
            recall: per_tier(&|s, t| s.recall.get(t).copied().flatten(), true),
            benign_flagged: (0..tiers.len())
                .map(|t| all.iter().filter_map(|s| s.benign_flagged.get(t).copied()).max().unwrap_or(0))
                .collect(),
            benign_flagged_share: per_tier(&|s, t| s.benign_flagged_share.get(t).copied().flatten(), false),
            fp_per_million_account_days: highest(all.iter().map(|s| s.fp_per_million_account_days)),
            worst_style: all
                .iter()
                .filter_map(|s| s.worst_style.clone())
                .reduce(|a, b| if b.recall < a.recall { b } else { a }),
            roc_auc: lowest(all.iter().map(|s| s.roc_auc)),
            pr_auc: lowest(all.iter().map(|s| s.pr_auc)),
            ece: highest(all.iter().map(|s| s.ece)),
            tiers,
        }
    }
}

/// Per tier `t` below `tiers`, which settings (their worst summaries) are
/// on the Pareto front of recall against benign accounts flagged at `t`:
/// `fronts[t][i]`.
pub fn fronts(worst: &[Summary], tiers: usize) -> Vec<Vec<bool>> {
    (0..tiers)
        .map(|t| {
            let points: Vec<(Option<f64>, u64)> = worst
                .iter()
                .map(|w| (w.recall.get(t).copied().flatten(), w.benign_flagged.get(t).copied().unwrap_or(0)))
                .collect();
            pareto_front(&points)
        })
        .collect()
}

/// Which points are on the Pareto front of (recall at the highest tier,
/// higher is better; benign accounts flagged at the highest tier, fewer is
/// better): those no other point is at least as good as on both and
/// better on one. Equal points are all on it. An absent recall counts as
/// the lowest.
pub fn pareto_front(points: &[(Option<f64>, u64)]) -> Vec<bool> {
    let r = |p: &(Option<f64>, u64)| p.0.unwrap_or(f64::NEG_INFINITY);
    points.iter().map(|p| !points.iter().any(|q| r(q) >= r(p) && q.1 <= p.1 && (r(q) > r(p) || q.1 < p.1))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_order_is_nested_loops_in_the_order_given() {
        let grid = Grid::new(vec![
            ("a.b".into(), vec!["1".into(), "2".into()]),
            ("c.d".into(), vec!["\"x\"".into(), "\"y\"".into(), "\"z\"".into()]),
        ])
        .unwrap();
        let texts: Vec<String> = grid
            .settings()
            .iter()
            .map(|o| o.assignments.iter().map(Assignment::text).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            texts,
            [
                "a.b=1 c.d=\"x\"",
                "a.b=1 c.d=\"y\"",
                "a.b=1 c.d=\"z\"",
                "a.b=2 c.d=\"x\"",
                "a.b=2 c.d=\"y\"",
                "a.b=2 c.d=\"z\""
            ]
        );
        assert_eq!(Grid::default().settings(), [Overrides::default()]);
        assert!(Grid::new(vec![("a.b".into(), vec!["1".into()]), ("a.b".into(), vec!["2".into()])]).is_err());
    }

    #[test]
    fn union_widens_columns_and_keeps_whole_tables_whole() {
        let p = |tables: &[(TableKind, &[&str])]| Projection {
            tables: tables.iter().map(|(k, c)| (*k, c.iter().map(|s| s.to_string()).collect())).collect(),
        };
        let u = union([
            p(&[(TableKind::Events, &["ts", "device"]), (TableKind::Items, &["id"])]),
            p(&[(TableKind::Events, &["ts", "client"]), (TableKind::Items, &["id"]), (TableKind::Labels, &["actor"])]),
        ]);
        assert_eq!(u, p(&[(TableKind::Events, &["client", "device", "ts"]), (TableKind::Items, &["id"])]));
    }

    #[test]
    fn pareto_front_keeps_the_undominated() {
        let front = pareto_front(&[
            (Some(0.9), 3),
            (Some(0.8), 1),
            (Some(0.8), 3), // dominated by both above
            (Some(0.9), 3), // equal to the first
            (Some(0.5), 0),
            (None, 0), // dominated by (0.5, 0)
        ]);
        assert_eq!(front, [true, true, false, true, true, false]);
    }

    #[test]
    fn worst_takes_each_column_on_its_own() {
        let s = |recall: f64, fp: u64, share: f64, style: &str, sr: f64, auc: Option<f64>| Summary {
            tiers: vec!["high".into()],
            precision: vec![Some(recall)],
            recall: vec![Some(recall)],
            benign_flagged: vec![fp],
            benign_flagged_share: vec![Some(share)],
            fp_per_million_account_days: Some(fp as f64 * 10.0),
            worst_style: Some(StyleFigure { style: style.into(), recall: sr }),
            roc_auc: auc,
            pr_auc: auc,
            ece: auc.map(|a| 1.0 - a),
        };
        let w = Summary::worst(&[s(0.9, 1, 0.02, "quiet", 0.5, Some(0.99)), s(0.7, 0, 0.03, "takeover", 0.6, None)]);
        assert_eq!(w.recall, [Some(0.7)]);
        assert_eq!(w.benign_flagged, [1]);
        assert_eq!(w.benign_flagged_share, [Some(0.03)]);
        assert_eq!(w.fp_per_million_account_days, Some(10.0));
        assert_eq!(w.worst_style, Some(StyleFigure { style: "quiet".into(), recall: 0.5 }));
        assert_eq!(w.roc_auc, Some(0.99));
        assert_eq!(w.ece.map(|e| (e * 100.0).round()), Some(1.0), "the highest ECE present");
    }
}
