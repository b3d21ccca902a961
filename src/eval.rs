//! Evaluation: alerts measured against a dataset's ground-truth labels.
//!
//! Reads the alerts a scorer wrote ([`read_alerts`], JSON Lines as the data
//! contract's "Alerts" section defines them, or Parquet as `changeling
//! score` writes it; see [`crate::alerts::read`]), takes the truth from the
//! dataset's `labels` table ([`Truth::from_dataset`]) and its activity from
//! `events` ([`account_days`]), and computes a [`Report`] ([`evaluate`]).
//! Alerts may also come straight from a scorer's incidents
//! ([`AlertFile::from_incidents`], as `changeling sweep` has them). It
//! never scores anything and never looks at rules beyond their tier names
//! and rule ids; all computation here is pure and deterministic (maps are
//! ordered by key, floats are summed in a fixed order).
//!
//! # Definitions
//!
//! **Accounts.** The accounts evaluated are every account with at least one
//! event, every labelled account and every alerted account. An account is
//! compromised when a `labels` record says `compromised`; every other
//! account is benign (labelled `benign`, or absent from `labels`, as the
//! contract says). An account labelled both ways is taken as compromised,
//! and a note says so.
//!
//! **Counting alerts and slack.** A compromised account's labels give its
//! compromise windows (`start`..`end`; a missing end is open). An alert (its
//! `start`..`end`) *counts* for that account only when it overlaps a window
//! widened by the slack on both sides (default one hour: clocks differ and a
//! labelled window is a human estimate). With no window known (neither
//! `start` nor `end`), any alert of the account counts. An alert on a
//! compromised account outside every widened window counts *nowhere*: not
//! as a detection (it found something else), and not as a false positive
//! either (the account is not benign). The report gives how many there were.
//! For benign accounts every alert counts.
//!
//! **Tiers.** Tiers are ordered highest first. An account is flagged at tier
//! T when one of its counting alerts has tier T or a higher one; precision,
//! recall and F1 at T are over flagged accounts (true positive: flagged and
//! compromised; false positive: flagged and benign; false negative:
//! compromised and not flagged). A ratio with a zero denominator is absent
//! (`null` in JSON), not zero.
//!
//! **Styles.** Labels may carry an extra `style` field: how an account was
//! compromised, or which benign behaviour it imitates (a look-alike). Recall
//! is broken down by the styles of compromised accounts, the false-positive
//! rate (flagged / accounts) by the styles of benign labelled accounts.
//!
//! **Account-days.** The distinct (account, UTC calendar day) pairs with at
//! least one event, summed over benign accounts: the exposure a false
//! positive rate per million account-days is measured against.
//!
//! **Ranking.** Every evaluated account gets the highest score of its
//! counting alerts, or 0 without one; compromised accounts are positives.
//! ROC AUC is the Mann–Whitney statistic with average ranks for ties (a tie
//! between a positive and a negative counts one half; all scores equal give
//! 0.5). PR AUC is average precision, `sum over thresholds of (R_k -
//! R_{k-1}) * P_k`, taken at each distinct score (tied accounts enter
//! together, so their order does not matter), down to score 0 where every
//! account is included. Both are absent without positives (and ROC AUC
//! without negatives).
//!
//! **Calibration.** Every alert read is one incident; it is a compromise
//! when its account is compromised and it overlaps a widened window (it
//! counts as a detection), and not one otherwise (a benign account's, or a
//! compromised account's outside its windows). [`reliability`] bins the
//! incidents by score into tenths of [0, 1] and gives, per bin, the mean
//! score, the observed share of compromises and the count: a reliability
//! diagram as a table. The expected calibration error (ECE) is the mean,
//! weighted by count, of `|mean score - observed share|` over the bins.
//! Scores fitted by `changeling fit` are calibrated (they read as that
//! share); the shipped rules' scores are ordinal only, and their ECE says
//! by how much they are not probabilities. Only written incidents (at the
//! lowest tier or above) are alerts, so the diagram starts there.
//!
//! **Rules.** At one tier (by default the highest), for each rule: how many
//! true-positive and how many false-positive accounts it hit, counting the
//! hits of the account's counting alerts at that tier or higher.
//!
//! **Lists and curves.** [`listing`] names the false-positive and
//! false-negative accounts at that tier, strongest score first;
//! [`curves`] gives the ROC and precision-recall curves the AUCs summarise,
//! one point per distinct score.
//!
//! Ratios in the report are rounded to six decimals.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{Dataset, Projection, TableKind};
use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::AccountIncidents;
use crate::time::{DAY, Millis, compact_duration};

/// An error that stops an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The alerts file could not be read, or holds something that is not
    /// an alert.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::read::ReadError),
    /// The dataset has no `labels` table.
    #[error(
        "{}: no labels table: evaluation needs ground truth in labels.jsonl, labels.csv or labels.parquet",
        dir.display()
    )]
    NoLabels {
        /// The dataset directory.
        dir: PathBuf,
    },
    /// An alert's tier is not one of the configured tiers.
    #[error(
        "{}:{line}: tier `{tier}` is not a tier of the rules (tiers: {}); were the alerts written with other rules? (see --rules)",
        path.display(), tiers.join(", ")
    )]
    UnknownAlertTier {
        /// The alerts file.
        path: PathBuf,
        /// Line number, from 1.
        line: u64,
        /// The tier named.
        tier: String,
        /// The known tiers, highest first.
        tiers: Vec<String>,
    },
    /// The tier asked for is not a known tier.
    #[error("no tier `{name}` (tiers: {})", list_or_none(tiers))]
    UnknownTier {
        /// The tier asked for.
        name: String,
        /// The known tiers, highest first.
        tiers: Vec<String>,
    },
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

// ---------------------------------------------------------------------------
// Alerts

/// One alert (incident) as read back from an alerts file: the contract's
/// fields that evaluation uses. Other fields are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Line in the alerts file, from 1 (for error messages).
    pub line: u64,
    /// The account.
    pub actor: String,
    /// First hit.
    pub start: Millis,
    /// Last hit.
    pub end: Millis,
    /// Incident score, in [0, 1].
    pub score: f64,
    /// Tier name.
    pub tier: String,
    /// Rule ids of the hits, in hit order (repeats kept).
    pub rules: Vec<String>,
}

/// The alerts of one file.
#[derive(Clone, Debug, Default)]
pub struct AlertFile {
    /// Where they were read from.
    pub path: PathBuf,
    /// In file order.
    pub alerts: Vec<Alert>,
}

