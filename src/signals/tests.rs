//! Tests of the signal contract that hold for every kind: parameter tables
//! agree with the parsers and with the sharing keys, the TOML examples in
//! the kinds' docs load, and docs/rules.md shows each kind's table.

use super::spec::{Default, Ty, markdown_table};
use super::*;

/// Source files of the kinds, by name (for their doc examples).
const SOURCES: &[(&str, &str)] = &[
    ("after_hit", include_str!("after_hit.rs")),
    ("feed_exposure", include_str!("feed_exposure.rs")),
    ("impossible_travel", include_str!("impossible_travel.rs")),
    ("lockstep", include_str!("lockstep.rs")),
    ("new_context", include_str!("new_context.rs")),
    ("off_pattern", include_str!("off_pattern.rs")),
    ("rate_spike", include_str!("rate_spike.rs")),
    ("sequence", include_str!("sequence.rs")),
    ("unlike_latency", include_str!("unlike_latency.rs")),
];

/// Values a required parameter takes in these tests.
fn required(kind: &str, name: &str) -> &'static str {
    match (kind, name) {
        ("after_hit", "rules") => r#"["t/other"]"#,
        ("rate_spike", "actions") => r#"["follow"]"#,
        ("sequence", "steps") => r#"[["login"], ["password_change"]]"#,
        _ => panic!("no test value for required `{kind}.{name}`"),
    }
}

/// A valid value of `name` different from its default.
fn another(kind: &str, p: &Param) -> String {
    match (kind, p.name) {
        ("off_pattern", "features") => return r#"["author"]"#.into(),
        ("feed_exposure", "paths") => return r#"["own"]"#.into(),
        ("new_context", "fields") => return r#"["client"]"#.into(),
        ("off_pattern", "novelty_prior") => return r#""good_turing""#.into(),
        ("sequence", "steps") => return r#"[["login"], ["logout"]]"#.into(),
        ("after_hit", "rules") => return r#"["t/third"]"#.into(),
        ("unlike_latency", "max") => return r#""72h""#.into(),
        _ => {}
    }
    match (p.ty, p.default) {
        (Ty::Duration, Default::Duration(d)) if d == 3 * crate::time::MINUTE => r#""4m""#.into(),
        (Ty::Duration, _) => r#""3m""#.into(),
        (Ty::Number { min, max }, Default::Number(x)) => {
            let v = if x < max { (x + max) / 2.0 } else { (min + max) / 2.0 };
            format!("{v:e}")
        }
        (Ty::Count { min, max }, Default::Count(n)) => (if n < max { n + 1 } else { min }).to_string(),
        (Ty::Bool, Default::Bool(b)) => (!b).to_string(),
        (Ty::Text, _) => r#""something_else""#.into(),
        (Ty::List, _) => r#"["zz_other"]"#.into(),
        (Ty::Choice(choices), Default::Text(d)) => {
            format!("\"{}\"", choices.iter().find(|c| **c != d).expect("a second choice"))
        }
        other => panic!("no other value for `{kind}.{}` ({other:?})", p.name),
    }
}

/// Loads a rule with one signal of `kind` whose table holds `lines`, and
/// the rules it may refer to; returns the signal.
fn load(kind: &str, lines: &[String]) -> SignalDef {
    let text = format!(
        "id = \"t/x\"\ntitle = \"x\"\n[[signal]]\nkind = \"{kind}\"\n{}\n[hit]\nfamilies = [\"context\"]\n",
        lines.join("\n")
    );
    let other = "id = \"t/other\"\ntitle = \"o\"\n";
    let third = "id = \"t/third\"\ntitle = \"t\"\n";
    // The rule the docs' examples refer to.
    let shipped = "id = \"likes/unexposed-off-pattern\"\ntitle = \"u\"\n";
    let texts = [("x.toml", text.as_str()), ("o.toml", other), ("t.toml", third), ("u.toml", shipped)];
    let (set, diags) = crate::rules::load_texts(include_str!("../../rules/changeling.toml"), &texts);
    let set = set.unwrap_or_else(|| panic!("{kind}: {text}\n{}", diags.render()));
    let rule = set.rules.iter().find(|r| r.id.value == "t/x").expect("the rule");
    rule.signals[0].def.clone()
}

