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
//!    reads. Each population fact writes its own partial as rows
//!    ([`super::Fact::write_rows`]: a text key, a day and two numbers) and
//!    reads them back, so nothing here knows what a fact holds; one more
//!    row carries the latest event time.
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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::item_index::{ItemActors, ItemRow};
use super::{Aggregates, AnyPartial, FactKey, FactRow, FactRowRef, Facts};
use crate::data::{Dataset, EventRows};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
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

/// The schema of aggregate partials: one row per [`super::FactRow`] of
/// each population fact, `slot` its position among the plan's population
/// facts; and a row with `slot` -1 whose `a` is the latest event time.
pub fn aggregates_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("slot", DataType::Int32, false),
        Field::new("key", utf8(), true),
        Field::new("day", DataType::Int64, true),
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, true),
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

/// Population aggregates of some account partitions, as crossing the
/// wire: each population fact's partial, its strings in an interner of its
/// own. See the module doc.
#[derive(Clone, Debug)]
pub struct Partial {
    keys: Vec<FactKey>,
    strings: Interner,
    facts: Vec<AnyPartial>,
    /// The latest event time.
    last: Option<Millis>,
}

impl Partial {
    /// The population facts folded in `agg`, with their strings.
    fn from_aggregates(agg: Aggregates, strings: &Interner) -> Partial {
        let mut out = Partial::empty(&agg);
        let (facts, last) = agg.into_population();
        for ((_, p), slot) in facts.into_iter().zip(&mut out.facts) {
            let mut rows = Vec::new();
            p.write_rows(strings, &mut rows);
            for r in &rows {
                slot.read_row(r.as_ref(), &mut out.strings).expect("rows a partial wrote read back");
            }
        }
        out.last = last;
        out
    }
}

impl PartialEq for Partial {
    fn eq(&self, other: &Partial) -> bool {
        self.keys == other.keys && self.last == other.last && self.rows() == other.rows()
    }
}

impl Partial {
    /// Nothing yet, with the population facts of `agg`.
    fn empty(agg: &Aggregates) -> Partial {
        let keys = agg.fact_keys();
        let facts = keys.iter().map(FactKey::empty).collect();
        Partial { keys, strings: Interner::new(), facts, last: None }
    }

    /// Each fact's rows, by slot.
    fn rows(&self) -> Vec<Vec<FactRow>> {
        self.facts
            .iter()
            .map(|p| {
                let mut rows = Vec::new();
                p.write_rows(&self.strings, &mut rows);
                rows
            })
            .collect()
    }

    /// Adds another partial of the same plan. The result does not depend
    /// on the order or grouping of merges.
    pub fn merge(&mut self, other: Partial) {
        for ((p, rows), key) in self.facts.iter_mut().zip(other.rows()).zip(&self.keys) {
            let mut more = key.empty();
            for r in &rows {
                more.read_row(r.as_ref(), &mut self.strings).expect("rows a partial wrote read back");
            }
            p.merge(more);
        }
        self.last = self.last.max(other.last);
    }

    /// As a record batch of [`aggregates_schema`], rows in a fixed order.
    pub fn to_batch(&self) -> Result<RecordBatch, WireError> {
        let mut slot = Vec::new();
        let mut key = StringBuilder::new();
        let (mut day, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for (s, rows) in self.rows().into_iter().enumerate() {
            for r in rows {
                slot.push(s as i32);
                key.append_option(r.key.as_deref());
                day.push(r.day);
                a.push(r.a);
                b.push(r.b);
            }
        }
        if let Some(t) = self.last {
            slot.push(-1);
            key.append_null();
            day.push(None);
            a.push(t);
            b.push(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(slot)),
            Arc::new(key.finish()),
            Arc::new(Int64Array::from(day)),
            Arc::new(Int64Array::from(a)),
            Arc::new(Int64Array::from(b)),
        ];
        Ok(RecordBatch::try_new(aggregates_schema(), columns)?)
    }

    /// Reads batches of [`aggregates_schema`] (partials of `plan`, or their
    /// merge) into one partial.
    pub fn from_batches(plan: &Plan, batches: &[RecordBatch]) -> Result<Partial, WireError> {
        let agg = Aggregates::for_plan(plan);
        let mut out = Partial::empty(&agg);
        for batch in batches {
            let slot = ints32(batch, "slot")?;
            let key = strings(batch, "key")?;
            let day = ints64(batch, "day")?;
            let a = ints64(batch, "a")?;
            let b = ints64(batch, "b")?;
            for i in 0..batch.num_rows() {
                let s = slot.value(i);
                if s == -1 {
                    out.last = out.last.max(Some(a.value(i)));
                    continue;
                }
                let p = usize::try_from(s).ok().and_then(|s| out.facts.get_mut(s));
                let p = p.ok_or_else(|| no_slot("population fact", s.max(0) as usize))?;
                let row = FactRowRef {
                    key: key.is_valid(i).then(|| key.value(i)),
                    day: day.is_valid(i).then(|| day.value(i)),
                    a: a.value(i),
                    b: b.is_valid(i).then(|| b.value(i)),
                };
                p.read_row(row, &mut out.strings).map_err(|e| WireError::Format(format!("row {i}: {e}")))?;
            }
        }
        Ok(out)
    }

    /// The finished population facts, their strings interned into
    /// `strings`.
    fn finish_into(self, strings: &mut Interner) -> Result<Vec<(FactKey, AnyPartial)>, WireError> {
        let rows = self.rows();
        let mut out = Vec::new();
        for (key, rows) in self.keys.into_iter().zip(rows) {
            let mut p = key.empty();
            for r in &rows {
                p.read_row(r.as_ref(), strings).map_err(WireError::Format)?;
            }
            out.push((key, p));
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

    // The population facts, folded here and written with their strings.
    let mut population = agg.empty_like();
    population.clear_item_indexes();
    population.add_all(&data.events, strings, &data.items);
    let partial = Partial::from_aggregates(population, strings);

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
    agg.set_population(aggregates.clone().finish_into(strings)?, aggregates.last);

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

#[cfg(test)]
mod tests {
    use arrow::array::BooleanArray;
    use arrow::compute::filter_record_batch;

    use super::*;
    use crate::alerts::{self, Context};
    use crate::bind::BoundPlan;
    use crate::data::Events;
    use crate::data::table::Table;
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