impl AlertFile {
    /// The alerts of a file read by [`crate::alerts::read`].
    pub fn from_read(path: &Path, alerts: &[crate::alerts::read::ReadAlert]) -> AlertFile {
        let alerts = alerts
            .iter()
            .map(|a| Alert {
                line: a.line,
                actor: a.actor.clone(),
                start: a.start,
                end: a.end,
                score: a.score,
                tier: a.tier.clone(),
                rules: a.hits.iter().map(|h| h.rule.clone()).collect(),
            })
            .collect();
        AlertFile { path: path.to_path_buf(), alerts }
    }

    /// The alerts that a scorer's incidents are written as (see
    /// [`crate::alerts`]), without writing them: what [`read_alerts`] would
    /// read back from `changeling score`'s output, line numbers included.
    /// `path` names them in error messages.
    pub fn from_incidents(path: &Path, accounts: &[AccountIncidents], plan: &Plan, strings: &Interner) -> AlertFile {
        let alerts = accounts
            .iter()
            .flat_map(|a| a.incidents.iter().map(move |i| (a.actor, i)))
            .enumerate()
            .map(|(n, (actor, i))| Alert {
                line: n as u64 + 1,
                actor: strings.resolve(actor).to_string(),
                start: i.start,
                end: i.end,
                score: i.score,
                tier: plan.config.tiers[i.tier].name.clone(),
                rules: i.hits.iter().map(|h| plan.rules[h.rule as usize].id.clone()).collect(),
            })
            .collect();
        AlertFile { path: path.to_path_buf(), alerts }
    }
}

/// Reads an alerts file: JSON Lines, Parquet when its name ends in
/// `.parquet`, CSV of either kind of rows when it ends in `.csv` (see
/// [`crate::alerts::read`]). Blank lines are skipped; any
/// other record that is not an alert of the contract is an error naming its
/// line, since alerts are changeling's own output.
pub fn read_alerts(path: &Path) -> Result<AlertFile, EvalError> {
    Ok(AlertFile::from_read(path, &crate::alerts::read::read_for(path, crate::alerts::read::Need::Rules)?))
}

/// Parses JSON Lines alerts from `reader`; `path` is used in error messages
/// only.
pub fn parse_alerts(path: &Path, reader: impl BufRead) -> Result<AlertFile, EvalError> {
    Ok(AlertFile::from_read(path, &crate::alerts::read::parse_jsonl(path, reader)?))
}

/// Tier names found in alerts, highest first: ordered by the lowest score
/// seen with each (descending), then by name. For alerts written with
/// rules that cannot be loaded now.
pub fn tiers_from_alerts(alerts: &AlertFile) -> Vec<String> {
    let mut lowest: BTreeMap<&str, f64> = BTreeMap::new();
    for a in &alerts.alerts {
        let m = lowest.entry(&a.tier).or_insert(a.score);
        *m = m.min(a.score);
    }
    let mut tiers: Vec<(&str, f64)> = lowest.into_iter().collect();
    tiers.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    tiers.into_iter().map(|(n, _)| n.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Truth and activity

/// A compromise window; a missing bound is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Start, if known.
    pub start: Option<Millis>,
    /// End, if known.
    pub end: Option<Millis>,
}

impl Window {
    /// Whether `start..=end` overlaps this window widened by `slack` on
    /// both sides.
    pub fn overlaps(&self, start: Millis, end: Millis, slack: Millis) -> bool {
        let lo = self.start.map_or(Millis::MIN, |s| s.saturating_sub(slack));
        let hi = self.end.map_or(Millis::MAX, |e| e.saturating_add(slack));
        start <= hi && end >= lo
    }
}

/// What the labels say of one account.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountTruth {
    /// Labelled compromised (by at least one record).
    pub compromised: bool,
    /// Also labelled benign by another record.
    pub conflicting: bool,
    /// Compromise windows, one per compromised record.
    pub windows: Vec<Window>,
    /// The `style` of the first record of the winning label that has one.
    pub style: Option<String>,
    /// How many label records name the account.
    pub records: u32,
}

/// Ground truth: labelled accounts by id.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// Labelled accounts.
    pub accounts: BTreeMap<String, AccountTruth>,
}

impl Truth {
    /// Adds one label record.
    pub fn add(&mut self, actor: &str, compromised: bool, window: Window, style: Option<&str>) -> &mut Self {
        let t = self.accounts.entry(actor.to_string()).or_default();
        if compromised {
            if t.records > 0 && !t.compromised {
                // Benign records came first: their style is not this one's.
                t.conflicting = true;
                t.style = None;
            }
            t.compromised = true;
            t.windows.push(window);
            if t.style.is_none() {
                t.style = style.map(str::to_string);
            }
        } else if t.compromised {
            t.conflicting = true;
        } else if t.style.is_none() {
            t.style = style.map(str::to_string);
        }
        t.records += 1;
        self
    }

    /// The truth of a dataset's `labels` table (with its `style` field,
    /// where present).
    pub fn from_dataset(data: &Dataset) -> Result<Truth, EvalError> {
        let labels = data.labels.as_ref().ok_or_else(|| EvalError::NoLabels { dir: data.dir.clone() })?;
        let mut truth = Truth::default();
        for l in &labels.rows {
            let style = labels.extra(l, "style", &data.strings);
            truth.add(data.strings.resolve(l.actor), l.compromised, Window { start: l.start, end: l.end }, style);
        }
        Ok(truth)
    }
}

/// The columns evaluation reads, for readers that can skip the rest:
/// the required fields of every table, and all of `labels` (for `style`).
pub fn projection() -> Projection {
    let tables = TableKind::ALL
        .into_iter()
        .filter(|&k| k != TableKind::Labels)
        .map(|k| {
            let cols = k.fields().iter().filter(|f| f.required).map(|f| f.name.to_string()).collect();
            (k, cols)
        })
        .collect();
    Projection { tables }
}

/// Account-days per account with events: distinct UTC calendar days with
/// at least one event.
pub fn account_days(data: &Dataset) -> BTreeMap<String, u64> {
    data.events
        .accounts
        .iter()
        .map(|span| {
            let mut days = 0;
            let mut last = None;
            // Events are sorted by time within an account.
            for i in span.range() {
                let day = data.events.ts(i).div_euclid(DAY);
                if last != Some(day) {
                    days += 1;
                    last = Some(day);
                }
            }
            (data.strings.resolve(span.actor).to_string(), days)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The report

/// Where the tier names came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierSource {
    /// The rules' configuration.
    Rules,
    /// The alerts themselves, ordered by their lowest score.
    Alerts,
}

/// How to evaluate.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Tier names, highest first.
    pub tiers: Vec<String>,
    /// Where they came from.
    pub tier_source: TierSource,
    /// How far a compromise window is widened on each side.
    pub slack: Millis,
    /// The tier of the rule table (default: the highest).
    pub rules_tier: Option<String>,
}

/// The whole evaluation. Field order is the JSON key order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The slack, as a duration (`1h`).
    pub slack: String,
    /// The slack in milliseconds.
    pub slack_ms: Millis,
    /// Tier names, highest first.
    pub tiers: Vec<String>,
    /// Where they came from.
    pub tier_source: TierSource,
    /// The accounts evaluated.
    pub accounts: AccountCounts,
    /// The alerts read.
    pub alerts: AlertCounts,
    /// Account-level results per tier, highest first.
    pub by_tier: Vec<TierResult>,
    /// Threshold-free ranking quality.
    pub ranking: Ranking,
    /// Which rules hit the flagged accounts at one tier.
    pub rules: RuleTable,
    /// Incident scores read as probabilities: the reliability diagram and
    /// the expected calibration error.
    pub calibration: Reliability,
    /// Things the reader should know (conflicting labels, ...).
    pub notes: Vec<String>,
}

