//! Typed, span-keeping access to a parsed TOML table, collecting diagnostics.
//!
//! This is how every rule and config table is read, instead of
//! `#[derive(Deserialize)]`: serde stops at the first error, and users need
//! all errors of a file, each at its `file:line:col`, with a "did you mean".
//! A [`TableReader`] records every key the code asks for; [`TableReader::finish`]
//! then reports any other key as unknown (the `deny_unknown_fields` habit),
//! suggesting the closest of the keys this table does have.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::diag::{Code, Diagnostics, Source, unknown_name_help};
use crate::time::{Millis, parse_duration};

/// A value with the byte span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it is in its file.
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    /// A spanned value.
    pub fn new(value: T, span: Range<usize>) -> Sp<T> {
        Sp { value, span }
    }
}

/// What readers share while reading one file: where diagnostics go, and the
/// named lists that `"@name"` references resolve to.
pub struct Ctx<'a> {
    /// The file being read.
    pub source: &'a Arc<Source>,
    /// Where diagnostics go.
    pub diags: &'a mut Diagnostics,
    /// Named string lists, from the `[lists]` of the config.
    pub lists: &'a BTreeMap<String, Vec<String>>,
}

impl Ctx<'_> {
    /// Reports an error or warning at `span`; returns it for adding help.
    pub fn report(
        &mut self,
        code: Code,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> &mut super::diag::Diagnostic {
        self.diags.push(code, self.source, span, message)
    }
}

/// The message for a number that is not finite: TOML's `inf` and `nan`, or
/// a literal too large for a float (`1e400` reads as infinity).
pub fn not_finite(key: &str, x: f64) -> String {
    if x.is_nan() {
        format!("`{key}` must be a finite number, not nan")
    } else {
        format!(
            "`{key}` must be a finite number: this one is {}infinite, or too large for a float (the largest is about \
             1.8e308)",
            if x < 0.0 { "minus " } else { "" }
        )
    }
}

/// The TOML type name of a value, for messages.
pub fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Reads a TOML integer or float as `f64`.
pub fn as_number(v: &DeValue<'_>) -> Option<f64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok().map(|n| n as f64),
        DeValue::Float(f) => match f.as_str().replace('_', "").as_str() {
            "inf" | "+inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            "nan" | "+nan" | "-nan" => Some(f64::NAN),
            s => s.parse().ok(),
        },
        _ => None,
    }
}

/// Reads one table, remembering which keys were asked for.
pub struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    /// Span of the whole table (its header, or the inline table).
    pub span: Range<usize>,
    what: String,
    known: Vec<&'static str>,
}

