//! Fitting: rule weights, family caps, a calibration map and tier
//! thresholds, fitted to labelled datasets (`changeling fit`), with
//! held-out figures that no fitted number has seen.
//!
//! **What is fitted.** The score model of [`crate::score::incident`] stays
//! as it is; `fit` chooses its numbers: each rule's `hit.weight`, each
//! evidence family's cap (`[score.caps]`), a monotone calibration map
//! (`[score.calibration]`) and each tier's `min_score`. Signals and their
//! parameters are not touched, so an account's hits do not change, and
//! neither do the incidents they group into (grouping reads times and
//! targets, never weights): only the scores do.
//!
//! **Scored once.** Each dataset is scored once with the rules as given
//! ([`prepare`]): every account's hits, grouped into every candidate
//! incident (those below the lowest tier too), each labelled a compromise
//! when its account is labelled compromised and it overlaps a window
//! widened by the slack, as `changeling eval` counts it. A candidate's
//! score under other numbers is then recomputed exactly, by the engine's
//! own [`incident::score`], from its hits: nothing is scored twice over
//! the data, and the combination is written once.
//!
//! **The fit** ([`fit_model`]), on the candidates of the training accounts:
//! 1. Weights and caps maximise the Bernoulli log-likelihood of "this
//!    candidate is a compromise" under `p = sigmoid(a + b * logit(score))`
//!    (a Platt link, refitted by Newton's method at every step), less an L2
//!    pull ([`FitOptions::l2`]) toward the rules' own numbers, which keeps a rule with
//!    little evidence where its author put it. The search is a bounded
//!    coordinate (pattern) search: the score is rounded to four decimals,
//!    so it has no useful gradient, and each move rescores only the
//!    candidates holding that rule or family. Weights stay in
//!    [[`MIN_WEIGHT`], 1]; caps in [[`MIN_CAP`], the rules' top tier], so
//!    that one family alone stays below `high` (docs/rules.md).
//! 2. The calibration is the isotonic regression (pool adjacent violators)
//!    of the compromise label on the fitted score: a non-decreasing step
//!    per pooled block, steps joined by straight lines. It assumes no
//!    shape, where a Platt map would assume the saturating noisy-OR is
//!    logistic in its logit, which nothing says it is. Each step rises by
//!    up to [`RISE`] either side of its share so that scores within it
//!    keep their order (a flat step would tie them, and the top tier
//!    could not then tell an incident just above one family's cap from
//!    one just below).
//! 3. Each tier given a target precision gets the lowest calibrated score
//!    at which the training accounts flagged at that tier or higher were
//!    compromised in at least that share; the top tier is kept above what
//!    one family alone can score (its largest cap, calibrated), and tiers
//!    stay in order.
//!
//! **Held out** ([`fit`]). Accounts are split into `k` folds by a seeded
//! hash of (dataset, account) ([`fold_of`]): deterministic, and every
//! account of one dataset in one fold whatever the rest. For each fold the
//! whole fit (weights, caps, calibration, tiers) is run on the other folds
//! and the fold's accounts are scored with its result; the held-out
//! figures are those of all folds' accounts, each scored by the model that
//! did not see it ("cross-validated"). The model written is fitted on every
//! account; its figures on the data it was fitted to are the "train"
//! column, shown beside, never in its place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::eval::{self, Alert, AlertFile, Report, Settings, TierSource, Truth};
use crate::plan::Plan;
use crate::rules::config::Calibration;
use crate::rules::{Assignment, Config, Effect, Overrides};
use crate::score::{Hit, RuleScore, Scorer, incident};
use crate::time::Millis;
use crate::tune::{Loaded, Summary};

/// The default L2 pull of weights and caps toward the rules' own
/// ([`FitOptions::l2`]).
pub const L2: f64 = 0.1;

/// The lowest weight a fitted rule gets: a rule is kept alive, not
/// switched off, by a fit.
pub const MIN_WEIGHT: f64 = 0.02;

/// The lowest cap a fitted family gets.
pub const MIN_CAP: f64 = 0.2;

/// How to fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Folds for the held-out figures (at least 2).
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Target precision per tier name: its `min_score` is fitted to it;
    /// tiers not named keep theirs.
    pub targets: Vec<(String, f64)>,
    /// How far a compromise window is widened on each side.
    pub slack: Millis,
    /// The pull of weights and caps toward the rules' own, per unit of
    /// squared distance, against the mean log-loss per candidate (default
    /// [`L2`]: a move of 0.1 costs 1e-4).
    pub l2: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            folds: 5,
            seed: 1,
            targets: vec![("high".into(), 0.95), ("medium".into(), 0.5), ("low".into(), 0.2)],
            slack: crate::time::HOUR,
            l2: L2,
        }
    }
}