/// How well scores read as probabilities: incidents binned by score (see
/// the module doc, "Calibration").
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Reliability {
    /// Incidents measured.
    pub incidents: u64,
    /// Of them, compromises.
    pub compromises: u64,
    /// The bins that hold incidents, lowest scores first.
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: the count-weighted mean of `|mean_score
    /// - observed|` over the bins; absent without incidents.
    pub ece: Option<f64>,
}

/// One bin of a reliability diagram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lowest score of the bin (included).
    pub from: f64,
    /// Highest score of the bin (excluded, but for the last bin).
    pub to: f64,
    /// Incidents in it.
    pub count: u64,
    /// Their mean score.
    pub mean_score: f64,
    /// The share of them that are compromises.
    pub observed: f64,
}

/// How many equal-width bins [`reliability`] uses.
pub const RELIABILITY_BINS: usize = 10;

/// The reliability diagram of (score, compromise) pairs in
/// [`RELIABILITY_BINS`] equal-width bins of [0, 1] (a score of 1 in the
/// last), and its expected calibration error.
pub fn reliability(outcomes: &[(f64, bool)]) -> Reliability {
    let n = RELIABILITY_BINS;
    let mut sums = vec![(0u64, 0.0f64, 0u64); n];
    for &(score, hit) in outcomes {
        let b = ((score.clamp(0.0, 1.0) * n as f64) as usize).min(n - 1);
        sums[b].0 += 1;
        sums[b].1 += score;
        sums[b].2 += u64::from(hit);
    }
    let total = outcomes.len() as u64;
    let mut ece = 0.0;
    let mut bins = Vec::new();
    for (b, &(count, sum, hits)) in sums.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mean = sum / count as f64;
        let observed = hits as f64 / count as f64;
        ece += count as f64 / total as f64 * (mean - observed).abs();
        bins.push(ReliabilityBin {
            from: b as f64 / n as f64,
            to: (b + 1) as f64 / n as f64,
            count,
            mean_score: round6(mean),
            observed: round6(observed),
        });
    }
    Reliability {
        incidents: total,
        compromises: outcomes.iter().filter(|o| o.1).count() as u64,
        bins,
        ece: (total > 0).then(|| round6(ece)),
    }
}

/// Every alert as (score, whether it is a compromise: its account is
/// compromised and it overlaps a window widened by `slack`), in file order.
pub fn incident_outcomes(truth: &Truth, alerts: &AlertFile, slack: Millis) -> Vec<(f64, bool)> {
    alerts
        .alerts
        .iter()
        .map(|a| {
            let hit = truth
                .accounts
                .get(&a.actor)
                .is_some_and(|t| t.compromised && t.windows.iter().any(|w| w.overlaps(a.start, a.end, slack)));
            (a.score, hit)
        })
        .collect()
}

/// The accounts evaluated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountCounts {
    /// All of them (with events, labelled or alerted).
    pub total: u64,
    /// Labelled compromised.
    pub compromised: u64,
    /// Benign, labelled or not.
    pub benign: u64,
    /// Of those, labelled benign.
    pub labelled_benign: u64,
    /// Account-days of benign accounts.
    pub benign_account_days: u64,
}

/// The alerts read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertCounts {
    /// Alerts in the file.
    pub read: u64,
    /// Alerts that count (see the module doc).
    pub counted: u64,
    /// Alerts on compromised accounts outside every widened window.
    pub outside_window: u64,
}

/// Account-level results at one tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierResult {
    /// The tier.
    pub tier: String,
    /// Accounts flagged at this tier or a higher one.
    pub flagged: u64,
    /// Flagged and compromised.
    pub true_positives: u64,
    /// Flagged and benign.
    pub false_positives: u64,
    /// Compromised, not flagged.
    pub false_negatives: u64,
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN).
    pub recall: Option<f64>,
    /// 2 TP / (2 TP + FP + FN).
    pub f1: Option<f64>,
    /// FP accounts per million benign account-days.
    pub fp_per_million_account_days: Option<f64>,
    /// Recall per style of compromised accounts, by style.
    pub compromised_styles: Vec<StyleRecall>,
    /// False-positive rate per style of benign labelled accounts, by style.
    pub benign_styles: Vec<StyleFalsePositives>,
}

/// Recall for one style of compromise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StyleRecall {
    /// The style.
    pub style: String,
    /// Compromised accounts of this style.
    pub accounts: u64,
    /// Of those, flagged.
    pub detected: u64,
    /// detected / accounts.
    pub recall: f64,
}

/// False positives for one style of benign look-alike.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StyleFalsePositives {
    /// The style.
    pub style: String,
    /// Benign accounts of this style.
    pub accounts: u64,
    /// Of those, flagged.
    pub flagged: u64,
    /// flagged / accounts.
    pub fp_rate: f64,
}

/// Ranking quality from each account's highest counting score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranking {
    /// Compromised accounts ranked.
    pub positives: u64,
    /// Benign accounts ranked.
    pub negatives: u64,
    /// Area under the ROC curve (Mann–Whitney, average ranks).
    pub roc_auc: Option<f64>,
    /// Average precision (ties grouped).
    pub pr_auc: Option<f64>,
}

/// Rules that hit flagged accounts at one tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleTable {
    /// The tier (absent when there are no tiers).
    pub tier: Option<String>,
    /// Accounts per rule among true positives, most first.
    pub true_positives: Vec<RuleCount>,
    /// Accounts per rule among false positives, most first.
    pub false_positives: Vec<RuleCount>,
}

/// How many accounts a rule hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    /// The rule id.
    pub rule: String,
    /// Accounts.
    pub accounts: u64,
}

/// One account during evaluation.
#[derive(Default)]
struct Acct<'a> {
    compromised: bool,
    style: Option<&'a str>,
    labelled: bool,
    days: u64,
    /// Highest tier (lowest index) of a counting alert.
    best_tier: Option<usize>,
    /// Highest counting score.
    best_score: f64,
    /// Rules of counting alerts at or above the rule-table tier.
    rules: BTreeSet<&'a str>,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| round6(num as f64 / den as f64))
}

