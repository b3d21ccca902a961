//! JSON Lines records: one JSON object per line.
//!
//! Each line is parsed with serde_json straight into a [`TableBuilder`]
//! through a map visitor: keys and unescaped strings are borrowed from the
//! input, values are first taken as raw JSON text and then typed by their
//! column. No `serde_json::Value` tree is built per record.
//!
//! **Why serde_json** (measured for issue 19; `cargo bench --bench jsonl`,
//! synth event lines, one thread, a release build for plain x86-64, as the
//! binary ships, on a shared 2-core machine, two runs): cutting each line
//! into keys and raw values, serde_json with `RawValue` did 350 and 412
//! MiB/s; sonic-rs with `LazyValue` (checked) 292 and 244 MiB/s, slower:
//! built without AVX2, its 32-byte lanes are emulated; simd-json's tape
//! alone, on a copy of the line (it unescapes in place), 364 and 428 MiB/s,
//! no faster, and it keeps no raw text of a number, which the contract needs
//! (`"actor": 1.50` is the id `1.50`, `-0` is not `0`). sonic-rs was also
//! tried as a fast path in front of this visitor (flat records cut by
//! sonic-rs, every other line to serde_json; the same rows and reasons,
//! checked by a differential test): `parse_block` did 138 MiB/s against
//! serde_json's 150 (projected fields; all fields 136 against 164), so the
//! one-parser reader stays. Parsing is about a quarter of the CPU of a
//! `changeling score` run on JSONL (perf, 3 M events); cutting blocks and
//! merging them are benched beside it.
//!
//! **What makes a line bad** (skipped, counted, located; see docs/data.md):
//! broken JSON, a string with a lone UTF-16 surrogate escape (`"\ud800"`:
//! it is no Unicode text, and reading it as its escape text would make it
//! the same account as `"\\ud800"`), a value nested deeper than
//! [`MAX_NESTING`] arrays and objects, and whatever the table's schema
//! rejects (see [`TableBuilder`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::table::{RawField, TableBuilder};

/// How deep arrays and objects may nest in one field's value (`[[1]]` is 2
/// deep). Deeper values make the record bad: no field of the contract
/// nests at all, and a cap keeps hostile input from costing stack or time.
pub const MAX_NESTING: usize = 64;

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
            match classify(raw.get()) {
                Ok(value) => self.0.field(&key, value),
                Err(why) => self.0.reject(format!("field `{key}`: {why}")),
            }
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