/// Which fold an account of dataset `dataset` (its position among the
/// datasets) falls in: FNV-1a of the seed, the dataset and the account id,
/// modulo `folds`.
pub fn fold_of(seed: u64, dataset: usize, actor: &str, folds: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = seed.to_le_bytes();
    let dataset = (dataset as u64).to_le_bytes();
    for &b in seed.iter().chain(&dataset).chain(actor.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % folds.max(1) as u64) as usize
}

// ---------------------------------------------------------------------------
// Scored once

/// One candidate incident: a group of an account's hits.
#[derive(Clone, Debug)]
struct Candidate {
    /// Its hits, in the order [`incident::form`] gives them.
    hits: Vec<Hit>,
    start: Millis,
    end: Millis,
    /// Whether it counts for its account (eval's sense: a benign account's
    /// always; a compromised account's when it overlaps a window).
    counts: bool,
    /// A compromise: a compromised account's, overlapping a window.
    compromise: bool,
}

/// One account with hits.
#[derive(Clone, Debug)]
struct Account {
    dataset: usize,
    name: String,
    fold: usize,
    compromised: bool,
    candidates: Vec<Candidate>,
}

/// One dataset's truth, for evaluation.
#[derive(Debug)]
struct DatasetTruth {
    name: String,
    truth: Truth,
    days: BTreeMap<String, u64>,
    notes: Vec<String>,
}

/// The datasets, scored once with the base rules (see the module doc).
#[derive(Debug)]
pub struct Prepared {
    base: Vec<RuleScore>,
    rule_ids: Vec<String>,
    config: Config,
    folds: usize,
    seed: u64,
    slack: Millis,
    datasets: Vec<DatasetTruth>,
    accounts: Vec<Account>,
}

impl Prepared {
    /// Nothing yet, for `plan` (its calibration, if any, is left out: the
    /// fit starts from the combined score).
    pub fn new(plan: &Plan, options: &FitOptions) -> Prepared {
        let mut config = plan.config.clone();
        config.score.calibration = None;
        Prepared {
            base: RuleScore::of_plan(plan),
            rule_ids: plan.rules.iter().map(|r| r.id.clone()).collect(),
            config,
            folds: options.folds.max(2),
            seed: options.seed,
            slack: options.slack,
            datasets: Vec::new(),
            accounts: Vec::new(),
        }
    }

    /// Scores one dataset read by [`Loaded::read`] with `plan` (the plan
    /// given to [`Prepared::new`]) and keeps its candidates and truth.
    /// `done` counts accounts.
    pub fn add(&mut self, name: &str, loaded: Loaded, plan: &Plan, done: &AtomicU64) {
        let dataset = self.datasets.len();
        let data = &loaded.data;
        let scorer = Scorer::new(plan, data);
        let (rules, config, truth) = (&self.base, &self.config, &loaded.truth);
        let (seed, folds, slack) = (self.seed, self.folds, self.slack);
        let mut accounts: Vec<Account> = data
            .events
            .accounts
            .par_iter()
            .map_init(
                || scorer.scratch(),
                |scratch, span| {
                    done.fetch_add(1, Ordering::Relaxed);
                    let mut hits = scorer.account_hits(span, scratch);
                    if hits.is_empty() {
                        return None;
                    }
                    for h in &mut hits {
                        h.why = String::new();
                    }
                    let name = data.strings.resolve(span.actor).to_string();
                    let t = truth.accounts.get(&name);
                    let compromised = t.is_some_and(|t| t.compromised);
                    let candidates = incident::form(&hits, rules, config)
                        .into_iter()
                        .map(|g| {
                            let hits: Vec<Hit> = g.members.iter().map(|&i| hits[i].clone()).collect();
                            let (start, end) = (hits[0].ts, hits[hits.len() - 1].ts);
                            let counts = match t {
                                Some(t) if t.compromised => t.windows.iter().any(|w| w.overlaps(start, end, slack)),
                                _ => true,
                            };
                            Candidate { hits, start, end, counts, compromise: compromised && counts }
                        })
                        .collect();
                    Some(Account { dataset, fold: fold_of(seed, dataset, &name, folds), name, compromised, candidates })
                },
            )
            .flatten()
            .collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        self.accounts.extend(accounts);
        self.datasets.push(DatasetTruth {
            name: name.to_string(),
            truth: loaded.truth,
            days: loaded.days,
            notes: loaded.notes,
        });
    }

