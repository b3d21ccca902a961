//! Alerts read back from a file, JSON Lines, Parquet or CSV, as `changeling
//! score` writes them (the format by the file's extension: `.parquet` is
//! Parquet, `.csv` CSV (see [`super::csv::read_csv`]: a file of incident
//! rows lacks the hits, so only `eval` reads it), anything else JSON Lines).
//!
//! What `eval`, `diff` and `report` need of an alert: the contract's fields
//! and, when present, the added ones (`families`, each hit's `effect`,
//! `signals`, `title`, `severity`, `tags`, `version`). Other fields are
//! ignored, so alerts of older versions and of other tools that follow the
//! contract read too. Alerts are changeling's own output, so a record that
//! is not an alert is an error naming its line (or row), not skipped, and
//! so is an alert repeated whole (a file concatenated twice would count
//! every incident twice). `families` keep their order in the file, in
//! both formats.

use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StructArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

pub use super::csv::Need;
use crate::time::{Millis, parse_timestamp};

/// An alert file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read. (The system's message is the error's
    /// source, so that `{:#}` does not print it twice.)
    #[error("cannot read alerts {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A record is not an alert of the contract.
    #[error("{}:{line}: {message}", path.display())]
    BadAlert {
        /// The file.
        path: PathBuf,
        /// Line number (JSON Lines) or row number (Parquet), from 1.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A Parquet file that is not an alerts file.
    #[error("{}: not a Parquet alerts file: {message}", path.display())]
    BadParquet {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Record batches (a table handed over from Python) that are not
    /// alerts.
    #[error("{}: not an alerts table: {message}", name.display())]
    BadTable {
        /// How the table is named (`<alerts>`).
        name: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One alert (incident) as read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadAlert {
    /// Line (JSON Lines) or row (Parquet) in the file, from 1.
    pub line: u64,
    /// The account.
    pub actor: String,
    /// First hit.
    pub start: Millis,
    /// Last hit.
    pub end: Millis,
    /// Incident score, in [0, 1].
    pub score: f64,
    /// Tier name.
    pub tier: String,
    /// The incident's stable identity, when written.
    pub id: Option<String>,
    /// `new`, `updated`, `final` or `withdrawn`, when written.
    pub status: Option<String>,
    /// After this time no later event can change it, when written.
    pub final_after: Option<Millis>,
    /// The campaign it belongs to, when it belongs to one.
    pub campaign: Option<String>,
    /// What each family contributed (empty when the file does not say).
    pub families: Vec<(String, f64)>,
    /// Its hits, in file order.
    pub hits: Vec<ReadHit>,
}

/// One hit of an alert as read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadHit {
    /// Rule id.
    pub rule: String,
    /// Event time.
    pub ts: Millis,
    /// The event's action.
    pub action: String,
    /// The event's target.
    pub target: Option<String>,
    /// Strength.
    pub strength: f64,
    /// The evidence in words.
    pub why: String,
    /// `for` or `against` (`for` when absent).
    pub effect: String,
    /// The rule's title, when written.
    pub title: Option<String>,
    /// The rule's severity, when written.
    pub severity: Option<String>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The kinds of the signals that fired (empty when the file does not
    /// say).
    pub signals: Vec<String>,
}

impl ReadHit {
    /// Whether it is evidence for compromise.
    pub fn is_for(&self) -> bool {
        self.effect != "against"
    }
}

/// Reads an alerts file whole: Parquet when its name ends in `.parquet`
/// (any case), CSV when it ends in `.csv` (of hit rows), else JSON Lines.
pub fn read(path: &Path) -> Result<Vec<ReadAlert>, ReadError> {
    read_for(path, Need::Hits)
}

/// Reads an alerts file for what `need` asks: as [`read`], but with
/// [`Need::Rules`] a CSV file of incident rows reads too, each alert with one
/// hit per rule id (see [`super::csv::read_csv`]).
pub fn read_for(path: &Path, need: Need) -> Result<Vec<ReadAlert>, ReadError> {
    let is = |ext: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
    let file = File::open(path).map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    if is("csv") {
        let alerts = super::csv::read_csv(path, std::io::BufReader::new(file), need)?;
        refuse_repeats(path, &alerts)?;
        Ok(alerts)
    } else if is("parquet") {
        crate::data::parquet::decoding(|| read_parquet(path, file))
            .unwrap_or_else(|message| Err(ReadError::BadParquet { path: path.to_path_buf(), message }))
    } else {
        parse_jsonl(path, std::io::BufReader::new(file))
    }
}

#[derive(Deserialize)]
struct RawAlert {
    actor: String,
    start: String,
    end: String,
    score: f64,
    tier: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    final_after: Option<String>,
    #[serde(default)]
    campaign: Option<String>,
    #[serde(default)]
    families: Families,
    hits: Vec<RawHit>,
}

/// A JSON object's members in file order (serde_json's map sorts them).
#[derive(Default)]
struct Families(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Families {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Families, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Families;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of family names to numbers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Families, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(member);
                }
                Ok(Families(out))
            }
        }
        d.deserialize_map(Members)
    }
}

