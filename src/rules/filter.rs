//! Event filters: which events a rule looks at, beyond their action.
//!
//! A filter tests one field with one operator:
//!
//! ```toml
//! where = [
//!   { field = "surface", not_in = "@navigation_surfaces" },
//!   { field = "item.labels", in = ["adult", "politics/cn-critical"] },
//!   { field = "client", matches = "^(web|android|ios)$" },
//!   { field = "risk_score", ge = 0.7 },               # an unknown field of the data
//!   { any = [ { field = "country", ne = "CN" }, { field = "asn", exists = false } ] },
//!   { use = "human_clients" },                        # a macro from changeling.toml
//! ]
//! ```
//!
//! Fields are the event's (`surface`, `client`, any unknown field by name),
//! the target item's (`item.labels`, `item.lang`, `item.<extra>`), the acting
//! account's (`account.labels`, ...) or the target author's (`author.labels`).
//! On a list field (`labels`), `eq`/`in`/`matches` ask whether any element
//! matches, `ne`/`not_in` whether none does. An absent field fails every test
//! except `ne`, `not_in` and `exists = false`.
//!
//! Validation resolves `@list` references, compiles regexes and expands
//! macros; what remains is data-independent. Binding to a dataset happens
//! in the plan. Macros are checked once, where `changeling.toml` declares
//! them ([`check_macros`]): unknown macros, cycles, nesting past
//! [`MAX_DEPTH`] and expansions past [`MAX_EXPANDED`] filters (macros that
//! use each other twice at each of 40 levels would expand to 2^40) are each
//! one error at the macro. A rule's own filters are expanded within the
//! same bound ([`expand`]).

use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;
use toml::Spanned;
use toml::de::DeValue;

use super::diag::{Code, did_you_mean, unknown_name_help};
use super::reader::{Ctx, Sp, TableReader, as_number, str_list_value, type_name};
use crate::data::schema::{self, TableKind};

/// How deep `any`/`all` groups and macros may nest.
pub const MAX_DEPTH: usize = 16;

/// The most filters (tests, groups and macro uses, counted after expansion)
/// that one macro, or one rule's `where`, may expand to. Each is checked
/// on every event the rule sees; the shipped rules use a few dozen.
pub const MAX_EXPANDED: usize = 4096;

/// Which record a field is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The event itself.
    Event,
    /// The target item (from `items`).
    Item,
    /// The acting account (from `accounts`).
    Account,
    /// The target item's author (from `accounts`).
    Author,
}

impl Scope {
    /// The prefix rules write (`item.`), empty for events.
    pub fn prefix(self) -> &'static str {
        match self {
            Scope::Event => "",
            Scope::Item => "item.",
            Scope::Account => "account.",
            Scope::Author => "author.",
        }
    }

    /// The table the scope reads.
    pub fn table(self) -> TableKind {
        match self {
            Scope::Event => TableKind::Events,
            Scope::Item => TableKind::Items,
            Scope::Account | Scope::Author => TableKind::Accounts,
        }
    }
}

/// A field a filter reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRef {
    /// Which record.
    pub scope: Scope,
    /// The field name within that record (known or extra).
    pub name: String,
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.scope.prefix(), self.name)
    }
}

/// A test on one field.
#[derive(Clone, Debug)]
pub enum Op {
    /// Equal to.
    Eq(String),
    /// Not equal to (true when absent).
    Ne(String),
    /// One of.
    In(Vec<String>),
    /// None of (true when absent).
    NotIn(Vec<String>),
    /// Matches a regex (unanchored; use `^...$`).
    Matches(Regex),
    /// Greater than.
    Gt(f64),
    /// Greater than or equal.
    Ge(f64),
    /// Less than.
    Lt(f64),
    /// Less than or equal.
    Le(f64),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
}

impl Op {
    /// The operator's key, as written in TOML.
    pub fn key(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::In(_) => "in",
            Op::NotIn(_) => "not_in",
            Op::Matches(_) => "matches",
            Op::Gt(_) => "gt",
            Op::Ge(_) => "ge",
            Op::Lt(_) => "lt",
            Op::Le(_) => "le",
            Op::Exists(_) => "exists",
        }
    }
}

/// Operator keys, in the order the docs list them.
pub const OPS: &[&str] = &["eq", "ne", "in", "not_in", "matches", "gt", "ge", "lt", "le", "exists"];

