//! Alerts: incidents written as JSON Lines, exactly as the data contract's
//! "Alerts" section says, or as Parquet with the same content.
//!
//! One alert per incident, accounts in id order, incidents by start:
//! `actor`, `start`, `end`, `score`, `tier`, `hits` (each `rule`, `ts`,
//! `action`, `target`, `strength`, `why`); the fields for daily runs,
//! `id` (the incident's stable identity: [`crate::score::incident::incident_id`]),
//! `status` (`new`, `updated`, `final` or `withdrawn`), `final_after` (after
//! this time no later event can change it) and `campaign` (when it belongs
//! to one; absent otherwise); plus an added incident field,
//! `families` (what each evidence family contributed to the score, after
//! discount and cap: `{"cleanup": 0.55, "content": 0.7}`; in Parquet a list
//! of `{family, evidence}`), and added hit fields: `effect` (`for` or
//! `against`), `signals` (the kinds that fired), and the rule's `title`,
//! `severity`, `tags` and `version` (from [`RuleInfo`]), so that a hit can
//! be triaged without the rule files at hand.
//! In JSON, key order is fixed and numbers are rounded to four decimals; in
//! Parquet, times are TIMESTAMP(ms, UTC) and `hits` is a list of structs.
//! Either way equal input gives equal bytes.
//!
//! Around the writers: [`select`] chooses which incidents are reported
//! (tier, rules, tags, severity, a reporting window), [`csv`] writes them as
//! CSV, [`summary`] counts them per rule, and [`read`] reads alerts files
//! back (JSON Lines or Parquet) for `eval`, `diff` and `report`.

pub mod csv;
pub mod read;
pub mod select;
pub mod summary;

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use serde::Serialize;

use crate::intern::Interner;
use crate::plan::Plan;
use crate::rules::{RuleSet, Severity};
use crate::score::AccountIncidents;
use crate::time::{Millis, format_rfc3339};

/// What alerts say of a rule beside its id: the rule file's `title`,
/// `severity`, `tags` and `version`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    /// The rule's id.
    pub id: String,
    /// Its one-line title.
    pub title: String,
    /// How serious its hits are.
    pub severity: Severity,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its version.
    pub version: u64,
}

impl RuleInfo {
    /// Every rule of `set`, in the set's order, which is the order of the
    /// plan compiled from it (rule indices of hits index this).
    pub fn of_set(set: &RuleSet) -> Vec<RuleInfo> {
        set.rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.value.clone(),
                title: r.title.clone(),
                severity: r.severity,
                tags: r.tags.clone(),
                version: r.version,
            })
            .collect()
    }
}

impl RuleInfo {
    /// Every rule of `plan`, from the plan alone: title, severity and
    /// version, but no tags (a compiled plan does not keep them). Use
    /// [`RuleInfo::of_set`] when the rule set is at hand.
    pub fn of_plan(plan: &Plan) -> Vec<RuleInfo> {
        plan.rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                tags: Vec::new(),
                version: r.version,
            })
            .collect()
    }
}

/// What writing alerts needs beside the incidents: the plan they were
/// scored with, its rules' [`RuleInfo`] (by plan index), and the strings.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The plan (tier and family names, rule ids).
    pub plan: &'a Plan,
    /// Each rule's title, severity, tags and version, by plan index.
    pub rules: &'a [RuleInfo],
    /// Every string of the run.
    pub strings: &'a Interner,
    /// The campaign of each incident that belongs to one, by incident id
    /// (see [`crate::campaigns`]).
    pub campaigns: Option<&'a std::collections::BTreeMap<String, String>>,
}

