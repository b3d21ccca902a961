//! The facts of a run as Arrow record batches, for engines that run the
//! phases of [`super`] in separate processes (the Spark job,
//! `python/changeling/spark.py`).
//!
//! Strings cross as strings: symbols are numbered by each process's own
//! [`Interner`] and mean nothing elsewhere. Four kinds of batch cross:
//!
//! 1. **Aggregate partials** ([`Partial`], schema [`aggregates_schema`]),
//!    one per account partition ([`part_facts`]), merged in any order and
//!    grouping ([`Partial::merge`]) into one, which every scoring task
//!    reads. The population accumulators of the signals
//!    (`off_pattern::PriorAcc`, `rate_spike::RateAcc`) keep their state to
//!    themselves, so what crosses is their *input*, reduced without
//!    reading it: for each prior, the history events as distinct
//!    (`target_author`, the target item's author, labels and language)
//!    with a count; for each rate, per account its first and last event
//!    time and how many of its events have a counted action; and the
//!    latest event time. [`facts`] runs the signals' own fold over these
//!    rows (each distinct row repeated its count of times), which gives
//!    the accumulators the run's events would: every fold is a sum, a
//!    count, a minimum or a maximum over rows of exactly these fields.
//!    Sizes: a prior's rows are at most the distinct (author, item)
//!    pairs of history events; a rate's, one per account.
//! 2. **Item rows** ([`item_rows_schema`]): each account partition's rows
//!    of the item indexes (slot of the index in the plan, item, time,
//!    account), the rows [`Aggregates::add`] collects.
//! 3. **Questions** ([`questions_schema`]): each account partition's
//!    (item, time, partition), one per event with a target, as
//!    [`Aggregates::ask`] records them.
//! 4. **Answers** ([`answers_schema`]): [`answer`] takes the item rows and
//!    questions of a group of whole items (all rows of each item it
//!    mentions) and answers each partition with the entries within its
//!    readers' reach ([`ItemActors::answer`]); a partition's answers from
//!    any number of groups, concatenated in any order, build its share of
//!    each index ([`ItemActors::from_answers`] in [`facts`]).
//!
//! Nothing here implements a signal: the folds, the index and its answers
//! are the engine's, as the CLI's partitioned run uses them
//! ([`crate::run`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int8Array, Int32Array, Int32Builder, Int64Array,
    Int64Builder, ListBuilder, RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::Aggregates;
use crate::data::schema::it;
use crate::data::table::{Column, Table, Times};
use crate::data::{Dataset, EventRows, Items, TableKind};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::signals::Facts;
use crate::signals::item_index::{ItemActors, ItemRow};
use crate::time::Millis;

/// A batch that does not have the wire format's shape.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A column is missing, of a type that does not convert, or holds a
    /// value out of range.
    #[error("facts wire format: {0}")]
    Format(String),
    /// Arrow could not build or convert a batch.
    #[error("facts wire format: {0}")]
    Arrow(#[from] ArrowError),
}

fn utf8() -> DataType {
    DataType::Utf8
}

/// The schema of aggregate partials: one row per prior input (`kind` 0),
/// per account of a rate (`kind` 1), and the latest event time (`kind` 2,
/// in `first`). `slot` is the prior's or rate's position in the plan's
/// aggregates.
pub fn aggregates_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Int8, false),
        Field::new("slot", DataType::Int32, false),
        Field::new("actor", utf8(), true),
        Field::new("target_author", utf8(), true),
        Field::new("has_item", DataType::Boolean, true),
        Field::new("item_author", utf8(), true),
        Field::new("item_labels", DataType::List(Arc::new(Field::new("item", utf8(), true))), true),
        Field::new("item_lang", utf8(), true),
        Field::new("first", DataType::Int64, true),
        Field::new("last", DataType::Int64, true),
        Field::new("count", DataType::Int64, true),
    ]))
}