#[derive(Deserialize)]
struct RawHit {
    rule: String,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    strength: f64,
    #[serde(default)]
    why: String,
    #[serde(default)]
    effect: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    signals: Vec<String>,
}

/// Parses JSON Lines alerts from `reader`; `path` names them in errors.
/// Blank lines are skipped.
pub fn parse_jsonl(path: &Path, reader: impl BufRead) -> Result<Vec<ReadAlert>, ReadError> {
    let mut alerts = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let bad = |message: String| ReadError::BadAlert { path: path.to_path_buf(), line: n, message };
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => bad("not UTF-8 text".into()),
            _ => ReadError::Io { path: path.to_path_buf(), source: e },
        })?;
        // A byte order mark, as an editor saving the file again may add.
        let line = if n == 1 { line.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(line) } else { line };
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawAlert = serde_json::from_str(&line).map_err(|e| match n == 1 && line.starts_with("actor,") {
            true => bad(format!(
                "{}; the line reads as the header of CSV alerts: give the file a .csv name to read it as CSV",
                json_message(&e)
            )),
            false => bad(json_message(&e)),
        })?;
        let time = |field: &str, s: &str| {
            parse_timestamp(s).ok_or_else(|| bad(format!("`{field}` is not a timestamp: {s:?}")))
        };
        let start = time("start", &raw.start)?;
        let end = time("end", &raw.end)?;
        let mut hits = Vec::with_capacity(raw.hits.len());
        for h in raw.hits {
            let ts = match &h.ts {
                Some(t) => time("ts", t)?,
                None => start,
            };
            hits.push(ReadHit {
                rule: h.rule,
                ts,
                action: h.action,
                target: h.target,
                strength: h.strength,
                why: h.why,
                effect: h.effect.unwrap_or_else(|| "for".into()),
                title: h.title,
                severity: h.severity,
                tags: h.tags,
                signals: h.signals,
            });
        }
        let families = raw.families.0.into_iter().filter_map(|(k, v)| v.as_f64().map(|x| (k, x))).collect();
        let final_after = raw.final_after.as_deref().map(|t| time("final_after", t)).transpose()?;
        let alert = ReadAlert {
            line: n,
            actor: raw.actor,
            start,
            end,
            score: raw.score,
            tier: raw.tier,
            id: raw.id,
            status: raw.status,
            final_after,
            campaign: raw.campaign,
            families,
            hits,
        };
        check(&alert).map_err(bad)?;
        alerts.push(alert);
    }
    refuse_repeats(path, &alerts)?;
    Ok(alerts)
}

/// An error at the first alert that repeats an earlier one whole (all but
/// its line).
fn refuse_repeats(path: &Path, alerts: &[ReadAlert]) -> Result<(), ReadError> {
    let mut seen: std::collections::HashMap<(&str, Millis, Millis), Vec<usize>> = Default::default();
    for (i, a) in alerts.iter().enumerate() {
        let same = seen.entry((&a.actor, a.start, a.end)).or_default();
        if let Some(&j) = same.iter().find(|&&j| ReadAlert { line: a.line, ..alerts[j].clone() } == *a) {
            return Err(ReadError::BadAlert {
                path: path.to_path_buf(),
                line: a.line,
                message: format!(
                    "repeats the alert of {} {} (actor {:?}, start {}): every incident is written once; was the \
                     file written twice into one?",
                    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) { "row" } else { "line" },
                    alerts[j].line,
                    a.actor,
                    crate::time::format_rfc3339(a.start)
                ),
            });
        }
        same.push(i);
    }
    Ok(())
}