impl<'a> Context<'a> {
    /// A context; `rules` must be [`RuleInfo::of_set`] of the set `plan`
    /// was compiled from.
    pub fn new(plan: &'a Plan, rules: &'a [RuleInfo], strings: &'a Interner) -> Context<'a> {
        debug_assert!(plan.rules.iter().map(|r| &r.id).eq(rules.iter().map(|r| &r.id)), "rules and plan differ");
        Context { plan, rules, strings, campaigns: None }
    }

    /// The context, writing each incident's campaign from `campaigns`.
    pub fn with_campaigns(self, campaigns: &'a std::collections::BTreeMap<String, String>) -> Context<'a> {
        Context { campaigns: Some(campaigns), ..self }
    }
}

#[derive(Serialize)]
struct AlertOut<'a> {
    actor: &'a str,
    #[serde(serialize_with = "rfc3339")]
    start: Millis,
    #[serde(serialize_with = "rfc3339")]
    end: Millis,
    score: f64,
    tier: &'a str,
    id: &'a str,
    status: &'a str,
    #[serde(serialize_with = "rfc3339")]
    final_after: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<&'a str>,
    #[serde(serialize_with = "family_map")]
    families: Vec<(&'a str, f64)>,
    hits: Vec<HitOut<'a>>,
}

/// Families as one JSON object, `{"cleanup": 0.55, "content": 0.7}`, in
/// the config's family order.
fn family_map<S: serde::Serializer>(f: &[(&str, f64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(f.len()))?;
    for (k, v) in f {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

#[derive(Serialize)]
struct HitOut<'a> {
    rule: &'a str,
    #[serde(serialize_with = "rfc3339")]
    ts: Millis,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    strength: f64,
    why: &'a str,
    effect: &'a str,
    signals: Vec<&'a str>,
    title: &'a str,
    severity: &'a str,
    tags: Vec<&'a str>,
    version: u64,
}

fn rfc3339<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

/// Every incident as an alert, in output order, with names resolved.
fn alerts<'a>(accounts: &'a [AccountIncidents], cx: Context<'a>) -> impl Iterator<Item = AlertOut<'a>> {
    let (plan, s) = (cx.plan, cx.strings);
    accounts.iter().flat_map(move |a| {
        a.incidents.iter().map(move |inc| AlertOut {
            actor: s.resolve(a.actor),
            start: inc.start,
            end: inc.end,
            score: inc.score,
            tier: &plan.config.tiers[inc.tier].name,
            id: &inc.id,
            status: inc.status.name(),
            final_after: inc.final_after,
            campaign: cx.campaigns.and_then(|m| m.get(&inc.id)).map(String::as_str),
            families: inc
                .families
                .iter()
                .map(|f| (plan.config.score.families[f.family].as_str(), f.evidence))
                .collect(),
            hits: inc
                .hits
                .iter()
                .map(|h| {
                    let info = &cx.rules[h.rule as usize];
                    HitOut {
                        rule: &plan.rules[h.rule as usize].id,
                        ts: h.ts,
                        action: s.resolve(h.action),
                        target: h.target.map(|t| s.resolve(t)),
                        strength: h.strength,
                        why: &h.why,
                        effect: h.effect.name(),
                        signals: h.signals.to_vec(),
                        title: &info.title,
                        severity: info.severity.name(),
                        tags: info.tags.iter().map(String::as_str).collect(),
                        version: info.version,
                    }
                })
                .collect(),
        })
    })
}

/// Writes every incident as one JSON line; returns how many were written.
pub fn write_jsonl(out: &mut impl Write, accounts: &[AccountIncidents], cx: Context<'_>) -> io::Result<u64> {
    let mut n = 0;
    let mut line = Vec::with_capacity(1024);
    for alert in alerts(accounts, cx) {
        line.clear();
        serde_json::to_writer(&mut line, &alert).map_err(io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)?;
        n += 1;
    }
    Ok(n)
}

/// Incidents per record batch (and so at most per Parquet row group).
const PARQUET_BATCH: usize = 64 * 1024;

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn signal_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

fn hit_fields() -> Fields {
    Fields::from(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("ts", utc_millis(), false),
        Field::new("action", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("strength", DataType::Float64, false),
        Field::new("why", DataType::Utf8, false),
        Field::new("effect", DataType::Utf8, false),
        Field::new("signals", DataType::List(signal_item()), false),
        Field::new("title", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("tags", DataType::List(signal_item()), false),
        Field::new("version", DataType::Int64, false),
    ])
}

fn family_fields() -> Fields {
    Fields::from(vec![Field::new("family", DataType::Utf8, false), Field::new("evidence", DataType::Float64, false)])
}

fn family_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(family_fields()), false))
}

fn hit_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(hit_fields()), false))
}