/// The schema of item rows: (index slot, item, time, account).
pub fn item_rows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("slot", DataType::Int32, false),
        Field::new("item", utf8(), false),
        Field::new("ts", DataType::Int64, false),
        Field::new("actor", utf8(), false),
    ]))
}

/// The schema of questions: (item, time, account partition).
pub fn questions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("item", utf8(), false),
        Field::new("ts", DataType::Int64, false),
        Field::new("part", DataType::Int32, false),
    ]))
}

/// The schema of answers: (account partition, index slot, item, time,
/// account).
pub fn answers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("part", DataType::Int32, false),
        Field::new("slot", DataType::Int32, false),
        Field::new("item", utf8(), false),
        Field::new("ts", DataType::Int64, false),
        Field::new("actor", utf8(), false),
    ]))
}

/// What a prior's fold reads of a history event: its `target_author`, and
/// the target item's author, labels and language when the item is known.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PriorInput {
    target_author: Option<String>,
    item: Option<(Option<String>, Vec<String>, Option<String>)>,
}

/// Population aggregates of some account partitions, as crossing the
/// wire. See the module doc.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    /// Per prior slot: each distinct input, with its count.
    priors: Vec<BTreeMap<PriorInput, u64>>,
    /// Per rate slot: per account, (first time, last time, counted events).
    rates: Vec<BTreeMap<String, (Millis, Millis, u64)>>,
    /// The latest event time.
    last: Option<Millis>,
}

impl Partial {
    /// Nothing yet, with the slots of `plan`.
    fn empty(agg: &Aggregates) -> Partial {
        Partial {
            priors: vec![BTreeMap::new(); agg.priors.len()],
            rates: vec![BTreeMap::new(); agg.rates.len()],
            last: None,
        }
    }

    /// Adds another partial of the same plan. The result does not depend
    /// on the order or grouping of merges.
    pub fn merge(&mut self, other: Partial) {
        for (a, b) in self.priors.iter_mut().zip(other.priors) {
            for (k, n) in b {
                *a.entry(k).or_default() += n;
            }
        }
        for (a, b) in self.rates.iter_mut().zip(other.rates) {
            for (k, (f, l, n)) in b {
                let e = a.entry(k).or_insert((f, l, 0));
                e.0 = e.0.min(f);
                e.1 = e.1.max(l);
                e.2 += n;
            }
        }
        self.last = self.last.max(other.last);
    }

