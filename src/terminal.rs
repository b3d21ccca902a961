//! Text from the data made safe to print on a terminal.
//!
//! Log values reach stderr in summaries (a skipped record's reason quotes
//! it), in error messages and in `explain`'s timeline. Printed raw, an
//! escape sequence in a value would drive the terminal (recolour, move the
//! cursor, retitle the window, hide the lines around it), and a megabyte
//! value would bury everything else. [`escape`] writes every control
//! character (C0 but the line break, DEL, C1, and the bidirectional
//! overrides that reorder what is shown) as a Rust-style escape (`\x1b`,
//! `\u{202e}`); [`shorten`] cuts a long line with an ellipsis and says how
//! long it was. Files (alerts in JSONL, CSV, Parquet) keep the exact
//! values: JSON escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The longest line printed whole by [`for_terminal`], in characters.
pub const MAX_LINE_CHARS: usize = 1000;

fn unsafe_char(c: char, keep_newline: bool) -> bool {
    match c {
        '\n' => !keep_newline,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidirectional embeddings, overrides and isolates.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `s` with every control character escaped; line breaks are kept when
/// `keep_newline`.
pub fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c, keep_newline)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c, keep_newline) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// `s` cut after `max` characters, with an ellipsis and its full length in
/// bytes, when it is longer.
pub fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes in all)", &s[..cut], s.len())),
    }
}

/// Text for a terminal: control characters escaped (line breaks kept) and
/// each line shortened to [`MAX_LINE_CHARS`].
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    let escaped = escape(s, true);
    if escaped.lines().all(|l| l.len() <= MAX_LINE_CHARS) {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len().min(1 << 16));
    for (i, line) in escaped.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&shorten(line, MAX_LINE_CHARS));
    }
    Cow::Owned(out)
}

/// One value for a terminal line: escaped (line breaks too) and shortened
/// to `max` characters.
pub fn value(s: &str, max: usize) -> String {
    shorten(&escape(s, false), max).into_owned()
}

/// Writes `rows` as a table: first column left-aligned, the others
/// right-aligned, two spaces between, indented by two.
pub fn table(out: &mut String, rows: &[Vec<String>]) {
    aligned_table(out, rows, "  ", |c| c > 0);
}

/// Writes `rows` as a table after `indent`: columns two spaces apart,
/// right-aligned where `right(column)` holds and left-aligned elsewhere,
/// trailing spaces trimmed.
pub fn aligned_table(out: &mut String, rows: &[Vec<String>], indent: &str, right: impl Fn(usize) -> bool) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let (w, sep) = (widths[c], if c == 0 { "" } else { "  " });
            if right(c) {
                let _ = write!(line, "{sep}{cell:>w$}");
            } else {
                let _ = write!(line, "{sep}{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain ünïcode", true), "plain ünïcode");
        assert_eq!(escape("a\x1b[31mred\x07\u{9b}\u{7f}\u{202e}", true), "a\\x1b[31mred\\x07\\x9b\\x7f\\u{202e}");
        assert_eq!(escape("two\nlines\r", true), "two\nlines\\r");
        assert_eq!(escape("two\nlines", false), "two\\nlines");
    }

    #[test]
    fn long_values_are_shortened_with_their_length() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("ééééé", 2), "éé… (10 bytes in all)");
        let long = "x".repeat(5000);
        let text = format!("head\n{long}\ntail");
        let shown = for_terminal(&text);
        assert!(shown.starts_with("head\nxxx"));
        assert!(shown.ends_with("… (5000 bytes in all)\ntail"), "{}", &shown[shown.len() - 40..]);
    }
}