/// The Arrow schema of alerts written as Parquet.
pub fn parquet_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("actor", DataType::Utf8, false),
        Field::new("start", utc_millis(), false),
        Field::new("end", utc_millis(), false),
        Field::new("score", DataType::Float64, false),
        Field::new("tier", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("final_after", utc_millis(), false),
        Field::new("campaign", DataType::Utf8, true),
        Field::new("families", DataType::List(family_item()), false),
        Field::new("hits", DataType::List(hit_item()), false),
    ]))
}

/// Alerts gathered column by column, for one record batch.
#[derive(Default)]
struct AlertColumns<'a> {
    actor: Vec<&'a str>,
    start: Vec<Millis>,
    end: Vec<Millis>,
    score: Vec<f64>,
    tier: Vec<&'a str>,
    id: Vec<&'a str>,
    status: Vec<&'a str>,
    final_after: Vec<Millis>,
    campaign: Vec<Option<&'a str>>,
    family_offsets: Vec<i32>,
    family: Vec<&'a str>,
    evidence: Vec<f64>,
    hit_offsets: Vec<i32>,
    rule: Vec<&'a str>,
    ts: Vec<Millis>,
    action: Vec<&'a str>,
    target: Vec<Option<&'a str>>,
    strength: Vec<f64>,
    why: Vec<&'a str>,
    effect: Vec<&'a str>,
    signal_offsets: Vec<i32>,
    signals: Vec<&'a str>,
    title: Vec<&'a str>,
    severity: Vec<&'a str>,
    tag_offsets: Vec<i32>,
    tags: Vec<&'a str>,
    version: Vec<i64>,
}

impl<'a> AlertColumns<'a> {
    fn push(&mut self, a: AlertOut<'a>) -> io::Result<()> {
        if self.hit_offsets.is_empty() {
            self.hit_offsets.push(0);
            self.signal_offsets.push(0);
            self.tag_offsets.push(0);
            self.family_offsets.push(0);
        }
        self.actor.push(a.actor);
        self.start.push(a.start);
        self.end.push(a.end);
        self.score.push(a.score);
        self.tier.push(a.tier);
        self.id.push(a.id);
        self.status.push(a.status);
        self.final_after.push(a.final_after);
        self.campaign.push(a.campaign);
        for (f, e) in a.families {
            self.family.push(f);
            self.evidence.push(e);
        }
        self.family_offsets.push(offset(self.family.len())?);
        for h in a.hits {
            self.rule.push(h.rule);
            self.ts.push(h.ts);
            self.action.push(h.action);
            self.target.push(h.target);
            self.strength.push(h.strength);
            self.why.push(h.why);
            self.effect.push(h.effect);
            self.signals.extend_from_slice(&h.signals);
            self.signal_offsets.push(offset(self.signals.len())?);
            self.title.push(h.title);
            self.severity.push(h.severity);
            self.tags.extend_from_slice(&h.tags);
            self.tag_offsets.push(offset(self.tags.len())?);
            self.version.push(i64::try_from(h.version).unwrap_or(i64::MAX));
        }
        self.hit_offsets.push(offset(self.rule.len())?);
        Ok(())
    }

    fn len(&self) -> usize {
        self.actor.len()
    }

