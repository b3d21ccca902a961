//! The engine configuration, `rules/changeling.toml`: how hits group into
//! incidents, the score tiers, and the lists and macros rules share.
//!
//! ```toml
//! [incident]
//! gap = "6h"            # hits on one account closer than this join one incident
//! link = "48h"          # later hits on a target an incident holds join it, up to this long after it
//!
//! [[tier]]              # highest first; an incident takes the first tier it reaches
//! name = "high"
//! min_score = 0.8
//! [[tier]]
//! name = "medium"
//! min_score = 0.5
//! [[tier]]
//! name = "low"          # incidents scoring below the last tier are not written
//! min_score = 0.2
//!
//! [score]
//! repeat_discount = 0.5 # the k-th strongest hit of one family counts 0.5^(k-1) of its evidence
//! family_cap = 0.8      # one family saturates below this: not above `high`, so high needs two
//! [score.caps]          # caps of particular families (the others: family_cap)
//! content = 0.5
//! families = ["content", "exposure", "cleanup", "context", "automation", "lockstep"]
//! # [score.calibration] # written by `changeling fit` (docs/rules.md, "Fitted weights and calibrated scores")
//! # raw = [0.1, 0.5, 0.9]
//! # calibrated = [0.01, 0.2, 0.97]
//!
//! [lists]
//! navigation_surfaces = ["search", "profile", "notifications"]
//!
//! [macros]
//! human_clients = [{ field = "client", not_in = ["api", "bot"] }]
//! ```
//!
//! Every key is optional; the defaults are the values above (without the
//! list and macro). The file is read before the rules, since rules refer to
//! its lists and macros.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::de::DeValue;

use super::diag::{Code, Source};
use super::filter::{self, Filter};
use super::reader::{Ctx, TableReader, str_list_value};
use crate::time::{HOUR, Millis};

/// A score tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    /// Its name, as written in alerts.
    pub name: String,
    /// The lowest score that reaches it.
    pub min_score: f64,
}

/// The evidence families every configuration knows, in the order alerts
/// list them when none is configured: what kind of evidence a rule's hits
/// are (see [`ScoreModel`]).
pub const FAMILIES: [&str; 6] = ["content", "exposure", "cleanup", "context", "automation", "lockstep"];

/// How an incident's hits combine into its score (`[score]`).
///
/// Hits are grouped by evidence family (each rule names its families). In
/// one family the strongest hit counts fully and the k-th strongest
/// `repeat_discount^(k-1)` of its evidence, so that repeats of one kind of
/// evidence have diminishing returns; a family's evidence is then capped at
/// `family_cap`. Families combine as independent evidence. With the cap
/// below the top tier, one family alone cannot reach it: the top tier needs
/// corroboration. See `score::incident` for the formula.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreModel {
    /// Discount of each further hit of one family, in [0, 1].
    pub repeat_discount: f64,
    /// The most evidence one family contributes, in [0, 1].
    pub family_cap: f64,
    /// Family names rules may use, in the order alerts list them.
    pub families: Vec<String>,
    /// Caps of particular families (`[score.caps]`), by family name; the
    /// others have `family_cap`.
    pub caps: BTreeMap<String, f64>,
    /// A monotone map from the combined score to the score written
    /// (`[score.calibration]`, fitted by `changeling fit`); none: the
    /// combined score is written as it is.
    pub calibration: Option<Calibration>,
}

impl Default for ScoreModel {
    fn default() -> Self {
        ScoreModel {
            repeat_discount: 0.5,
            family_cap: 0.8,
            families: FAMILIES.iter().map(|f| f.to_string()).collect(),
            caps: BTreeMap::new(),
            calibration: None,
        }
    }
}

/// A monotone calibration map (`[score.calibration]`): knots `(raw[i],
/// calibrated[i])`, `raw` strictly increasing and `calibrated`
/// non-decreasing, both in [0, 1]. A score between two knots is
/// interpolated linearly; below the first knot it takes the first
/// calibrated value, above the last the last one. `changeling fit` fits it
/// by isotonic regression of "this incident is a compromise" on the
/// combined score (`crate::fit`), so that a calibrated score reads as the
/// share of such incidents that were compromises.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Combined scores at the knots, strictly increasing.
    pub raw: Vec<f64>,
    /// Calibrated scores at the knots, non-decreasing.
    pub calibrated: Vec<f64>,
}

