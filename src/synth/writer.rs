//! Records as bytes: JSON Lines or CSV written by hand, and compression of
//! whole chunks.
//!
//! Every value the generator writes is an identifier, a fixed vocabulary
//! word, a number or a short phrase, so formatting is a matter of copying
//! bytes; strings are still escaped (JSON) or quoted (CSV) when they need it.
//! Timestamps are whole seconds, written `2024-01-01T13:58:00Z`; the date
//! part is cached per day. Lists are JSON arrays, or `|`-joined CSV cells.
//!
//! A chunk's buffer is compressed on its own, as one gzip member or one
//! zstd frame: the readers accept concatenated members and frames, so the
//! chunks can be compressed in parallel and the file is still one stream.
//! Compressed bytes depend on the compression library's version; the
//! decompressed bytes do not.

use std::io::Write;

use super::account::{Event, Impression, LabelRec, Target};
use super::population::{ItemKey, ItemMeta, PRE_DAYS};
use super::world::{COUNTRIES, TOPICS};
use crate::time::{DAY, Millis, format_rfc3339};

/// A record format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header row, then comma-separated rows.
    Csv,
}

impl Format {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// A compression around the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip, one member per chunk.
    Gzip,
    /// Zstandard, one frame per chunk.
    Zstd,
}

impl Compression {
    /// The file extension suffix, with its dot (empty for none).
    pub fn ext(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// `bytes` compressed as one self-contained member or frame.
    pub fn apply(self, bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(bytes),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(bytes.len() / 4 + 64),
                    flate2::Compression::new(6),
                );
                enc.write_all(&bytes)?;
                enc.finish()
            }
            Compression::Zstd => zstd::bulk::compress(&bytes, 3),
        }
    }
}

/// The columns of each table, in CSV order.
pub const EVENT_COLUMNS: &[&str] = &[
    "ts",
    "actor",
    "action",
    "target",
    "target_author",
    "surface",
    "client",
    "device",
    "ip",
    "country",
    "asn",
    "lat",
    "lon",
];
/// Columns of `items`.
pub const ITEM_COLUMNS: &[&str] = &["id", "author", "created_at", "labels", "lang", "text"];
/// Columns of `follows`.
pub const FOLLOW_COLUMNS: &[&str] = &["follower", "followee", "since"];
/// Columns of `accounts`.
pub const ACCOUNT_COLUMNS: &[&str] = &["id", "created_at", "handle", "labels"];
/// Columns of `impressions`.
pub const IMPRESSION_COLUMNS: &[&str] = &["actor", "item", "ts", "surface"];
/// Columns of `labels`.
pub const LABEL_COLUMNS: &[&str] = &["actor", "label", "start", "end", "style"];

/// The CSV header row of a table.
pub fn csv_header(columns: &[&str]) -> Vec<u8> {
    let mut h = columns.join(",").into_bytes();
    h.push(b'\n');
    h
}

/// Writes records of one format into byte buffers.
#[derive(Debug)]
pub struct Writer {
    csv: bool,
    day: i64,
    date: [u8; 11],
}

/// One record being written: fields must come in the table's column order.
struct Line<'a> {
    buf: &'a mut Vec<u8>,
    csv: bool,
    n: usize,
}

impl Line<'_> {
    fn key(&mut self, name: &str) {
        if self.csv {
            if self.n > 0 {
                self.buf.push(b',');
            }
        } else {
            self.buf.push(if self.n == 0 { b'{' } else { b',' });
            self.buf.push(b'"');
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.extend_from_slice(b"\":");
        }
        self.n += 1;
    }

    /// An absent field: an empty CSV cell, nothing in JSON.
    fn absent(&mut self) {
        if self.csv {
            if self.n > 0 {
                self.buf.push(b',');
            }
            self.n += 1;
        }
    }

    fn quote(&mut self) {
        if !self.csv {
            self.buf.push(b'"');
        }
    }

    /// A string value, escaped or quoted as the format needs.
    fn string(&mut self, name: &str, s: &str) {
        self.key(name);
        if self.csv {
            write_csv_cell(self.buf, s);
        } else {
            write_json_string(self.buf, s);
        }
    }

    /// A value known to need no escaping (ids, vocabulary).
    fn plain(&mut self, name: &str, s: &str) {
        self.key(name);
        self.quote();
        self.buf.extend_from_slice(s.as_bytes());
        self.quote();
    }

    fn account(&mut self, name: &str, a: u32) {
        self.key(name);
        self.quote();
        write_account(self.buf, a);
        self.quote();
    }

    fn item(&mut self, name: &str, key: ItemKey) {
        self.key(name);
        self.quote();
        write_item(self.buf, key);
        self.quote();
    }

    fn list(&mut self, name: &str, items: &[&str]) {
        self.key(name);
        if self.csv {
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b'|');
                }
                self.buf.extend_from_slice(s.as_bytes());
            }
        } else {
            self.buf.push(b'[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                write_json_string(self.buf, s);
            }
            self.buf.push(b']');
        }
    }

    fn coord(&mut self, name: &str, v: i32) {
        self.key(name);
        write_fixed4(self.buf, v);
    }

    fn end(self) {
        if !self.csv {
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
    }
}