/// The contract's rules an alert must keep.
pub(super) fn check(a: &ReadAlert) -> Result<(), String> {
    if a.end < a.start {
        return Err(format!(
            "`end` ({}) is before `start` ({})",
            crate::time::format_rfc3339(a.end),
            crate::time::format_rfc3339(a.start)
        ));
    }
    if !(0.0..=1.0).contains(&a.score) {
        return Err(format!("`score` is {}, but must be between 0 and 1", a.score));
    }
    if a.tier.is_empty() {
        return Err("`tier` is empty".into());
    }
    Ok(())
}

/// serde_json's message without its "at line 1 column N" (the line is
/// ours), keeping the column.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let base = text.rfind(" at line ").map_or(text.as_str(), |at| &text[..at]);
    format!("not an alert: {base} (column {})", e.column())
}

/// A Parquet column cast to `to`.
fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    arrow::compute::cast(a, to).map_err(|e| e.to_string())
}

/// Times of a TIMESTAMP (any unit) or integer (epoch ms) column, as epoch
/// milliseconds.
fn millis(a: &ArrayRef) -> Result<Vec<Option<Millis>>, String> {
    let ms = match a.data_type() {
        DataType::Timestamp(..) => cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
        _ => a.clone(),
    };
    let ints = cast(&ms, &DataType::Int64)?;
    Ok(ints.as_primitive::<Int64Type>().iter().collect())
}

fn texts(a: &ArrayRef) -> Result<Vec<Option<String>>, String> {
    let s = cast(a, &DataType::Utf8)?;
    Ok(s.as_string::<i32>().iter().map(|x| x.map(str::to_string)).collect())
}

fn floats(a: &ArrayRef) -> Result<Vec<Option<f64>>, String> {
    let f = cast(a, &DataType::Float64)?;
    Ok(f.as_primitive::<Float64Type>().iter().collect())
}

fn list(a: &ArrayRef) -> Result<&ListArray, String> {
    a.as_list_opt::<i32>().ok_or_else(|| format!("expected a list, found {}", a.data_type()))
}

fn field<'s>(s: &'s StructArray, name: &str) -> Option<&'s ArrayRef> {
    s.column_by_name(name)
}

/// Reads Parquet alerts (the schema of [`super::parquet_schema`]; other
/// columns are ignored, `families` and the added hit fields are optional).
fn read_parquet(path: &Path, file: File) -> Result<Vec<ReadAlert>, ReadError> {
    let bad = |message: String| ReadError::BadParquet { path: path.to_path_buf(), message };
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| bad(e.to_string()))?;
    let mut alerts = Vec::new();
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        read_batch(path, &batch, &mut row, &mut alerts, &bad)?;
    }
    refuse_repeats(path, &alerts)?;
    Ok(alerts)
}

/// Reads alerts given as Arrow record batches, as a Parquet alerts file is
/// read (the same columns, the same checks; rows numbered from 1 across
/// the batches): the table `changeling.score` returns to Python, or one
/// that went through pandas, polars or Spark. `name` names them in errors
/// (`<alerts>`).
pub fn from_batches(name: &Path, batches: &[RecordBatch]) -> Result<Vec<ReadAlert>, ReadError> {
    let bad = |message: String| ReadError::BadTable { name: name.to_path_buf(), message };
    let mut alerts = Vec::new();
    let mut row = 0u64;
    for batch in batches {
        read_batch(name, batch, &mut row, &mut alerts, &bad)?;
    }
    refuse_repeats(name, &alerts)?;
    Ok(alerts)
}

