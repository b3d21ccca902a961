//! `synth --daily`: the population again as one dataset per day, the way a
//! daily export delivers it: `DIR/daily/<date>/` holds the events and
//! impressions of that day (UTC) and the items created that day; the first
//! day also holds the follows and accounts tables (the graph as the log
//! starts) and every item created before it. Labels stay in `DIR` (they are
//! for evaluation). Scoring the days one after the other with `score
//! --state` gives what scoring `DIR` at once gives.
//!
//! It is a streaming pass over the files just written: each record's time
//! is read from its line (the writer's own layout: `"ts":"..."` in JSON,
//! the time column in CSV) and the line is appended to its day's file,
//! compressed as the source is.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::writer::{Compression, Format};
use super::{SynthConfig, SynthError};
use crate::data::TableKind;
use crate::time::{DAY, Millis, day_of, format_rfc3339, parse_timestamp};

/// Lines buffered per day file before they are compressed and written.
const FLUSH: usize = 1 << 20;

/// One day's file of one table, being written.
struct DayFile {
    out: File,
    buf: Vec<u8>,
    compression: Compression,
}

impl DayFile {
    fn push(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let bytes = self.compression.apply(std::mem::take(&mut self.buf))?;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }
}

/// Splits the dataset `cfg` wrote in `dir` into `dir/daily/<date>/`.
/// Returns the day directories, in order.
pub fn split(cfg: &SynthConfig, dir: &Path) -> Result<Vec<PathBuf>, SynthError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| SynthError::Io { path: path.clone(), source: e }
    };
    let root = dir.join("daily");
    let first = day_of(cfg.start);
    let last = day_of(cfg.start + i64::from(cfg.days) * DAY - 1);
    let name = |d: i64| format_rfc3339(d * DAY)[..10].to_string();
    let mut days = Vec::new();
    for d in first..=last {
        let p = root.join(name(d));
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        days.push(p);
    }
    let file_name = |t: TableKind| format!("{}.{}{}", t.name(), cfg.format.ext(), cfg.compression.ext());
    let header = |t: TableKind| match cfg.format {
        Format::Csv => Some(super::writer::csv_header(match t {
            TableKind::Events => super::writer::EVENT_COLUMNS,
            TableKind::Items => super::writer::ITEM_COLUMNS,
            TableKind::Impressions => super::writer::IMPRESSION_COLUMNS,
            TableKind::Follows => super::writer::FOLLOW_COLUMNS,
            _ => super::writer::ACCOUNT_COLUMNS,
        })),
        Format::Jsonl => None,
    };
    // Tables by time; items by creation (before the log: the first day).
    for (table, field) in [(TableKind::Events, "ts"), (TableKind::Impressions, "ts"), (TableKind::Items, "created_at")]
    {
        let src = dir.join(file_name(table));
        if !src.exists() {
            continue;
        }
        let mut files: BTreeMap<i64, DayFile> = BTreeMap::new();
        for (d, path) in (first..=last).zip(&days) {
            let p = path.join(file_name(table));
            let mut out = File::create(&p).map_err(io(&p))?;
            let mut buf = Vec::new();
            if let Some(h) = header(table) {
                buf.extend_from_slice(&h);
            }
            if cfg.compression == Compression::None {
                out.write_all(&buf).map_err(io(&p))?;
                buf.clear();
            }
            files.insert(d, DayFile { out, buf, compression: cfg.compression });
        }
        let reader = open(&src, cfg.compression).map_err(io(&src))?;
        let column = match cfg.format {
            Format::Csv => {
                let cols = match table {
                    TableKind::Items => super::writer::ITEM_COLUMNS,
                    TableKind::Impressions => super::writer::IMPRESSION_COLUMNS,
                    _ => super::writer::EVENT_COLUMNS,
                };
                cols.iter().position(|c| *c == field)
            }
            Format::Jsonl => None,
        };
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(io(&src))?;
            if line.is_empty() || (cfg.format == Format::Csv && n == 0) {
                continue;
            }
            // A malformed line (--broken-rate) goes with the day before it.
            let t = time_of(&line, field, column);
            let d = t.map_or(first, day_of).clamp(first, last);
            files.get_mut(&d).expect("a file per day").push(&line).map_err(io(&src))?;
        }
        for (d, f) in &mut files {
            f.flush().map_err(io(&days[(*d - first) as usize]))?;
        }
    }
    // The graph and the accounts as the log starts: the first day's.
    for table in [TableKind::Follows, TableKind::Accounts] {
        let src = dir.join(file_name(table));
        if src.exists() {
            let to = days[0].join(file_name(table));
            std::fs::copy(&src, &to).map_err(io(&to))?;
        }
    }
    Ok(days)
}

fn open(path: &Path, compression: Compression) -> std::io::Result<Box<dyn BufRead>> {
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let read: Box<dyn Read> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, read)))
}

/// The time of a record as the synth writer writes it: `"field":"<RFC
/// 3339>"` in JSON, column `column` in CSV.
fn time_of(line: &[u8], field: &str, column: Option<usize>) -> Option<Millis> {
    let text = std::str::from_utf8(line).ok()?;
    match column {
        Some(c) => parse_timestamp(text.split(',').nth(c)?.trim_matches('"')),
        None => {
            let key = format!("\"{field}\":\"");
            let at = text.find(&key)? + key.len();
            let end = text[at..].find('"')? + at;
            parse_timestamp(&text[at..end])
        }
    }
}