/// Every evaluated account with what its counting alerts say, and the
/// counts of alerts that counted and that fell outside their windows.
struct Tally<'a> {
    accts: BTreeMap<&'a str, Acct<'a>>,
    counted: u64,
    outside_window: u64,
    notes: Vec<String>,
    /// The tier of the rule table and the lists, as an index.
    rules_tier: Option<usize>,
}

/// Counts `alerts` against `truth` per account (see the module doc).
fn tally<'a>(
    truth: &'a Truth,
    days: &'a BTreeMap<String, u64>,
    alerts: &'a AlertFile,
    settings: &Settings,
) -> Result<Tally<'a>, EvalError> {
    let tiers = &settings.tiers;
    let tier_index = |name: &str| tiers.iter().position(|t| t == name);
    let rules_tier = match &settings.rules_tier {
        Some(name) => {
            Some(tier_index(name).ok_or_else(|| EvalError::UnknownTier { name: name.clone(), tiers: tiers.clone() })?)
        }
        None => (!tiers.is_empty()).then_some(0),
    };
    let mut notes = Vec::new();

    // Every account: with events, labelled, or alerted.
    let mut accts: BTreeMap<&str, Acct> = BTreeMap::new();
    for (actor, &d) in days {
        accts.entry(actor.as_str()).or_default().days = d;
    }
    let mut conflicting = 0;
    for (actor, t) in &truth.accounts {
        let a = accts.entry(actor.as_str()).or_default();
        a.labelled = true;
        a.compromised = t.compromised;
        a.style = t.style.as_deref();
        conflicting += u64::from(t.conflicting);
    }
    if conflicting > 0 {
        notes.push(format!("{conflicting} account(s) labelled both compromised and benign are taken as compromised"));
    }

    let mut counted = 0;
    let mut outside_window = 0;
    let mut without_events = BTreeSet::new();
    for alert in &alerts.alerts {
        let tier = tier_index(&alert.tier).ok_or_else(|| EvalError::UnknownAlertTier {
            path: alerts.path.clone(),
            line: alert.line,
            tier: alert.tier.clone(),
            tiers: tiers.clone(),
        })?;
        if !days.contains_key(&alert.actor) {
            without_events.insert(alert.actor.as_str());
        }
        let a = accts.entry(alert.actor.as_str()).or_default();
        let counts = match truth.accounts.get(&alert.actor) {
            Some(t) if t.compromised => t.windows.iter().any(|w| w.overlaps(alert.start, alert.end, settings.slack)),
            _ => true,
        };
        if !counts {
            outside_window += 1;
            continue;
        }
        counted += 1;
        a.best_tier = Some(a.best_tier.map_or(tier, |b| b.min(tier)));
        a.best_score = a.best_score.max(alert.score);
        if rules_tier.is_some_and(|rt| tier <= rt) {
            a.rules.extend(alert.rules.iter().map(String::as_str));
        }
    }
    if !without_events.is_empty() {
        notes.push(format!(
            "{} alerted account(s) have no events in the dataset (alerts from another dataset?)",
            without_events.len()
        ));
    }
    Ok(Tally { accts, counted, outside_window, notes, rules_tier })
}

/// Evaluates `alerts` against `truth`. `days` holds the account-days of
/// every account with events. Fails when an alert names a tier that is not
/// in `settings.tiers`, or `settings.rules_tier` is not a tier.
pub fn evaluate(
    truth: &Truth,
    days: &BTreeMap<String, u64>,
    alerts: &AlertFile,
    settings: &Settings,
) -> Result<Report, EvalError> {
    let tiers = &settings.tiers;
    let Tally { accts, counted, outside_window, mut notes, rules_tier } = tally(truth, days, alerts, settings)?;

    let compromised = accts.values().filter(|a| a.compromised).count() as u64;
    let total = accts.len() as u64;
    let benign = total - compromised;
    let labelled_benign = accts.values().filter(|a| a.labelled && !a.compromised).count() as u64;
    let benign_days: u64 = accts.values().filter(|a| !a.compromised).map(|a| a.days).sum();
    if compromised == 0 {
        notes.push("no account is labelled compromised: recall and AUCs are undefined".into());
    }

    let by_tier = (0..tiers.len()).map(|t| tier_result(&accts, tiers, t, compromised, benign_days)).collect();

    let mut scored: Vec<(f64, bool)> = accts.values().map(|a| (a.best_score, a.compromised)).collect();
    let ranking = Ranking {
        positives: compromised,
        negatives: benign,
        roc_auc: roc_auc(&mut scored).map(round6),
        pr_auc: average_precision(&mut scored).map(round6),
    };

    let flagged_at = |a: &Acct| match (a.best_tier, rules_tier) {
        (Some(b), Some(rt)) => b <= rt,
        _ => false,
    };
    let mut tp_rules: BTreeMap<&str, u64> = BTreeMap::new();
    let mut fp_rules: BTreeMap<&str, u64> = BTreeMap::new();
    for a in accts.values().filter(|a| flagged_at(a)) {
        let table = if a.compromised { &mut tp_rules } else { &mut fp_rules };
        for r in &a.rules {
            *table.entry(r).or_default() += 1;
        }
    }
    let rules = RuleTable {
        tier: rules_tier.map(|t| tiers[t].clone()),
        true_positives: rule_counts(tp_rules),
        false_positives: rule_counts(fp_rules),
    };

    Ok(Report {
        slack: compact_duration(settings.slack),
        slack_ms: settings.slack,
        tiers: tiers.clone(),
        tier_source: settings.tier_source,
        accounts: AccountCounts { total, compromised, benign, labelled_benign, benign_account_days: benign_days },
        alerts: AlertCounts { read: alerts.alerts.len() as u64, counted, outside_window },
        by_tier,
        ranking,
        rules,
        calibration: reliability(&incident_outcomes(truth, alerts, settings.slack)),
        notes,
    })
}

/// The false-positive and false-negative accounts at one tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listing {
    /// The tier (absent when there are no tiers).
    pub tier: Option<String>,
    /// Benign accounts flagged at the tier or higher, highest score first.
    pub false_positives: Vec<Listed>,
    /// Compromised accounts not flagged at the tier, highest score first
    /// (the nearest misses first).
    pub false_negatives: Vec<Listed>,
}

/// One listed account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listed {
    /// The account.
    pub actor: String,
    /// Its label's style, if any.
    pub style: Option<String>,
    /// The highest tier of its counting alerts, if any.
    pub tier: Option<String>,
    /// Its highest counting score (0 without one).
    pub score: f64,
    /// The rules of its counting alerts at the listing tier or higher.
    pub rules: Vec<String>,
}