impl Writer {
    /// A writer of `format` records.
    pub fn new(format: Format) -> Writer {
        Writer { csv: format == Format::Csv, day: i64::MIN, date: [0; 11] }
    }

    fn line<'a>(&self, buf: &'a mut Vec<u8>) -> Line<'a> {
        Line { buf, csv: self.csv, n: 0 }
    }

    fn time(&mut self, line: &mut Line<'_>, name: &str, ms: Millis) {
        line.key(name);
        line.quote();
        let day = ms.div_euclid(DAY);
        if day != self.day {
            let s = format_rfc3339(day * DAY);
            self.date.copy_from_slice(&s.as_bytes()[..11]);
            self.day = day;
        }
        line.buf.extend_from_slice(&self.date);
        let sod = ms.rem_euclid(DAY) / 1000;
        let two = |b: &mut Vec<u8>, v: i64| {
            b.push(b'0' + (v / 10) as u8);
            b.push(b'0' + (v % 10) as u8);
        };
        two(line.buf, sod / 3600);
        line.buf.push(b':');
        two(line.buf, sod % 3600 / 60);
        line.buf.push(b':');
        two(line.buf, sod % 60);
        let frac = ms.rem_euclid(1000);
        if frac != 0 {
            line.buf.push(b'.');
            line.buf.push(b'0' + (frac / 100) as u8);
            line.buf.push(b'0' + (frac / 10 % 10) as u8);
            line.buf.push(b'0' + (frac % 10) as u8);
        }
        line.buf.push(b'Z');
        line.quote();
    }

    /// Appends one `events` record.
    pub fn event(&mut self, buf: &mut Vec<u8>, e: &Event) {
        let mut l = self.line(buf);
        self.time(&mut l, "ts", e.ts);
        l.account("actor", e.actor);
        l.plain("action", e.action.name());
        match e.target {
            Target::Item(key) => {
                l.item("target", key);
                l.account("target_author", key.author);
            }
            Target::Account(a) => {
                l.account("target", a);
                l.absent();
            }
            Target::None => {
                l.absent();
                l.absent();
            }
        }
        match e.surface {
            Some(s) => l.plain("surface", s.name()),
            None => l.absent(),
        }
        l.plain("client", e.net.client.name());
        l.key("device");
        l.quote();
        write_device(l.buf, e.net.device);
        l.quote();
        l.key("ip");
        l.quote();
        write_ip(l.buf, e.net.ip);
        l.quote();
        l.plain("country", COUNTRIES[e.net.country as usize].code);
        l.key("asn");
        l.quote();
        l.buf.extend_from_slice(b"AS");
        l.buf.extend_from_slice(itoa::Buffer::new().format(e.net.asn).as_bytes());
        l.quote();
        match e.geo {
            Some((lat, lon)) => {
                l.coord("lat", lat);
                l.coord("lon", lon);
            }
            None => {
                l.absent();
                l.absent();
            }
        }
        l.end();
    }

    /// Appends one `items` record.
    pub fn item(&mut self, buf: &mut Vec<u8>, key: ItemKey, meta: &ItemMeta) {
        let mut l = self.line(buf);
        l.item("id", key);
        l.account("author", key.author);
        self.time(&mut l, "created_at", meta.created_at);
        let labels: Vec<&str> = meta.labels().iter().map(|&t| TOPICS[t as usize].name).collect();
        if labels.is_empty() {
            l.absent();
        } else {
            l.list("labels", &labels);
        }
        l.plain("lang", meta.lang);
        match meta.text {
            Some(t) => l.string("text", t),
            None => l.absent(),
        }
        l.end();
    }

    /// Appends one `follows` record.
    pub fn follow(&mut self, buf: &mut Vec<u8>, follower: u32, followee: u32, since: Millis) {
        let mut l = self.line(buf);
        l.account("follower", follower);
        l.account("followee", followee);
        self.time(&mut l, "since", since);
        l.end();
    }

    /// Appends one `accounts` record.
    pub fn account(&mut self, buf: &mut Vec<u8>, id: u32, created_at: Millis, handle: &str, labels: &[&str]) {
        let mut l = self.line(buf);
        l.account("id", id);
        self.time(&mut l, "created_at", created_at);
        l.string("handle", handle);
        if labels.is_empty() {
            l.absent();
        } else {
            l.list("labels", labels);
        }
        l.end();
    }

    /// Appends one `impressions` record.
    pub fn impression(&mut self, buf: &mut Vec<u8>, i: &Impression) {
        let mut l = self.line(buf);
        l.account("actor", i.actor);
        l.item("item", i.item);
        self.time(&mut l, "ts", i.ts);
        l.plain("surface", i.surface.name());
        l.end();
    }

    /// Appends one `labels` record.
    pub fn label(&mut self, buf: &mut Vec<u8>, r: &LabelRec) {
        let mut l = self.line(buf);
        l.account("actor", r.actor);
        l.plain("label", if r.compromised { "compromised" } else { "benign" });
        match r.window {
            Some((start, end)) => {
                self.time(&mut l, "start", start);
                self.time(&mut l, "end", end);
            }
            None => {
                l.absent();
                l.absent();
            }
        }
        l.string("style", &r.style);
        l.end();
    }
}