/// A validated filter.
#[derive(Clone, Debug)]
pub enum Filter {
    /// One field, one test.
    Test {
        /// The field.
        field: FieldRef,
        /// The test.
        op: Op,
        /// Where it was written.
        span: Range<usize>,
    },
    /// Passes when any member passes.
    Any(Vec<Filter>),
    /// Passes when all members pass.
    All(Vec<Filter>),
    /// A macro reference, before expansion.
    Use(Sp<String>),
}

impl Filter {
    /// Every field the filter reads.
    pub fn fields(&self, out: &mut Vec<FieldRef>) {
        match self {
            Filter::Test { field, .. } => out.push(field.clone()),
            Filter::Any(fs) | Filter::All(fs) => fs.iter().for_each(|f| f.fields(out)),
            Filter::Use(_) => {}
        }
    }

    /// The filter written back in the rule language, for `explain-plan`.
    pub fn describe(&self) -> String {
        match self {
            Filter::Test { field, op, .. } => {
                let value = match op {
                    Op::Eq(v) | Op::Ne(v) => format!("{v:?}"),
                    Op::In(v) | Op::NotIn(v) => format!("{v:?}"),
                    Op::Matches(r) => format!("{:?}", r.as_str()),
                    Op::Gt(x) | Op::Ge(x) | Op::Lt(x) | Op::Le(x) => x.to_string(),
                    Op::Exists(b) => b.to_string(),
                };
                format!("{field} {} {value}", op.key())
            }
            Filter::Any(fs) => format!("any({})", fs.iter().map(Filter::describe).collect::<Vec<_>>().join(", ")),
            Filter::All(fs) => format!("all({})", fs.iter().map(Filter::describe).collect::<Vec<_>>().join(", ")),
            Filter::Use(name) => format!("use {}", name.value),
        }
    }
}

/// Splits `item.labels` into scope and name, warning on a name that looks
/// like a misspelt known field.
pub fn parse_field(ctx: &mut Ctx<'_>, name: &Sp<String>) -> FieldRef {
    let (scope, rest) = if let Some(r) = name.value.strip_prefix("item.") {
        (Scope::Item, r)
    } else if let Some(r) = name.value.strip_prefix("account.") {
        (Scope::Account, r)
    } else if let Some(r) = name.value.strip_prefix("author.") {
        (Scope::Author, r)
    } else {
        (Scope::Event, name.value.as_str())
    };
    let known: Vec<&str> = scope.table().fields().iter().map(|f| f.name).collect();
    if !known.contains(&rest) {
        let mut suggestion = did_you_mean(rest, known.iter().copied()).map(|s| format!("{}{s}", scope.prefix()));
        if suggestion.is_none() && scope == Scope::Event && rest.contains('.') {
            let (prefix, tail) = rest.split_once('.').expect("contains a dot");
            if let Some(p) = did_you_mean(prefix, ["item", "account", "author"]) {
                suggestion = Some(format!("{p}.{tail}"));
            }
        }
        if let Some(s) = suggestion {
            ctx.report(
                Code::FieldLooksMisspelled,
                name.span.clone(),
                format!(
                    "`{}` is not a field of the contract; it will be read as an extra field of the data",
                    name.value
                ),
            )
            .help
            .push(format!("help: did you mean `{s}`?"));
        }
    }
    FieldRef { scope, name: rest.to_string() }
}

/// Reads a `where` array.
pub fn parse_filters(ctx: &mut Ctx<'_>, reader: &mut TableReader<'_, '_>, key: &'static str) -> Vec<Filter> {
    let Some((items, _)) = reader.array(ctx, key) else {
        return Vec::new();
    };
    items.iter().filter_map(|item| parse_filter(ctx, item, 0)).collect()
}

