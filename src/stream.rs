//! Scoring a stream of account-sorted event batches against the facts of
//! a whole run: the per-account phase as an engine that does not own the
//! data runs it (a Spark `mapInArrow` task, the Python package).
//!
//! A [`RunFacts`] holds what every account partition of a run is bound
//! with: the strings, the tables other than events, and the facts computed
//! over all events (population aggregates, whole item indexes). A
//! [`StreamScorer`] then takes record batches of events sorted (or at
//! least grouped) by account, as `repartition(N, "actor")
//! .sortWithinPartitions("actor", "ts")` hands them over, keeps the rows of
//! the account that may go on in the next batch, and scores the others in
//! chunks: each chunk is bound to the facts like a partition of a
//! partitioned run ([`crate::run`]), so the incidents are the CLI's.
//!
//! Limits: [`RunFacts::read`] reads every event of the dataset to compute
//! the facts, so a task that builds one does the whole input's fold and
//! item indexes itself. The Spark job computes them as stages instead,
//! with the facts in a wire format ([`crate::facts::wire`]). An account
//! whose rows come back after another account's (input not grouped by
//! account) is an error, not a silent split.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::alerts::{self, Context, RuleInfo};
use crate::bind::BoundPlan;
use crate::data::table::Table;
use crate::data::{self, DataError, Dataset, Events, ReadOptions, ReadReport, Side, TableKind, TableReport};
use crate::facts::Aggregates;
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::score::{AccountIncidents, Scorer};
use crate::signals::Facts;

/// Rows scored as one chunk at least (the last account of a chunk may make
/// it longer). Not tuned.
const CHUNK_ROWS: usize = 64 * 1024;

/// What every account partition of a run is bound with: the compiled
/// rules, and the run's strings, side tables and facts. See the module
/// doc.
#[derive(Debug)]
pub struct RunFacts {
    /// The compiled rules.
    pub plan: Plan,
    /// Each rule's title, severity, tags and version, by plan index.
    pub rules: Vec<RuleInfo>,
    /// Every string of the run's tables.
    pub strings: Arc<Interner>,
    /// The tables other than events (impressions whole, when present).
    pub side: Side,
    /// The facts computed over all events.
    pub facts: Facts,
}

impl RunFacts {
    /// Reads the dataset in `dir` (ground truth left out) and computes the
    /// facts of `plan` over all its events; the events are then dropped.
    /// `rules` describes the rules `plan` was compiled from.
    pub fn read(dir: &Path, plan: Plan, rules: Vec<RuleInfo>, opts: &ReadOptions) -> Result<RunFacts, DataError> {
        let progress = data::ReadProgress::default();
        let mut reader = data::Reader::start_except(dir, &[TableKind::Labels], opts, &progress)?;
        let mut events = Table::new(TableKind::Events);
        reader.read_events(&mut events)?;
        Ok(RunFacts::of_dataset(plan, rules, reader.finish(events)?))
    }

    /// The facts of `plan` over `data` (whose events are then dropped).
    pub fn of_dataset(plan: Plan, rules: Vec<RuleInfo>, data: Dataset) -> RunFacts {
        let mut agg = Aggregates::for_plan(&plan);
        agg.add_all(&data.events, &data.strings, &data.items);
        let facts = agg.finish(&data.strings).expect("aggregates kept in memory read no files");
        let side = Side {
            items: data.items,
            follows: data.follows,
            accounts: data.accounts,
            impressions: data.impressions,
            labels: None,
        };
        RunFacts { plan, rules, strings: data.strings, side, facts }
    }
}

/// Scores account-grouped event batches in chunks. See the module doc.
#[derive(Debug)]
pub struct StreamScorer {
    run: Arc<RunFacts>,
    opts: ReadOptions,
    /// The run's strings and this stream's.
    strings: Arc<Interner>,
    /// Rows not scored yet: whole accounts, and the last account's rows so
    /// far.
    pending: Table,
    /// The last account of the rows scored so far.
    last_scored: Option<Sym>,
    /// Bad rows skipped, and rows read.
    report: TableReport,
    /// Rows scored as one chunk at least.
    chunk_rows: usize,
}

impl StreamScorer {
    /// A scorer of one stream (one Spark partition) of `run`'s events.
    pub fn new(run: Arc<RunFacts>, opts: ReadOptions) -> StreamScorer {
        StreamScorer {
            strings: Arc::new(Interner::clone(&run.strings)),
            run,
            opts,
            pending: Table::new(TableKind::Events),
            last_scored: None,
            report: TableReport::default(),
            chunk_rows: CHUNK_ROWS,
        }
    }