impl<'t, 'i> TableReader<'t, 'i> {
    /// A reader of `table`, which `what` names in messages ("rule", "signal
    /// `off_pattern`").
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, what: impl Into<String>) -> Self {
        TableReader { table, span, what: what.into(), known: Vec::new() }
    }

    /// The underlying table.
    pub fn raw(&self) -> &'t DeTable<'i> {
        self.table
    }

    /// What this table is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The raw value of `key`, marking the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get(key)
    }

    /// Marks `key` as known without reading it.
    pub fn allow(&mut self, key: &'static str) {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
    }

    /// Reports that `key` is required and missing.
    fn missing(&self, ctx: &mut Ctx<'_>, key: &str, expected: &str) {
        let span = self.span.start..self.span.start.max(self.span.start + 1);
        ctx.report(Code::MissingKey, span, format!("{} is missing required key `{key}` ({expected})", self.what));
    }

    fn wrong_type(ctx: &mut Ctx<'_>, key: &str, v: &Spanned<DeValue<'_>>, expected: &str) {
        ctx.report(Code::WrongType, v.span(), format!("`{key}` must be {expected}, found {}", type_name(v.get_ref())));
    }

    /// An optional string.
    pub fn str(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            _ => {
                Self::wrong_type(ctx, key, v, "a string");
                None
            }
        }
    }

    /// A required string.
    pub fn req_str(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<String>> {
        if self.table.get(key).is_none() {
            self.allow(key);
            self.missing(ctx, key, "a string");
            return None;
        }
        self.str(ctx, key)
    }

    /// An optional boolean.
    pub fn bool(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<bool>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Sp::new(*b, v.span())),
            _ => {
                Self::wrong_type(ctx, key, v, "true or false");
                None
            }
        }
    }

    /// An optional number (integer or float).
    pub fn num(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<f64>> {
        let v = self.get(key)?;
        match as_number(v.get_ref()) {
            Some(x) if x.is_finite() => Some(Sp::new(x, v.span())),
            Some(x) => {
                ctx.report(Code::BadValue, v.span(), not_finite(key, x));
                None
            }
            None => {
                Self::wrong_type(ctx, key, v, "a number");
                None
            }
        }
    }

    /// A number in `lo..=hi`, or `default` when absent (or wrong, after
    /// reporting it).
    pub fn num_in(&mut self, ctx: &mut Ctx<'_>, key: &'static str, lo: f64, hi: f64, default: f64) -> f64 {
        match self.num(ctx, key) {
            Some(x) if x.value >= lo && x.value <= hi => x.value,
            Some(x) => {
                ctx.report(
                    Code::BadValue,
                    x.span,
                    format!("`{key}` is {}, but must be between {lo} and {hi}", x.value),
                );
                default
            }
            None => default,
        }
    }

    /// A non-negative integer no larger than `hi`, or `default`.
    pub fn count(&mut self, ctx: &mut Ctx<'_>, key: &'static str, hi: u64, default: u64) -> u64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.get_ref() {
            DeValue::Integer(_) => match as_number(v.get_ref()) {
                Some(x) if x >= 0.0 && x <= hi as f64 => x as u64,
                _ => {
                    ctx.report(Code::BadValue, v.span(), format!("`{key}` must be an integer from 0 to {hi}"));
                    default
                }
            },
            _ => {
                Self::wrong_type(ctx, key, v, "an integer");
                default
            }
        }
    }

    /// An optional duration string such as `"10m"`.
    pub fn duration(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<Millis>> {
        let s = self.str(ctx, key)?;
        match parse_duration(&s.value) {
            Ok(ms) => Some(Sp::new(ms, s.span)),
            Err(why) => {
                ctx.report(Code::BadDuration, s.span, format!("`{key}` = \"{}\" is not a duration: {why}", s.value))
                    .help
                    .push("help: write durations like \"90s\", \"10m\", \"1h30m\", \"180d\"".into());
                None
            }
        }
    }

    /// A duration, or `default` when absent or wrong.
    pub fn duration_or(&mut self, ctx: &mut Ctx<'_>, key: &'static str, default: Millis) -> Millis {
        self.duration(ctx, key).map_or(default, |d| d.value)
    }

    /// One of `choices`, or `default` when absent (or wrong, after reporting).
    pub fn choice(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
        choices: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        let Some(s) = self.str(ctx, key) else {
            return default;
        };
        match choices.iter().find(|c| **c == s.value) {
            Some(c) => c,
            None => {
                let help = unknown_name_help(&s.value, choices);
                ctx.report(Code::BadValue, s.span, format!("`{key}` = \"{}\" is not a valid choice", s.value)).help =
                    help;
                default
            }
        }
    }

    /// A list of strings, given as an array or as `"@name"` of a declared
    /// list. Each element keeps its span (elements of a referenced list take
    /// the reference's span).
    pub fn str_list(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Sp<Vec<Sp<String>>>> {
        let v = self.get(key)?;
        str_list_value(ctx, key, v)
    }

    /// A table-valued key.
    pub fn table(&mut self, ctx: &mut Ctx<'_>, key: &'static str, what: &str) -> Option<TableReader<'t, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(t, v.span(), what.to_string())),
            _ => {
                Self::wrong_type(ctx, key, v, "a table");
                None
            }
        }
    }

    /// An array-of-tables key (`[[signal]]`), or an array of inline tables.
    pub fn tables(&mut self, ctx: &mut Ctx<'_>, key: &'static str, what: &str) -> Vec<TableReader<'t, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            Self::wrong_type(ctx, key, v, "an array of tables");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push(TableReader::new(t, item.span(), what.to_string())),
                _ => Self::wrong_type(ctx, key, item, "a table"),
            }
        }
        out
    }

    /// An array, raw.
    pub fn array(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<(&'t DeArray<'i>, Range<usize>)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some((a, v.span())),
            _ => {
                Self::wrong_type(ctx, key, v, "an array");
                None
            }
        }
    }

    /// Every (key, value) pair, for free-form tables such as `[lists]`.
    pub fn entries(&self) -> impl Iterator<Item = (&'t Spanned<std::borrow::Cow<'i, str>>, &'t Spanned<DeValue<'i>>)> {
        self.table.iter()
    }

    /// Reports every key that was not asked for as unknown.
    pub fn finish(self, ctx: &mut Ctx<'_>) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let help = unknown_name_help(name, &self.known);
            ctx.report(Code::UnknownKey, key.span(), format!("unknown key `{name}` in {}", self.what)).help = help;
        }
    }
}

/// Reads a string list value (array, or `"@name"` reference).
pub fn str_list_value(ctx: &mut Ctx<'_>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<Sp<Vec<Sp<String>>>> {
    match v.get_ref() {
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) => out.push(Sp::new(s.to_string(), item.span())),
                    DeValue::Integer(i) => out.push(Sp::new(i.as_str().to_string(), item.span())),
                    other => {
                        ctx.report(
                            Code::WrongType,
                            item.span(),
                            format!("`{key}` must be a list of strings; this element is {}", type_name(other)),
                        );
                    }
                }
            }
            Some(Sp::new(out, v.span()))
        }
        DeValue::String(s) if s.starts_with('@') => {
            let name = &s[1..];
            match ctx.lists.get(name) {
                Some(list) => Some(Sp::new(list.iter().map(|x| Sp::new(x.clone(), v.span())).collect(), v.span())),
                None => {
                    let names: Vec<&str> = ctx.lists.keys().map(String::as_str).collect();
                    let help = unknown_name_help(name, &names);
                    ctx.report(Code::UnknownList, v.span(), format!("no list named `{name}` is declared in [lists]"))
                        .help = help;
                    None
                }
            }
        }
        DeValue::String(_) => {
            ctx.report(
                Code::WrongType,
                v.span(),
                format!("`{key}` must be a list of strings or \"@list-name\", found a single string"),
            )
            .help
            .push("help: write a one-element list as [\"value\"]".into());
            None
        }
        other => {
            ctx.report(
                Code::WrongType,
                v.span(),
                format!("`{key}` must be a list of strings, found {}", type_name(other)),
            );
            None
        }
    }
}