    /// As a record batch of [`aggregates_schema`], rows in a fixed order.
    pub fn to_batch(&self) -> Result<RecordBatch, WireError> {
        let mut kind = Vec::new();
        let mut slot = Int32Builder::new();
        let mut actor = StringBuilder::new();
        let mut target_author = StringBuilder::new();
        let mut has_item = BooleanBuilder::new();
        let mut item_author = StringBuilder::new();
        let mut item_labels = ListBuilder::new(StringBuilder::new());
        let mut item_lang = StringBuilder::new();
        let mut first = Int64Builder::new();
        let mut last = Int64Builder::new();
        let mut count = Int64Builder::new();
        let n = |v: u64| i64::try_from(v).map_err(|_| WireError::Format(format!("count {v} out of range")));
        for (s, inputs) in self.priors.iter().enumerate() {
            for (k, &c) in inputs {
                kind.push(0i8);
                slot.append_value(s as i32);
                actor.append_null();
                target_author.append_option(k.target_author.as_deref());
                has_item.append_value(k.item.is_some());
                match &k.item {
                    Some((author, labels, lang)) => {
                        item_author.append_option(author.as_deref());
                        for l in labels {
                            item_labels.values().append_value(l);
                        }
                        item_labels.append(true);
                        item_lang.append_option(lang.as_deref());
                    }
                    None => {
                        item_author.append_null();
                        item_labels.append(false);
                        item_lang.append_null();
                    }
                }
                first.append_null();
                last.append_null();
                count.append_value(n(c)?);
            }
        }
        for (s, spans) in self.rates.iter().enumerate() {
            for (who, &(f, l, c)) in spans {
                kind.push(1);
                slot.append_value(s as i32);
                actor.append_value(who);
                target_author.append_null();
                has_item.append_null();
                item_author.append_null();
                item_labels.append(false);
                item_lang.append_null();
                first.append_value(f);
                last.append_value(l);
                count.append_value(n(c)?);
            }
        }
        if let Some(t) = self.last {
            kind.push(2);
            slot.append_value(0);
            actor.append_null();
            target_author.append_null();
            has_item.append_null();
            item_author.append_null();
            item_labels.append(false);
            item_lang.append_null();
            first.append_value(t);
            last.append_null();
            count.append_null();
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(kind)),
            Arc::new(slot.finish()),
            Arc::new(actor.finish()),
            Arc::new(target_author.finish()),
            Arc::new(has_item.finish()),
            Arc::new(item_author.finish()),
            Arc::new(item_labels.finish()),
            Arc::new(item_lang.finish()),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(count.finish()),
        ];
        Ok(RecordBatch::try_new(aggregates_schema(), columns)?)
    }

    /// Reads batches of [`aggregates_schema`] (partials of `plan`, or their
    /// merge) into one partial.
    pub fn from_batches(plan: &Plan, batches: &[RecordBatch]) -> Result<Partial, WireError> {
        let agg = Aggregates::for_plan(plan);
        let mut out = Partial::empty(&agg);
        for b in batches {
            let kind = column(b, "kind", &DataType::Int8)?;
            let kind = kind.as_primitive::<arrow::datatypes::Int8Type>();
            let slot = ints32(b, "slot")?;
            let actor = strings(b, "actor")?;
            let target_author = strings(b, "target_author")?;
            let has_item = column(b, "has_item", &DataType::Boolean)?;
            let has_item: &BooleanArray = has_item.as_boolean();
            let item_author = strings(b, "item_author")?;
            let labels_type = DataType::List(Arc::new(Field::new("item", utf8(), true)));
            let item_labels = column(b, "item_labels", &labels_type)?;
            let item_labels = item_labels.as_list::<i32>();
            let item_lang = strings(b, "item_lang")?;
            let first = ints64(b, "first")?;
            let last = ints64(b, "last")?;
            let count = ints64(b, "count")?;
            let text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
            let n = |i: usize| {
                u64::try_from(count.value(i)).map_err(|_| WireError::Format(format!("negative count at row {i}")))
            };
            for i in 0..b.num_rows() {
                let s = slot.value(i);
                let s = usize::try_from(s).map_err(|_| WireError::Format(format!("slot {s}")))?;
                match kind.value(i) {
                    0 => {
                        let item = has_item.value(i).then(|| {
                            let labels = item_labels.value(i);
                            let labels = labels.as_string::<i32>();
                            let labels = (0..labels.len()).map(|j| labels.value(j).to_string()).collect();
                            (text(&item_author, i), labels, text(&item_lang, i))
                        });
                        let k = PriorInput { target_author: text(&target_author, i), item };
                        let slot = out.priors.get_mut(s).ok_or_else(|| no_slot("prior", s))?;
                        *slot.entry(k).or_default() += n(i)?;
                    }
                    1 => {
                        let who =
                            text(&actor, i).ok_or_else(|| WireError::Format("a rate row without actor".into()))?;
                        let slot = out.rates.get_mut(s).ok_or_else(|| no_slot("rate", s))?;
                        let (f, l) = (first.value(i), last.value(i));
                        let e = slot.entry(who).or_insert((f, l, 0));
                        e.0 = e.0.min(f);
                        e.1 = e.1.max(l);
                        e.2 += n(i)?;
                    }
                    2 => out.last = out.last.max(Some(first.value(i))),
                    k => return Err(WireError::Format(format!("unknown row kind {k}"))),
                }
            }
        }
        Ok(out)
    }
}

fn no_slot(what: &str, s: usize) -> WireError {
    WireError::Format(format!("no {what} slot {s} in these rules' aggregates (partials of other rules?)"))
}