/// Reads one filter table: a test, an `any`/`all` group, or a `use`.
pub fn parse_filter(ctx: &mut Ctx<'_>, value: &Spanned<DeValue<'_>>, depth: usize) -> Option<Filter> {
    let DeValue::Table(table) = value.get_ref() else {
        ctx.report(
            Code::WrongType,
            value.span(),
            format!(
                "a filter must be a table like {{ field = \"surface\", eq = \"home\" }}, found {}",
                type_name(value.get_ref())
            ),
        );
        return None;
    };
    if depth > MAX_DEPTH {
        ctx.report(Code::MacroDepth, value.span(), format!("filters nest more than {MAX_DEPTH} deep"));
        return None;
    }
    let mut r = TableReader::new(table, value.span(), "filter");
    let has = |k: &str| table.get(k).is_some();
    if has("any") || has("all") {
        let key = if has("any") { "any" } else { "all" };
        let (items, _) = r.array(ctx, key)?;
        let members: Vec<Filter> = items.iter().filter_map(|i| parse_filter(ctx, i, depth + 1)).collect();
        r.finish(ctx);
        return Some(if key == "any" { Filter::Any(members) } else { Filter::All(members) });
    }
    if has("use") {
        let name = r.str(ctx, "use")?;
        r.finish(ctx);
        return Some(Filter::Use(name));
    }
    let Some(field) = r.req_str(ctx, "field") else {
        r.allow("any");
        r.allow("all");
        r.allow("use");
        for op in OPS {
            r.allow(op);
        }
        r.finish(ctx);
        return None;
    };
    let field_ref = parse_field(ctx, &field);
    let present: Vec<&'static str> = OPS.iter().copied().filter(|k| has(k)).collect();
    for op in OPS {
        r.allow(op);
    }
    r.allow("any");
    r.allow("all");
    r.allow("use");
    let unknown: Vec<String> = table
        .iter()
        .map(|(k, _)| k.get_ref().to_string())
        .filter(|k| k != "field" && !OPS.contains(&k.as_str()))
        .collect();
    let op = match present.as_slice() {
        [one] => parse_op(ctx, one, table.get(*one).expect("present"))?,
        [] => {
            // An unknown key is most likely a misspelt operator: say so once.
            let d = ctx.report(Code::BadFilter, value.span(), format!("filter on `{}` has no operator", field.value));
            d.help = match unknown.first() {
                Some(k) => unknown_name_help(k, OPS),
                None => unknown_name_help("", OPS),
            };
            return None;
        }
        many => {
            let d = ctx.report(
                Code::BadFilter,
                value.span(),
                format!(
                    "filter on `{}` has {} operators ({}); use one per filter",
                    field.value,
                    many.len(),
                    many.join(", ")
                ),
            );
            d.help.push("help: put several tests in separate filters (all must pass) or in { any = [...] }".into());
            return None;
        }
    };
    r.finish(ctx);
    Some(Filter::Test { field: field_ref, op, span: value.span() })
}

fn parse_op(ctx: &mut Ctx<'_>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<Op> {
    let scalar = |ctx: &mut Ctx<'_>| -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            DeValue::Boolean(b) => Some(b.to_string()),
            other => {
                ctx.report(Code::WrongType, v.span(), format!("`{key}` must be a string, found {}", type_name(other)));
                None
            }
        }
    };
    let number = |ctx: &mut Ctx<'_>| -> Option<f64> {
        match as_number(v.get_ref()) {
            Some(x) if x.is_finite() => Some(x),
            Some(x) => {
                ctx.report(Code::BadValue, v.span(), super::reader::not_finite(key, x));
                None
            }
            None => {
                ctx.report(
                    Code::WrongType,
                    v.span(),
                    format!("`{key}` must be a number, found {}", type_name(v.get_ref())),
                );
                None
            }
        }
    };
    let list = |ctx: &mut Ctx<'_>| -> Option<Vec<String>> {
        str_list_value(ctx, key, v).map(|l| l.value.into_iter().map(|s| s.value).collect())
    };
    Some(match key {
        "eq" => Op::Eq(scalar(ctx)?),
        "ne" => Op::Ne(scalar(ctx)?),
        "in" => Op::In(list(ctx)?),
        "not_in" => Op::NotIn(list(ctx)?),
        "matches" => {
            let pattern = scalar(ctx)?;
            match Regex::new(&pattern) {
                Ok(re) => Op::Matches(re),
                Err(e) => {
                    ctx.report(
                        Code::BadRegex,
                        v.span(),
                        format!("`matches` is not a valid regex: {}", regex_error(&pattern, &e)),
                    );
                    return None;
                }
            }
        }
        "gt" => Op::Gt(number(ctx)?),
        "ge" => Op::Ge(number(ctx)?),
        "lt" => Op::Lt(number(ctx)?),
        "le" => Op::Le(number(ctx)?),
        "exists" => match v.get_ref() {
            DeValue::Boolean(b) => Op::Exists(*b),
            other => {
                ctx.report(
                    Code::WrongType,
                    v.span(),
                    format!("`exists` must be true or false, found {}", type_name(other)),
                );
                return None;
            }
        },
        _ => unreachable!("only keys of OPS are passed"),
    })
}

/// What [`check_macros`] found of one macro.
#[derive(Clone, Copy)]
enum Checked {
    /// Being checked (a use of it now is a cycle).
    Open,
    /// Fine: how many filters it expands to, and how deep its macros nest.
    Good { size: usize, depth: usize },
    /// In error (reported once, at the macro at fault).
    Bad,
}