fn required_lines(kind: &str, params: &[Param]) -> Vec<String> {
    params
        .iter()
        .filter(|p| p.default == Default::Required)
        .map(|p| format!("{} = {}", p.name, required(kind, p.name)))
        .collect()
}

#[test]
fn every_parameter_is_read_and_keys_hold_exactly_the_state_parameters() {
    for kind in KINDS {
        let params = params_of(kind).expect("a table");
        let base_lines = required_lines(kind, params);
        let base = load(kind, &base_lines);
        // Every parameter of the table is read (and shown by explain-plan).
        let shown: Vec<&str> = base.describe().iter().map(|(n, _)| *n).collect();
        for p in params {
            assert!(shown.contains(&p.name), "{kind}: `{}` is not read (read: {shown:?})", p.name);
        }
        assert_eq!(shown.len(), params.len(), "{kind}: read {shown:?}");
        // Changing a parameter changes the sharing key exactly when the
        // state depends on it.
        for p in params {
            let mut lines: Vec<String> =
                base_lines.iter().filter(|l| !l.starts_with(&format!("{} =", p.name))).cloned().collect();
            lines.push(format!("{} = {}", p.name, another(kind, p)));
            let changed = load(kind, &lines);
            assert_ne!(base, changed, "{kind}: changing `{}` changed nothing", p.name);
            assert_eq!(
                base.state_key() != changed.state_key(),
                p.state,
                "{kind}: `{}` is {} the state key, but changing it {} the key",
                p.name,
                if p.state { "in" } else { "not in" },
                if p.state { "did not change" } else { "changed" }
            );
        }
    }
}

/// `SOURCES` is written by hand: a kind added to the registry and not to
/// it would have its doc examples go untested. Each registered kind has
/// its source here, under its name, from the file of that name.
#[test]
fn sources_list_every_registered_kind() {
    let mut listed: Vec<&str> = SOURCES.iter().map(|(k, _)| *k).collect();
    listed.sort_unstable();
    let mut registered: Vec<&str> = KINDS.to_vec();
    registered.sort_unstable();
    assert_eq!(listed, registered, "SOURCES and the registry list other kinds");
    for (kind, source) in SOURCES {
        let doc_line = source.lines().find(|l| l.starts_with("//!")).unwrap_or_default();
        assert!(
            source.contains(&format!("const NAME: &'static str = \"{kind}\"")),
            "the source listed as `{kind}` is not that kind's file ({doc_line})"
        );
    }
}

#[test]
fn the_toml_examples_in_the_kinds_docs_load() {
    for (kind, source) in SOURCES {
        let doc: String = source
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut examples = 0;
        let mut rest = doc.as_str();
        while let Some(at) = rest.find("```toml\n") {
            let body = &rest[at + 8..];
            let end = body.find("```").expect("a closed code block");
            let example = &body[..end];
            rest = &body[end + 3..];
            // An example is a [[signal]] table, or lines of one.
            let lines: Vec<String> = example
                .lines()
                .filter(|l| !l.trim().is_empty() && l.trim() != "[[signal]]" && !l.trim().starts_with("kind ="))
                .map(String::from)
                .collect();
            let mut with_required = lines.clone();
            for l in required_lines(kind, params_of(kind).expect("a table")) {
                let name = l.split(" =").next().unwrap_or_default();
                if !lines.iter().any(|x| x.starts_with(&format!("{name} ="))) {
                    with_required.push(l);
                }
            }
            let _ = load(kind, &with_required);
            examples += 1;
        }
        assert!(examples >= 1, "{kind}: its doc has no TOML example");
    }
}

#[test]
fn docs_show_every_kinds_parameter_table() {
    let docs = include_str!("../../docs/rules.md");
    let mut missing = String::new();
    for kind in KINDS {
        let table = markdown_table(params_of(kind).expect("a table"));
        if !docs.contains(&table) {
            missing.push_str(&format!("### `{kind}`\n{table}\n"));
        }
    }
    assert!(missing.is_empty(), "docs/rules.md does not show these parameter tables as they are:\n{missing}");
}

#[test]
fn probabilities_read_well() {
    assert_eq!(fmt_prob(0.00041234), "0.00041");
    assert_eq!(fmt_prob(0.5), "0.50");
    assert_eq!(fmt_prob(0.0312), "0.031");
    assert_eq!(fmt_prob(0.0), "0");
}