    /// Candidate incidents held, over all datasets.
    pub fn candidates(&self) -> usize {
        self.accounts.iter().map(|a| a.candidates.len()).sum()
    }

    /// Of them, compromises.
    pub fn compromises(&self) -> usize {
        self.accounts.iter().flat_map(|a| &a.candidates).filter(|c| c.compromise).count()
    }
}

// ---------------------------------------------------------------------------
// A model

/// Fitted numbers: what an overlay sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Each rule's weight, by plan index.
    pub weights: Vec<f64>,
    /// Each family's cap, by index into the configuration's families.
    pub caps: Vec<f64>,
    /// The calibration map.
    pub calibration: Option<Calibration>,
    /// Each tier's `min_score`, in the configuration's order.
    pub tiers: Vec<f64>,
    /// Rules whose weight was fitted (the others had no hits to fit on).
    pub fitted_rules: Vec<usize>,
    /// Families whose cap was fitted.
    pub fitted_families: Vec<usize>,
}

impl Model {
    /// The rules' own numbers.
    fn base(p: &Prepared) -> Model {
        Model {
            weights: p.base.iter().map(|r| r.weight).collect(),
            caps: (0..p.config.score.families.len()).map(|f| p.config.score.cap(f)).collect(),
            calibration: None,
            tiers: p.config.tiers.iter().map(|t| t.min_score).collect(),
            fitted_rules: Vec::new(),
            fitted_families: Vec::new(),
        }
    }

    /// The rules' scoring and the configuration with these numbers.
    fn apply(&self, p: &Prepared) -> (Vec<RuleScore>, Config) {
        let mut rules = p.base.clone();
        for (r, w) in rules.iter_mut().zip(&self.weights) {
            r.weight = *w;
        }
        let mut config = p.config.clone();
        for &f in &self.fitted_families {
            config.score.caps.insert(config.score.families[f].clone(), self.caps[f]);
        }
        for (t, m) in config.tiers.iter_mut().zip(&self.tiers) {
            t.min_score = *m;
        }
        config.score.calibration = self.calibration.clone();
        (rules, config)
    }

    /// The overrides that lay these numbers over the rules they were
    /// fitted from (`rule_ids` by plan index): what an overlay holds.
    pub fn assignments(&self, prepared: &Prepared) -> Overrides {
        let mut out = Vec::new();
        let mut push = |path: String, value: String| out.push(Assignment { path, value });
        for &r in &self.fitted_rules {
            push(format!("{}.hit.weight", prepared.rule_ids[r]), num(self.weights[r]));
        }
        for &f in &self.fitted_families {
            push(format!("score.caps.{}", prepared.config.score.families[f]), num(self.caps[f]));
        }
        for (t, m) in prepared.config.tiers.iter().zip(&self.tiers) {
            push(format!("tier.{}.min_score", t.name), num(*m));
        }
        if let Some(c) = &self.calibration {
            let list = |xs: &[f64]| format!("[{}]", xs.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", "));
            push("score.calibration.raw".into(), list(&c.raw));
            push("score.calibration.calibrated".into(), list(&c.calibrated));
        }
        Overrides { assignments: out }
    }
}

/// A number as an overlay writes it: at most four decimals, always with a
/// decimal point (TOML reads `1` as an integer).
fn num(x: f64) -> String {
    let s = format!("{:.4}", round4(x));
    let s = s.trim_end_matches('0');
    if s.ends_with('.') { format!("{s}0") } else { s.to_string() }
}

fn round4(x: f64) -> f64 {
    incident::round4(x)
}

// ---------------------------------------------------------------------------
// Fitting

/// A training set: candidates (by account and position) with their labels.
struct Train<'p> {
    p: &'p Prepared,
    cands: Vec<&'p Candidate>,
    /// Per rule, the candidates holding one of its hits.
    by_rule: Vec<Vec<usize>>,
    /// Per family, the candidates holding a hit for of a rule in it.
    by_family: Vec<Vec<usize>>,
}

