//! Diagnostics for rule and configuration files, rendered like a compiler's.
//!
//! Every problem found in a file becomes a [`Diagnostic`] with a stable
//! [`Code`], a message, the byte span it is about, and optional help ("did
//! you mean", the valid choices). Loading collects all diagnostics of all
//! files instead of stopping at the first, and renders them as
//!
//! ```text
//! error[E005]: unknown signal kind `off_patern`
//!   --> rules/likes/x.toml:12:8
//!    |
//! 12 | kind = "off_patern"
//!    |        ^^^^^^^^^^^^
//!    = help: did you mean `off_pattern`?
//! ```
//!
//! Codes are never reused: a retired code stays in [`Code`] with its number.

use std::fmt::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stable diagnostic code. The number is part of the public interface:
/// users grep for it and suppress by it; never renumber or reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// E001: the file is not valid TOML.
    Syntax,
    /// E002: a key that this table does not have.
    UnknownKey,
    /// E003: a value of the wrong type.
    WrongType,
    /// E004: a required key is missing.
    MissingKey,
    /// E005: an unknown signal kind.
    UnknownSignal,
    /// E006: a value out of its allowed range or set.
    BadValue,
    /// E007: a duration that does not parse.
    BadDuration,
    /// E008: a regular expression that does not compile.
    BadRegex,
    /// E009: a reference to a list that is not declared.
    UnknownList,
    /// E010: a reference to a macro that is not declared.
    UnknownMacro,
    /// E011: two rules with one id.
    DuplicateId,
    /// E012: the score tiers are inconsistent.
    BadTiers,
    /// E013: a filter with no operator, or more than one.
    BadFilter,
    /// E014: a rule or config file that cannot be read.
    Unreadable,
    /// E015: macros that nest too deep or refer to themselves.
    MacroDepth,
    /// E016: a rule whose parts contradict each other.
    Inconsistent,
    /// E017: a reference to a rule id that no rule has.
    UnknownRule,
    /// E018: a `--set` path that names no rule, signal, table or element.
    BadOverride,
    /// W101: a field name that is not in the contract, close to one that is.
    FieldLooksMisspelled,
    /// W102: a rule selects an action that nothing in the contract or the
    /// rule's signals produces (possible typo).
    UnusualAction,
    /// W103: the score model lets one family of evidence alone reach the
    /// top tier.
    SingleFamilyTops,
    /// W104: a directory link in a rules directory or its `tests/` that
    /// leads to a directory already read (a loop): not followed.
    DirectoryLoop,
    /// W105: an exception that has expired (it covers only the hits before
    /// its expiry).
    ExpiredException,
}

impl Code {
    /// The code as printed, e.g. `E005`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E001",
            Code::UnknownKey => "E002",
            Code::WrongType => "E003",
            Code::MissingKey => "E004",
            Code::UnknownSignal => "E005",
            Code::BadValue => "E006",
            Code::BadDuration => "E007",
            Code::BadRegex => "E008",
            Code::UnknownList => "E009",
            Code::UnknownMacro => "E010",
            Code::DuplicateId => "E011",
            Code::BadTiers => "E012",
            Code::BadFilter => "E013",
            Code::Unreadable => "E014",
            Code::MacroDepth => "E015",
            Code::Inconsistent => "E016",
            Code::UnknownRule => "E017",
            Code::BadOverride => "E018",
            Code::FieldLooksMisspelled => "W101",
            Code::UnusualAction => "W102",
            Code::SingleFamilyTops => "W103",
            Code::DirectoryLoop => "W104",
            Code::ExpiredException => "W105",
        }
    }

    /// Whether diagnostics with this code are errors (else warnings).
    pub fn is_error(self) -> bool {
        self.as_str().starts_with('E')
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source file that diagnostics point into.
#[derive(Debug)]
pub struct Source {
    /// Its path, as given by the user.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl Source {
    /// A source from a path and text.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source { path: path.into(), text: text.into() })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.text.floor_char_boundary(offset);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, self.text[line_start..offset].chars().count() + 1)
    }

    /// `path:line:col` of a byte offset.
    pub fn location(&self, offset: usize) -> String {
        let (l, c) = self.line_col(offset);
        format!("{}:{l}:{c}", self.path.display())
    }
}

/// One problem in a rule or config file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Its stable code.
    pub code: Code,
    /// What is wrong, in one line.
    pub message: String,
    /// The file.
    pub source: Arc<Source>,
    /// The bytes it is about.
    pub span: Range<usize>,
    /// Suggestions: "did you mean", valid choices, how to fix.
    pub help: Vec<String>,
}

impl Diagnostic {
    /// Whether this is an error (else a warning).
    pub fn is_error(&self) -> bool {
        self.code.is_error()
    }

    /// `path:line:col` where it points.
    pub fn location(&self) -> String {
        self.source.location(self.span.start)
    }