    /// The gathered alerts as a record batch; leaves `self` empty.
    fn take(&mut self, schema: &SchemaRef) -> io::Result<RecordBatch> {
        let c = std::mem::take(self);
        let times = |v: Vec<Millis>| -> ArrayRef { Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) };
        let strs = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let offsets = |v: Vec<i32>| OffsetBuffer::new(if v.is_empty() { vec![0] } else { v }.into());
        let signals = ListArray::try_new(signal_item(), offsets(c.signal_offsets), strs(c.signals), None)
            .map_err(io::Error::other)?;
        let tags =
            ListArray::try_new(signal_item(), offsets(c.tag_offsets), strs(c.tags), None).map_err(io::Error::other)?;
        let hits = StructArray::try_new(
            hit_fields(),
            vec![
                strs(c.rule),
                times(c.ts),
                strs(c.action),
                Arc::new(StringArray::from(c.target)),
                Arc::new(Float64Array::from(c.strength)),
                strs(c.why),
                strs(c.effect),
                Arc::new(signals),
                strs(c.title),
                strs(c.severity),
                Arc::new(tags),
                Arc::new(Int64Array::from(c.version)),
            ],
            None,
        )
        .map_err(io::Error::other)?;
        let hits =
            ListArray::try_new(hit_item(), offsets(c.hit_offsets), Arc::new(hits), None).map_err(io::Error::other)?;
        let families =
            StructArray::try_new(family_fields(), vec![strs(c.family), Arc::new(Float64Array::from(c.evidence))], None)
                .map_err(io::Error::other)?;
        let families = ListArray::try_new(family_item(), offsets(c.family_offsets), Arc::new(families), None)
            .map_err(io::Error::other)?;
        RecordBatch::try_new(
            schema.clone(),
            vec![
                strs(c.actor),
                times(c.start),
                times(c.end),
                Arc::new(Float64Array::from(c.score)),
                strs(c.tier),
                strs(c.id),
                strs(c.status),
                times(c.final_after),
                Arc::new(StringArray::from(c.campaign)),
                Arc::new(families),
                Arc::new(hits),
            ],
        )
        .map_err(io::Error::other)
    }
}

fn offset(n: usize) -> io::Result<i32> {
    i32::try_from(n).map_err(|_| io::Error::other("too many hits for one Parquet batch"))
}

/// Every incident as rows of record batches of [`parquet_schema`] (at most
/// 64 Ki alerts each; one empty batch when there are none), in output
/// order: what `write_parquet` writes, for handing over in memory (the
/// Python package returns them as a `pyarrow.Table`).
pub fn record_batches(accounts: &[AccountIncidents], cx: Context<'_>) -> io::Result<Vec<RecordBatch>> {
    let schema = parquet_schema();
    let mut out = Vec::new();
    let mut columns = AlertColumns::default();
    for alert in alerts(accounts, cx) {
        columns.push(alert)?;
        if columns.len() == PARQUET_BATCH {
            out.push(columns.take(&schema)?);
        }
    }
    if columns.len() > 0 || out.is_empty() {
        out.push(columns.take(&schema)?);
    }
    Ok(out)
}