    /// Scores in chunks of at least `rows` rows (64 Ki by default); small
    /// chunks are for tests of accounts that span batches and chunks.
    pub fn with_chunk_rows(mut self, rows: usize) -> StreamScorer {
        self.chunk_rows = rows.max(1);
        self
    }

    /// Takes one batch of events; returns the alerts of the accounts it
    /// completed, when enough rows are pending to score a chunk (else no
    /// batch).
    pub fn push(&mut self, schema: &SchemaRef, batch: RecordBatch) -> Result<Vec<RecordBatch>, StreamError> {
        let strings = Arc::get_mut(&mut self.strings).expect("no chunk outlives its scoring");
        let name = PathBuf::from("<events>");
        data::parquet::read_batches(
            &name,
            TableKind::Events,
            schema,
            [batch],
            &mut self.pending,
            strings,
            &self.opts,
            &mut self.report,
        )?;
        if self.pending.rows < self.chunk_rows {
            return Ok(Vec::new());
        }
        // Every account but the last is complete.
        let actor = &self.pending.columns[self.actor_column()];
        let last = actor.sym(self.pending.rows - 1);
        let keep: Vec<u32> = (0..self.pending.rows as u32).filter(|&r| actor.sym(r as usize) == last).collect();
        let done: Vec<u32> = (0..self.pending.rows as u32).filter(|&r| actor.sym(r as usize) != last).collect();
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let tail = self.gather(&keep);
        let head = self.gather(&done);
        self.pending = tail;
        self.score(head)
    }

    /// Scores what is pending; returns its alerts.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, StreamError> {
        let rest = std::mem::replace(&mut self.pending, Table::new(TableKind::Events));
        self.score(rest)
    }

    /// Rows read, and bad rows skipped (with samples), so far.
    pub fn report(&self) -> &TableReport {
        &self.report
    }

    fn actor_column(&self) -> usize {
        self.pending.column_index("actor").expect("events have an actor column")
    }

    fn gather(&self, rows: &[u32]) -> Table {
        let mut t = Table::new(TableKind::Events);
        t.names = self.pending.names.clone();
        t.columns = self.pending.columns.iter().map(|c| c.gather(rows)).collect();
        t.rows = rows.len();
        t
    }

    /// Scores whole accounts of `table` with the run's facts.
    fn score(&mut self, table: Table) -> Result<Vec<RecordBatch>, StreamError> {
        let (events, _) = Events::from_table(table, &self.strings);
        // Accounts are in symbol order here; by text, every one must come
        // after the last one scored before.
        let text = |s: Sym| self.strings.resolve(s);
        let first = events.accounts.iter().map(|a| a.actor).min_by_key(|&a| text(a));
        if let (Some(prev), Some(first)) = (self.last_scored, first)
            && text(first) <= text(prev)
        {
            return Err(StreamError::NotGrouped { actor: text(first).to_string() });
        }
        if let Some(last) = events.accounts.iter().map(|a| a.actor).max_by_key(|&a| text(a)) {
            self.last_scored = Some(last);
        }
        let accounts: Vec<AccountIncidents> = {
            let run = &self.run;
            let bound =
                BoundPlan::for_run(&run.plan, &self.strings, &run.side, run.side.impressions.is_some(), &run.facts)
                    .shared();
            let data = Dataset::from_parts(
                PathBuf::from("<stream>"),
                self.strings.clone(),
                events,
                &self.run.side,
                ReadReport::default(),
            );
            Scorer::bound(bound, &data).run_sequential()
        };
        let cx = Context::new(&self.run.plan, &self.run.rules, &self.strings);
        Ok(alerts::record_batches(&accounts, cx)?)
    }
}