/// Types raw JSON text without building a tree. Fails on a string that is
/// not Unicode text (a lone surrogate escape) and on values nested deeper
/// than [`MAX_NESTING`].
fn classify(text: &str) -> Result<RawField<'_>, String> {
    let t = text.trim();
    Ok(match t.as_bytes().first() {
        Some(b'"') => RawField::Str(unquote(t)?),
        Some(b'n') => RawField::Null,
        Some(b't') => RawField::Bool(true),
        Some(b'f') => RawField::Bool(false),
        Some(b'[') => {
            check_nesting(t)?;
            match serde_json::from_str::<Vec<&RawValue>>(t) {
                // Items are typed one level deep only: a nested array or
                // object is kept as its text, never typed recursively.
                Ok(items) => RawField::List(
                    items
                        .into_iter()
                        .filter_map(|v| {
                            let item = v.get();
                            match item.as_bytes().first() {
                                Some(b'"') => Some(unquote(item)),
                                Some(b'n') => None,
                                _ => Some(Ok(Cow::Borrowed(item))),
                            }
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Err(_) => RawField::Json(t),
            }
        }
        Some(b'{') => {
            check_nesting(t)?;
            RawField::Json(t)
        }
        _ => RawField::Num(t),
    })
}

/// Fails when arrays and objects in `t` (valid JSON) nest deeper than
/// [`MAX_NESTING`]; brackets inside strings do not count.
fn check_nesting(t: &str) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in t.as_bytes() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!("arrays and objects nested deeper than {MAX_NESTING}"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The text of a JSON string (valid JSON, as serde_json cut it out). A lone
/// UTF-16 surrogate escape is an error: it is not text, and keeping its
/// escape as text would conflate `"\ud800"` with `"\\ud800"`.
fn unquote(t: &str) -> Result<Cow<'_, str>, String> {
    let inner = &t[1..t.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    // serde_json has checked the escapes' syntax when it cut the value out;
    // what can still fail is a surrogate escape without its pair.
    serde_json::from_str::<String>(t).map(Cow::Owned).map_err(|_| {
        "string is not Unicode text: a UTF-16 surrogate escape (\\ud800 to \\udfff) without its pair".to_string()
    })
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

    /// Lines of `text` parsed into an events builder (with `keep` as the
    /// projection): the rows kept, and (line, reason) of each bad one.
    fn parse(text: &str, keep: Option<&[&str]>) -> (Table, Interner, Vec<(u64, String)>) {
        let keep = keep.map(|k| std::sync::Arc::new(k.iter().map(|s| s.to_string()).collect()));
        let mut b = TableBuilder::with_projection(TableKind::Events, keep);
        let mut bad = Vec::new();
        parse_block(text.as_bytes(), 1, &mut b, &mut bad);
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        (t, strings, bad)
    }

    #[test]
    fn extreme_times_are_bad_records_never_absent_or_wrapped() {
        let lines = [
            r#"{"ts":-9223372036854775808,"actor":"a","action":"like","target":"x"}"#,
            r#"{"ts":9223372036854775807,"actor":"a","action":"like"}"#,
            r#"{"ts":99999999999999999999999,"actor":"a","action":"like"}"#,
            r#"{"ts":-1,"actor":"a","action":"like"}"#,
            r#"{"ts":1599660180000000,"actor":"a","action":"like"}"#,
            r#"{"ts":1599660180000000000,"actor":"a","action":"like"}"#,
            r#"{"ts":"-9223372036854775808","actor":"a","action":"like"}"#,
            r#"{"ts":"0001-01-01T00:00:00Z","actor":"a","action":"like"}"#,
            r#"{"ts":253402300799999,"actor":"a","action":"like"}"#,
            r#"{"ts":"9999-12-31T23:59:59.999Z","actor":"a","action":"like","target":"y"}"#,
            r#"{"ts":0,"actor":"a","action":"like"}"#,
        ];
        let (t, _, bad) = parse(&lines.join("\n"), None);
        let at: Vec<u64> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(at, [1, 2, 3, 4, 5, 6, 7, 8], "{bad:?}");
        for (_, why) in &bad {
            assert!(why.starts_with("field `ts`") && why.contains("outside 1970"), "{why}");
        }
        assert!(bad[4].1.contains("microseconds"), "{}", bad[4].1);
        assert!(bad[5].1.contains("nanoseconds"), "{}", bad[5].1);
        assert_eq!(t.rows, 3);
        assert_eq!(t.columns[0].time(0), Some(crate::time::MAX_TIME));
        assert_eq!(t.columns[0].time(2), Some(0));
        // The raw table answers for every row: no required value is absent.
        use crate::data::EventRows;
        assert_eq!((0..t.rows).map(|i| t.ts_at(i)).max(), Some(crate::time::MAX_TIME));
    }

    #[test]
    fn strings_that_are_not_text_or_not_strings_are_bad_records() {
        let lines = [
            r#"{"ts":1000,"actor":"\ud800","action":"like"}"#,
            r#"{"ts":1000,"actor":"\\ud800","action":"like"}"#,
            r#"{"ts":1000,"actor":[],"action":"like"}"#,
            r#"{"ts":1000,"actor":{"id":"a"},"action":"like"}"#,
            r#"{"ts":1000,"actor":"a","action":true}"#,
            r#"{"ts":1000,"actor":"a","action":"like","note":"\udc00x"}"#,
            r#"{"ts":1000,"actor":"a","action":"like","tags":["ok","\ud800"]}"#,
            r#"{"ts":1000,"actor":"a","action":"like","flag":true,"tags":["x",1,[2]]}"#,
            r#"{"ts":1000,"actor":"\ud83d\ude00","action":"like"}"#,
            r#"{"ts":1000,"actor":"","action":"like"}"#,
        ];
        let (t, strings, bad) = parse(&lines.join("\n"), None);
        let at: Vec<u64> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(at, [1, 3, 4, 5, 6, 7, 10], "{bad:?}");
        assert!(bad[0].1.starts_with("field `actor`: string is not Unicode text"), "{}", bad[0].1);
        assert_eq!(bad[1].1, "field `actor`: expected a string, found a list");
        assert_eq!(bad[2].1, "field `actor`: expected a string, found an object");
        assert_eq!(bad[3].1, "field `action`: expected a string, found a boolean");
        assert!(bad[4].1.starts_with("field `note`: string is not Unicode text"), "{}", bad[4].1);
        assert!(bad[5].1.starts_with("field `tags`: string is not Unicode text"), "{}", bad[5].1);
        assert_eq!(bad[6].1, "missing required field `actor`");
        assert_eq!(t.rows, 3);
        // The escaped backslash is the six characters `\ud800`, an account
        // of its own; a valid surrogate pair is its one character.
        assert_eq!(strings.resolve(t.columns[1].sym(0).unwrap()), r"\ud800");
        assert_eq!(strings.resolve(t.columns[1].sym(2).unwrap()), "😀");
        let tags = t.column_index("tags").unwrap();
        assert_eq!(strings.resolve(t.columns[tags].sym(1).unwrap()), "x|1|[2]");
    }

    #[test]
    fn deep_nesting_is_a_bad_record_not_a_crash() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let lines = [
            format!(r#"{{"ts":1000,"actor":"a","action":"like","x":{}}}"#, deep(MAX_NESTING)),
            format!(r#"{{"ts":1000,"actor":"a","action":"like","x":{}}}"#, deep(MAX_NESTING + 1)),
            format!(r#"{{"ts":1000,"actor":"a","action":"like","x":{}}}"#, deep(10_000)),
            format!(r#"{{"ts":1000,"actor":"a","action":"like","target":{}}}"#, deep(100_000)),
            format!(r#"{{"ts":1000,"actor":"a","action":"like","x":{}1{}}}"#, "{\"k\":".repeat(70), "}".repeat(70)),
            format!(r#"{{"ts":1000,"actor":"a","action":"like","x":"{}"}}"#, "[".repeat(10_000)),
        ];
        let (t, _, bad) = parse(&lines.join("\n"), None);
        let at: Vec<u64> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(at, [2, 3, 4, 5], "{bad:?}");
        for (_, why) in &bad {
            assert!(why.contains("nested deeper than 64"), "{why}");
        }
        assert_eq!(t.rows, 2);
    }

    #[test]
    fn a_field_no_rule_reads_is_checked_all_the_same() {
        let text = [
            r#"{"ts":1000,"actor":"a","action":"like","lat":"north"}"#,
            r#"{"ts":1000,"actor":"a","action":"like","target":["x"]}"#,
            r#"{"ts":1000,"actor":"a","action":"like","device":"\ud800"}"#,
            r#"{"ts":1000,"actor":"a","action":"like","surface":{"a":1}}"#,
            r#"{"ts":1000,"actor":"a","action":"like","mood":{"a":1},"lat":1.5}"#,
        ]
        .join("\n");
        let (all, _, bad_all) = parse(&text, None);
        let (few, _, bad_few) = parse(&text, Some(&["ts", "actor", "action"]));
        assert_eq!(bad_all, bad_few);
        assert_eq!(bad_all.len(), 4, "{bad_all:?}");
        assert_eq!((all.rows, few.rows), (1, 1));
    }
}
