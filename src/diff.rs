//! `changeling diff`: what changed between two sets of alerts of one
//! dataset (two files, or two rule sets scored on the same data).
//!
//! Accounts are compared by their *highest tier* (the lowest tier index of
//! their alerts; no alert is below every tier). For every account whose
//! highest tier moved, the diff lists the hits that explain it: hits (a
//! rule on an event: rule, time, action, target) only in the new alerts
//! (added), only in the old (removed), and in both with another strength.
//! Accounts whose alerts changed without their tier moving are counted.
//!
//! With ground truth, it says which flagged accounts were gained and lost
//! at each tier, as true positives (labelled compromised) and false
//! positives (benign), counting alerts as `changeling eval` does: an alert
//! on a compromised account counts only when it overlaps a labelled
//! window widened by the slack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::alerts::read::ReadAlert;
use crate::eval::Truth;
use crate::terminal::table;
use crate::time::{Millis, format_rfc3339};

/// One hit as the diff names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HitRef {
    /// Rule id.
    pub rule: String,
    /// Event time, RFC 3339.
    pub ts: String,
    /// The event's action.
    pub action: String,
    /// The event's target.
    pub target: Option<String>,
    /// Strength (the new one for a changed hit).
    pub strength: f64,
}

/// A hit in both with another strength.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Restrength {
    /// The hit, with its new strength.
    pub hit: HitRef,
    /// Its old strength.
    pub old_strength: f64,
}

/// An account's highest tier and score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Standing {
    /// Its highest tier.
    pub tier: String,
    /// Its highest score.
    pub score: f64,
}

/// An account whose highest tier moved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moved {
    /// The account.
    pub actor: String,
    /// `raised` or `lowered`.
    pub direction: &'static str,
    /// Before (absent: no alert).
    pub old: Option<Standing>,
    /// After (absent: no alert).
    pub new: Option<Standing>,
    /// `compromised` or `benign`, with ground truth.
    pub label: Option<&'static str>,
    /// Hits only in the new alerts.
    pub added: Vec<HitRef>,
    /// Hits only in the old alerts.
    pub removed: Vec<HitRef>,
    /// Hits in both, with another strength.
    pub restrength: Vec<Restrength>,
    /// The higher of its two tiers, as an index (for ordering).
    #[serde(skip)]
    top: usize,
}

/// Flagged accounts gained and lost at one tier, against the labels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelDelta {
    /// The tier (accounts flagged at it or higher).
    pub tier: String,
    /// Compromised accounts flagged now and not before.
    pub tp_gained: Vec<String>,
    /// Compromised accounts flagged before and not now.
    pub tp_lost: Vec<String>,
    /// Benign accounts flagged now and not before.
    pub fp_gained: Vec<String>,
    /// Benign accounts flagged before and not now.
    pub fp_lost: Vec<String>,
}

/// The whole diff. Field order is the JSON key order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// Tier names, highest first.
    pub tiers: Vec<String>,
    /// Accounts flagged at each tier or higher: (tier, before, after).
    pub flagged: Vec<(String, u64, u64)>,
    /// Accounts whose highest tier moved: those reaching or leaving the
    /// highest tier first, then the next, raised before lowered, then by
    /// actor.
    pub moved: Vec<Moved>,
    /// Accounts whose alerts changed with their highest tier unchanged.
    pub changed_within_tier: u64,
    /// With ground truth: gains and losses per tier.
    pub labels: Option<Vec<LabelDelta>>,
}

type HitKey = (String, Millis, String, Option<String>);

/// Per account: highest tier index and score, and hits by key.
#[derive(Default)]
struct Side {
    best: Option<(usize, f64)>,
    hits: BTreeMap<HitKey, f64>,
}

fn sides(alerts: &[ReadAlert], tiers: &[String]) -> BTreeMap<String, Side> {
    let mut out: BTreeMap<String, Side> = BTreeMap::new();
    for a in alerts {
        let t = tiers.iter().position(|t| *t == a.tier).unwrap_or(tiers.len());
        let s = out.entry(a.actor.clone()).or_default();
        s.best = Some(match s.best {
            Some((bt, bs)) => (bt.min(t), bs.max(a.score)),
            None => (t, a.score),
        });
        for h in &a.hits {
            s.hits.insert((h.rule.clone(), h.ts, h.action.clone(), h.target.clone()), h.strength);
        }
    }
    out
}

fn hit_ref(k: &HitKey, strength: f64) -> HitRef {
    HitRef { rule: k.0.clone(), ts: format_rfc3339(k.1), action: k.2.clone(), target: k.3.clone(), strength }
}

/// Ground truth for [`diff`].
pub struct Labels<'a> {
    /// The truth.
    pub truth: &'a Truth,
    /// How far compromise windows are widened.
    pub slack: Millis,
}

/// Highest counting tier per account (see the module doc).
fn counting(alerts: &[ReadAlert], tiers: &[String], l: &Labels<'_>) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for a in alerts {
        let counts = match l.truth.accounts.get(&a.actor) {
            Some(t) if t.compromised => t.windows.iter().any(|w| w.overlaps(a.start, a.end, l.slack)),
            _ => true,
        };
        if counts && let Some(t) = tiers.iter().position(|t| *t == a.tier) {
            let e = out.entry(a.actor.clone()).or_insert(t);
            *e = (*e).min(t);
        }
    }
    out
}

