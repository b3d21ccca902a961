//! Campaigns joined by a network or client new to each account in one
//! window (issue 20, item 2), end to end through the binary on a small
//! hand-built dataset, with rules of its own:
//!
//! - `net/new-network`: a like from an `asn` the account has not used;
//! - `net/new-device`: a like from a `device` the account has not used;
//! - `net/lockstep`: likes of two items by two accounts, each within 10
//!   minutes of the other's.
//!
//! Every account likes from its own network and device for a day first.
//! Then `a1` and `a2` like from AS64500, new to both, an hour apart: one
//! campaign, joined by a network. `late` likes from AS64500 three days
//! later, outside the window: not a member. `old` has always liked from
//! AS64500: the network is not new to it, so it joins nothing. `d1` and
//! `d2` like from one new device: a campaign joined by a client. `w0` to
//! `w7` each like once from AS7922, new to each of them, on eight days,
//! `w0` and `w1` within one window: a network new to eight accounts over
//! the run, two of them at once, is a common one and joins nothing. `m0`
//! to `m59` like from AS3320 within an hour: more accounts than one window
//! may join. `l1` and `l2` like two items in lockstep, and `l2` and `l3`
//! share a new network: one campaign, joined by both kinds of evidence.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> Output {
    let o = changeling(args);
    assert!(o.status.success(), "changeling {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

const RULES: &[(&str, &str)] = &[
    (
        "net/new-network.toml",
        r#"id = "net/new-network"
title = "Like from a network the account has not used"
description = "A test rule."
severity = "high"
tags = ["net"]
version = 1

[events]
actions = ["like"]

[[signal]]
kind = "new_context"
fields = ["asn"]
min_history = 3
require = true

[hit]
weight = 1.0
"#,
    ),
    (
        "net/new-device.toml",
        r#"id = "net/new-device"
title = "Like from a device the account has not used"
description = "A test rule."
severity = "high"
tags = ["net"]
version = 1

[events]
actions = ["like"]

[[signal]]
kind = "new_context"
fields = ["device"]
min_history = 3
require = true

[hit]
weight = 1.0
"#,
    ),
    (
        "net/lockstep.toml",
        r#"id = "net/lockstep"
title = "Likes of two items by two accounts within minutes of each other"
description = "A test rule."
severity = "high"
tags = ["net"]
version = 1

[events]
actions = ["like"]

[[signal]]
kind = "lockstep"
min_accounts = 1
min_items = 2
window = "10m"
lookback = "1h"

[hit]
weight = 1.0
"#,
    ),
];

/// Day `d` (from 2024-01-01) at `h:m`.
fn at(d: u32, h: u32, m: u32) -> String {
    format!("2024-01-{:02}T{h:02}:{m:02}:00Z", d + 1)
}

/// One like; its item is unique unless `item` is given.
fn like(out: &mut String, ts: &str, actor: &str, asn: &str, device: &str, item: Option<&str>) {
    let item = item.map_or_else(|| format!("t-{actor}-{ts}"), str::to_string);
    let _ = writeln!(
        out,
        r#"{{"ts":"{ts}","actor":"{actor}","action":"like","target":"{item}","asn":"{asn}","device":"{device}"}}"#
    );
}

/// The dataset and rules in `dir`; `reverse` writes the events in the
/// opposite order.
fn dataset(dir: &Path, reverse: bool) {
    let mut home = Vec::new();
    let mut ev = String::new();
    let mut actors: Vec<String> = ["a1", "a2", "late", "old", "d1", "d2", "l1", "l2", "l3"].map(String::from).to_vec();
    actors.extend((0..8).map(|k| format!("w{k}")));
    actors.extend((0..60).map(|k| format!("m{k}")));
    // A day of likes from the account's own network and device; `old`'s
    // network is AS64500.
    for (k, a) in actors.iter().enumerate() {
        let asn = if a == "old" { "AS64500".to_string() } else { format!("AS{}", 100 + k) };
        home.push((a.clone(), asn.clone(), format!("dev-{a}")));
        for n in 0..5 {
            like(&mut ev, &at(0, 8 + n, 0), a, &asn, &format!("dev-{a}"), None);
        }
    }
    let own = |a: &str| home.iter().find(|h| h.0 == a).unwrap().clone();
    let (_, asn, dev) = own("a1");
    like(&mut ev, &at(2, 10, 0), "a1", "AS64500", &dev, None);
    let _ = asn;
    let (_, _, dev) = own("a2");
    like(&mut ev, &at(2, 11, 0), "a2", "AS64500", &dev, None);
    let (_, _, dev) = own("old");
    like(&mut ev, &at(2, 10, 30), "old", "AS64500", &dev, None);
    let (_, _, dev) = own("late");
    like(&mut ev, &at(5, 10, 0), "late", "AS64500", &dev, None);
    for d in ["d1", "d2"] {
        let (_, asn, _) = own(d);
        like(&mut ev, &at(3, 9, if d == "d1" { 0 } else { 40 }), d, &asn, "dev-shared-evil", None);
    }
    for k in 0..8u32 {
        let a = format!("w{k}");
        let (_, _, dev) = own(&a);
        // w0 and w1 on one day, the others on days of their own.
        let (day, hour) = if k < 2 { (8, 9 + k) } else { (8 + k, 9) };
        like(&mut ev, &at(day, hour, 0), &a, "AS7922", &dev, None);
    }
    for k in 0..60u32 {
        let a = format!("m{k}");
        let (_, _, dev) = own(&a);
        like(&mut ev, &at(20, 10, k % 60), &a, "AS3320", &dev, None);
    }
    // l1 and l2 in lockstep on two items, from their own networks; l2
    // and l3 from a network new to both.
    for (a, m) in [("l1", 0), ("l2", 2)] {
        let (_, asn, dev) = own(a);
        like(&mut ev, &at(25, 14, m), a, &asn, &dev, Some("t-lock-1"));
        like(&mut ev, &at(25, 14, m + 20), a, &asn, &dev, Some("t-lock-2"));
    }
    for (a, h) in [("l2", 15), ("l3", 16)] {
        let (_, _, dev) = own(a);
        like(&mut ev, &at(25, h, 0), a, "AS65000", &dev, None);
    }
    let mut lines: Vec<&str> = ev.lines().collect();
    if reverse {
        lines.reverse();
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    for (path, text) in RULES {
        let p = dir.join("rules").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// `score --campaigns --json` on `dir`: the summary's campaigns and the
/// alerts.
fn score(dir: &Path, threads: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let (data, rules) = (dir.join("data"), dir.join("rules"));
    let out = dir.join(format!("alerts-{threads}.jsonl"));
    let o = ok(&[
        "score",
        "--data",
        data.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--campaigns",
        "--json",
        "--threads",
        threads,
        "-o",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let alerts = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (summary["campaigns"].as_array().unwrap().clone(), alerts)
}

fn members(c: &serde_json::Value) -> Vec<&str> {
    c["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect()
}

fn strs(v: &serde_json::Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect()
}

#[test]
fn a_network_or_client_new_to_several_flagged_accounts_in_one_window_joins_them() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), false);
    let (campaigns, alerts) = score(tmp.path(), "1");
    // Every account that shows a new value is flagged: what joins or not
    // is the grouping's doing, not the rules'.
    for a in ["a1", "a2", "late", "d1", "d2", "w0", "w1", "w5", "m0", "m59", "l3"] {
        assert!(alerts.iter().any(|x| x["actor"] == a), "{a} has no incident");
    }
    let of = |a: &str| campaigns.iter().find(|c| members(c).contains(&a));
    let net = of("a1").expect("a1 and a2 share a new network in one window");
    assert_eq!(members(net), ["a1", "a2"], "neither `late` (outside the window) nor `old` (not new to it)");
    assert_eq!(strs(&net["evidence"]), ["network"]);
    assert_eq!(net["contexts"], serde_json::json!([{"field": "asn", "value": "AS64500"}]));
    assert!(strs(&net["items"]).is_empty());
    let dev = of("d1").expect("d1 and d2 share a new device in one window");
    assert_eq!(members(dev), ["d1", "d2"]);
    assert_eq!(strs(&dev["evidence"]), ["client"]);
    assert_eq!(dev["contexts"], serde_json::json!([{"field": "device", "value": "dev-shared-evil"}]));
    for a in ["late", "old", "w0", "w1", "w2", "m0", "m1"] {
        assert!(of(a).is_none(), "{a} is in a campaign: {campaigns:#?}");
    }
    // Lockstep and a network, one campaign.
    let both = of("l1").expect("l1 and l2 act in lockstep");
    assert_eq!(members(both), ["l1", "l2", "l3"]);
    assert_eq!(strs(&both["evidence"]), ["lockstep", "network"]);
    assert_eq!(strs(&both["items"]), ["t-lock-2"]);
    assert_eq!(campaigns.len(), 3, "{campaigns:#?}");
    // Each member's alert names its campaign, and no other alert does.
    for c in &campaigns {
        let named: std::collections::BTreeSet<&str> =
            alerts.iter().filter(|a| a["campaign"] == c["id"]).map(|a| a["actor"].as_str().unwrap()).collect();
        assert_eq!(named.into_iter().collect::<Vec<_>>(), members(c));
    }
}

#[test]
fn campaign_ids_do_not_depend_on_threads_or_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (fwd, rev) = (tmp.path().join("fwd"), tmp.path().join("rev"));
    dataset(&fwd, false);
    dataset(&rev, true);
    let (one, alerts) = score(&fwd, "1");
    let (three, _) = score(&fwd, "3");
    let (reversed, _) = score(&rev, "2");
    assert_eq!(one, three);
    assert_eq!(one, reversed);
    // The id is `c-` and the smallest member incident id.
    for c in &one {
        let smallest =
            alerts.iter().filter(|a| a["campaign"] == c["id"]).map(|a| a["id"].as_str().unwrap()).min().unwrap();
        assert_eq!(c["id"].as_str().unwrap(), format!("c-{smallest}"));
    }
    assert_eq!(
        std::fs::read(fwd.join("alerts-1.jsonl")).unwrap(),
        std::fs::read(fwd.join("alerts-3.jsonl")).unwrap(),
        "the same alerts for any thread count"
    );
}

#[test]
fn the_summary_report_and_explain_say_what_joined_a_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), false);
    let (data, rules) = (tmp.path().join("data"), tmp.path().join("rules"));
    let (data, rules) = (data.to_str().unwrap(), rules.to_str().unwrap());
    let out = tmp.path().join("alerts.jsonl");
    let o = ok(&["score", "--data", data, "--rules", rules, "--campaigns", "-o", out.to_str().unwrap()]);
    let text = String::from_utf8(o.stderr).unwrap();
    let line =
        text.lines().find(|l| l.contains("2 accounts") && l.contains("network")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("; evidence network (asn AS64500)"), "{line}");
    let line = text.lines().find(|l| l.contains("3 accounts")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("; evidence lockstep (1 item), network (asn AS65000)"), "{line}");
    // The report reads the alerts: the kinds of evidence their hits show.
    let page = tmp.path().join("r.html");
    ok(&["report", "--alerts", out.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    let section = &html[html.find("id=\"campaigns\"").expect("a campaigns section")..];
    let section = &section[..section.find("</table>").unwrap()];
    assert!(section.contains("<th class=\"l\">evidence</th>"), "{section}");
    for (members, evidence) in [("a1, a2", "network"), ("d1, d2", "client"), ("l1, l2, l3", "lockstep, network")] {
        let row = section.lines().find(|l| l.contains(&format!(">{members}<"))).unwrap_or_else(|| panic!("{section}"));
        assert!(row.contains(&format!("<td class=\"l\">{evidence}</td>")), "{row}");
    }
    // explain --campaign names the evidence too.
    let alerts = std::fs::read_to_string(&out).unwrap();
    let id = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["actor"] == "d1" && a["campaign"].is_string())
        .unwrap()["campaign"]
        .as_str()
        .unwrap()
        .to_string();
    let o = ok(&["explain", "--data", data, "--rules", rules, "--campaign", &id]);
    let text = String::from_utf8(o.stdout).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert!(line.starts_with(&format!("campaign {id}: 2 accounts (d1, d2), ")), "{line}");
    assert!(line.ends_with("; evidence client (device dev-shared-evil)"), "{line}");
}

#[test]
fn the_demo_lockstep_campaign_says_lockstep() {
    let o = ok(&["score", "--campaigns", "--json", "-o", "/dev/null", "--threads", "1"]);
    let summary: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let campaigns = summary["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1, "{campaigns:#?}");
    assert_eq!(strs(&campaigns[0]["evidence"]), ["lockstep"]);
    assert_eq!(members(&campaigns[0]).len(), 15);
    assert!(campaigns[0]["contexts"].as_array().unwrap().is_empty());
}