/// Writes an account id: `u<n>`.
pub fn write_account(buf: &mut Vec<u8>, a: u32) {
    buf.push(b'u');
    buf.extend_from_slice(itoa::Buffer::new().format(a).as_bytes());
}

/// Writes an item id: `t<author>-<day + PRE_DAYS>-<k>`.
pub fn write_item(buf: &mut Vec<u8>, key: ItemKey) {
    let mut b = itoa::Buffer::new();
    buf.push(b't');
    buf.extend_from_slice(b.format(key.author).as_bytes());
    buf.push(b'-');
    buf.extend_from_slice(b.format(key.day + PRE_DAYS).as_bytes());
    buf.push(b'-');
    buf.extend_from_slice(b.format(key.k).as_bytes());
}

/// Writes a device fingerprint: `d` and 12 hex digits.
pub fn write_device(buf: &mut Vec<u8>, id: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'd');
    for i in (0..12).rev() {
        buf.push(HEX[((id >> (i * 4)) & 0xf) as usize]);
    }
}

/// Writes a dotted IPv4 address.
pub fn write_ip(buf: &mut Vec<u8>, ip: u32) {
    let mut b = itoa::Buffer::new();
    for (i, shift) in [24, 16, 8, 0].into_iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        buf.extend_from_slice(b.format((ip >> shift) & 0xff).as_bytes());
    }
}

/// Writes `v / 10_000` with four decimals (`-33.8688`).
pub fn write_fixed4(buf: &mut Vec<u8>, v: i32) {
    if v < 0 {
        buf.push(b'-');
    }
    let a = v.unsigned_abs();
    buf.extend_from_slice(itoa::Buffer::new().format(a / 10_000).as_bytes());
    buf.push(b'.');
    let frac = a % 10_000;
    for d in [1000, 100, 10, 1] {
        buf.push(b'0' + (frac / d % 10) as u8);
    }
}

/// Writes a JSON string literal, escaping only what must be.
pub fn write_json_string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.extend_from_slice(s.as_bytes());
    } else {
        for c in s.chars() {
            match c {
                '"' => buf.extend_from_slice(b"\\\""),
                '\\' => buf.extend_from_slice(b"\\\\"),
                '\n' => buf.extend_from_slice(b"\\n"),
                '\r' => buf.extend_from_slice(b"\\r"),
                '\t' => buf.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
    }
    buf.push(b'"');
}

/// Writes a CSV cell, quoted when it holds a separator, quote or line break.
pub fn write_csv_cell(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_writers() {
        let mut b = Vec::new();
        write_fixed4(&mut b, -338_688);
        b.push(b' ');
        write_fixed4(&mut b, 5);
        b.push(b' ');
        write_ip(&mut b, 0x0a00_01fe);
        b.push(b' ');
        write_device(&mut b, 0xabc);
        b.push(b' ');
        write_json_string(&mut b, "a\"b\n");
        b.push(b' ');
        write_csv_cell(&mut b, "x,\"y\"");
        assert_eq!(String::from_utf8(b).unwrap(), r#"-33.8688 0.0005 10.0.1.254 d000000000abc "a\"b\n" "x,""y""""#);
    }

    #[test]
    fn times_match_the_library_formatter() {
        let mut w = Writer::new(Format::Csv);
        for ms in [0, 1_704_067_200_000, 1_704_117_480_000, 1_704_117_480_250] {
            let mut b = Vec::new();
            let mut l = w.line(&mut b);
            w.time(&mut l, "ts", ms);
            assert_eq!(String::from_utf8(b).unwrap(), format_rfc3339(ms));
        }
    }
}