    /// Renders with the source line and a caret under the span.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let level = if self.is_error() { "error" } else { "warning" };
        let _ = writeln!(out, "{level}[{}]: {}", self.code, self.message);
        let (line, col) = self.source.line_col(self.span.start);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {}:{line}:{col}", self.source.path.display());
        // A diagnostic about a path (a link not followed) or an empty file
        // has no line to show.
        if self.source.text.is_empty() {
            for h in &self.help {
                let _ = writeln!(out, "{pad} = {h}");
            }
            return out;
        }
        let text = self.source.text.lines().nth(line - 1).unwrap_or("");
        // The line is shown with its control and invisible characters
        // escaped (see `crate::terminal`); the caret is placed and sized in
        // the escaped text.
        let shown = |s: &str| crate::terminal::escape(s, false).chars().count();
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {}", crate::terminal::escape(text, false));
        let line_len = shown(text);
        let before: String = text.chars().take(col - 1).collect();
        let col = shown(&before) + 1;
        // Spans are byte offsets; one that falls inside a character (or
        // past the end) is widened to whole characters.
        let all = &self.source.text;
        let start = all.floor_char_boundary(self.span.start);
        let span_chars =
            all[start..all.ceil_char_boundary(self.span.end.max(start))].lines().next().map_or(1, |s| shown(s).max(1));
        let carets = span_chars.min(line_len.saturating_sub(col - 1).max(1));
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(carets));
        for h in &self.help {
            let _ = writeln!(out, "{pad} = {h}");
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}[{}]: {}",
            self.location(),
            if self.is_error() { "error" } else { "warning" },
            self.code,
            self.message
        )
    }
}

/// Diagnostics collected while loading.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    /// In the order found; [`Diagnostics::sorted`] orders them by place.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds a diagnostic.
    pub fn push(
        &mut self,
        code: Code,
        source: &Arc<Source>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.items.push(Diagnostic { code, message: message.into(), source: source.clone(), span, help: Vec::new() });
        self.items.last_mut().expect("just pushed")
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.items.len() - self.errors()
    }

    /// The diagnostics ordered by file, then position.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut v: Vec<&Diagnostic> = self.items.iter().collect();
        v.sort_by(|a, b| (&a.source.path, a.span.start, a.code).cmp(&(&b.source.path, b.span.start, b.code)));
        v
    }

    /// All diagnostics rendered, by file and position, then a count line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in self.sorted() {
            out.push_str(&d.render());
            out.push('\n');
        }
        let (e, w) = (self.errors(), self.warnings());
        if e + w > 0 {
            let _ = writeln!(out, "{e} error{}, {w} warning{}", plural(e), plural(w));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Edit distance between two short strings, counting an insertion, a
/// deletion, a substitution or a swap of two adjacent characters as one
/// edit (optimal string alignment), since swaps are the commonest typo.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `name` by edit distance, if close enough to be
/// a plausible typo (at most a third of the name's length, and at most 3).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates.into_iter().map(|c| (edit_distance(name, c), c)).filter(|&(d, _)| d <= limit).min().map(|(_, c)| c)
}

/// Help lines for an unknown name: a suggestion if one is close, and the
/// valid choices when there are few.
pub fn unknown_name_help(name: &str, choices: &[&str]) -> Vec<String> {
    let mut help = Vec::new();
    if let Some(s) = did_you_mean(name, choices.iter().copied()) {
        help.push(format!("help: did you mean `{s}`?"));
    }
    if !choices.is_empty() && choices.len() <= 16 {
        let list: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
        help.push(format!("note: expected one of {}", list.join(", ")));
    }
    help
}

/// The path relative to the current directory when it is below it, for
/// shorter locations.
pub fn display_path(p: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("off_patern", "off_pattern"), 1);
        assert_eq!(edit_distance("lkie", "like"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("off_patern", ["feed_exposure", "off_pattern"]), Some("off_pattern"));
        assert_eq!(did_you_mean("xyz", ["feed_exposure", "off_pattern"]), None);
    }

    #[test]
    fn renders_caret_under_span() {
        let src = Source::new("r.toml", "id = \"x\"\nkind = \"off_patern\"\n");
        let mut d = Diagnostics::default();
        d.push(Code::UnknownSignal, &src, 16..28, "unknown signal kind `off_patern`")
            .help
            .push("help: did you mean `off_pattern`?".into());
        let text = d.render();
        assert!(text.contains("error[E005]: unknown signal kind `off_patern`"), "{text}");
        assert!(text.contains("--> r.toml:2:8"), "{text}");
        assert!(text.contains("2 | kind = \"off_patern\"\n  |        ^^^^^^^^^^^^\n"), "{text}");
        assert!(text.ends_with("1 error, 0 warnings\n"), "{text}");
    }
}