/// Writes alerts given as record batches of [`parquet_schema`] (from
/// [`record_batches`], or after a trip through Spark or Parquet) as JSON
/// Lines, byte for byte as [`write_jsonl`] writes the incidents they came
/// from. Rows are written in the order given: sort them by actor and start
/// first. Returns how many were written.
pub fn write_jsonl_from_batches(out: &mut impl Write, batches: &[RecordBatch]) -> io::Result<u64> {
    let mut n = 0;
    let mut line = Vec::with_capacity(1024);
    for batch in batches {
        for alert in from_batch(batch)? {
            line.clear();
            serde_json::to_writer(&mut line, &alert).map_err(io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The alerts of one record batch of [`parquet_schema`]: columns found by
/// name, times of any unit, so that a batch that went through Spark (times
/// in microseconds) reads back too.
fn from_batch(batch: &RecordBatch) -> io::Result<Vec<AlertOut<'_>>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    fn bad(m: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("not an alerts batch: {m}"))
    }
    fn col<'b>(s: &'b [ArrayRef], names: &Fields, name: &str) -> io::Result<&'b ArrayRef> {
        names.iter().position(|f| f.name() == name).map(|i| &s[i]).ok_or_else(|| bad(format!("no column `{name}`")))
    }
    fn strs(a: &ArrayRef) -> io::Result<Vec<Option<&str>>> {
        match a.as_string_opt::<i32>() {
            Some(s) => Ok(s.iter().collect()),
            None => Err(bad(format!("{} is not a string column", a.data_type()))),
        }
    }
    fn times(a: &ArrayRef) -> io::Result<Vec<Millis>> {
        let ms = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .map_err(|e| bad(e.to_string()))?;
        let ints = arrow::compute::cast(&ms, &DataType::Int64).map_err(|e| bad(e.to_string()))?;
        Ok(ints.as_primitive::<Int64Type>().values().to_vec())
    }
    fn floats(a: &ArrayRef) -> io::Result<Vec<f64>> {
        match a.as_primitive_opt::<Float64Type>() {
            Some(f) => Ok(f.values().to_vec()),
            None => Err(bad(format!("{} is not a float column", a.data_type()))),
        }
    }
    fn lists(a: &ArrayRef) -> io::Result<(Vec<usize>, &ArrayRef)> {
        let l = a.as_list_opt::<i32>().ok_or_else(|| bad(format!("{} is not a list column", a.data_type())))?;
        Ok((l.value_offsets().iter().map(|&o| o as usize).collect(), l.values()))
    }
    fn need<'s>(v: Option<&'s str>, name: &str) -> io::Result<&'s str> {
        v.ok_or_else(|| bad(format!("`{name}` is null")))
    }
    let names = batch.schema().fields().clone();
    let top = batch.columns();
    let actor = strs(col(top, &names, "actor")?)?;
    let start = times(col(top, &names, "start")?)?;
    let end = times(col(top, &names, "end")?)?;
    let score = floats(col(top, &names, "score")?)?;
    let tier = strs(col(top, &names, "tier")?)?;
    let id = strs(col(top, &names, "id")?)?;
    let status = strs(col(top, &names, "status")?)?;
    let final_after = times(col(top, &names, "final_after")?)?;
    let campaign = strs(col(top, &names, "campaign")?)?;
    let (f_off, fam) = lists(col(top, &names, "families")?)?;
    let fam = fam.as_struct_opt().ok_or_else(|| bad("`families` is not a list of structs".into()))?;
    let family = strs(col(fam.columns(), fam.fields(), "family")?)?;
    let evidence = floats(col(fam.columns(), fam.fields(), "evidence")?)?;
    let (h_off, hits) = lists(col(top, &names, "hits")?)?;
    let hits = hits.as_struct_opt().ok_or_else(|| bad("`hits` is not a list of structs".into()))?;
    let h = |name: &str| col(hits.columns(), hits.fields(), name);
    let (rule, ts, action, target) = (strs(h("rule")?)?, times(h("ts")?)?, strs(h("action")?)?, strs(h("target")?)?);
    let (strength, why, effect) = (floats(h("strength")?)?, strs(h("why")?)?, strs(h("effect")?)?);
    let (s_off, signals) = lists(h("signals")?)?;
    let signals = strs(signals)?;
    let (title, severity) = (strs(h("title")?)?, strs(h("severity")?)?);
    let (t_off, tags) = lists(h("tags")?)?;
    let tags = strs(tags)?;
    let version = h("version")?
        .as_primitive_opt::<Int64Type>()
        .map(|v| v.values().to_vec())
        .ok_or_else(|| bad("`hits.version` is not an int64 column".into()))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut hit_list = Vec::new();
        for j in h_off[i]..h_off[i + 1] {
            hit_list.push(HitOut {
                rule: need(rule[j], "hits.rule")?,
                ts: ts[j],
                action: need(action[j], "hits.action")?,
                target: target[j],
                strength: strength[j],
                why: need(why[j], "hits.why")?,
                effect: need(effect[j], "hits.effect")?,
                signals: signals[s_off[j]..s_off[j + 1]].iter().flatten().copied().collect(),
                title: need(title[j], "hits.title")?,
                severity: need(severity[j], "hits.severity")?,
                tags: tags[t_off[j]..t_off[j + 1]].iter().flatten().copied().collect(),
                version: u64::try_from(version[j]).unwrap_or(0),
            });
        }
        out.push(AlertOut {
            actor: need(actor[i], "actor")?,
            start: start[i],
            end: end[i],
            score: score[i],
            tier: need(tier[i], "tier")?,
            id: need(id[i], "id")?,
            status: need(status[i], "status")?,
            final_after: final_after[i],
            campaign: campaign[i],
            families: (f_off[i]..f_off[i + 1])
                .map(|k| Ok((need(family[k], "families.family")?, evidence[k])))
                .collect::<io::Result<_>>()?,
            hits: hit_list,
        });
    }
    Ok(out)
}

