//! A validated rule: which events it looks at, which signals judge them,
//! and how much a hit counts.
//!
//! ```toml
//! id = "likes/unexposed-off-pattern"
//! title = "Like of content far from the account's history that its feed could not have shown"
//! description = "..."
//! severity = "high"                  # info | low | medium | high | critical
//! tags = ["likes", "mission"]
//! version = 1
//!
//! [events]
//! actions = ["like"]                 # empty or absent: every action
//! where = [{ field = "client", ne = "api" }]
//!
//! [[signal]]
//! kind = "feed_exposure"
//!
//! [[signal]]
//! kind = "off_pattern"
//! max_probability = 0.02
//!
//! [hit]
//! when = "all"                       # all: every signal that speaks must fire; any: one is enough
//! weight = 0.5                       # how much one hit counts, 0..1
//! effect = "for"                     # for | against (evidence against compromise)
//! families = ["content"]             # what kind of evidence a hit is (see [score] in changeling.toml)
//! ```
//!
//! `families` defaults to the family of the rule's first signal that has
//! one (`off_pattern`: content, `feed_exposure`: exposure,
//! `unlike_latency`: cleanup, `new_context`, `sequence` and
//! `impossible_travel`: context, `rate_spike`: automation, `lockstep`:
//! lockstep; `after_hit` has none of its own), or `context` for a rule
//! without one. Name several families only when the rule's signals are
//! independent kinds of evidence: a hit then corroborates itself.
//!
//! With `when = "all"` a signal that abstains (too little history, no data
//! to judge by) neither blocks nor supports the hit, unless its table says
//! `require = true`; at least one signal must fire. The hit's strength is the product of the firing signals'
//! strengths (`all`) or their noisy-OR (`any`). A rule with no signal hits
//! every event it selects, with strength 1.

use std::ops::Range;
use std::sync::Arc;

use super::diag::{Code, Source, did_you_mean, unknown_name_help};
use super::filter::{self, Filter};
use super::reader::{Ctx, Sp, TableReader};
use crate::signals::{self, ParamReader, SignalDef};

/// How serious a rule's hits are, for people reading alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Context only.
    Info,
    /// Weak.
    Low,
    /// Moderate.
    Medium,
    /// Strong.
    High,
    /// Near certain.
    Critical,
}

impl Severity {
    const NAMES: [&'static str; 5] = ["info", "low", "medium", "high", "critical"];

    /// The severity's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// How a rule combines its signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Every signal that speaks must fire; strength is the product.
    All,
    /// One firing signal is enough; strength is the noisy-OR.
    Any,
}

/// Which way a hit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Evidence of compromise.
    For,
    /// Evidence against compromise (an accidental tap, say).
    Against,
}

impl Effect {
    /// The effect's name.
    pub fn name(self) -> &'static str {
        match self {
            Effect::For => "for",
            Effect::Against => "against",
        }
    }
}

/// One signal of a rule.
#[derive(Clone, Debug)]
pub struct SignalUse {
    /// The signal with its parameters.
    pub def: SignalDef,
    /// Whether the hit needs this signal to speak: when it abstains, the
    /// rule does not hit (`require = true` in the signal's table).
    pub require: bool,
    /// Where its table is.
    pub span: Range<usize>,
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique id, e.g. `likes/unexposed-off-pattern`.
    pub id: Sp<String>,
    /// One-line title.
    pub title: String,
    /// What it looks for and why.
    pub description: String,
    /// How serious its hits are.
    pub severity: Severity,
    /// Free tags.
    pub tags: Vec<String>,
    /// The rule's version, bumped when its meaning changes.
    pub version: u64,
    /// The file it came from.
    pub source: Arc<Source>,
    /// Actions it looks at; empty means all.
    pub actions: Vec<Sp<String>>,
    /// Filters every selected event must pass (macros expanded).
    pub filters: Vec<Filter>,
    /// Its signals, in file order.
    pub signals: Vec<SignalUse>,
    /// How signals combine.
    pub when: When,
    /// How much one hit counts, 0..=1.
    pub weight: f64,
    /// Which way hits count.
    pub effect: Effect,
    /// The evidence families its hits count in (names of the config's
    /// `[score] families`).
    pub families: Vec<String>,
}