/// Reads the alerts of one batch of Parquet alerts' columns into `alerts`;
/// `row` counts rows across batches, `bad` makes the error of a batch that
/// is not alerts.
fn read_batch(
    path: &Path,
    batch: &RecordBatch,
    row: &mut u64,
    alerts: &mut Vec<ReadAlert>,
    bad: &dyn Fn(String) -> ReadError,
) -> Result<(), ReadError> {
    let col = |name: &str| batch.column_by_name(name).ok_or_else(|| bad(format!("no column `{name}`")));
    let actor = texts(col("actor")?).map_err(&bad)?;
    let start = millis(col("start")?).map_err(&bad)?;
    let end = millis(col("end")?).map_err(&bad)?;
    let score = floats(col("score")?).map_err(&bad)?;
    let tier = texts(col("tier")?).map_err(&bad)?;
    let optional_texts = |name: &str| -> Result<Vec<Option<String>>, ReadError> {
        batch.column_by_name(name).map_or_else(|| Ok(vec![None; batch.num_rows()]), |a| texts(a).map_err(&bad))
    };
    let (id, status, campaign) = (optional_texts("id")?, optional_texts("status")?, optional_texts("campaign")?);
    let final_after = match batch.column_by_name("final_after") {
        Some(a) => millis(a).map_err(&bad)?,
        None => vec![None; batch.num_rows()],
    };
    let hits = col("hits")?;
    let hits = list(hits).map_err(&bad)?;
    let families = batch.column_by_name("families");
    for i in 0..batch.num_rows() {
        *row += 1;
        let at = |message: String| ReadError::BadAlert { path: path.to_path_buf(), line: *row, message };
        let need = |v: Option<String>, name: &str| v.ok_or_else(|| at(format!("`{name}` is null")));
        let mut alert = ReadAlert {
            line: *row,
            actor: need(actor[i].clone(), "actor")?,
            start: start[i].ok_or_else(|| at("`start` is null".into()))?,
            end: end[i].ok_or_else(|| at("`end` is null".into()))?,
            score: score[i].ok_or_else(|| at("`score` is null".into()))?,
            tier: need(tier[i].clone(), "tier")?,
            id: id[i].clone(),
            status: status[i].clone(),
            final_after: final_after[i],
            campaign: campaign[i].clone(),
            families: Vec::new(),
            hits: Vec::new(),
        };
        if let Some(f) = families {
            let f = list(f).map_err(&bad)?.value(i);
            let f = f.as_struct_opt().ok_or_else(|| bad("`families` is not a list of structs".into()))?;
            if let (Some(names), Some(ev)) = (field(f, "family"), field(f, "evidence")) {
                let (names, ev) = (texts(names).map_err(&bad)?, floats(ev).map_err(&bad)?);
                alert.families = names.into_iter().zip(ev).filter_map(|(n, e)| Some((n?, e?))).collect();
            }
        }
        let h = hits.value(i);
        let h = h.as_struct_opt().ok_or_else(|| bad("`hits` is not a list of structs".into()))?;
        let req = |name: &str| field(h, name).ok_or_else(|| bad(format!("no hit field `{name}`")));
        let rule = texts(req("rule")?).map_err(&bad)?;
        let ts = millis(req("ts")?).map_err(&bad)?;
        let opt_texts = |name: &str| -> Result<Vec<Option<String>>, ReadError> {
            field(h, name).map_or_else(|| Ok(vec![None; h.len()]), |a| texts(a).map_err(&bad))
        };
        let (action, target, why, effect, title, severity) = (
            opt_texts("action")?,
            opt_texts("target")?,
            opt_texts("why")?,
            opt_texts("effect")?,
            opt_texts("title")?,
            opt_texts("severity")?,
        );
        let strength = match field(h, "strength") {
            Some(a) => floats(a).map_err(&bad)?,
            None => vec![None; h.len()],
        };
        let tags = field(h, "tags").map(|a| list(a).map_err(&bad)).transpose()?;
        let signals = field(h, "signals").map(|a| list(a).map_err(&bad)).transpose()?;
        for j in 0..h.len() {
            let strings = |l: Option<&ListArray>| -> Result<Vec<String>, ReadError> {
                match l {
                    Some(t) if !t.is_null(j) => Ok(texts(&t.value(j)).map_err(&bad)?.into_iter().flatten().collect()),
                    _ => Ok(Vec::new()),
                }
            };
            let (tags, signals) = (strings(tags)?, strings(signals)?);
            alert.hits.push(ReadHit {
                rule: need(rule[j].clone(), "hits.rule")?,
                ts: ts[j].unwrap_or(alert.start),
                action: action[j].clone().unwrap_or_default(),
                target: target[j].clone(),
                strength: strength[j].unwrap_or(0.0),
                why: why[j].clone().unwrap_or_default(),
                effect: effect[j].clone().unwrap_or_else(|| "for".into()),
                title: title[j].clone(),
                severity: severity[j].clone(),
                tags,
                signals,
            });
        }
        check(&alert).map_err(at)?;
        alerts.push(alert);
    }
    Ok(())
}

