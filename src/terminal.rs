//! Text from the data made safe to print on a terminal.
//!
//! Log values reach stderr in summaries (a skipped record's reason quotes
//! it), in error messages and in `explain`'s timeline. Printed raw, an
//! escape sequence in a value would drive the terminal (recolour, move the
//! cursor, retitle the window, hide the lines around it), and a megabyte
//! value would bury everything else. [`escape`] writes every control
//! character (C0 but the line break, DEL, C1, and the bidirectional
//! overrides that reorder what is shown) as a Rust-style escape (`\x1b`,
//! `\u{202e}`), and so every invisible character that would make two
//! distinct values look the same (zero-width spaces and joiners, the
//! direction marks, the line and paragraph separators, the byte order mark,
//! soft hyphens, fillers and tag characters: [`is_invisible`]); [`shorten`] cuts a long line with an ellipsis and says how
//! long it was. Files (alerts in JSONL, CSV, Parquet) keep the exact
//! values: JSON escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The longest line printed whole by [`for_terminal`], in characters.
pub const MAX_LINE_CHARS: usize = 1000;

/// Whether `c` is a character a reader cannot see, or that changes how
/// the characters around it are shown, without being a control character:
/// the soft hyphen, the combining grapheme joiner, the Arabic letter mark,
/// the Hangul and Mongolian fillers and separators, zero-width spaces,
/// joiners and direction marks (U+200B to U+200F), the line and paragraph
/// separators (U+2028, U+2029), bidirectional embeddings, overrides and
/// isolates, word joiners and invisible operators (U+2060 to U+206F), the
/// byte order mark (U+FEFF), interlinear annotation marks and the
/// non-characters U+FFFE, U+FFFF, and the tag characters (U+E0000 to
/// U+E007F).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{fffe}'
            | '\u{ffff}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// Whether `c` is printed as an escape: a control character (C0 but the
/// line break when kept, DEL, C1) or an invisible one ([`is_invisible`]).
fn unsafe_char(c: char, keep_newline: bool) -> bool {
    match c {
        '\n' => !keep_newline,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        c => is_invisible(c),
    }
}

/// Whether `s` holds a character that [`escape`] would escape (line breaks
/// included).
pub fn needs_escape(s: &str) -> bool {
    s.chars().any(|c| unsafe_char(c, false))
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

/// `s`, a JSON text, with every character [`escape`] would escape (but the
/// line break) written as a JSON escape (`\u009b`, `\u200b`; a surrogate
/// pair above U+FFFF): the same JSON values, safe on a terminal. Such
/// characters appear in JSON text only inside strings.
pub fn escape_json(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c, true)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c, true) {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{:04x}", u);
        }
    }
    Cow::Owned(out)
}

/// JSON text for a stream: as [`escape_json`] when the stream
/// `is_terminal`, else as is (files and pipes get the exact text).
pub fn json_for(s: &str, is_terminal: bool) -> Cow<'_, str> {
    if is_terminal { escape_json(s) } else { Cow::Borrowed(s) }
}

/// What an [`EscapingWriter`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// JSON Lines: escaped as JSON ([`escape_json`]), the same values.
    Json,
    /// Any other text: escaped by [`escape`], line breaks kept.
    Plain,
}

/// A writer for a terminal: passes on whole lines, each escaped as
/// [`Text`] says. What follows the last line break is held until the next
/// one, or until [`EscapingWriter::finish`].
pub struct EscapingWriter<W: std::io::Write> {
    inner: W,
    pending: Vec<u8>,
    text: Text,
}

impl<W: std::io::Write> EscapingWriter<W> {
    /// Escapes what is written to `inner` as `text`.
    pub fn new(inner: W, text: Text) -> EscapingWriter<W> {
        EscapingWriter { inner, pending: Vec::new(), text }
    }

    fn pass(&mut self, upto: usize) -> std::io::Result<()> {
        let part = String::from_utf8_lossy(&self.pending[..upto]);
        let shown = match self.text {
            Text::Json => escape_json(&part),
            Text::Plain => escape(&part, true),
        };
        self.inner.write_all(shown.as_bytes())?;
        self.pending.drain(..upto);
        Ok(())
    }

    /// Writes what is held and flushes; gives the writer back.
    pub fn finish(mut self) -> std::io::Result<W> {
        let n = self.pending.len();
        self.pass(n)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = memchr::memrchr(b'\n', &self.pending) {
            self.pass(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `rows` as a table: first column left-aligned, the others
/// right-aligned, two spaces between, indented by two.
pub fn table(out: &mut String, rows: &[Vec<String>]) {
    aligned_table(out, rows, "  ", |c| c > 0);
}

/// Writes `rows` as a table after `indent`: columns two spaces apart,
/// right-aligned where `right(column)` holds and left-aligned elsewhere,
/// trailing spaces trimmed. Cells are [`escape`]d (line breaks too) before
/// they are measured, so that the columns stay aligned.
pub fn aligned_table(out: &mut String, rows: &[Vec<String>], indent: &str, right: impl Fn(usize) -> bool) {
    let escaped: Vec<Vec<Cow<'_, str>>> = rows.iter().map(|r| r.iter().map(|c| escape(c, false)).collect()).collect();
    let rows = &escaped;
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
    fn invisible_characters_are_made_visible() {
        assert_eq!(escape("liu\u{200b}", true), "liu\\u{200b}");
        assert_eq!(
            escape("\u{feff}a\u{200e}b\u{200f}\u{2028}\u{2029}", true),
            "\\u{feff}a\\u{200e}b\\u{200f}\\u{2028}\\u{2029}"
        );
        assert_eq!(escape("tag\u{e0041}", true), "tag\\u{e0041}");
        assert_eq!(escape("emoji \u{1f600} and é", true), "emoji \u{1f600} and é");
    }

    #[test]
    fn json_for_a_terminal_keeps_its_values() {
        let text = "{\"a\":\"x\u{9b}\u{200b}\u{e0041}\"}";
        let shown = escape_json(text);
        assert_eq!(shown, "{\"a\":\"x\\u009b\\u200b\\udb40\\udc41\"}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["a"], "x\u{9b}\u{200b}\u{e0041}");
        let mut w = EscapingWriter::new(Vec::new(), Text::Plain);
        std::io::Write::write_all(&mut w, "a\x1b".as_bytes()).unwrap();
        std::io::Write::write_all(&mut w, "b\nc\u{200b}".as_bytes()).unwrap();
        assert_eq!(w.finish().unwrap(), b"a\\x1bb\nc\\u{200b}");
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