/// Checks the macros of a config once, in declaration order, reporting at
/// the macro (its name in `[macros]`, `spans`) or at the faulty `use` in
/// its body: a `use` of a macro that is not declared (E010), a macro that
/// refers to itself (E015), macros nested more than [`MAX_DEPTH`] deep
/// (E015), and a macro that expands to more than [`MAX_EXPANDED`] filters
/// (E015). Each fault is reported once, at the first macro it is found in;
/// a macro in error, and every macro that uses one, is emptied (the config
/// has an error, so no rule of it is run). Runs in time linear in the
/// macros' text, whatever their expansion would be.
pub fn check_macros(
    ctx: &mut Ctx<'_>,
    macros: &mut BTreeMap<String, Vec<Filter>>,
    spans: &BTreeMap<String, Range<usize>>,
) {
    let mut checked: BTreeMap<String, Checked> = BTreeMap::new();
    let names: Vec<String> = spans.keys().cloned().collect();
    for name in &names {
        let mut stack = Vec::new();
        check_macro(ctx, name, macros, spans, &mut checked, &mut stack);
    }
    for (name, c) in &checked {
        if matches!(c, Checked::Bad)
            && let Some(body) = macros.get_mut(name)
        {
            body.clear();
        }
    }
}

fn check_macro(
    ctx: &mut Ctx<'_>,
    name: &str,
    macros: &BTreeMap<String, Vec<Filter>>,
    spans: &BTreeMap<String, Range<usize>>,
    checked: &mut BTreeMap<String, Checked>,
    stack: &mut Vec<String>,
) -> Checked {
    if let Some(&c) = checked.get(name) {
        if matches!(c, Checked::Open) {
            let at = stack.iter().position(|s| s == name).unwrap_or(0);
            let through: Vec<&str> = stack[at..].iter().map(String::as_str).chain([name]).collect();
            let span = spans.get(name).cloned().unwrap_or(0..0);
            ctx.report(
                Code::MacroDepth,
                span,
                format!("macro `{name}` refers to itself (through {})", through.join(" -> ")),
            );
            checked.insert(name.to_string(), Checked::Bad);
            return Checked::Bad;
        }
        return c;
    }
    let Some(body) = macros.get(name) else { return Checked::Bad };
    checked.insert(name.to_string(), Checked::Open);
    stack.push(name.to_string());
    let mut size = 0usize;
    let mut depth = 0usize;
    let mut bad = false;
    let mut uses = Vec::new();
    count_filters(body, &mut size, &mut uses);
    for used in uses {
        if !spans.contains_key(&used.value) {
            let declared: Vec<&str> = macros.keys().map(String::as_str).collect();
            let help = unknown_name_help(&used.value, &declared);
            ctx.report(
                Code::UnknownMacro,
                used.span.clone(),
                format!("no macro named `{}` is declared in [macros]", used.value),
            )
            .help = help;
            bad = true;
            continue;
        }
        match check_macro(ctx, &used.value, macros, spans, checked, stack) {
            Checked::Good { size: s, depth: d } => {
                size = size.saturating_add(s);
                depth = depth.max(d + 1);
            }
            Checked::Open | Checked::Bad => bad = true,
        }
        if bad || size > MAX_EXPANDED || depth >= MAX_DEPTH {
            break;
        }
    }
    stack.pop();
    let span = spans.get(name).cloned().unwrap_or(0..0);
    let result = if bad {
        Checked::Bad
    } else if depth >= MAX_DEPTH {
        ctx.report(
            Code::MacroDepth,
            span,
            format!("macro `{name}` nests macros more than {MAX_DEPTH} deep (each uses the next)"),
        );
        Checked::Bad
    } else if size > MAX_EXPANDED {
        ctx.report(
            Code::MacroDepth,
            span,
            format!(
                "macro `{name}` expands to more than {MAX_EXPANDED} filters: the macros it uses repeat each other's \
                 filters; use each macro once, or write the filters out"
            ),
        );
        Checked::Bad
    } else {
        Checked::Good { size, depth }
    };
    checked.insert(name.to_string(), result);
    result
}

/// Adds to `size` the filters of `filters` without their macros (a `use`
/// counts one, for the group it becomes), and collects the macros used.
fn count_filters<'f>(filters: &'f [Filter], size: &mut usize, uses: &mut Vec<&'f Sp<String>>) {
    for f in filters {
        *size += 1;
        match f {
            Filter::Any(fs) | Filter::All(fs) => count_filters(fs, size, uses),
            Filter::Use(name) => uses.push(name),
            Filter::Test { .. } => {}
        }
    }
}