impl<'p> Train<'p> {
    fn new(p: &'p Prepared, accounts: &[&'p Account]) -> Train<'p> {
        let cands: Vec<&Candidate> = accounts.iter().flat_map(|a| &a.candidates).collect();
        let mut by_rule = vec![Vec::new(); p.base.len()];
        let mut by_family = vec![Vec::new(); p.config.score.families.len()];
        for (i, c) in cands.iter().enumerate() {
            let rules: BTreeSet<usize> = c.hits.iter().map(|h| h.rule as usize).collect();
            let mut families = BTreeSet::new();
            for h in c.hits.iter().filter(|h| h.effect == Effect::For) {
                families.extend(p.base[h.rule as usize].families.iter().copied());
            }
            for r in rules {
                by_rule[r].push(i);
            }
            for f in families {
                by_family[f].push(i);
            }
        }
        Train { p, cands, by_rule, by_family }
    }

    /// The combined (uncalibrated) score of candidates `which` under
    /// `model`'s weights and caps.
    fn scores(&self, model: &Model, which: &[usize]) -> Vec<f64> {
        let mut m = model.clone();
        m.calibration = None;
        let (rules, config) = m.apply(self.p);
        which.par_iter().map(|&i| incident::score(&self.cands[i].hits, &rules, &config.score).0).collect()
    }
}

fn logit(s: f64) -> f64 {
    let s = s.clamp(1e-4, 1.0 - 1e-4);
    (s / (1.0 - s)).ln()
}

/// Log-loss of label `y` at probability `sigmoid(z)`, stably.
fn log_loss(y: bool, z: f64) -> f64 {
    // -log sigmoid(z) = softplus(-z); -log(1 - sigmoid(z)) = softplus(z).
    let softplus = |x: f64| if x > 30.0 { x } else { x.exp().ln_1p() };
    if y { softplus(-z) } else { softplus(z) }
}

/// The Platt link `(a, b)` that best fits `labels` from `xs` (logits of
/// scores), by Newton's method from `start`.
fn platt(xs: &[f64], labels: &[bool], start: (f64, f64)) -> (f64, f64) {
    let (mut a, mut b) = start;
    for _ in 0..25 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&x, &y) in xs.iter().zip(labels) {
            let p = 1.0 / (1.0 + (-(a + b * x)).exp());
            let r = p - f64::from(u8::from(y));
            let w = p * (1.0 - p);
            ga += r;
            gb += r * x;
            haa += w;
            hab += w * x;
            hbb += w * x * x;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-9 && db.abs() < 1e-9 {
            break;
        }
    }
    (a, b)
}