/// The false-positive and false-negative accounts at `settings.rules_tier`
/// (by default the highest tier).
pub fn listing(
    truth: &Truth,
    days: &BTreeMap<String, u64>,
    alerts: &AlertFile,
    settings: &Settings,
) -> Result<Listing, EvalError> {
    let t = tally(truth, days, alerts, settings)?;
    let mut listing = Listing {
        tier: t.rules_tier.map(|i| settings.tiers[i].clone()),
        false_positives: Vec::new(),
        false_negatives: Vec::new(),
    };
    let Some(rt) = t.rules_tier else { return Ok(listing) };
    for (actor, a) in &t.accts {
        let flagged = a.best_tier.is_some_and(|b| b <= rt);
        let listed = || Listed {
            actor: actor.to_string(),
            style: a.style.map(str::to_string),
            tier: a.best_tier.map(|b| settings.tiers[b].clone()),
            score: a.best_score,
            rules: a.rules.iter().map(|r| r.to_string()).collect(),
        };
        if flagged && !a.compromised {
            listing.false_positives.push(listed());
        } else if !flagged && a.compromised {
            listing.false_negatives.push(listed());
        }
    }
    for l in [&mut listing.false_positives, &mut listing.false_negatives] {
        l.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.actor.cmp(&b.actor)));
    }
    Ok(listing)
}

/// The ROC and precision-recall curves of the ranking: one point per
/// distinct score, from the highest down to 0 (every account included).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Curves {
    /// ROC points, starting at (0, 0).
    pub roc: Vec<RocPoint>,
    /// Precision-recall points.
    pub pr: Vec<PrPoint>,
}

/// One point of the ROC curve: accounts scoring at least `threshold` are
/// flagged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// The score threshold (absent for the first point, where none is
    /// flagged).
    pub threshold: Option<f64>,
    /// False-positive rate: benign flagged / benign.
    pub fpr: f64,
    /// True-positive rate (recall).
    pub tpr: f64,
}

/// One point of the precision-recall curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PrPoint {
    /// The score threshold.
    pub threshold: f64,
    /// Recall.
    pub recall: f64,
    /// Precision.
    pub precision: f64,
}

/// The curves of `alerts` against `truth` (see [`Curves`]); empty without
/// positives or negatives.
pub fn curves(
    truth: &Truth,
    days: &BTreeMap<String, u64>,
    alerts: &AlertFile,
    settings: &Settings,
) -> Result<Curves, EvalError> {
    let t = tally(truth, days, alerts, settings)?;
    let mut scored: Vec<(f64, bool)> = t.accts.values().map(|a| (a.best_score, a.compromised)).collect();
    Ok(curves_of(&mut scored))
}