/// Replaces every `use` by the macro's filters (checked by
/// [`check_macros`]), reporting unknown macros at the rule's `use`, and a
/// rule whose filters expand to more than [`MAX_EXPANDED`] filters once, at
/// the `use` that goes past it. `macros` holds each macro's unexpanded
/// filters.
pub fn expand(
    ctx: &mut Ctx<'_>,
    filters: Vec<Filter>,
    macros: &BTreeMap<String, Vec<Filter>>,
    stack: &mut Vec<String>,
) -> Vec<Filter> {
    let mut left = MAX_EXPANDED + 1;
    expand_within(ctx, filters, macros, stack, &mut left, None)
}

/// [`expand`] with `left` filters still allowed; `at` is the rule's `use`
/// being expanded (spans inside macros are the config file's).
fn expand_within(
    ctx: &mut Ctx<'_>,
    filters: Vec<Filter>,
    macros: &BTreeMap<String, Vec<Filter>>,
    stack: &mut Vec<String>,
    left: &mut usize,
    at: Option<&Sp<String>>,
) -> Vec<Filter> {
    let mut out = Vec::new();
    for f in filters {
        if *left == 0 {
            break;
        }
        *left -= 1;
        if *left == 0 {
            let (span, via) = match (at, &f) {
                (Some(u), _) | (None, Filter::Use(u)) => (u.span.clone(), format!(" (with macro `{}`)", u.value)),
                (None, Filter::Test { span, .. }) => (span.clone(), String::new()),
                (None, _) => (0..0, String::new()),
            };
            ctx.report(
                Code::MacroDepth,
                span,
                format!("the rule's filters expand to more than {MAX_EXPANDED} filters{via}"),
            );
            break;
        }
        match f {
            Filter::Use(name) => {
                let Some(body) = macros.get(&name.value) else {
                    // Inside a macro, `check_macros` has reported it.
                    if at.is_none() {
                        let names: Vec<&str> = macros.keys().map(String::as_str).collect();
                        let help = unknown_name_help(&name.value, &names);
                        ctx.report(
                            Code::UnknownMacro,
                            name.span.clone(),
                            format!("no macro named `{}` is declared in [macros]", name.value),
                        )
                        .help = help;
                    }
                    continue;
                };
                // Cycles and depth are reported by `check_macros`, which
                // empties such macros; this guards a config not checked.
                if stack.contains(&name.value) || stack.len() >= MAX_DEPTH {
                    continue;
                }
                stack.push(name.value.clone());
                let inner = expand_within(ctx, body.clone(), macros, stack, left, at.or(Some(&name)));
                out.push(Filter::All(inner));
                stack.pop();
            }
            Filter::Any(fs) => out.push(Filter::Any(expand_within(ctx, fs, macros, stack, left, at))),
            Filter::All(fs) => out.push(Filter::All(expand_within(ctx, fs, macros, stack, left, at))),
            test @ Filter::Test { .. } => out.push(test),
        }
    }
    out
}

/// What is wrong with a pattern, in one line: the parser's reason and
/// where in the pattern (`unclosed group at character 2 of the pattern`),
/// or, for a pattern that parses but is too large once compiled, that.
fn regex_error(pattern: &str, e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let why = text.lines().rev().find_map(|l| l.strip_prefix("error: ")).unwrap_or("invalid syntax");
            // The parser shows the pattern indented by four spaces and a
            // caret line under it.
            let at = text
                .lines()
                .find(|l| l.trim_start().starts_with('^'))
                .and_then(|l| l.find('^'))
                .filter(|_| !pattern.contains('\n'))
                .map(|c| c.saturating_sub(4));
            match at {
                Some(c) => format!("{why} at character {} of the pattern", pattern[..].chars().take(c).count() + 1),
                None => why.to_string(),
            }
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "it compiles to more than {} MiB (the size limit): its repetitions multiply; use smaller counts",
            limit >> 20
        ),
        other => other.to_string(),
    }
}

/// The names a scope's known fields have, for docs and suggestions.
pub fn known_fields(scope: Scope) -> Vec<String> {
    scope.table().fields().iter().map(|f| format!("{}{}", scope.prefix(), f.name)).collect()
}

/// Whether a known field of `scope` is a list field.
pub fn is_list_field(scope: Scope, name: &str) -> bool {
    scope.table().fields().iter().any(|f| f.name == name && f.kind == schema::Kind::List)
}