/// The diff from `old` to `new`, under `tiers` (highest first).
pub fn diff(old: &[ReadAlert], new: &[ReadAlert], tiers: &[String], labels: Option<&Labels<'_>>) -> Diff {
    let (a, b) = (sides(old, tiers), sides(new, tiers));
    let actors: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = Side::default();
    let below = tiers.len();
    let standing = |s: &Side| s.best.map(|(t, score)| Standing { tier: tier_name(tiers, t), score });
    let label_of = |actor: &str| {
        labels.map(|l| match l.truth.accounts.get(actor) {
            Some(t) if t.compromised => "compromised",
            _ => "benign",
        })
    };
    let mut moved = Vec::new();
    let mut changed_within_tier = 0;
    for actor in actors {
        let (sa, sb) = (a.get(actor).unwrap_or(&empty), b.get(actor).unwrap_or(&empty));
        let (ta, tb) = (sa.best.map_or(below, |x| x.0), sb.best.map_or(below, |x| x.0));
        if ta == tb {
            if sa.hits != sb.hits || sa.best != sb.best {
                changed_within_tier += 1;
            }
            continue;
        }
        let added = sb.hits.iter().filter(|(k, _)| !sa.hits.contains_key(*k)).map(|(k, s)| hit_ref(k, *s)).collect();
        let removed = sa.hits.iter().filter(|(k, _)| !sb.hits.contains_key(*k)).map(|(k, s)| hit_ref(k, *s)).collect();
        let restrength = sb
            .hits
            .iter()
            .filter_map(|(k, s)| {
                sa.hits.get(k).filter(|old| *old != s).map(|old| Restrength { hit: hit_ref(k, *s), old_strength: *old })
            })
            .collect();
        moved.push(Moved {
            actor: actor.clone(),
            direction: if tb < ta { "raised" } else { "lowered" },
            old: standing(sa),
            new: standing(sb),
            label: label_of(actor),
            added,
            removed,
            restrength,
            top: ta.min(tb),
        });
    }
    moved.sort_by(|x, y| (x.top, x.direction != "raised", &x.actor).cmp(&(y.top, y.direction != "raised", &y.actor)));
    let flagged = (0..tiers.len())
        .map(|t| {
            let n = |s: &BTreeMap<String, Side>| s.values().filter(|x| x.best.is_some_and(|b| b.0 <= t)).count() as u64;
            (tiers[t].clone(), n(&a), n(&b))
        })
        .collect();
    let labels = labels.map(|l| {
        let (ca, cb) = (counting(old, tiers, l), counting(new, tiers, l));
        (0..tiers.len())
            .map(|t| {
                let at = |m: &BTreeMap<String, usize>| -> BTreeSet<String> {
                    m.iter().filter(|(_, b)| **b <= t).map(|(a, _)| a.clone()).collect()
                };
                let (fa, fb) = (at(&ca), at(&cb));
                let compromised = |x: &String| l.truth.accounts.get(x).is_some_and(|t| t.compromised);
                let split = |set: Vec<&String>| -> (Vec<String>, Vec<String>) {
                    let (tp, fp): (Vec<&String>, Vec<&String>) = set.into_iter().partition(|x| compromised(x));
                    (tp.into_iter().cloned().collect(), fp.into_iter().cloned().collect())
                };
                let (tp_gained, fp_gained) = split(fb.difference(&fa).collect());
                let (tp_lost, fp_lost) = split(fa.difference(&fb).collect());
                LabelDelta { tier: tiers[t].clone(), tp_gained, tp_lost, fp_gained, fp_lost }
            })
            .collect()
    });
    Diff { tiers: tiers.to_vec(), flagged, moved, changed_within_tier, labels }
}

fn tier_name(tiers: &[String], t: usize) -> String {
    tiers.get(t).cloned().unwrap_or_else(|| "-".into())
}

fn standing_text(s: &Option<Standing>) -> String {
    s.as_ref().map_or_else(|| "no alert".into(), |s| format!("{} {}", s.tier, s.score))
}

fn hit_text(h: &HitRef) -> String {
    format!("{} {} {} {} strength {}", h.rule, h.ts, h.action, h.target.as_deref().unwrap_or("-"), h.strength)
}