impl Calibration {
    /// A calibration from its knots; an error saying what is wrong when
    /// they are not two lists of one length (at least one knot) with `raw`
    /// strictly increasing, `calibrated` non-decreasing, all in [0, 1].
    pub fn new(raw: Vec<f64>, calibrated: Vec<f64>) -> Result<Calibration, String> {
        if raw.is_empty() || raw.len() != calibrated.len() {
            return Err(format!(
                "`raw` and `calibrated` must be lists of one length, at least 1 (they have {} and {})",
                raw.len(),
                calibrated.len()
            ));
        }
        if let Some(x) = raw.iter().chain(&calibrated).find(|x| !(0.0..=1.0).contains(*x)) {
            return Err(format!("every knot must be between 0 and 1, but one is {x}"));
        }
        if let Some(w) = raw.windows(2).find(|w| w[1] <= w[0]) {
            return Err(format!("`raw` must be strictly increasing, but {} follows {}", w[1], w[0]));
        }
        if let Some(w) = calibrated.windows(2).find(|w| w[1] < w[0]) {
            return Err(format!("`calibrated` must not decrease, but {} follows {}", w[1], w[0]));
        }
        Ok(Calibration { raw, calibrated })
    }

    /// The calibrated score of combined score `x`.
    pub fn apply(&self, x: f64) -> f64 {
        let (r, c) = (&self.raw, &self.calibrated);
        let i = r.partition_point(|&k| k <= x);
        if i == 0 {
            return c[0];
        }
        if i == r.len() {
            return c[r.len() - 1];
        }
        let t = (x - r[i - 1]) / (r[i] - r[i - 1]);
        c[i - 1] + t * (c[i] - c[i - 1])
    }
}

impl ScoreModel {
    /// The index of a family name.
    pub fn family(&self, name: &str) -> Option<usize> {
        self.families.iter().position(|f| f == name)
    }

    /// The cap of family `f` (an index into `families`).
    pub fn cap(&self, f: usize) -> f64 {
        self.caps.get(&self.families[f]).copied().unwrap_or(self.family_cap)
    }

    /// The largest cap of any family.
    pub fn max_cap(&self) -> f64 {
        (0..self.families.len()).map(|f| self.cap(f)).fold(0.0, f64::max)
    }

    /// The score written for combined score `x`: `x` through the
    /// calibration, when there is one.
    pub fn calibrated(&self, x: f64) -> f64 {
        self.calibration.as_ref().map_or(x, |c| c.apply(x))
    }

    /// The highest score one family alone can give: its cap, less the
    /// step [`crate::score::incident::family_evidence`] keeps below it,
    /// calibrated.
    pub fn single_family_top(&self) -> f64 {
        self.calibrated((self.max_cap() - 1e-4).max(0.0))
    }
}