/// Fits weights, caps, calibration and tiers on `accounts` (see the module
/// doc): the model a fold, or the whole data, gets.
fn fit_model(p: &Prepared, accounts: &[&Account], options: &FitOptions) -> (Model, Vec<String>) {
    let train = Train::new(p, accounts);
    let n = train.cands.len();
    let labels: Vec<bool> = train.cands.iter().map(|c| c.compromise).collect();
    let base = Model::base(p);
    let mut model = base.clone();
    let mut notes = Vec::new();
    model.fitted_rules = (0..p.base.len()).filter(|&r| !train.by_rule[r].is_empty()).collect();
    model.fitted_families = (0..model.caps.len()).filter(|&f| !train.by_family[f].is_empty()).collect();
    let top = p.config.tiers.first().map_or(1.0, |t| t.min_score);
    if n == 0 || !labels.iter().any(|&y| y) || labels.iter().all(|&y| y) {
        notes.push(
            "no candidate incidents of both kinds (compromise and not) to fit on: the rules' numbers are kept".into(),
        );
        model.fitted_rules.clear();
        model.fitted_families.clear();
        return (model, notes);
    }
    // Caps start within their bounds.
    for &f in &model.fitted_families {
        model.caps[f] = model.caps[f].clamp(MIN_CAP, top);
    }

    // Coordinates: (is a cap, index), with bounds.
    let coords: Vec<(bool, usize)> = model
        .fitted_rules
        .iter()
        .map(|&r| (false, r))
        .chain(model.fitted_families.iter().map(|&f| (true, f)))
        .collect();
    let bounds = |cap: bool| if cap { (MIN_CAP, top) } else { (MIN_WEIGHT, 1.0) };
    let value = |m: &Model, (cap, i): (bool, usize)| if cap { m.caps[i] } else { m.weights[i] };
    let set = |m: &mut Model, (cap, i): (bool, usize), v: f64| {
        if cap {
            m.caps[i] = v;
        } else {
            m.weights[i] = v;
        }
    };
    let penalty = |m: &Model| -> f64 {
        coords.iter().map(|&c| (value(m, c) - value(&base, c)).powi(2)).sum::<f64>() * options.l2
    };
    let all: Vec<usize> = (0..n).collect();
    let mut scores = train.scores(&model, &all);
    let mut xs: Vec<f64> = scores.iter().map(|&s| logit(s)).collect();
    let mut link = platt(&xs, &labels, (0.0, 1.0));
    let loss_of = |xs: &[f64], link: (f64, f64)| -> f64 {
        xs.iter().zip(&labels).map(|(&x, &y)| log_loss(y, link.0 + link.1 * x)).sum::<f64>() / n as f64
    };
    let mut loss = loss_of(&xs, link) + penalty(&model);
    let mut step = 0.1;
    let mut rounds = 0;
    while step >= 0.005 && rounds < 200 {
        rounds += 1;
        let mut improved = false;
        for &c in &coords {
            let which = if c.0 { &train.by_family[c.1] } else { &train.by_rule[c.1] };
            let (lo, hi) = bounds(c.0);
            let now = value(&model, c);
            let mut best: Option<(f64, f64, Vec<f64>)> = None;
            for v in [now + step, now - step] {
                let v = round4(v.clamp(lo, hi));
                if v == now {
                    continue;
                }
                let mut m = model.clone();
                set(&mut m, c, v);
                let new = train.scores(&m, which);
                // The loss changes only where the candidates rescored do.
                let mut delta = 0.0;
                for (k, &i) in which.iter().enumerate() {
                    let y = labels[i];
                    delta += log_loss(y, link.0 + link.1 * logit(new[k])) - log_loss(y, link.0 + link.1 * xs[i]);
                }
                let cand = loss + delta / n as f64 + penalty(&m) - penalty(&model);
                if cand < loss - 1e-12 && best.as_ref().is_none_or(|b| cand < b.1) {
                    best = Some((v, cand, new));
                }
            }
            if let Some((v, cand, new)) = best {
                set(&mut model, c, v);
                for (k, &i) in which.iter().enumerate() {
                    scores[i] = new[k];
                    xs[i] = logit(new[k]);
                }
                loss = cand;
                improved = true;
            }
        }
        // The link follows the scores.
        link = platt(&xs, &labels, link);
        loss = loss_of(&xs, link) + penalty(&model);
        if !improved {
            step /= 2.0;
        }
    }

    // Calibration, on the fitted scores.
    let pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    model.calibration = Some(isotonic(&pairs));

    // Tiers, on the calibrated scores of the training accounts.
    let cal = model.calibration.as_ref().expect("just fitted");
    let mut best: BTreeMap<(usize, &str), (f64, bool)> = BTreeMap::new();
    let mut k = 0;
    for a in accounts {
        let entry = best.entry((a.dataset, a.name.as_str())).or_insert((0.0, a.compromised));
        for c in &a.candidates {
            let s = round4(cal.apply(scores[k]));
            k += 1;
            if c.counts {
                entry.0 = entry.0.max(s);
            }
        }
    }
    let accts: Vec<(f64, bool)> = best.into_values().collect();
    let mut scored_model = model.clone();
    scored_model.tiers = base.tiers.clone();
    let one_family = {
        let (_, config) = scored_model.apply(p);
        config.score.single_family_top()
    };
    let mut above: Option<f64> = None;
    for (t, tier) in p.config.tiers.iter().enumerate() {
        let target = options.targets.iter().find(|(name, _)| name == &tier.name).map(|(_, x)| *x);
        let mut m = match target {
            Some(target) => match lowest_with_precision(&accts, target) {
                Some(m) => m,
                None => {
                    let top_score = accts.iter().map(|a| a.0).fold(0.0, f64::max);
                    notes.push(format!(
                        "no score reaches precision {target} at `{}` on the training accounts: its min_score is set above the highest score seen",
                        tier.name
                    ));
                    (top_score + 1e-4).min(1.0)
                }
            },
            None => tier.min_score,
        };
        if t == 0 && m <= one_family {
            m = (one_family + 1e-4).min(1.0);
        }
        if let Some(up) = above
            && m >= up
        {
            m = up - 1e-4;
        }
        m = round4(m.max(1e-4));
        model.tiers[t] = m;
        above = Some(m);
    }
    (model, notes)
}

