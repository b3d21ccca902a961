//! JSON Lines records: one JSON object per line.
//!
//! Each line is parsed with serde_json straight into a [`TableBuilder`]
//! through a map visitor: keys and unescaped strings are borrowed from the
//! input, values are first taken as raw JSON text and then typed by their
//! column. No `serde_json::Value` tree is built per record.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::table::{RawField, TableBuilder};

/// Parses every line of `block` into `builder`. A bad line is dropped and
/// reported through `bad` as (line number, reason); blank lines are ignored.
pub fn parse_block(block: &[u8], first_line: u64, builder: &mut TableBuilder, bad: &mut Vec<(u64, String)>) {
    // Valid UTF-8 (the usual case) is checked once for the whole block, so
    // serde_json need not check each string again.
    let text = std::str::from_utf8(block).ok();
    let mut line_no = first_line;
    let mut start = 0;
    while start < block.len() {
        let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let (mut lo, mut hi) = (start, end);
        if hi > lo && block[hi - 1] == b'\r' {
            hi -= 1;
        }
        if line_no == 1 && block[lo..hi].starts_with(b"\xEF\xBB\xBF") {
            lo += 3;
        }
        let line = &block[lo..hi];
        if !line.iter().all(u8::is_ascii_whitespace) {
            builder.begin();
            let parsed = match text {
                // Cut at the same ASCII bytes, the line is valid UTF-8 too.
                Some(t) => parse_str_line(&t[lo..hi], builder),
                None => parse_line(line, builder),
            };
            if let Err(why) = parsed {
                builder.reject(why);
            }
            if let Err(why) = builder.end() {
                bad.push((line_no, why));
            }
        }
        line_no += 1;
        start = end + 1;
    }
}

fn parse_line(line: &[u8], builder: &mut TableBuilder) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    RecordSeed(builder).deserialize(&mut de).map_err(describe)?;
    de.end().map_err(describe)
}

fn parse_str_line(line: &str, builder: &mut TableBuilder) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(line);
    RecordSeed(builder).deserialize(&mut de).map_err(describe)?;
    de.end().map_err(describe)
}

fn describe(e: serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    format!("broken JSON at column {}: {msg}", e.column())
}

struct RecordSeed<'b>(&'b mut TableBuilder);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let raw: &'de RawValue = map.next_value()?;
            self.0.field(&key, classify(raw.get()));
        }
        Ok(())
    }
}

struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Types raw JSON text without building a tree.
fn classify(text: &str) -> RawField<'_> {
    let t = text.trim();
    match t.as_bytes().first() {
        Some(b'"') => RawField::Str(unquote(t)),
        Some(b'n') => RawField::Null,
        Some(b't') => RawField::Bool(true),
        Some(b'f') => RawField::Bool(false),
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(t) {
            Ok(items) => RawField::List(
                items
                    .into_iter()
                    .filter_map(|v| match classify(v.get()) {
                        RawField::Str(s) => Some(s),
                        RawField::Num(n) | RawField::Json(n) => Some(Cow::Borrowed(n)),
                        RawField::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
                        RawField::List(_) => Some(Cow::Borrowed(v.get())),
                        RawField::Null => None,
                    })
                    .collect(),
            ),
            Err(_) => RawField::Json(t),
        },
        Some(b'{') => RawField::Json(t),
        _ => RawField::Num(t),
    }
}

fn unquote(t: &str) -> Cow<'_, str> {
    let inner = &t[1..t.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    // The text came from serde_json, so it is a valid JSON string.
    serde_json::from_str::<String>(t).map_or(Cow::Borrowed(inner), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::TableKind;
    use crate::data::table::Table;
    use crate::intern::Interner;

    #[test]
    fn parses_good_lines_and_reports_bad_ones() {
        let text = concat!(
            r#"{"ts":"2020-09-09T14:03:00Z","actor":"liu","action":"like","target":905,"x":{"a":1},"tags":["a",2]}"#,
            "\n",
            "\n",
            r#"{"ts":1000,"actor":"li\"u","action":"like""#,
            "\n",
            r#"{"ts":1000,"action":"like"}"#,
            "\r\n",
            r#"[1,2]"#,
            "\n",
            r#"{"ts":1000,"actor":"a","action":"like"} trailing"#,
            "\n",
            r#"{"ts":1000,"actor":"esc\u00e9","action":"like","lat":"51.5","surface":null}"#,
        );
        let mut b = TableBuilder::new(TableKind::Events);
        let mut bad = Vec::new();
        parse_block(text.as_bytes(), 10, &mut b, &mut bad);
        let lines: Vec<u64> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [12, 13, 14, 15], "{bad:?}");
        assert!(bad[0].1.starts_with("broken JSON at column"), "{}", bad[0].1);
        assert_eq!(bad[1].1, "missing required field `actor`");
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        assert_eq!(t.rows, 2);
        assert_eq!(strings.resolve(t.columns[3].sym(0).unwrap()), "905");
        let x = t.column_index("x").unwrap();
        assert_eq!(strings.resolve(t.columns[x].sym(0).unwrap()), r#"{"a":1}"#);
        let tags = t.column_index("tags").unwrap();
        assert_eq!(strings.resolve(t.columns[tags].sym(0).unwrap()), "a|2");
        assert_eq!(strings.resolve(t.columns[1].sym(1).unwrap()), "escé");
        assert_eq!(t.columns[11].num(1), Some(51.5));
        assert_eq!(t.columns[5].sym(1), None);
    }
}
