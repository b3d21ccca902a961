//! Alerts: incidents written as JSON Lines, exactly as the data contract's
//! "Alerts" section says.
//!
//! One object per incident, accounts in id order, incidents by start:
//! `actor`, `start`, `end`, `score`, `tier`, `hits` (each `rule`, `ts`,
//! `action`, `target`, `strength`, `why`), plus two added hit fields:
//! `effect` (`for` or `against`) and `signals` (the kinds that fired).
//! Key order is fixed and numbers are rounded to four decimals, so equal
//! input gives equal bytes.

use std::io::{self, Write};

use serde::Serialize;

use crate::intern::Interner;
use crate::plan::Plan;
use crate::score::AccountIncidents;
use crate::time::format_rfc3339;

#[derive(Serialize)]
struct AlertOut<'a> {
    actor: &'a str,
    start: String,
    end: String,
    score: f64,
    tier: &'a str,
    hits: Vec<HitOut<'a>>,
}

#[derive(Serialize)]
struct HitOut<'a> {
    rule: &'a str,
    ts: String,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    strength: f64,
    why: &'a str,
    effect: &'a str,
    signals: &'a [&'static str],
}

/// Writes every incident as one JSON line; returns how many were written.
pub fn write_jsonl(out: &mut impl Write, accounts: &[AccountIncidents], plan: &Plan, s: &Interner) -> io::Result<u64> {
    let mut n = 0;
    let mut line = Vec::with_capacity(1024);
    for a in accounts {
        for inc in &a.incidents {
            let alert = AlertOut {
                actor: s.resolve(a.actor),
                start: format_rfc3339(inc.start),
                end: format_rfc3339(inc.end),
                score: inc.score,
                tier: &plan.config.tiers[inc.tier].name,
                hits: inc
                    .hits
                    .iter()
                    .map(|h| HitOut {
                        rule: &plan.rules[h.rule as usize].id,
                        ts: format_rfc3339(h.ts),
                        action: s.resolve(h.action),
                        target: h.target.map(|t| s.resolve(t)),
                        strength: h.strength,
                        why: &h.why,
                        effect: h.effect.name(),
                        signals: &h.signals,
                    })
                    .collect(),
            };
            line.clear();
            serde_json::to_writer(&mut line, &alert).map_err(io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)?;
            n += 1;
        }
    }
    Ok(n)
}