/// The lowest score `t` among `accts` (best score, compromised) at which
/// the accounts scoring `t` or more are compromised in at least `target`
/// of cases (`None` when no score reaches it).
fn lowest_with_precision(accts: &[(f64, bool)], target: f64) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = accts.iter().copied().filter(|a| a.0 > 0.0).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut all, mut found) = (0u64, 0u64, None);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            tp += u64::from(sorted[j].1);
            all += 1;
            j += 1;
        }
        if tp as f64 >= target * all as f64 && tp > 0 {
            found = Some(sorted[i].0);
        }
        i = j;
    }
    found
}

/// Scores are pooled into runs of at least `len / POOL_RUNS` before the
/// isotonic fit, so that the map has at most about twice this many knots.
const POOL_RUNS: usize = 2000;

/// How far a calibration step may rise on either side of its block's
/// share of compromises (see [`isotonic`]).
pub const RISE: f64 = 0.005;

/// The isotonic regression of `pairs` (score, label), as a calibration:
/// pooled adjacent violators over the scores sorted (ties pooled first),
/// each block a step from its lowest to its highest score at its share of
/// compromises, rising by up to [`RISE`] either side of it (within half
/// the gap to the next steps) so that scores within it keep their order,
/// steps joined by straight lines; knots rounded to four decimals. The
/// rise costs at most `RISE` of calibration error.
pub fn isotonic(pairs: &[(f64, bool)]) -> Calibration {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // (lowest score, highest score, sum of labels, count).
    let per = sorted.len().div_ceil(POOL_RUNS).max(1);
    let mut pooled: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = (i + per).min(sorted.len());
        while j < sorted.len() && sorted[j].0 == sorted[j - 1].0 {
            j += 1;
        }
        let run = &sorted[i..j];
        pooled.push((run[0].0, run[run.len() - 1].0, run.iter().filter(|p| p.1).count() as f64, run.len() as f64));
        i = j;
        while pooled.len() >= 2 {
            let (x, y) = (pooled[pooled.len() - 2], pooled[pooled.len() - 1]);
            if x.2 / x.3 >= y.2 / y.3 {
                pooled.pop();
                *pooled.last_mut().expect("two blocks") = (x.0, y.1, x.2 + y.2, x.3 + y.3);
            } else {
                break;
            }
        }
    }
    let (mut raw, mut calibrated): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let shares: Vec<f64> = pooled.iter().map(|b| b.2 / b.3).collect();
    for (k, &(lo, hi, _, _)) in pooled.iter().enumerate() {
        let y = shares[k];
        // A step rises by up to 2 * RISE across its block, within the
        // room its neighbours leave, so that scores keep their order.
        let below = if k == 0 { y } else { (y - shares[k - 1]) / 2.0 };
        let above = if k + 1 == shares.len() { 1.0 - y } else { (shares[k + 1] - y) / 2.0 };
        let (down, up) = if hi > lo { (RISE.min(below), RISE.min(above)) } else { (0.0, 0.0) };
        for (x, y) in [(round4(lo), round4(y - down)), (round4(hi), round4(y + up))] {
            if raw.last().is_some_and(|&last| x <= last) {
                // Rounded onto the knot before: keep the higher value there.
                let c = calibrated.last_mut().expect("a knot");
                *c = y.max(*c);
                continue;
            }
            raw.push(x);
            calibrated.push(y.max(calibrated.last().copied().unwrap_or(0.0)));
        }
    }
    if raw.is_empty() {
        raw.push(0.0);
        calibrated.push(0.0);
    }
    Calibration::new(raw, calibrated).expect("pooled blocks are increasing")
}

// ---------------------------------------------------------------------------
// Measuring

/// One dataset's figures, fitted and held out.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetFit {
    /// The dataset.
    pub dataset: String,
    /// The model written, on the data it was fitted to.
    pub train: Report,
    /// Each account scored by the fold model that did not see it.
    pub held_out: Report,
    /// The alerts `held_out` measures.
    #[serde(skip)]
    pub held_out_alerts: AlertFile,
}

/// A fit with its held-out figures.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The model fitted on every account: what the overlay holds.
    pub model: Model,
    /// The model of each fold, fitted without it.
    pub fold_models: Vec<Model>,
    /// Per dataset, the figures.
    pub datasets: Vec<DatasetFit>,
    /// Things the reader should know.
    pub notes: Vec<String>,
}