/// The diff as text, at most `max_hits` hit lines per account of each kind.
pub fn render(d: &Diff, old_name: &str, new_name: &str, max_hits: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "changeling diff: {old_name} -> {new_name}");
    let counts: Vec<String> = d.flagged.iter().map(|(t, a, b)| format!("{t} {a} -> {b}")).collect();
    let _ = writeln!(out, "  accounts flagged at each tier or higher: {}", counts.join(", "));
    let raised = d.moved.iter().filter(|m| m.direction == "raised").count();
    let _ = writeln!(
        out,
        "  accounts whose highest tier moved: {} ({raised} raised, {} lowered); {} more changed within their tier",
        d.moved.len(),
        d.moved.len() - raised,
        d.changed_within_tier
    );
    for m in &d.moved {
        let label = m.label.map_or(String::new(), |l| format!("  [{l}]"));
        let _ = writeln!(
            out,
            "\n{} {}: {} -> {}{label}",
            m.direction,
            m.actor,
            standing_text(&m.old),
            standing_text(&m.new)
        );
        let lines = |out: &mut String, sign: &str, hits: Vec<String>| {
            for h in hits.iter().take(max_hits) {
                let _ = writeln!(out, "    {sign} {h}");
            }
            if hits.len() > max_hits {
                let _ = writeln!(out, "    {sign} ... {} more", hits.len() - max_hits);
            }
        };
        lines(&mut out, "+", m.added.iter().map(hit_text).collect());
        lines(&mut out, "-", m.removed.iter().map(hit_text).collect());
        lines(
            &mut out,
            "~",
            m.restrength.iter().map(|r| format!("{} (was {})", hit_text(&r.hit), r.old_strength)).collect(),
        );
    }
    if let Some(labels) = &d.labels {
        let _ = writeln!(out, "\nagainst the labels (flagged at each tier or higher; TP compromised, FP benign):");
        let mut rows = vec![["tier", "TP gained", "TP lost", "FP gained", "FP lost"].map(String::from).to_vec()];
        for l in labels {
            rows.push(vec![
                l.tier.clone(),
                l.tp_gained.len().to_string(),
                l.tp_lost.len().to_string(),
                l.fp_gained.len().to_string(),
                l.fp_lost.len().to_string(),
            ]);
        }
        table(&mut out, &rows);
        for l in labels {
            for (what, list) in [
                ("TP gained", &l.tp_gained),
                ("TP lost", &l.tp_lost),
                ("FP gained", &l.fp_gained),
                ("FP lost", &l.fp_lost),
            ] {
                if !list.is_empty() {
                    let _ = writeln!(out, "  {} {what}: {}", l.tier, list.join(", "));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::read::ReadHit;
    use crate::eval::Window;

    fn hit(rule: &str, ts: Millis, strength: f64) -> ReadHit {
        ReadHit {
            rule: rule.into(),
            ts,
            action: "like".into(),
            target: Some(format!("t{ts}")),
            strength,
            why: String::new(),
            effect: "for".into(),
            title: None,
            severity: None,
            tags: vec![],
            signals: vec![],
        }
    }

    fn alert(actor: &str, score: f64, tier: &str, hits: Vec<ReadHit>) -> ReadAlert {
        ReadAlert {
            line: 1,
            actor: actor.into(),
            start: 0,
            end: 10,
            score,
            tier: tier.into(),
            id: None,
            status: None,
            final_after: None,
            campaign: None,
            families: vec![],
            hits,
        }
    }

    #[test]
    fn moved_accounts_with_the_hits_that_explain_them() {
        let tiers: Vec<String> = ["high", "medium", "low"].map(String::from).to_vec();
        let old = vec![
            alert("a", 0.6, "medium", vec![hit("r1", 1, 0.5)]),
            alert("b", 0.9, "high", vec![hit("r1", 2, 0.9), hit("r2", 3, 0.9)]),
            alert("c", 0.45, "low", vec![hit("r1", 4, 0.4)]),
        ];
        let new = vec![
            alert("a", 0.85, "high", vec![hit("r1", 1, 0.5), hit("r3", 5, 0.7)]),
            alert("b", 0.6, "medium", vec![hit("r1", 2, 0.8)]),
            alert("c", 0.47, "low", vec![hit("r1", 4, 0.45)]),
        ];
        let mut truth = Truth::default();
        truth.add("a", true, Window::default(), None);
        let l = Labels { truth: &truth, slack: 0 };
        let d = diff(&old, &new, &tiers, Some(&l));
        assert_eq!(d.moved.len(), 2);
        assert_eq!((d.moved[0].actor.as_str(), d.moved[0].direction), ("a", "raised"));
        assert_eq!(d.moved[0].added.len(), 1);
        assert_eq!(d.moved[0].added[0].rule, "r3");
        assert_eq!((d.moved[1].actor.as_str(), d.moved[1].direction), ("b", "lowered"));
        assert_eq!(d.moved[1].removed[0].rule, "r2");
        assert_eq!(d.moved[1].restrength[0].old_strength, 0.9);
        assert_eq!(d.changed_within_tier, 1);
        assert_eq!(d.flagged[0], ("high".to_string(), 1, 1));
        let labels = d.labels.as_ref().unwrap();
        assert_eq!(labels[0].tp_gained, ["a"]);
        assert_eq!(labels[0].fp_lost, ["b"]);
        let text = render(&d, "old.jsonl", "new.jsonl", 10);
        assert!(text.contains("raised a: medium 0.6 -> high 0.85  [compromised]"), "{text}");
        assert!(text.contains("    + r3 1970-01-01T00:00:00.005Z like t5 strength 0.7"), "{text}");
    }
}
