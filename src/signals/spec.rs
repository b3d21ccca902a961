//! Parameter tables: one per signal kind, the single source of each
//! parameter's name, type, range, default and meaning.
//!
//! A kind lists its parameters in a [`Param`] table. Its parser reads them
//! through a [`ParamReader`], which takes the default and the allowed range
//! from the table (so no default is written twice), reports every bad value
//! at its span, and records each effective value for `explain-plan`. The
//! parameter tables of docs/rules.md are rendered from the same tables
//! ([`markdown_table`]; a test checks the document against them).
//!
//! A parameter is marked `state` when the per-account state depends on it:
//! those parameters, and only those, make a kind's sharing key (its `Key`);
//! the others only change how an event is judged. A test in the registry
//! changes each parameter in turn and checks that the key changes exactly
//! for the `state` ones.

use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

use crate::rules::diag::{Code, unknown_name_help};
use crate::rules::reader::{Ctx, Sp, TableReader};
use crate::time::{Millis, compact_duration};

/// The longest duration a parameter may have: ten years, as for every
/// duration (checked when it is parsed, see [`crate::time::parse_duration`]).
pub use crate::time::MAX_DURATION;

/// What a parameter holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    /// A duration string such as `"10m"`, from 0 to [`MAX_DURATION`].
    Duration,
    /// A number in `min..=max`.
    Number {
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// An integer from `min` to `max`.
    Count {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// A string.
    Text,
    /// A list of strings, or `"@name"` of a list in `changeling.toml`.
    List,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// Read by the kind's own code; the text says what it takes.
    Custom(&'static str),
}

/// A parameter's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// No default: the parameter must be given.
    Required,
    /// A duration.
    Duration(Millis),
    /// A number.
    Number(f64),
    /// An integer.
    Count(u64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(&'static str),
    /// A list of strings.
    List(&'static [&'static str]),
    /// The value of another parameter of the same signal.
    Same(&'static str),
    /// Described in words (for custom parameters).
    Words(&'static str),
}

/// One parameter of a signal kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    /// Its name in the `[[signal]]` table.
    pub name: &'static str,
    /// What it holds.
    pub ty: Ty,
    /// Its default.
    pub default: Default,
    /// Whether the per-account state depends on it (part of the sharing key).
    pub state: bool,
    /// What it means, in a few words (for docs and `explain-plan`).
    pub doc: &'static str,
}

/// A parameter the per-account state depends on.
pub const fn key(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Param {
    Param { name, ty, default, state: true, doc }
}

/// A parameter that only changes how an event is judged.
pub const fn opt(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Param {
    Param { name, ty, default, state: false, doc }
}

impl Default {
    /// The default as written in docs.
    pub fn show(&self) -> String {
        match self {
            Default::Required => "required".into(),
            Default::Duration(d) => format!("`\"{}\"`", compact_duration(*d)),
            Default::Number(x) => format!("`{}`", show_number(*x)),
            Default::Count(n) => format!("`{n}`"),
            Default::Bool(b) => format!("`{b}`"),
            Default::Text(s) => format!("`\"{s}\"`"),
            Default::List(l) => format!("`[{}]`", l.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
            Default::Same(other) => format!("`{other}`"),
            Default::Words(w) => (*w).to_string(),
        }
    }
}

/// A number as docs and `explain-plan` show it: `0.05`, `4.0`, `1e-6`.
pub fn show_number(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e7) {
        format!("{x:e}")
    } else if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}

/// A kind's parameter table as a markdown table (docs/rules.md).
pub fn markdown_table(params: &[Param]) -> String {
    let mut out = String::from("| parameter | default | meaning |\n|---|---|---|\n");
    for p in params {
        out.push_str(&format!("| `{}` | {} | {} |\n", p.name, p.default.show(), p.doc));
    }
    out
}

/// Reads one `[[signal]]` table against its kind's parameter table.
pub struct ParamReader<'r, 't, 'i, 'c> {
    r: &'r mut TableReader<'t, 'i>,
    ctx: &'r mut Ctx<'c>,
    params: &'static [Param],
    /// Effective values, in the order read, for `explain-plan`.
    described: Vec<(&'static str, String)>,
    /// Durations read so far (for defaults that are another parameter's).
    durations: Vec<(&'static str, Millis)>,
}

impl<'r, 't, 'i, 'c> ParamReader<'r, 't, 'i, 'c> {
    /// A reader of `r` for a kind with parameters `params`.
    pub fn new(r: &'r mut TableReader<'t, 'i>, ctx: &'r mut Ctx<'c>, params: &'static [Param]) -> Self {
        ParamReader { r, ctx, params, described: Vec::new(), durations: Vec::new() }
    }

    /// The effective values read, in order.
    pub fn into_described(self) -> Vec<(&'static str, String)> {
        self.described
    }

    /// The span of the whole `[[signal]]` table.
    pub fn span(&self) -> Range<usize> {
        self.r.span.clone()
    }

    /// Where diagnostics go.
    pub fn ctx(&mut self) -> &mut Ctx<'c> {
        self.ctx
    }

    /// The parameter named `name`. Asking for a name the table does not
    /// list is a bug in the kind's code.
    fn param(&self, name: &str) -> &'static Param {
        self.params.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("parameter `{name}` is not in its table"))
    }

    /// Records `value` as the effective value of `name`.
    pub fn describe(&mut self, name: &'static str, value: String) {
        self.described.push((name, value));
    }

    /// A duration, bounded by [`MAX_DURATION`].
    pub fn duration(&mut self, name: &'static str) -> Millis {
        let p = self.param(name);
        let default = match p.default {
            Default::Duration(d) => Some(d),
            Default::Same(other) => self.durations.iter().find(|(n, _)| *n == other).map(|(_, d)| *d),
            _ => None,
        };
        // `r.duration` rejects durations over `MAX_DURATION`, at their span.
        let value = match self.r.duration(self.ctx, name) {
            Some(d) => Some(d.value),
            None => default,
        };
        let value = value.unwrap_or_else(|| self.required(name, 0));
        self.durations.push((name, value));
        self.describe(name, compact_duration(value));
        value
    }

    /// A number in the parameter's range.
    pub fn number(&mut self, name: &'static str) -> f64 {
        let p = self.param(name);
        let Ty::Number { min, max } = p.ty else { panic!("`{name}` is not a number parameter") };
        let default = match p.default {
            Default::Number(x) => Some(x),
            _ => None,
        };
        let value = match self.r.num(self.ctx, name) {
            Some(x) if x.value >= min && x.value <= max => Some(x.value),
            Some(x) => {
                self.ctx.report(
                    Code::BadValue,
                    x.span,
                    format!(
                        "`{name}` is {}, but must be between {} and {}",
                        x.value,
                        show_number(min),
                        show_number(max)
                    ),
                );
                default
            }
            None => default,
        };
        let value = value.unwrap_or_else(|| self.required(name, 0.0));
        self.describe(name, show_number(value));
        value
    }

    /// An integer in the parameter's range.
    pub fn count(&mut self, name: &'static str) -> u64 {
        let p = self.param(name);
        let Ty::Count { min, max } = p.ty else { panic!("`{name}` is not a count parameter") };
        let default = match p.default {
            Default::Count(n) => n,
            _ => min,
        };
        let got = self.r.count(self.ctx, name, max, default);
        let value = if got < min {
            let span = self.r.get(name).map_or_else(|| self.span(), |v| v.span());
            self.ctx.report(Code::BadValue, span, format!("`{name}` must be an integer from {min} to {max}"));
            default
        } else {
            got
        };
        self.describe(name, value.to_string());
        value
    }

    /// A boolean.
    pub fn flag(&mut self, name: &'static str) -> bool {
        let p = self.param(name);
        let default = matches!(p.default, Default::Bool(true));
        let value = self.r.bool(self.ctx, name).map_or(default, |b| b.value);
        self.describe(name, value.to_string());
        value
    }

    /// A string.
    pub fn text(&mut self, name: &'static str) -> String {
        let p = self.param(name);
        let default = match p.default {
            Default::Text(s) => Some(s.to_string()),
            _ => None,
        };
        let value = self
            .r
            .str(self.ctx, name)
            .map(|s| s.value)
            .or(default)
            .unwrap_or_else(|| self.required(name, String::new()));
        self.describe(name, value.clone());
        value
    }

    /// A list of strings (or `"@name"`), with spans, or the default (whose
    /// elements take the table's span).
    pub fn spanned_list(&mut self, name: &'static str) -> Sp<Vec<Sp<String>>> {
        let p = self.param(name);
        let value = match self.r.str_list(self.ctx, name) {
            Some(list) => list,
            None => {
                let span = self.span();
                let items: Vec<Sp<String>> = match p.default {
                    Default::List(l) => l.iter().map(|s| Sp::new(s.to_string(), span.clone())).collect(),
                    Default::Required => {
                        self.required(name, ());
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
                Sp::new(items, span)
            }
        };
        self.describe(name, format!("{:?}", value.value.iter().map(|s| &s.value).collect::<Vec<_>>()));
        value
    }

    /// A list of strings (or `"@name"`).
    pub fn list(&mut self, name: &'static str) -> Vec<String> {
        self.spanned_list(name).value.into_iter().map(|s| s.value).collect()
    }

    /// One of the parameter's choices.
    pub fn choice(&mut self, name: &'static str) -> &'static str {
        let p = self.param(name);
        let Ty::Choice(choices) = p.ty else { panic!("`{name}` is not a choice parameter") };
        let default = match p.default {
            Default::Text(s) => s,
            _ => choices[0],
        };
        let value = self.r.choice(self.ctx, name, choices, default);
        self.describe(name, value.to_string());
        value
    }

    /// The raw value of a custom parameter (the caller reads it and calls
    /// [`ParamReader::describe`]).
    pub fn raw(&mut self, name: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        let _ = self.param(name);
        self.r.get(name)
    }

    /// Reports a missing required parameter; returns `fallback`.
    fn required<T>(&mut self, name: &str, fallback: T) -> T {
        let span = self.span();
        let span = span.start..span.start + 1;
        self.ctx.report(Code::MissingKey, span, format!("signal is missing required key `{name}`"));
        fallback
    }

    /// Reports an unknown name in a list parameter, with the valid choices.
    pub fn unknown_name(&mut self, item: &Sp<String>, what: &str, choices: &[&str]) {
        let help = unknown_name_help(&item.value, choices);
        self.ctx.report(Code::BadValue, item.span.clone(), format!("unknown {what} `{}`", item.value)).help = help;
    }
}