/// The alerts of dataset `d`'s accounts for which `model_of` gives a
/// model, each scored with it, as `changeling score` would write them with
/// that model's overlay (incidents below the lowest tier left out).
fn alerts<'m>(p: &Prepared, d: usize, model_of: impl Fn(&Account) -> Option<&'m Model>) -> AlertFile {
    // Each model applied once, found again by identity.
    let mut applied: Vec<(&Model, Vec<RuleScore>, Config)> = Vec::new();
    let mut out = Vec::new();
    for a in p.accounts.iter().filter(|a| a.dataset == d) {
        let Some(model) = model_of(a) else { continue };
        let at = match applied.iter().position(|x| std::ptr::eq(x.0, model)) {
            Some(i) => i,
            None => {
                let (rules, config) = model.apply(p);
                applied.push((model, rules, config));
                applied.len() - 1
            }
        };
        let (_, rules, config) = &applied[at];
        for c in &a.candidates {
            let (score, _) = incident::score(&c.hits, rules, &config.score);
            let Some(tier) = config.tier_of(score) else { continue };
            out.push(Alert {
                line: out.len() as u64 + 1,
                actor: a.name.clone(),
                start: c.start,
                end: c.end,
                score,
                tier: config.tiers[tier].name.clone(),
                rules: c.hits.iter().map(|h| p.rule_ids[h.rule as usize].clone()).collect(),
            });
        }
    }
    AlertFile { path: PathBuf::from("<fitted in memory>"), alerts: out }
}

/// Evaluates alerts of dataset `d` against its truth.
fn report(p: &Prepared, d: usize, alerts: &AlertFile) -> Result<Report, eval::EvalError> {
    let ds = &p.datasets[d];
    let settings = Settings {
        tiers: p.config.tiers.iter().map(|t| t.name.clone()).collect(),
        tier_source: TierSource::Rules,
        slack: p.slack,
        rules_tier: None,
    };
    let mut r = eval::evaluate(&ds.truth, &ds.days, alerts, &settings)?;
    let mut notes = ds.notes.clone();
    notes.append(&mut r.notes);
    r.notes = notes;
    Ok(r)
}

/// Fits on every account, and on each fold's complement for the held-out
/// figures (see the module doc).
pub fn fit(p: &Prepared, options: &FitOptions) -> Result<Fitted, eval::EvalError> {
    let mut notes = Vec::new();
    let fold_models: Vec<Model> = (0..p.folds)
        .map(|k| {
            let train: Vec<&Account> = p.accounts.iter().filter(|a| a.fold != k).collect();
            let (m, n) = fit_model(p, &train, options);
            notes.extend(n.into_iter().map(|n| format!("fold {}: {n}", k + 1)));
            m
        })
        .collect();
    let all: Vec<&Account> = p.accounts.iter().collect();
    let (model, n) = fit_model(p, &all, options);
    notes.extend(n);
    let mut datasets = Vec::new();
    for d in 0..p.datasets.len() {
        let train = report(p, d, &alerts(p, d, |_| Some(&model)))?;
        let held_out_alerts = alerts(p, d, |a| Some(&fold_models[a.fold]));
        let held_out = report(p, d, &held_out_alerts)?;
        datasets.push(DatasetFit { dataset: p.datasets[d].name.clone(), train, held_out, held_out_alerts });
    }
    notes.sort();
    notes.dedup();
    Ok(Fitted { model, fold_models, datasets, notes })
}

impl Fitted {
    /// The summaries of each dataset: (train, held out).
    pub fn summaries(&self) -> Vec<(Summary, Summary)> {
        self.datasets.iter().map(|d| (Summary::of(&d.train), Summary::of(&d.held_out))).collect()
    }
}

/// The held-out alerts of the accounts of fold `k` of dataset `d`, as the
/// held-out figures measured them: each (account, start, score). For
/// tests and audits: they must depend only on the other folds' labels.
pub fn held_out_scores(p: &Prepared, fitted: &Fitted, d: usize, k: usize) -> Vec<(String, Millis, f64)> {
    let fold: BTreeSet<String> = fold_accounts(p, d, k).into_iter().collect();
    fitted.datasets[d]
        .held_out_alerts
        .alerts
        .iter()
        .filter(|a| fold.contains(&a.actor))
        .map(|a| (a.actor.clone(), a.start, a.score))
        .collect()
}

/// The accounts with hits of dataset `d` in fold `k`.
pub fn fold_accounts(p: &Prepared, d: usize, k: usize) -> Vec<String> {
    p.accounts.iter().filter(|a| a.dataset == d && a.fold == k).map(|a| a.name.clone()).collect()
}