/// Writes every incident as one row of a Parquet file at `path` (schema:
/// [`parquet_schema`], zstd-compressed); returns how many were written.
///
/// The file's bytes depend only on the alerts: the writer is named without
/// a build date and no time of writing is stored.
pub fn write_parquet(path: &Path, accounts: &[AccountIncidents], cx: Context<'_>) -> io::Result<u64> {
    let file = File::create(path)?;
    write_parquet_to(file, accounts, cx)
}

/// [`write_parquet`] to any writer (stdout, say). It copies the accounts
/// it is given; a caller with many writes them in chunks through
/// [`ParquetAlerts`], as `score` does.
pub fn write_parquet_to(out: impl Write + Send, accounts: &[AccountIncidents], cx: Context<'_>) -> io::Result<u64> {
    let mut w = ParquetAlerts::new(out)?;
    w.write(accounts.to_vec(), cx)?;
    w.finish(cx)
}

/// A Parquet alert file written a chunk of accounts at a time: the same
/// bytes as [`write_parquet_to`] with all of them at once, since row
/// groups are cut every [`PARQUET_BATCH`] alerts wherever the chunks end.
/// Holds at most one row group's accounts.
pub struct ParquetAlerts<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    /// Accounts with alerts not yet written; the first `skip` alerts of
    /// them were.
    pending: Vec<AccountIncidents>,
    skip: usize,
    /// Alerts of `pending` not yet written.
    waiting: usize,
    written: u64,
}

impl<W: Write + Send> ParquetAlerts<W> {
    /// Starts the file.
    pub fn new(out: W) -> io::Result<ParquetAlerts<W>> {
        let schema = parquet_schema();
        let props = WriterProperties::builder()
            .set_created_by(concat!("changeling ", env!("CARGO_PKG_VERSION")).to_string())
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(io::Error::other)?;
        Ok(ParquetAlerts { writer, schema, pending: Vec::new(), skip: 0, waiting: 0, written: 0 })
    }

    /// Adds the incidents of `accounts` (the next in output order),
    /// writing every full row group; returns how many incidents they hold.
    pub fn write(&mut self, accounts: Vec<AccountIncidents>, cx: Context<'_>) -> io::Result<u64> {
        let n: usize = accounts.iter().map(|a| a.incidents.len()).sum();
        self.pending.extend(accounts);
        self.waiting += n;
        while self.waiting >= PARQUET_BATCH {
            self.flush(PARQUET_BATCH, cx)?;
        }
        Ok(n as u64)
    }

    /// Writes the next `take` alerts as one row group.
    fn flush(&mut self, take: usize, cx: Context<'_>) -> io::Result<()> {
        let mut columns = AlertColumns::default();
        for alert in alerts(&self.pending, cx).skip(self.skip).take(take) {
            columns.push(alert)?;
        }
        self.writer.write(&columns.take(&self.schema)?).map_err(io::Error::other)?;
        // Accounts whose alerts are all written leave.
        let mut done = self.skip + take;
        let whole = self.pending.iter().take_while(|a| {
            let all = a.incidents.len() <= done;
            if all {
                done -= a.incidents.len();
            }
            all
        });
        let whole = whole.count();
        self.pending.drain(..whole);
        self.skip = done;
        self.waiting -= take;
        self.written += take as u64;
        Ok(())
    }

    /// Writes the last row group (an empty one when there were no alerts)
    /// and the footer; returns how many incidents were written in all.
    pub fn finish(mut self, cx: Context<'_>) -> io::Result<u64> {
        if self.waiting > 0 || self.written == 0 {
            self.flush(self.waiting, cx)?;
        }
        self.writer.close().map_err(io::Error::other)?;
        Ok(self.written)
    }
}