/// Column `name` of `b` converted to `to`.
fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, WireError> {
    let c = b.column_by_name(name).ok_or_else(|| WireError::Format(format!("no column `{name}`")))?;
    if c.data_type() == to { Ok(c.clone()) } else { Ok(cast(c, to)?) }
}

fn strings(b: &RecordBatch, name: &str) -> Result<StringArray, WireError> {
    Ok(column(b, name, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn ints32(b: &RecordBatch, name: &str) -> Result<Int32Array, WireError> {
    Ok(column(b, name, &DataType::Int32)?.as_primitive::<arrow::datatypes::Int32Type>().clone())
}

fn ints64(b: &RecordBatch, name: &str) -> Result<Int64Array, WireError> {
    Ok(column(b, name, &DataType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().clone())
}

/// What one account partition sends on: its aggregate partial, its item
/// rows and its questions.
#[derive(Debug)]
pub struct PartFacts {
    /// Its aggregate partial ([`aggregates_schema`]).
    pub aggregates: RecordBatch,
    /// Its rows of the item indexes ([`item_rows_schema`]).
    pub item_rows: RecordBatch,
    /// Its questions to the item indexes ([`questions_schema`]).
    pub questions: RecordBatch,
}

/// The first phase for account partition `part`, whose events (whole
/// accounts) are those of `data`, with `data`'s items holding at least the
/// items those events target.
pub fn part_facts(plan: &Plan, data: &Dataset, part: u32) -> Result<PartFacts, WireError> {
    let strings = &data.strings;
    let rows: &dyn EventRows = &data.events;
    let n = rows.rows();
    let mut agg = Aggregates::for_plan(plan);
    let resolve = |names: &[String]| -> Vec<Sym> { names.iter().filter_map(|x| strings.get(x)).collect() };
    let text = |s: Option<Sym>| s.map(|s| strings.resolve(s).to_string());
    let mut partial = Partial::empty(&agg);

    for (slot, ((_, history), _)) in agg.priors.iter().enumerate() {
        let history = resolve(history);
        let mut counts: HashMap<(Option<Sym>, Option<usize>), u64> = HashMap::new();
        for i in (0..n).filter(|&i| history.contains(&rows.action_at(i))) {
            let item = rows.target_at(i).and_then(|t| data.items.row(t));
            *counts.entry((rows.target_author_at(i), item)).or_default() += 1;
        }
        for ((author, item), c) in counts {
            let item = item.map(|r| {
                let labels = data.items.labels(r).iter().map(|&l| strings.resolve(l).to_string()).collect();
                (text(data.items.author(r)), labels, text(data.items.lang(r)))
            });
            *partial.priors[slot].entry(PriorInput { target_author: text(author), item }).or_default() += c;
        }
    }
    for (slot, (actions, _)) in agg.rates.iter().enumerate() {
        let actions = resolve(actions);
        let mut spans: HashMap<Sym, (Millis, Millis, u64)> = HashMap::new();
        for i in 0..n {
            let ts = rows.ts_at(i);
            let e = spans.entry(rows.actor_at(i)).or_insert((ts, ts, 0));
            e.0 = e.0.min(ts);
            e.1 = e.1.max(ts);
            e.2 += u64::from(actions.contains(&rows.action_at(i)));
        }
        partial.rates[slot] = spans.into_iter().map(|(who, s)| (strings.resolve(who).to_string(), s)).collect();
    }
    partial.last = (0..n).map(|i| rows.ts_at(i)).max();

    // The item indexes' rows, as the fold collects them.
    let mut slot_col = Vec::new();
    let mut item = StringBuilder::new();
    let mut ts = Vec::new();
    let mut actor = StringBuilder::new();
    for (slot, (actions, acc)) in agg.item_actors.iter_mut().enumerate() {
        let actions = resolve(actions);
        acc.add(rows, 0..n, &actions);
        for &(t, at, who) in &acc.rows {
            slot_col.push(slot as i32);
            item.append_value(strings.resolve(t));
            ts.push(at);
            actor.append_value(strings.resolve(who));
        }
        acc.rows = Vec::new();
    }
    let item_rows = RecordBatch::try_new(
        item_rows_schema(),
        vec![
            Arc::new(Int32Array::from(slot_col)),
            Arc::new(item.finish()),
            Arc::new(Int64Array::from(ts)),
            Arc::new(actor.finish()),
        ],
    )?;

    let mut item = StringBuilder::new();
    let mut ts = Vec::new();
    if agg.has_item_indexes() {
        for (t, at) in agg.questions(rows, strings) {
            item.append_value(strings.resolve(t));
            ts.push(at);
        }
    }
    let part = i32::try_from(part).map_err(|_| WireError::Format(format!("partition {part} out of range")))?;
    let asked = ts.len();
    let questions = RecordBatch::try_new(
        questions_schema(),
        vec![Arc::new(item.finish()), Arc::new(Int64Array::from(ts)), Arc::new(Int32Array::from(vec![part; asked]))],
    )?;
    Ok(PartFacts { aggregates: partial.to_batch()?, item_rows, questions })
}

/// The item phase for one group of whole items: `item_rows` holds every
/// row of each item it mentions, `questions` any account partitions'
/// questions about them. Returns each partition's answers
/// ([`answers_schema`]): for each index slot, partition and item asked
/// about, the entries within the readers' reach, in the index's order.
pub fn answer(plan: &Plan, item_rows: &[RecordBatch], questions: &[RecordBatch]) -> Result<RecordBatch, WireError> {
    let agg = Aggregates::for_plan(plan);
    let mut strings = Interner::new();
    let mut rows: Vec<Vec<ItemRow>> = vec![Vec::new(); agg.item_actors.len()];
    for b in item_rows {
        let (slot, item, ts, actor) =
            (ints32(b, "slot")?, strings_of(b, "item")?, ints64(b, "ts")?, strings_of(b, "actor")?);
        for i in 0..b.num_rows() {
            let s = usize::try_from(slot.value(i)).ok().filter(|&s| s < rows.len());
            let s = s.ok_or_else(|| no_slot("item index", slot.value(i).max(0) as usize))?;
            rows[s].push((strings.intern(item.value(i)), ts.value(i), strings.intern(actor.value(i))));
        }
    }
    let mut asked: Vec<(Sym, Millis, u32)> = Vec::new();
    for b in questions {
        let (item, ts, part) = (strings_of(b, "item")?, ints64(b, "ts")?, ints32(b, "part")?);
        for i in 0..b.num_rows() {
            let p =
                u32::try_from(part.value(i)).map_err(|_| WireError::Format(format!("partition {}", part.value(i))))?;
            // An item no row mentions has no entries to answer with.
            if let Some(t) = strings.get(item.value(i)) {
                asked.push((t, ts.value(i), p));
            }
        }
    }
    let (mut o_part, mut o_slot, mut o_ts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut o_item, mut o_actor) = (StringBuilder::new(), StringBuilder::new());
    for (slot, ((_, template), rows)) in agg.item_actors.iter().zip(rows).enumerate() {
        let mut acc = template.empty_like();
        acc.rows = rows;
        let index = acc.empty_index();
        let rows = std::mem::take(&mut acc.rows);
        acc.answer_items(index, rows, &strings, &mut asked.clone(), |p, entries| {
            for &(item, ts, who) in entries {
                o_part.push(p as i32);
                o_slot.push(slot as i32);
                o_item.append_value(strings.resolve(item));
                o_ts.push(ts);
                o_actor.append_value(strings.resolve(who));
            }
        });
    }
    Ok(RecordBatch::try_new(
        answers_schema(),
        vec![
            Arc::new(Int32Array::from(o_part)),
            Arc::new(Int32Array::from(o_slot)),
            Arc::new(o_item.finish()),
            Arc::new(Int64Array::from(o_ts)),
            Arc::new(o_actor.finish()),
        ],
    )?)
}

fn strings_of(b: &RecordBatch, name: &str) -> Result<StringArray, WireError> {
    let s = strings(b, name)?;
    if s.null_count() > 0 {
        return Err(WireError::Format(format!("`{name}` is null")));
    }
    Ok(s)
}

/// The facts one account partition is bound with: the population
/// aggregates from the merged partial `aggregates`, and its share of each
/// item index from its `answers` (rows of other partitions are an error).
/// Strings are interned into `strings`, the partition's.
pub fn facts(
    plan: &Plan,
    aggregates: &Partial,
    answers: &[RecordBatch],
    part: u32,
    strings: &mut Interner,
) -> Result<Facts, WireError> {
    let mut agg = Aggregates::for_plan(plan);
    // The replayed rows' actions: one counted (the only one in the list
    // given to the fold), one not.
    let (counted, other) = (Interner::sym_at(0), Interner::sym_at(1));
    for (((feature, _), acc), inputs) in agg.priors.iter_mut().zip(&aggregates.priors) {
        // Each distinct item read gets a stand-in item with its author,
        // labels and language.
        let mut ids = Interner::new();
        let mut items = Table::new(TableKind::Items);
        let mut targets = Vec::with_capacity(inputs.len());
        let (mut id, mut author, mut lang, mut offsets, mut values) = (vec![], vec![], vec![], vec![0u32], vec![]);
        for k in inputs.keys() {
            targets.push(k.item.as_ref().map(|(a, labels, l)| {
                let t = ids.intern(&id.len().to_string());
                id.push(Some(t));
                author.push(a.as_deref().map(|a| strings.intern(a)));
                lang.push(l.as_deref().map(|l| strings.intern(l)));
                values.extend(labels.iter().map(|l| strings.intern(l)));
                offsets.push(values.len() as u32);
                t
            }));
        }
        items.rows = id.len();
        for (c, column) in items.columns.iter_mut().enumerate() {
            *column = match c {
                it::ID => Column::Sym(std::mem::take(&mut id)),
                it::AUTHOR => Column::Sym(std::mem::take(&mut author)),
                it::LANG => Column::Sym(std::mem::take(&mut lang)),
                it::LABELS => {
                    Column::List { offsets: std::mem::take(&mut offsets), values: std::mem::take(&mut values) }
                }
                _ => absent(column, items.rows),
            };
        }
        let (items, _) = Items::new(items, &ids);
        for ((k, &c), target) in inputs.iter().zip(targets) {
            let row = Repeat {
                n: usize::try_from(c).map_err(|_| WireError::Format(format!("count {c} out of range")))?,
                ts: 0,
                actor: counted,
                action: counted,
                target,
                target_author: k.target_author.as_deref().map(|a| strings.intern(a)),
            };
            acc.add(*feature, &[counted], &row, 0..row.n, &items);
        }
    }
    for ((_, acc), spans) in agg.rates.iter_mut().zip(&aggregates.rates) {
        for (who, &(first, last, c)) in spans {
            let actor = strings.intern(who);
            let n = usize::try_from(c).map_err(|_| WireError::Format(format!("count {c} out of range")))?;
            let row = |ts, action, n| Repeat { n, ts, actor, action, target: None, target_author: None };
            for r in [row(first, other, 1), row(last, other, 1), row(first, counted, n)] {
                acc.add(&r, 0..r.n, &[counted]);
            }
        }
    }
    agg.last = aggregates.last;

    let mut shares: Vec<Vec<ItemRow>> = vec![Vec::new(); agg.item_actors.len()];
    for b in answers {
        let (p, slot, item, ts, actor) =
            (ints32(b, "part")?, ints32(b, "slot")?, strings_of(b, "item")?, ints64(b, "ts")?, strings_of(b, "actor")?);
        for i in 0..b.num_rows() {
            if p.value(i) as i64 != part as i64 {
                return Err(WireError::Format(format!("answers of partition {} given to {part}", p.value(i))));
            }
            let s = usize::try_from(slot.value(i)).ok().filter(|&s| s < shares.len());
            let s = s.ok_or_else(|| no_slot("item index", slot.value(i).max(0) as usize))?;
            shares[s].push((strings.intern(item.value(i)), ts.value(i), strings.intern(actor.value(i))));
        }
    }
    let pairs: Vec<(Vec<String>, bool)> = agg.item_actors.iter().map(|(k, a)| (k.clone(), a.pairs)).collect();
    agg.item_actors.clear();
    let mut facts = agg.finish(strings).expect("aggregates kept in memory read no files");
    for ((actions, pairs), rows) in pairs.into_iter().zip(shares) {
        facts.item_actors.insert(actions, Arc::new(ItemActors::from_answers(&rows, pairs)));
    }
    Ok(facts)
}

/// A column of `rows` absent values, of `like`'s kind.
fn absent(like: &Column, rows: usize) -> Column {
    match like {
        Column::Time(_) => {
            let mut t = Times::new();
            t.pad(rows);
            Column::Time(t)
        }
        Column::Sym(_) => Column::Sym(vec![None; rows]),
        Column::List { .. } => Column::List { offsets: vec![0; rows + 1], values: Vec::new() },
        Column::Num(_) => Column::Num(vec![f64::NAN; rows]),
        Column::Text(_) => Column::Text(vec![None; rows]),
    }
}

/// One event row repeated `n` times, for replaying a counted fold input.
struct Repeat {
    n: usize,
    ts: Millis,
    actor: Sym,
    action: Sym,
    target: Option<Sym>,
    target_author: Option<Sym>,
}

impl EventRows for Repeat {
    fn rows(&self) -> usize {
        self.n
    }
    fn ts_at(&self, _: usize) -> Millis {
        self.ts
    }
    fn actor_at(&self, _: usize) -> Sym {
        self.actor
    }
    fn action_at(&self, _: usize) -> Sym {
        self.action
    }
    fn target_at(&self, _: usize) -> Option<Sym> {
        self.target
    }
    fn target_author_at(&self, _: usize) -> Option<Sym> {
        self.target_author
    }
}

#[cfg(test)]
mod tests {
    use arrow::compute::filter_record_batch;

    use super::*;
    use crate::alerts::{self, Context};
    use crate::bind::BoundPlan;
    use crate::data::Events;
    use crate::score::Scorer;

    fn bucket(s: &str, n: usize) -> usize {
        // FNV-1a: any hash that the test does not share with the engine.
        let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        (h % n as u64) as usize
    }

    /// Rows of `b` whose `column` (text) falls in `bucket` of `n`.
    fn rows_in(b: &RecordBatch, column: &str, which: usize, n: usize) -> RecordBatch {
        let c = strings(b, column).unwrap();
        let keep: BooleanArray = (0..b.num_rows()).map(|i| Some(bucket(c.value(i), n) == which)).collect();
        filter_record_batch(b, &keep).unwrap()
    }

    /// The JSON lines of `jsonl`, stably sorted by account (each account's
    /// incidents stay in their order): the contract's order when each
    /// account's lines come from one writer.
    fn by_actor(jsonl: &[u8]) -> Vec<String> {
        let mut lines: Vec<String> = String::from_utf8(jsonl.to_vec()).unwrap().lines().map(String::from).collect();
        let actor =
            |l: &String| serde_json::from_str::<serde_json::Value>(l).unwrap()["actor"].as_str().unwrap().to_string();
        lines.sort_by_cached_key(actor);
        lines
    }

    /// The demo scored as account partitions that exchange only the wire
    /// batches (strings; item phase in its own strings, in two groups of
    /// items) gives the in-memory run's alerts, for 1, 3 and 7 partitions;
    /// and the merged aggregate partial is the same whatever the merge
    /// order.
    #[test]
    fn partitions_through_the_wire_give_the_in_memory_alerts() {
        let (dir, plan, info, opts) = crate::stream::tests::demo();
        let data = Dataset::open(dir.path(), &opts).unwrap();
        let mut want = Vec::new();
        alerts::write_jsonl(&mut want, &Scorer::new(&plan, &data).run(), Context::new(&plan, &info, &data.strings))
            .unwrap();
        assert!(want.len() > 1000, "the demo gives alerts");
        let want = by_actor(&want);

        for parts in [1usize, 3, 7] {
            let data = Dataset::open(dir.path(), &opts).unwrap();
            let strings = data.strings.clone();
            let table = data.events.clone().into_table();
            let actor = table.column_index("actor").unwrap();
            let tables: Vec<Table> = (0..parts)
                .map(|p| {
                    let rows: Vec<u32> = (0..table.rows as u32)
                        .filter(|&r| bucket(strings.resolve(table.columns[actor].sym(r as usize).unwrap()), parts) == p)
                        .collect();
                    let mut t = table.clone();
                    t.gather(&rows);
                    t
                })
                .collect();
            let part_data = |p: usize| data.with_events(Events::from_table(tables[p].clone(), &strings).0);

            // Phase one, per partition.
            let sent: Vec<PartFacts> =
                (0..parts).map(|p| part_facts(&plan, &part_data(p), p as u32).unwrap()).collect();
            let partials: Vec<Partial> = sent
                .iter()
                .map(|s| Partial::from_batches(&plan, std::slice::from_ref(&s.aggregates)).unwrap())
                .collect();
            let mut merged = Partial::from_batches(&plan, &[]).unwrap();
            for p in partials.iter().cloned() {
                merged.merge(p);
            }
            let mut reversed = Partial::from_batches(&plan, &[]).unwrap();
            for p in partials.into_iter().rev() {
                reversed.merge(p);
            }
            assert_eq!(merged, reversed, "{parts} partitions: merge order");
            let merged = Partial::from_batches(&plan, &[merged.to_batch().unwrap()]).unwrap();
            assert_eq!(merged, reversed, "{parts} partitions: the merged partial reads back as written");

            // The item phase, in two groups of items.
            let mut answers: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
            for g in 0..2 {
                let rows: Vec<RecordBatch> = sent.iter().map(|s| rows_in(&s.item_rows, "item", g, 2)).collect();
                let asked: Vec<RecordBatch> = sent.iter().map(|s| rows_in(&s.questions, "item", g, 2)).collect();
                let out = answer(&plan, &rows, &asked).unwrap();
                let part = ints32(&out, "part").unwrap();
                for (p, a) in answers.iter_mut().enumerate() {
                    let keep: BooleanArray = (0..out.num_rows()).map(|i| Some(part.value(i) == p as i32)).collect();
                    a.push(filter_record_batch(&out, &keep).unwrap());
                }
            }

            // Phase two, per partition, with strings of its own.
            let mut got = Vec::new();
            for (p, answers) in answers.iter().enumerate() {
                let mut own = Interner::clone(&strings);
                let facts = facts(&plan, &merged, answers, p as u32, &mut own).unwrap();
                let pdata = part_data(p);
                let events = Events::from_table(tables[p].clone(), &strings).0;
                let side = crate::data::Side {
                    items: pdata.items.clone(),
                    follows: pdata.follows.clone(),
                    accounts: pdata.accounts.clone(),
                    impressions: pdata.impressions.clone(),
                    labels: None,
                };
                let pdata = Dataset::from_parts(pdata.dir.clone(), Arc::new(own), events, &side, Default::default());
                let bound = BoundPlan::with_facts(&plan, &pdata, &facts).shared();
                let accounts = Scorer::bound(bound, &pdata).run_sequential();
                alerts::write_jsonl(&mut got, &accounts, Context::new(&plan, &info, &pdata.strings)).unwrap();
            }
            let got = by_actor(&got);
            assert_eq!(got.len(), want.len(), "{parts} partitions");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{parts} partitions");
            }
        }
    }
}