/// The overlay file of `model`: a header of comment lines (`header`, each
/// line prefixed with `# `), then its `[overlay]` table.
pub fn overlay_text(prepared: &Prepared, model: &Model, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(if line.is_empty() { "#" } else { "# " });
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n[");
    out.push_str(crate::rules::layers::OVERLAY_TABLE);
    out.push_str("]\n");
    for a in model.assignments(prepared).assignments {
        out.push_str(&format!("\"{}\" = {}\n", a.path, a.value));
    }
    out
}

/// Whether rules loaded with the overlay of `model` score exactly as the
/// fit did: the same weights, caps, calibration and tiers. `set` is the
/// rule set loaded from the fit's layers plus the overlay.
pub fn check_applied(prepared: &Prepared, model: &Model, plan: &Plan) -> Result<(), String> {
    let (rules, config) = model.apply(prepared);
    let loaded = RuleScore::of_plan(plan);
    if loaded.iter().map(|r| r.weight).ne(rules.iter().map(|r| r.weight)) {
        return Err("the overlay's weights differ from the fitted ones".into());
    }
    let s = &plan.config.score;
    let caps_equal = (0..s.families.len()).all(|f| s.cap(f) == config.score.cap(f));
    if !caps_equal || s.calibration != config.score.calibration || plan.config.tiers != config.tiers {
        return Err("the overlay's caps, calibration or tiers differ from the fitted ones".into());
    }
    Ok(())
}

/// The datasets' directories as given, for messages.
pub fn names(dirs: &[PathBuf]) -> Vec<String> {
    dirs.iter().map(|d| Path::new(d).display().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_is_monotone_and_pools_violators() {
        let pairs = [(0.1, false), (0.2, true), (0.3, false), (0.4, true), (0.5, true)];
        let c = isotonic(&pairs);
        assert!(c.calibrated.windows(2).all(|w| w[0] <= w[1]), "{c:?}");
        // 0.2 (yes) and 0.3 (no) pool into one step of share 0.5; 0.4 and
        // 0.5 (both yes) into one of 1.
        // Each step rises by RISE across its block, within its room.
        assert_eq!(c.raw, [0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(c.calibrated, [0.0, 0.495, 0.505, 0.995, 1.0]);
        assert_eq!(c.apply(0.0), 0.0);
        assert_eq!(c.apply(0.25), 0.5);
        assert_eq!(c.apply(0.9), 1.0);
        assert!(c.apply(0.21) < c.apply(0.29), "order kept within a step");
    }

    #[test]
    fn precision_threshold_is_the_lowest_that_reaches_the_target() {
        let accts = [(0.9, true), (0.8, true), (0.7, false), (0.6, true), (0.5, false), (0.4, false)];
        assert_eq!(lowest_with_precision(&accts, 1.0), Some(0.8));
        assert_eq!(lowest_with_precision(&accts, 0.75), Some(0.6));
        assert_eq!(lowest_with_precision(&accts, 0.5), Some(0.4));
        assert_eq!(lowest_with_precision(&[(0.5, false)], 0.1), None);
    }

    #[test]
    fn platt_recovers_a_link() {
        let xs: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) / 20.0).collect();
        // Labels from a known link, deterministically: the share of ones
        // in each run of ten follows sigmoid(1 + 2x).
        let labels: Vec<bool> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| ((i % 10) as f64 + 0.5) / 10.0 < 1.0 / (1.0 + (-(1.0 + 2.0 * x)).exp()))
            .collect();
        let (a, b) = platt(&xs, &labels, (0.0, 1.0));
        assert!((a - 1.0).abs() < 0.6 && (b - 2.0).abs() < 0.8, "{a} {b}");
    }

    #[test]
    fn folds_are_seeded_and_spread() {
        let names: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        let mut count = [0usize; 5];
        for n in &names {
            count[fold_of(1, 0, n, 5)] += 1;
        }
        assert!(count.iter().all(|&c| (150..250).contains(&c)), "{count:?}");
        let moved = names.iter().filter(|n| fold_of(1, 0, n, 5) != fold_of(2, 0, n, 5)).count();
        assert!(moved > 600, "another seed, other folds: {moved}");
        assert_eq!(fold_of(7, 1, "u3", 5), fold_of(7, 1, "u3", 5));
    }

    #[test]
    fn numbers_are_written_as_toml_floats() {
        assert_eq!(num(1.0), "1.0");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(num(0.0), "0.0");
    }
}