/// Tier names found in alerts, highest first: ordered by the lowest score
/// seen with each (descending), then by name. For alerts written with
/// rules that are not at hand.
pub fn tiers_of(alerts: &[ReadAlert]) -> Vec<String> {
    let mut lowest: std::collections::BTreeMap<&str, f64> = Default::default();
    for a in alerts {
        let m = lowest.entry(&a.tier).or_insert(a.score);
        *m = m.min(a.score);
    }
    let mut tiers: Vec<(&str, f64)> = lowest.into_iter().collect();
    tiers.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    tiers.into_iter().map(|(n, _)| n.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_alerts_with_and_without_the_added_fields() {
        let text = concat!(
            r#"{"actor":"liu","start":"2020-09-09T13:58:00Z","end":"2020-09-09T16:10:00Z","score":0.96,"tier":"high","families":{"content":0.5},"#,
            r#""hits":[{"rule":"a/b","ts":"2020-09-09T13:58:00Z","action":"like","target":"t1","strength":0.5,"why":"x","effect":"for","title":"T","severity":"high","tags":["likes"],"version":2}]}"#,
            "\n",
            r#"{"actor":"x","start":"2020-09-09T13:58:00Z","end":"2020-09-09T13:58:00Z","score":0.3,"tier":"low","hits":[{"rule":"c/d"}]}"#,
            "\n"
        );
        let a = parse_jsonl(Path::new("a.jsonl"), text.as_bytes()).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].families, [("content".to_string(), 0.5)]);
        let h = &a[0].hits[0];
        assert_eq!(
            (h.title.as_deref(), h.severity.as_deref(), h.tags.as_slice()),
            (Some("T"), Some("high"), &["likes".to_string()][..])
        );
        assert_eq!(a[1].hits[0].effect, "for");
        assert_eq!(a[1].hits[0].ts, a[1].start);
        // Saved again by an editor: a byte order mark, CRLF line ends.
        let saved = format!("\u{feff}{}", text.replace('\n', "\r\n"));
        let b = parse_jsonl(Path::new("a.jsonl"), saved.as_bytes()).unwrap();
        assert_eq!(b, a);
    }

    /// A batch of alerts with the contract's columns only, one hit each.
    fn batch(actors: &[&str], scores: &[f64]) -> RecordBatch {
        use arrow::array::{Float64Array, ListArray, StringArray, TimestampMillisecondArray};
        use arrow::buffer::OffsetBuffer;
        use arrow::datatypes::{Field, Fields};
        use std::sync::Arc;
        let n = actors.len();
        let times = || Arc::new(TimestampMillisecondArray::from(vec![1_600_000_000_000; n]).with_timezone("UTC"));
        let hit_fields = Fields::from(vec![
            Field::new("rule", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        ]);
        let hits =
            StructArray::new(hit_fields.clone(), vec![Arc::new(StringArray::from(vec!["a/b"; n])), times()], None);
        let item = Arc::new(Field::new("item", DataType::Struct(hit_fields), false));
        let hits = ListArray::new(item, OffsetBuffer::from_lengths(vec![1; n]), Arc::new(hits), None);
        RecordBatch::try_from_iter([
            ("actor", Arc::new(StringArray::from(actors.to_vec())) as ArrayRef),
            ("start", times()),
            ("end", times()),
            ("score", Arc::new(Float64Array::from(scores.to_vec()))),
            ("tier", Arc::new(StringArray::from(vec!["high"; n]))),
            ("hits", Arc::new(hits)),
        ])
        .unwrap()
    }

    #[test]
    fn arrow_batches_read_as_parquet_alerts_rows_counted_across_batches() {
        let name = Path::new("<alerts>");
        let a = from_batches(name, &[batch(&["u1", "u2"], &[0.9, 0.8]), batch(&["u3"], &[0.7])]).unwrap();
        assert_eq!(a.iter().map(|a| (a.actor.as_str(), a.line)).collect::<Vec<_>>(), [("u1", 1), ("u2", 2), ("u3", 3)]);
        assert_eq!((a[2].hits[0].rule.as_str(), a[2].hits[0].effect.as_str()), ("a/b", "for"));
        // The third row breaks the contract: named by its row, across batches.
        let e = from_batches(name, &[batch(&["u1", "u2"], &[0.9, 0.8]), batch(&["u3"], &[1.5])]).unwrap_err();
        assert_eq!(e.to_string(), "<alerts>:3: `score` is 1.5, but must be between 0 and 1");
        let e = from_batches(name, &[batch(&["u1"], &[0.9]).project(&[1, 2, 3, 4, 5]).unwrap()]).unwrap_err();
        assert_eq!(e.to_string(), "<alerts>: not an alerts table: no column `actor`");
    }
}