/// The engine configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, if any.
    pub source: Option<Arc<Source>>,
    /// Hits closer in time than this join one incident.
    pub incident_gap: Millis,
    /// A later hit on a target an incident already holds joins it, up to
    /// this long after the incident's latest hit (0: never).
    pub incident_link: Millis,
    /// Tiers, highest `min_score` first.
    pub tiers: Vec<Tier>,
    /// How hits combine into an incident's score.
    pub score: ScoreModel,
    /// Shared string lists, referenced as `"@name"`.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Shared filters, referenced as `{ use = "name" }`, unexpanded.
    pub macros: BTreeMap<String, Vec<Filter>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            incident_gap: 6 * HOUR,
            incident_link: 48 * HOUR,
            tiers: vec![
                Tier { name: "high".into(), min_score: 0.8 },
                Tier { name: "medium".into(), min_score: 0.5 },
                Tier { name: "low".into(), min_score: 0.2 },
            ],
            score: ScoreModel::default(),
            lists: BTreeMap::new(),
            macros: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The tier a score reaches, by index into `tiers`, if any.
    pub fn tier_of(&self, score: f64) -> Option<usize> {
        self.tiers.iter().position(|t| score >= t.min_score)
    }

    /// Reads the config from a parsed document, reporting into `ctx`.
    pub fn read(
        root: &toml::de::DeTable<'_>,
        span: std::ops::Range<usize>,
        source: &Arc<Source>,
        diags: &mut super::diag::Diagnostics,
    ) -> Config {
        let mut config = Config { source: Some(source.clone()), ..Config::default() };
        let no_lists = BTreeMap::new();
        let mut ctx = Ctx { source, diags, lists: &no_lists };
        let mut r = TableReader::new(root, span, "changeling.toml");

        if let Some(mut inc) = r.table(&mut ctx, "incident", "[incident]") {
            config.incident_gap = inc.duration_or(&mut ctx, "gap", config.incident_gap);
            config.incident_link = inc.duration_or(&mut ctx, "link", config.incident_link);
            inc.finish(&mut ctx);
        }

        let tiers = r.tables(&mut ctx, "tier", "[[tier]]");
        if !tiers.is_empty() {
            let mut read = Vec::new();
            for mut t in tiers {
                let name = t.req_str(&mut ctx, "name");
                let min = t.num(&mut ctx, "min_score");
                if min.is_none() && t.get("min_score").is_none() {
                    ctx.report(
                        Code::MissingKey,
                        t.span.clone(),
                        "[[tier]] is missing required key `min_score` (a number from 0 to 1)",
                    );
                }
                let span = t.span.clone();
                t.finish(&mut ctx);
                if let (Some(name), Some(min)) = (name, min) {
                    if !(0.0..=1.0).contains(&min.value) {
                        ctx.report(
                            Code::BadValue,
                            min.span,
                            format!("`min_score` is {}, but must be between 0 and 1", min.value),
                        );
                        continue;
                    }
                    read.push((Tier { name: name.value, min_score: min.value }, span));
                }
            }
            for w in read.windows(2) {
                if w[1].0.min_score >= w[0].0.min_score {
                    ctx.report(
                        Code::BadTiers,
                        w[1].1.clone(),
                        format!(
                            "tier `{}` (min_score {}) must have a lower min_score than tier `{}` above it ({})",
                            w[1].0.name, w[1].0.min_score, w[0].0.name, w[0].0.min_score
                        ),
                    )
                    .help
                    .push("help: list tiers from the highest score to the lowest".into());
                }
                if w[1].0.name == w[0].0.name {
                    ctx.report(Code::BadTiers, w[1].1.clone(), format!("tier `{}` is declared twice", w[1].0.name));
                }
            }
            config.tiers = read.into_iter().map(|(t, _)| t).collect();
        }

        let mut cap_span = None;
        if let Some(mut score) = r.table(&mut ctx, "score", "[score]") {
            let m = &mut config.score;
            m.repeat_discount = score.num_in(&mut ctx, "repeat_discount", 0.0, 1.0, m.repeat_discount);
            let cap = score.num(&mut ctx, "family_cap");
            if let Some(cap) = &cap {
                if (0.0..=1.0).contains(&cap.value) {
                    m.family_cap = cap.value;
                } else {
                    ctx.report(
                        Code::BadValue,
                        cap.span.clone(),
                        format!("`family_cap` is {}, but must be between 0 and 1", cap.value),
                    );
                }
            }
            if let Some(list) = score.str_list(&mut ctx, "families") {
                let mut names: Vec<String> = Vec::new();
                for f in list.value {
                    if names.contains(&f.value) {
                        ctx.report(Code::BadValue, f.span, format!("family `{}` is listed twice", f.value));
                    } else if f.value.is_empty() {
                        ctx.report(Code::BadValue, f.span, "a family name must not be empty");
                    } else {
                        names.push(f.value);
                    }
                }
                if names.is_empty() {
                    ctx.report(Code::BadValue, list.span, "`families` must name at least one evidence family");
                } else {
                    m.families = names;
                }
            }
            if let Some(caps) = score.table(&mut ctx, "caps", "[score.caps]") {
                for (key, value) in caps.entries() {
                    let name = key.get_ref().to_string();
                    match crate::rules::reader::as_number(value.get_ref()) {
                        Some(x) if (0.0..=1.0).contains(&x) => {
                            m.caps.insert(name, x);
                        }
                        Some(x) => {
                            ctx.report(
                                Code::BadValue,
                                value.span(),
                                format!("the cap of `{name}` is {x}, but must be between 0 and 1"),
                            );
                        }
                        None => {
                            ctx.report(
                                Code::WrongType,
                                value.span(),
                                format!("the cap of `{name}` must be a number from 0 to 1"),
                            );
                        }
                    }
                }
            }
            for name in m.caps.keys() {
                if !m.families.contains(name) {
                    let names: Vec<&str> = m.families.iter().map(String::as_str).collect();
                    let help = super::diag::unknown_name_help(name, &names);
                    ctx.report(
                        Code::BadValue,
                        score.span.clone(),
                        format!("[score.caps] names `{name}`, which is not a family"),
                    )
                    .help = help;
                }
            }
            if let Some(mut cal) = score.table(&mut ctx, "calibration", "[score.calibration]") {
                let span = cal.span.clone();
                let mut knots = |key: &'static str, ctx: &mut Ctx<'_>| -> Option<Vec<f64>> {
                    let (items, span) = cal.array(ctx, key)?;
                    let xs: Vec<f64> =
                        items.iter().filter_map(|v| crate::rules::reader::as_number(v.get_ref())).collect();
                    if xs.len() != items.len() {
                        ctx.report(Code::WrongType, span, format!("`{key}` must be a list of numbers"));
                        return None;
                    }
                    Some(xs)
                };
                let (raw, calibrated) = (knots("raw", &mut ctx), knots("calibrated", &mut ctx));
                match (raw, calibrated) {
                    (Some(raw), Some(calibrated)) => match Calibration::new(raw, calibrated) {
                        Ok(c) => m.calibration = Some(c),
                        Err(e) => {
                            ctx.report(Code::BadValue, span, format!("[score.calibration]: {e}"));
                        }
                    },
                    _ => {
                        ctx.report(
                            Code::MissingKey,
                            span,
                            "[score.calibration] needs `raw` and `calibrated`, two lists of numbers",
                        );
                    }
                }
                cal.finish(&mut ctx);
            }
            cap_span = Some(cap.map_or_else(|| score.span.clone(), |c| c.span));
            score.finish(&mut ctx);
        }
        if let Some(top) = config.tiers.first()
            && config.score.single_family_top() >= top.min_score
        {
            ctx.report(
                Code::SingleFamilyTops,
                cap_span.unwrap_or(0..0),
                format!(
                    "a family cap ({}{}) is above the top tier `{}` (min_score {}): one kind of evidence alone can reach it",
                    config.score.max_cap(),
                    match config.score.calibration {
                        Some(_) => format!(", {:.4} calibrated", config.score.single_family_top()),
                        None => String::new(),
                    },
                    top.name,
                    top.min_score
                ),
            )
            .help
            .push(format!("help: caps up to {} make `{}` need two families of evidence", top.min_score, top.name));
        }

        if let Some(lists) = r.table(&mut ctx, "lists", "[lists]") {
            for (key, value) in lists.entries() {
                if let Some(list) = str_list_value(&mut ctx, key.get_ref(), value) {
                    config.lists.insert(key.get_ref().to_string(), list.value.into_iter().map(|s| s.value).collect());
                }
            }
        }

        if let Some(macros) = r.table(&mut ctx, "macros", "[macros]") {
            let mut spans = BTreeMap::new();
            for (key, value) in macros.entries() {
                spans.insert(key.get_ref().to_string(), key.span());
                let DeValue::Array(items) = value.get_ref() else {
                    ctx.report(
                        Code::WrongType,
                        value.span(),
                        format!("macro `{}` must be an array of filters", key.get_ref()),
                    );
                    continue;
                };
                // Lists are known by now: macros may use them.
                let mut mctx = Ctx { source, diags: &mut *ctx.diags, lists: &config.lists };
                let body: Vec<Filter> = items.iter().filter_map(|i| filter::parse_filter(&mut mctx, i, 1)).collect();
                config.macros.insert(key.get_ref().to_string(), body);
            }
            filter::check_macros(&mut ctx, &mut config.macros, &spans);
        }
        r.finish(&mut ctx);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(config: &str) -> (Option<Config>, Vec<String>) {
        let (set, diags) = crate::rules::load_texts(config, &[]);
        (set.map(|s| s.config), diags.sorted().iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn a_calibration_is_read_and_maps_the_score() {
        let (config, diags) =
            load("[score]\nfamily_cap = 0.5\n[score.calibration]\nraw = [0.2, 0.6]\ncalibrated = [0.1, 0.5]\n");
        let model = config.unwrap_or_else(|| panic!("{diags:?}")).score;
        assert_eq!(model.calibrated(0.1), 0.1);
        assert!((model.calibrated(0.4) - 0.3).abs() < 1e-12);
        assert_eq!(model.calibrated(0.9), 0.5);
        // One family alone: its cap less a step, calibrated.
        assert!((model.single_family_top() - model.calibrated(0.4999)).abs() < 1e-12);
    }

    #[test]
    fn a_bad_calibration_is_an_error_and_one_that_lifts_a_family_to_the_top_a_warning() {
        let (config, diags) = load("[score.calibration]\nraw = [0.6, 0.2]\ncalibrated = [0.1, 0.5]\n");
        assert!(config.is_none());
        assert!(diags.iter().any(|d| d.contains("E006") && d.contains("strictly increasing")), "{diags:?}");
        let (config, diags) = load("[score.calibration]\nraw = [0.2]\n");
        assert!(config.is_none() && diags.iter().any(|d| d.contains("needs `raw` and `calibrated`")), "{diags:?}");
        // Caps of 0.8 under a map that lifts 0.8 to 0.9: one family reaches `high`.
        let (config, diags) = load("[score.calibration]\nraw = [0.0, 0.7]\ncalibrated = [0.0, 0.9]\n");
        assert!(config.is_some());
        assert!(diags.iter().any(|d| d.contains("W103") && d.contains("calibrated")), "{diags:?}");
    }
}