/// The curves of (score, positive) pairs; sorts `scored`.
pub fn curves_of(scored: &mut [(f64, bool)]) -> Curves {
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Curves::default();
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Curves { roc: vec![RocPoint { threshold: None, fpr: 0.0, tpr: 0.0 }], pr: Vec::new() };
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < scored.len() {
        let threshold = scored[i].0;
        while i < scored.len() && scored[i].0 == threshold {
            if scored[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.roc.push(RocPoint { threshold: Some(threshold), fpr: round6(fp / neg), tpr: round6(tp / pos) });
        out.pr.push(PrPoint { threshold, recall: round6(tp / pos), precision: round6(tp / (tp + fp)) });
    }
    out
}

fn tier_result(
    accts: &BTreeMap<&str, Acct>,
    tiers: &[String],
    t: usize,
    compromised: u64,
    benign_days: u64,
) -> TierResult {
    let flagged = |a: &Acct| a.best_tier.is_some_and(|b| b <= t);
    let mut tp = 0;
    let mut fp = 0;
    // style -> (accounts, flagged)
    let mut bad_styles: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut good_styles: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for a in accts.values() {
        let f = flagged(a);
        if a.compromised {
            tp += u64::from(f);
        } else {
            fp += u64::from(f);
        }
        if let Some(style) = a.style {
            let styles = if a.compromised { &mut bad_styles } else { &mut good_styles };
            let s = styles.entry(style).or_default();
            s.0 += 1;
            s.1 += u64::from(f);
        }
    }
    let fn_ = compromised - tp;
    TierResult {
        tier: tiers[t].clone(),
        flagged: tp + fp,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, compromised),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        fp_per_million_account_days: (benign_days > 0).then(|| round6(fp as f64 * 1e6 / benign_days as f64)),
        compromised_styles: bad_styles
            .into_iter()
            .map(|(style, (n, hit))| StyleRecall {
                style: style.to_string(),
                accounts: n,
                detected: hit,
                recall: round6(hit as f64 / n as f64),
            })
            .collect(),
        benign_styles: good_styles
            .into_iter()
            .map(|(style, (n, hit))| StyleFalsePositives {
                style: style.to_string(),
                accounts: n,
                flagged: hit,
                fp_rate: round6(hit as f64 / n as f64),
            })
            .collect(),
    }
}

fn rule_counts(map: BTreeMap<&str, u64>) -> Vec<RuleCount> {
    let mut v: Vec<RuleCount> =
        map.into_iter().map(|(rule, accounts)| RuleCount { rule: rule.to_string(), accounts }).collect();
    // Stable: equal counts stay in rule order.
    v.sort_by_key(|c| std::cmp::Reverse(c.accounts));
    v
}

/// ROC AUC of (score, positive) pairs: the Mann–Whitney U statistic of the
/// positives over `positives * negatives`, with tied scores given their
/// average rank. `None` without positives or without negatives. Sorts
/// `scored` by score.
pub fn roc_auc(scored: &mut [(f64, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        // Ranks i+1..=j, averaged.
        let avg = (i + 1 + j) as f64 / 2.0;
        let p = scored[i..j].iter().filter(|s| s.1).count();
        rank_sum += avg * p as f64;
        i = j;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision of (score, positive) pairs: `sum (R_k - R_{k-1}) P_k`
/// over the distinct scores, highest first, all accounts of a score
/// entering together. `None` without positives. Sorts `scored` by score.
pub fn average_precision(scored: &mut [(f64, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|s| s.1).count();
    if pos == 0 {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        let mut new_tp = 0;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            new_tp += usize::from(scored[j].1);
            j += 1;
        }
        tp += new_tp;
        seen = j;
        if new_tp > 0 {
            ap += (new_tp as f64 / pos as f64) * (tp as f64 / seen as f64);
        }
        i = j;
    }
    debug_assert_eq!(seen, scored.len());
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR, MINUTE, parse_rfc3339};

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).unwrap()
    }

    fn settings(slack: Millis) -> Settings {
        Settings {
            tiers: vec!["high".into(), "medium".into(), "low".into()],
            tier_source: TierSource::Rules,
            slack,
            rules_tier: None,
        }
    }

    fn alert(actor: &str, start: &str, end: &str, score: f64, tier: &str, rules: &[&str]) -> Alert {
        Alert {
            line: 0,
            actor: actor.into(),
            start: t(start),
            end: t(end),
            score,
            tier: tier.into(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn file(alerts: Vec<Alert>) -> AlertFile {
        let alerts = alerts.into_iter().enumerate().map(|(i, a)| Alert { line: i as u64 + 1, ..a }).collect();
        AlertFile { path: "alerts.jsonl".into(), alerts }
    }

    fn days(accounts: &[(&str, u64)]) -> BTreeMap<String, u64> {
        accounts.iter().map(|(a, d)| (a.to_string(), *d)).collect()
    }

    const NOON: &str = "2020-09-09T12:00:00Z";
    const ONE: &str = "2020-09-09T13:00:00Z";

    fn window(start: &str, end: &str) -> Window {
        Window { start: Some(t(start)), end: Some(t(end)) }
    }

    #[test]
    fn perfect_separation_gives_auc_one() {
        let mut s = vec![(0.9, true), (0.8, true), (0.3, false), (0.0, false)];
        assert_eq!(roc_auc(&mut s), Some(1.0));
        assert_eq!(average_precision(&mut s), Some(1.0));
        // Positives alerted, negatives not: all negatives tie at 0.
        let mut s = vec![(0.5, true), (0.0, false), (0.0, false), (0.0, false)];
        assert_eq!(roc_auc(&mut s), Some(1.0));
        assert_eq!(average_precision(&mut s), Some(1.0));
    }

    #[test]
    fn inverted_ranking_gives_roc_auc_zero() {
        let mut s = vec![(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        assert_eq!(roc_auc(&mut s), Some(0.0));
        // Positives at ranks 3 and 4 of 4: (1/2)(1/3) + (1/2)(2/4).
        let ap = average_precision(&mut s).unwrap();
        assert!((ap - (1.0 / 6.0 + 1.0 / 4.0)).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn ties_give_one_half() {
        let mut s = vec![(0.0, true), (0.0, false), (0.0, false), (0.0, true)];
        assert_eq!(roc_auc(&mut s), Some(0.5));
        // One threshold with everyone in: precision 2/4 at recall 1.
        assert_eq!(average_precision(&mut s), Some(0.5));
        // A positive tied with one of two negatives above one below:
        // pairs (p,n1) tie = 1/2, (p,n2) win = 1 -> 3/4.
        let mut s = vec![(0.5, true), (0.5, false), (0.1, false)];
        assert_eq!(roc_auc(&mut s), Some(0.75));
        assert_eq!(average_precision(&mut s), Some(0.5));
    }

    #[test]
    fn aucs_need_both_classes() {
        assert_eq!(roc_auc(&mut [(0.5, false), (0.1, false)]), None);
        assert_eq!(average_precision(&mut [(0.5, false)]), None);
        assert_eq!(roc_auc(&mut [(0.5, true)]), None);
        assert_eq!(average_precision(&mut [(0.5, true)]), Some(1.0));
    }

    #[test]
    fn window_overlap_with_and_without_slack() {
        let w = window(NOON, ONE);
        // Inside, straddling, and touching the edge count.
        assert!(w.overlaps(t("2020-09-09T12:10:00Z"), t("2020-09-09T12:20:00Z"), 0));
        assert!(w.overlaps(t("2020-09-09T11:00:00Z"), t("2020-09-09T12:00:00Z"), 0));
        assert!(w.overlaps(t("2020-09-09T11:00:00Z"), t("2020-09-09T14:00:00Z"), 0));
        // 30 minutes after the end: only with slack of 30 minutes or more.
        let (s, e) = (t("2020-09-09T13:30:00Z"), t("2020-09-09T13:45:00Z"));
        assert!(!w.overlaps(s, e, 0));
        assert!(!w.overlaps(s, e, 29 * MINUTE));
        assert!(w.overlaps(s, e, 30 * MINUTE));
        // Before the start, symmetric.
        let (s, e) = (t("2020-09-09T10:00:00Z"), t("2020-09-09T11:30:00Z"));
        assert!(!w.overlaps(s, e, 0));
        assert!(w.overlaps(s, e, HOUR));
        // Open ends.
        let open = Window { start: Some(t(NOON)), end: None };
        assert!(open.overlaps(t("2021-01-01T00:00:00Z"), t("2021-01-01T00:00:00Z"), 0));
        assert!(!open.overlaps(t("2020-01-01T00:00:00Z"), t("2020-01-01T00:00:00Z"), 0));
        assert!(Window::default().overlaps(Millis::MIN, Millis::MIN, HOUR));
    }

    /// One compromised account (window noon..13:00), one benign labelled,
    /// one unlabelled.
    fn truth() -> Truth {
        let mut truth = Truth::default();
        truth.add("bad", true, window(NOON, ONE), Some("takeover")).add(
            "good",
            false,
            Window::default(),
            Some("regret"),
        );
        truth
    }

    #[test]
    fn slack_decides_whether_a_late_alert_is_a_detection() {
        let alerts = file(vec![alert("bad", "2020-09-09T13:40:00Z", "2020-09-09T13:50:00Z", 0.9, "high", &["r1"])]);
        let d = days(&[("bad", 3), ("good", 5), ("quiet", 10)]);
        let with = evaluate(&truth(), &d, &alerts, &settings(HOUR)).unwrap();
        assert_eq!(with.by_tier[0].true_positives, 1);
        assert_eq!(with.by_tier[0].recall, Some(1.0));
        assert_eq!(with.alerts.counted, 1);

        let without = evaluate(&truth(), &d, &alerts, &settings(30 * MINUTE)).unwrap();
        assert_eq!(without.alerts.counted, 0);
        assert_eq!(without.alerts.outside_window, 1);
        let high = &without.by_tier[0];
        // Not a detection ...
        assert_eq!((high.true_positives, high.false_negatives, high.recall), (0, 1, Some(0.0)));
        // ... and not a false positive either: it is counted nowhere.
        assert_eq!((high.flagged, high.false_positives), (0, 0));
        assert_eq!(high.precision, None);
        assert_eq!(high.f1, Some(0.0));
        assert_eq!(high.fp_per_million_account_days, Some(0.0));
        // Its score does not rank the account either.
        assert_eq!(without.ranking.roc_auc, Some(0.5));
        assert!(without.rules.true_positives.is_empty());
    }

    #[test]
    fn compromised_without_window_counts_any_alert() {
        let mut truth = Truth::default();
        truth.add("bad", true, Window::default(), None);
        let alerts = file(vec![alert("bad", "2019-01-01T00:00:00Z", "2019-01-01T00:00:00Z", 0.3, "low", &[])]);
        let r = evaluate(&truth, &days(&[("bad", 1)]), &alerts, &settings(0)).unwrap();
        assert_eq!(r.by_tier[2].true_positives, 1);
        assert_eq!(r.by_tier[1].true_positives, 0);
    }

    #[test]
    fn tiers_precision_recall_and_account_days() {
        // bad: high; good: medium (labelled benign FP); quiet: low
        // (unlabelled, a benign FP); calm: nothing.
        let alerts = file(vec![
            alert("bad", NOON, ONE, 0.95, "high", &["r1", "r2", "r1"]),
            alert("bad", NOON, NOON, 0.3, "low", &["r3"]),
            alert("good", NOON, NOON, 0.6, "medium", &["r2"]),
            alert("quiet", NOON, NOON, 0.25, "low", &["r3"]),
        ]);
        let d = days(&[("bad", 3), ("good", 5), ("quiet", 10), ("calm", 5)]);
        let mut s = settings(HOUR);
        s.rules_tier = Some("low".into());
        let r = evaluate(&truth(), &d, &alerts, &s).unwrap();
        assert_eq!(r.accounts.total, 4);
        assert_eq!(r.accounts.compromised, 1);
        assert_eq!(r.accounts.benign, 3);
        assert_eq!(r.accounts.labelled_benign, 1);
        assert_eq!(r.accounts.benign_account_days, 20);

        type Row = (u64, u64, u64, Option<f64>, Option<f64>, Option<f64>);
        let got: Vec<Row> = r
            .by_tier
            .iter()
            .map(|t| (t.true_positives, t.false_positives, t.false_negatives, t.precision, t.recall, t.f1))
            .collect();
        assert_eq!(
            got,
            [
                (1, 0, 0, Some(1.0), Some(1.0), Some(1.0)),
                (1, 1, 0, Some(0.5), Some(1.0), Some(0.666667)),
                (1, 2, 0, Some(0.333333), Some(1.0), Some(0.5)),
            ]
        );
        // 2 FP accounts over 20 benign account-days.
        assert_eq!(r.by_tier[2].fp_per_million_account_days, Some(100_000.0));
        assert_eq!(r.by_tier[0].fp_per_million_account_days, Some(0.0));

        // Scores: bad 0.95 (pos), good 0.6, quiet 0.25, calm 0.
        assert_eq!(r.ranking.roc_auc, Some(1.0));
        assert_eq!(r.ranking.pr_auc, Some(1.0));

        // Rules at low: an account counts once per rule.
        let c = |v: &[RuleCount]| -> Vec<(String, u64)> { v.iter().map(|c| (c.rule.clone(), c.accounts)).collect() };
        assert_eq!(r.rules.tier.as_deref(), Some("low"));
        assert_eq!(c(&r.rules.true_positives), [("r1".into(), 1), ("r2".into(), 1), ("r3".into(), 1)]);
        assert_eq!(c(&r.rules.false_positives), [("r2".into(), 1), ("r3".into(), 1)]);

        // At the default (highest) tier only the high alert's rules count.
        let r = evaluate(&truth(), &d, &alerts, &settings(HOUR)).unwrap();
        assert_eq!(c(&r.rules.true_positives), [("r1".into(), 1), ("r2".into(), 1)]);
        assert!(r.rules.false_positives.is_empty());
    }

    #[test]
    fn rule_table_sorts_by_count_then_rule() {
        let alerts = file(vec![
            alert("a", NOON, NOON, 0.9, "high", &["zeta", "beta"]),
            alert("b", NOON, NOON, 0.9, "high", &["zeta"]),
            alert("c", NOON, NOON, 0.9, "high", &["alpha"]),
        ]);
        let r = evaluate(&Truth::default(), &BTreeMap::new(), &alerts, &settings(0)).unwrap();
        let got: Vec<(&str, u64)> = r.rules.false_positives.iter().map(|c| (c.rule.as_str(), c.accounts)).collect();
        assert_eq!(got, [("zeta", 2), ("alpha", 1), ("beta", 1)]);
        assert_eq!(r.accounts.total, 3);
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
    }

    #[test]
    fn style_breakdowns() {
        let mut truth = Truth::default();
        truth
            .add("t1", true, window(NOON, ONE), Some("takeover"))
            .add("t2", true, window(NOON, ONE), Some("takeover"))
            .add("s1", true, Window::default(), Some("sim-swap"))
            .add("x", true, Window::default(), None)
            .add("tap1", false, Window::default(), Some("accidental-tap"))
            .add("tap2", false, Window::default(), Some("accidental-tap"))
            .add("reg", false, Window::default(), Some("regret"));
        let alerts = file(vec![
            alert("t1", NOON, NOON, 0.9, "high", &["r"]),
            alert("s1", NOON, NOON, 0.6, "medium", &["r"]),
            alert("tap1", NOON, NOON, 0.3, "low", &["r"]),
        ]);
        let r = evaluate(&truth, &BTreeMap::new(), &alerts, &settings(0)).unwrap();
        let recall = |t: usize| -> Vec<(String, u64, u64, f64)> {
            r.by_tier[t]
                .compromised_styles
                .iter()
                .map(|s| (s.style.clone(), s.accounts, s.detected, s.recall))
                .collect()
        };
        assert_eq!(recall(0), [("sim-swap".into(), 1, 0, 0.0), ("takeover".into(), 2, 1, 0.5)]);
        assert_eq!(recall(1), [("sim-swap".into(), 1, 1, 1.0), ("takeover".into(), 2, 1, 0.5)]);
        let fp = |t: usize| -> Vec<(String, u64, u64, f64)> {
            r.by_tier[t].benign_styles.iter().map(|s| (s.style.clone(), s.accounts, s.flagged, s.fp_rate)).collect()
        };
        assert_eq!(fp(1), [("accidental-tap".into(), 2, 0, 0.0), ("regret".into(), 1, 0, 0.0)]);
        assert_eq!(fp(2), [("accidental-tap".into(), 2, 1, 0.5), ("regret".into(), 1, 0, 0.0)]);
        // Overall at low: 2 of 4 compromised found, 1 FP.
        assert_eq!(r.by_tier[2].recall, Some(0.5));
        assert_eq!(r.by_tier[2].precision, Some(0.666667));
    }

    #[test]
    fn conflicting_labels_are_compromised() {
        let mut truth = Truth::default();
        truth.add("a", false, Window::default(), Some("regret")).add("a", true, window(NOON, ONE), Some("takeover"));
        let a = &truth.accounts["a"];
        assert!(a.compromised && a.conflicting);
        assert_eq!(a.style.as_deref(), Some("takeover"));
        let r = evaluate(&truth, &BTreeMap::new(), &file(vec![]), &settings(0)).unwrap();
        assert_eq!(r.accounts.compromised, 1);
        assert!(r.notes[0].contains("labelled both"), "{:?}", r.notes);
    }

    #[test]
    fn unknown_tiers_are_errors() {
        let alerts = file(vec![alert("a", NOON, NOON, 0.9, "critical", &[])]);
        let e = evaluate(&Truth::default(), &BTreeMap::new(), &alerts, &settings(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alerts.jsonl:1: tier `critical` is not a tier of the rules (tiers: high, medium, low); were the alerts written with other rules? (see --rules)"
        );
        let mut s = settings(0);
        s.rules_tier = Some("hihg".into());
        let e = evaluate(&Truth::default(), &BTreeMap::new(), &file(vec![]), &s).unwrap_err();
        assert_eq!(e.to_string(), "no tier `hihg` (tiers: high, medium, low)");
    }

    #[test]
    fn tiers_from_alerts_are_ordered_by_lowest_score() {
        let alerts = file(vec![
            alert("a", NOON, NOON, 0.3, "low", &[]),
            alert("a", NOON, NOON, 0.95, "high", &[]),
            alert("b", NOON, NOON, 0.85, "high", &[]),
            alert("b", NOON, NOON, 0.6, "medium", &[]),
        ]);
        assert_eq!(tiers_from_alerts(&alerts), ["high", "medium", "low"]);
    }

    #[test]
    fn alerts_parse_leniently_but_malformed_lines_are_errors() {
        let text = concat!(
            r#"{"actor":"liu","start":"2020-09-09T13:58:00Z","end":"2020-09-09T16:10:00Z","score":0.96,"tier":"high","extra":1,"#,
            r#""hits":[{"rule":"a/b","ts":"2020-09-09T13:58:00Z","why":"x","effect":"for"}]}"#,
            "\n\n",
            r#"{"actor":"x","start":"2020-09-09T13:58:00Z","end":"2020-09-09T13:58:00Z","score":0.3,"tier":"low","hits":[]}"#,
            "\n"
        );
        let f = parse_alerts(Path::new("a.jsonl"), text.as_bytes()).unwrap();
        assert_eq!(f.alerts.len(), 2);
        assert_eq!(f.alerts[0].rules, ["a/b"]);
        assert_eq!(f.alerts[0].end, t("2020-09-09T16:10:00Z"));
        assert_eq!(f.alerts[1].line, 3);

        let err = |text: &str| parse_alerts(Path::new("a.jsonl"), text.as_bytes()).unwrap_err().to_string();
        assert_eq!(err("\n{\"actor\":\"x\"}\n"), "a.jsonl:2: not an alert: missing field `start` (column 13)");
        assert!(err("{oops\n").starts_with("a.jsonl:1: not an alert: key must be a string"));
        assert_eq!(
            err(r#"{"actor":"x","start":"yesterday","end":"2020-09-09T13:58:00Z","score":0.3,"tier":"low","hits":[]}"#),
            "a.jsonl:1: `start` is not a timestamp: \"yesterday\""
        );
        assert_eq!(
            err(
                r#"{"actor":"x","start":"2020-09-09T13:58:00Z","end":"2020-09-09T13:58:00Z","score":1.5,"tier":"low","hits":[]}"#
            ),
            "a.jsonl:1: `score` is 1.5, but must be between 0 and 1"
        );
        assert_eq!(
            err(
                r#"{"actor":"x","start":"2020-09-09T13:58:00Z","end":"2020-09-09T12:00:00Z","score":0.5,"tier":"low","hits":[]}"#
            ),
            "a.jsonl:1: `end` (2020-09-09T12:00:00Z) is before `start` (2020-09-09T13:58:00Z)"
        );
    }

    #[test]
    fn a_missing_parquet_file_names_itself() {
        let e = read_alerts(Path::new("no-such-alerts.parquet")).unwrap_err();
        assert!(e.to_string().contains("cannot read alerts no-such-alerts.parquet"), "{e}");
    }

    #[test]
    fn curves_step_through_each_distinct_score() {
        let mut s = vec![(0.9, true), (0.5, false), (0.5, true), (0.0, false)];
        let c = curves_of(&mut s);
        let roc: Vec<(f64, f64)> = c.roc.iter().map(|p| (p.fpr, p.tpr)).collect();
        assert_eq!(roc, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let pr: Vec<(f64, f64, f64)> = c.pr.iter().map(|p| (p.threshold, p.recall, p.precision)).collect();
        assert_eq!(pr, [(0.9, 0.5, 1.0), (0.5, 1.0, 0.666667), (0.0, 1.0, 0.5)]);
        assert_eq!(curves_of(&mut [(0.5, true)]), Curves::default());
    }

    #[test]
    fn listing_names_false_positives_and_negatives_at_a_tier() {
        let alerts = file(vec![
            alert("bad", NOON, ONE, 0.6, "medium", &["r1"]),
            alert("good", NOON, NOON, 0.9, "high", &["r2"]),
            alert("quiet", NOON, NOON, 0.95, "high", &["r3"]),
        ]);
        let d = days(&[("bad", 3), ("good", 5), ("quiet", 10)]);
        let l = listing(&truth(), &d, &alerts, &settings(HOUR)).unwrap();
        assert_eq!(l.tier.as_deref(), Some("high"));
        let fp: Vec<&str> = l.false_positives.iter().map(|x| x.actor.as_str()).collect();
        assert_eq!(fp, ["quiet", "good"]);
        assert_eq!(l.false_positives[1].rules, ["r2"]);
        assert_eq!(l.false_negatives.len(), 1);
        assert_eq!(l.false_negatives[0].actor, "bad");
        assert_eq!(l.false_negatives[0].tier.as_deref(), Some("medium"));
        assert_eq!(l.false_negatives[0].style.as_deref(), Some("takeover"));
    }

    #[test]
    fn reliability_bins_scores_and_weighs_the_gaps() {
        // 0.05 x4 (none a compromise), 0.95 x4 (three), 1.0 x1 (one): the
        // last two share the top bin.
        let mut o = vec![(0.05, false); 4];
        o.extend([(0.95, true), (0.95, true), (0.95, true), (0.95, false), (1.0, true)]);
        let r = reliability(&o);
        assert_eq!(r.incidents, 9);
        assert_eq!(r.compromises, 4);
        assert_eq!(r.bins.len(), 2);
        assert_eq!((r.bins[0].count, r.bins[0].mean_score, r.bins[0].observed), (4, 0.05, 0.0));
        assert_eq!((r.bins[1].from, r.bins[1].to, r.bins[1].count), (0.9, 1.0, 5));
        assert_eq!(r.bins[1].mean_score, 0.96);
        // ECE = 4/9 * 0.05 + 5/9 * |0.96 - 0.8|.
        assert_eq!(r.ece, Some(round6(4.0 / 9.0 * 0.05 + 5.0 / 9.0 * 0.16)));
        assert_eq!(reliability(&[]).ece, None);
    }
}