/// Actions of the contract's common vocabulary, for typo warnings.
const COMMON_ACTIONS: &[&str] = &[
    "like",
    "unlike",
    "repost",
    "unrepost",
    "reply",
    "post",
    "follow",
    "unfollow",
    "login",
    "logout",
    "password_change",
    "email_change",
    "profile_change",
];

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_/.".contains(c))
}

impl Rule {
    /// Validates one rule file's root table. Returns `None` when the rule
    /// has errors (all of them reported into `ctx`).
    pub fn read(
        root: &toml::de::DeTable<'_>,
        span: Range<usize>,
        ctx: &mut Ctx<'_>,
        config: &super::Config,
    ) -> Option<Rule> {
        let macros = &config.macros;
        let errors_before = ctx.diags.errors();
        let mut r = TableReader::new(root, span.clone(), "rule");
        let id = r.req_str(ctx, "id");
        if let Some(id) = &id
            && !valid_id(&id.value)
        {
            ctx.report(
                Code::BadValue,
                id.span.clone(),
                format!("rule id `{}` may only use a-z, 0-9 and - _ / .", id.value),
            );
        }
        let title = r.req_str(ctx, "title");
        let description = r.str(ctx, "description").map(|s| s.value).unwrap_or_default();
        let severity = r.choice(ctx, "severity", &Severity::NAMES, "medium");
        let severity = [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
            [Severity::NAMES.iter().position(|n| *n == severity).expect("a choice of NAMES")];
        let tags = r.str_list(ctx, "tags").map(|l| l.value.into_iter().map(|s| s.value).collect()).unwrap_or_default();
        let version = r.count(ctx, "version", u64::from(u32::MAX), 1);

        let mut actions = Vec::new();
        let mut filters = Vec::new();
        if let Some(mut events) = r.table(ctx, "events", "[events]") {
            if let Some(list) = events.str_list(ctx, "actions") {
                for a in &list.value {
                    if !COMMON_ACTIONS.contains(&a.value.as_str())
                        && let Some(s) = did_you_mean(&a.value, COMMON_ACTIONS.iter().copied())
                    {
                        ctx.report(
                            Code::UnusualAction,
                            a.span.clone(),
                            format!("action `{}` is not in the common vocabulary", a.value),
                        )
                        .help
                        .push(format!(
                            "help: did you mean `{s}`? (actions are an open vocabulary; ignore this if `{}` is right)",
                            a.value
                        ));
                    }
                }
                actions = list.value;
            }
            filters = filter::parse_filters(ctx, &mut events, "where");
            events.finish(ctx);
        }
        let filters = filter::expand(ctx, filters, macros, &mut Vec::new());
        if let Some((span, message)) = contradiction(&actions, &filters) {
            ctx.report(Code::Inconsistent, span, message);
        }

        let mut signals = Vec::new();
        for mut t in r.tables(ctx, "signal", "[[signal]]") {
            let Some(kind) = t.req_str(ctx, "kind") else {
                t.finish(ctx);
                continue;
            };
            let what = format!("signal `{}`", kind.value);
            let mut st = TableReader::new(tableof(&t), t.span.clone(), what);
            st.allow("kind");
            let require = st.bool(ctx, "require").is_some_and(|b| b.value);
            match signals::params_of(&kind.value) {
                Some(params) => {
                    let mut reader = ParamReader::new(&mut st, ctx, params);
                    let mut def = signals::parse(&kind.value, &mut reader).expect("a kind with a parameter table");
                    // Shown in the order of the kind's parameter table.
                    let mut described = reader.into_described();
                    described.sort_by_key(|(name, _)| params.iter().position(|p| p.name == *name));
                    def.set_described(described);
                    st.finish(ctx);
                    signals.push(SignalUse { def, require, span: t.span.clone() });
                }
                None => {
                    let help = unknown_name_help(&kind.value, signals::KINDS);
                    ctx.report(
                        Code::UnknownSignal,
                        kind.span.clone(),
                        format!("unknown signal kind `{}`", kind.value),
                    )
                    .help = help;
                }
            }
        }

        let (mut when, mut weight, mut effect) = (When::All, 0.5, Effect::For);
        let mut families = None;
        if let Some(mut hit) = r.table(ctx, "hit", "[hit]") {
            when = if hit.choice(ctx, "when", &["all", "any"], "all") == "any" { When::Any } else { When::All };
            weight = hit.num_in(ctx, "weight", 0.0, 1.0, 0.5);
            effect = if hit.choice(ctx, "effect", &["for", "against"], "for") == "against" {
                Effect::Against
            } else {
                Effect::For
            };
            families = read_families(&mut hit, ctx, config);
            hit.finish(ctx);
        }
        let families = families.unwrap_or_else(|| {
            let kind = signals.iter().find_map(|s| s.def.family()).unwrap_or("context");
            vec![kind.to_string()]
        });
        r.finish(ctx);

        if ctx.diags.errors() > errors_before {
            return None;
        }
        Some(Rule {
            id: id?,
            title: title?.value,
            description,
            severity,
            tags,
            version,
            source: ctx.source.clone(),
            actions,
            filters,
            signals,
            when,
            weight,
            effect,
            families,
        })
    }
}

/// Reads `families` of a `[hit]` table: names of the config's families,
/// each once.
fn read_families(hit: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>, config: &super::Config) -> Option<Vec<String>> {
    let list = hit.str_list(ctx, "families")?;
    let known = &config.score.families;
    let mut out: Vec<String> = Vec::new();
    for f in list.value {
        if config.score.family(&f.value).is_none() {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            let help = unknown_name_help(&f.value, &names);
            ctx.report(Code::BadValue, f.span, format!("unknown evidence family `{}`", f.value)).help = help;
        } else if out.contains(&f.value) {
            ctx.report(Code::BadValue, f.span, format!("family `{}` is listed twice", f.value));
        } else {
            out.push(f.value);
        }
    }
    if out.is_empty() {
        ctx.report(Code::BadValue, list.span, "`families` must name at least one evidence family");
        return None;
    }
    Some(out)
}

/// The table a reader reads (a signal table is read twice: once for `kind`,
/// once by the signal's own parser).
fn tableof<'t, 'i>(r: &TableReader<'t, 'i>) -> &'t toml::de::DeTable<'i> {
    r.raw()
}

/// A test of the event's `action` in `where` (at its top level, or in
/// `all` groups and macros) that none of the rule's `[events] actions`
/// passes: the rule can never fire (E016). Its span and message, if any.
fn contradiction(actions: &[Sp<String>], filters: &[Filter]) -> Option<(Range<usize>, String)> {
    use super::filter::{Op, Scope};
    if actions.is_empty() {
        return None;
    }
    for f in filters {
        match f {
            Filter::All(fs) => {
                if let Some(found) = contradiction(actions, fs) {
                    return Some(found);
                }
            }
            Filter::Test { field, op, span } if field.scope == Scope::Event && field.name == "action" => {
                let passes = |a: &str| match op {
                    Op::Eq(v) => a == v,
                    Op::Ne(v) => a != v,
                    Op::In(l) => l.iter().any(|v| v == a),
                    Op::NotIn(l) => !l.iter().any(|v| v == a),
                    Op::Matches(re) => re.is_match(a),
                    Op::Exists(present) => *present,
                    // Numbers compared with an action: not judged here.
                    Op::Gt(_) | Op::Ge(_) | Op::Lt(_) | Op::Le(_) => true,
                };
                if !actions.iter().any(|a| passes(&a.value)) {
                    let names: Vec<&str> = actions.iter().map(|a| a.value.as_str()).collect();
                    return Some((
                        span.clone(),
                        format!(
                            "this rule can never fire: none of its [events] actions ({}) passes this test of `action` \
                             (`{}`)",
                            names.join(", "),
                            op.key()
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    None
}