/// An error that stops a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A batch could not be read as events.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Rows of an account came after rows of a later account.
    #[error(
        "events of account `{actor}` arrived after those of a later account: the stream must be sorted by account \
         (repartition by actor, then sortWithinPartitions(\"actor\", \"ts\"))"
    )]
    NotGrouped {
        /// The account.
        actor: String,
    },
    /// Alerts could not be built (more hits than a batch holds).
    #[error("building alerts: {0}")]
    Alerts(#[from] std::io::Error),
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::data::table::Column;
    use crate::rules::layers::{self, RuleLayer};

    /// The demo dataset written to a temporary directory, the built-in
    /// rules compiled, their infos, and read options with the plan's
    /// projection (as `score` reads).
    pub(crate) fn demo() -> (tempfile::TempDir, Plan, Vec<RuleInfo>, ReadOptions) {
        let dir = tempfile::tempdir().unwrap();
        crate::rules::embedded::write_demo(dir.path()).unwrap();
        let (set, _) = layers::load(&[RuleLayer::Builtin], &Default::default());
        let set = set.unwrap();
        let (plan, info) = (Plan::compile(&set), RuleInfo::of_set(&set));
        let opts = ReadOptions { projection: Some(plan.projection()), ..ReadOptions::default() };
        (dir, plan, info, opts)
    }

    /// The events of `data` as Arrow batches of `rows` rows, sorted by
    /// account text as Spark's `sortWithinPartitions("actor", "ts")` sorts
    /// them: ids as strings, times as epoch milliseconds, numbers as floats
    /// (lists, which events do not have, left out).
    fn event_batches(data: Dataset, rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
        let strings = data.strings.clone();
        let table = data.events.into_table();
        let actor = table.column_index("actor").unwrap();
        let mut order: Vec<u32> = (0..table.rows as u32).collect();
        order.sort_by_key(|&r| strings.resolve(table.columns[actor].sym(r as usize).unwrap()));
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, c) in table.names.iter().zip(&table.columns) {
            let rows = order.iter().map(|&r| r as usize);
            let array: ArrayRef = match c {
                Column::Time(_) => Arc::new(Int64Array::from(rows.map(|r| c.time(r)).collect::<Vec<_>>())),
                Column::Sym(_) => {
                    Arc::new(StringArray::from(rows.map(|r| c.sym(r).map(|s| strings.resolve(s))).collect::<Vec<_>>()))
                }
                Column::Num(_) => Arc::new(Float64Array::from(rows.map(|r| c.num(r)).collect::<Vec<_>>())),
                Column::Text(_) => Arc::new(StringArray::from(rows.map(|r| c.text(r)).collect::<Vec<_>>())),
                Column::List { .. } => continue,
            };
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        let all = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let batches = (0..all.num_rows()).step_by(rows).map(|s| all.slice(s, rows.min(all.num_rows() - s))).collect();
        (schema, batches)
    }

    fn jsonl(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        alerts::write_jsonl_from_batches(&mut out, batches).unwrap();
        out
    }

    /// Streamed in small batches and chunks, so that accounts span both,
    /// the demo gives the in-memory run's alerts, byte for byte.
    #[test]
    fn a_stream_of_account_sorted_batches_gives_the_in_memory_alerts() {
        let (dir, plan, info, opts) = demo();

        let data = Dataset::open(dir.path(), &opts).unwrap();
        let accounts = Scorer::new(&plan, &data).run();
        let want = jsonl(&alerts::record_batches(&accounts, Context::new(&plan, &info, &data.strings)).unwrap());
        let mut cli = Vec::new();
        alerts::write_jsonl(&mut cli, &accounts, Context::new(&plan, &info, &data.strings)).unwrap();
        assert_eq!(want, cli, "alerts through Arrow are written as the CLI writes them");
        assert!(want.len() > 1000, "the demo gives alerts");

        let (schema, batches) = event_batches(data, 997);
        let run = Arc::new(RunFacts::read(dir.path(), plan, info, &opts).unwrap());
        let mut stream = StreamScorer::new(run, opts).with_chunk_rows(3000);
        let mut got = Vec::new();
        for b in batches {
            got.extend(stream.push(&schema, b).unwrap());
        }
        got.extend(stream.finish().unwrap());
        assert_eq!(String::from_utf8(jsonl(&got)).unwrap(), String::from_utf8(want).unwrap());
    }

    #[test]
    fn an_account_that_comes_back_is_an_error() {
        let (dir, plan, info, _) = demo();
        let run = Arc::new(RunFacts::read(dir.path(), plan, info, &ReadOptions::default()).unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("actor", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
        ]));
        let batch = |actors: Vec<&str>| {
            let n = actors.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![1_700_000_000_000; n])),
                    Arc::new(StringArray::from(actors)),
                    Arc::new(StringArray::from(vec!["like"; n])),
                ],
            )
            .unwrap()
        };
        let mut stream = StreamScorer::new(run, ReadOptions::default()).with_chunk_rows(2);
        stream.push(&schema, batch(vec!["u1", "u2", "u3"])).unwrap();
        let err = stream.push(&schema, batch(vec!["u1", "u1", "u4"])).unwrap_err();
        assert!(err.to_string().contains("`u1` arrived after"), "{err}");
    }
}
