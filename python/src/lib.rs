//! `changeling._native`: the engine for Python, over Arrow.
//!
//! Thin glue over the library: every function here loads rules, reads or
//! converts data and writes alerts through the same library calls as the
//! CLI, so answers and error messages are the CLI's. Arrow data crosses
//! through the Arrow C data interface (arrow's `pyarrow` feature): tables
//! handed in are not copied before their values are interned, and alerts
//! come back as a `pyarrow.Table` in the schema of the Parquet alerts
//! (`changeling::alerts::parquet_schema`). The Python package
//! (`changeling/__init__.py`) documents the public API; this module is its
//! private half.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::pyarrow::{PyArrowType, Table};
use changeling::alerts::select::Selection;
use changeling::alerts::{self, Context, RuleInfo};
use changeling::bind::BoundPlan;
use changeling::data::{Dataset, ReadOptions, TableKind};
use changeling::eval::{self, Settings, TierSource};
use changeling::facts::wire::{self, Partial};
use changeling::intern::Interner;
use changeling::plan::Plan;
use changeling::rules::layers::{self, RuleLayer};
use changeling::run::daily::Emit;
use changeling::run::{self, RunOptions, RunProgress};
use changeling::score::Scorer;
use changeling::state::Keys;
use changeling::state::store::Store;
use changeling::stream::{RunFacts, StreamScorer};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(_native, ChangelingError, PyException, "Base class of changeling's errors.");
create_exception!(
    _native,
    RulesError,
    ChangelingError,
    "Rules that do not load: the diagnostics, as the CLI prints them."
);
create_exception!(_native, DataError, ChangelingError, "A dataset or table that cannot be read.");
create_exception!(_native, EvalError, ChangelingError, "Alerts or ground truth that cannot be evaluated.");

/// Rules loaded and compiled, as the CLI loads them.
struct Loaded {
    plan: Plan,
    info: Vec<RuleInfo>,
}

/// The rule layers of `rules` (None: $CHANGELING_RULES, else builtin),
/// checked.
fn layers_of(rules: Option<Vec<PathBuf>>) -> PyResult<Vec<RuleLayer>> {
    let given: Vec<RuleLayer> = rules.unwrap_or_default().iter().map(|a| RuleLayer::from_arg(a.as_os_str())).collect();
    let env: Option<OsString> = std::env::var_os(layers::ENV).filter(|v| !v.is_empty());
    let from_env = given.is_empty() && env.is_some();
    let resolved = layers::resolve(&given, env);
    layers::check(&resolved, from_env).map_err(|e| RulesError::new_err(e.to_string()))?;
    Ok(resolved)
}

/// Loads and compiles rules; their diagnostics are the error's message.
fn load(rules: Option<Vec<PathBuf>>) -> PyResult<Loaded> {
    let layers = layers_of(rules)?;
    let (set, diags) = layers::load(&layers, &changeling::rules::Overrides::default());
    let Some(set) = set else { return Err(RulesError::new_err(diags.render())) };
    Ok(Loaded { plan: Plan::compile(&set), info: RuleInfo::of_set(&set) })
}

/// One path or several, as Python gives them.
#[derive(FromPyObject)]
enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Paths {
    fn into_vec(p: Option<Paths>) -> Option<Vec<PathBuf>> {
        p.map(|p| match p {
            Paths::One(x) => vec![x],
            Paths::Many(v) => v,
        })
    }
}

/// The table kind named `name` (events, items, ...).
fn kind_of(name: &str) -> PyResult<TableKind> {
    TableKind::ALL.into_iter().find(|k| k.to_string() == name).ok_or_else(|| {
        let names: Vec<String> = TableKind::ALL.iter().map(|k| k.to_string()).collect();
        PyValueError::new_err(format!("no table `{name}` in a dataset (tables: {})", names.join(", ")))
    })
}

/// A dict from table name to `pyarrow.Table`, as the engine reads tables
/// given as Arrow.
type ArrowTables = Vec<(TableKind, arrow::datatypes::SchemaRef, Vec<RecordBatch>)>;

fn tables_of(dict: &Bound<'_, PyDict>) -> PyResult<ArrowTables> {
    let mut tables = Vec::new();
    for (k, v) in dict.iter() {
        let kind = kind_of(&k.extract::<String>()?)?;
        let t: PyArrowType<Table> = v.extract()?;
        let (batches, schema) = t.0.into_inner();
        tables.push((kind, schema, batches));
    }
    Ok(tables)
}

/// Alerts as a `pyarrow.Table`.
fn alerts_table(batches: Vec<RecordBatch>) -> PyResult<PyArrowType<Table>> {
    let table =
        Table::try_new(batches, alerts::parquet_schema()).map_err(|e| ChangelingError::new_err(e.to_string()))?;
    Ok(PyArrowType(table))
}

/// Scores a dataset directory or a dict of Arrow tables; see
/// `changeling.score`.
#[pyfunction]
#[pyo3(signature = (data, rules=None, *, min_tier=None, memory=None, strict=false, threads=None, time_unit=None, state=None, emit=None))]
#[allow(clippy::too_many_arguments)]
fn score(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    rules: Option<Paths>,
    min_tier: Option<String>,
    memory: Option<String>,
    strict: bool,
    threads: Option<usize>,
    time_unit: Option<String>,
    state: Option<PathBuf>,
    emit: Option<String>,
) -> PyResult<PyArrowType<Table>> {
    let time_unit = time_unit_of(time_unit)?;
    let loaded = load(Paths::into_vec(rules))?;
    let plan = &loaded.plan;
    let mut selection = Selection::default();
    if let Some(t) = &min_tier {
        let i = plan.config.tiers.iter().position(|x| &x.name == t).ok_or_else(|| {
            let names: Vec<&str> = plan.config.tiers.iter().map(|t| t.name.as_str()).collect();
            PyValueError::new_err(format!("--min-tier {t}: no such tier (tiers: {})", names.join(", ")))
        })?;
        selection.min_tier = Some(i);
    }
    let memory = match memory {
        Some(m) => run::parse_memory(&m).map_err(PyValueError::new_err)?,
        None => run::default_memory(),
    };
    let read = ReadOptions { strict, projection: Some(plan.projection()), time_unit, ..ReadOptions::default() };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| ChangelingError::new_err(e.to_string()))?;

    let emit = match emit.as_deref() {
        None | Some("changes") => Emit::Changes,
        Some("open") => Emit::Open,
        Some(e) => return Err(PyValueError::new_err(format!("emit: {e:?} is neither \"changes\" nor \"open\""))),
    };
    if let Some(state) = state {
        let dir: PathBuf = data.extract().map_err(|_| {
            PyValueError::new_err("data: a run with a state takes a dataset directory (str or os.PathLike)")
        })?;
        let batches = py.detach(|| pool.install(|| daily(&dir, &state, &loaded, &read, emit, &selection)))?;
        return alerts_table(batches);
    }
    if let Ok(dict) = data.cast::<PyDict>() {
        let tables = tables_of(dict)?;
        let batches = py.detach(|| {
            pool.install(|| -> PyResult<Vec<RecordBatch>> {
                let data = Dataset::from_arrow(tables, &read).map_err(|e| DataError::new_err(e.to_string()))?;
                let mut accounts = Scorer::new(plan, &data).run();
                selection.apply(&mut accounts, &loaded.info);
                let cx = Context::new(plan, &loaded.info, &data.strings);
                alerts::record_batches(&accounts, cx).map_err(|e| ChangelingError::new_err(e.to_string()))
            })
        })?;
        return alerts_table(batches);
    }
    let dir: PathBuf = data.extract().map_err(|_| {
        PyValueError::new_err("data: expected a dataset directory (str or os.PathLike) or a dict of tables")
    })?;
    let opts = RunOptions {
        read,
        memory,
        tmp: std::env::temp_dir(),
        force_partitions: None,
        force_split_before_scoring: false,
    };
    let batches = py.detach(|| {
        pool.install(|| -> PyResult<Vec<RecordBatch>> {
            let out = run::run(&dir, plan, &opts, &RunProgress::default())
                .map_err(|e| DataError::new_err(format!("scoring: {e}")))?;
            alert_batches(out.incidents, &out.strings, &loaded, &selection)
        })
    })?;
    alerts_table(batches)
}

/// The alerts of a run's incidents that `selection` keeps, as Arrow.
fn alert_batches(
    incidents: run::Incidents,
    strings: &Interner,
    loaded: &Loaded,
    selection: &Selection,
) -> PyResult<Vec<RecordBatch>> {
    let mut accounts = incidents.into_vec().map_err(|e| DataError::new_err(format!("reading incidents back: {e}")))?;
    selection.apply(&mut accounts, &loaded.info);
    let cx = Context::new(&loaded.plan, &loaded.info, strings);
    alerts::record_batches(&accounts, cx).map_err(|e| ChangelingError::new_err(e.to_string()))
}

/// A daily run (`score --data DIR --state STATE`): the batch scored
/// against the state, the alerts made, then the next state written, as
/// the CLI does (so a failure to write the state loses no alert: the next
/// run reports them again).
fn daily(
    dir: &std::path::Path,
    state: &std::path::Path,
    loaded: &Loaded,
    read: &ReadOptions,
    emit: Emit,
    selection: &Selection,
) -> PyResult<Vec<RecordBatch>> {
    let plan = &loaded.plan;
    let failed = |what: &str, e: &dyn std::fmt::Display| ChangelingError::new_err(format!("{what}: {e}"));
    let opened = Store::open(state).map_err(|e| failed(&format!("opening the state in {}", state.display()), &e))?;
    let (out, update) = run::daily::run(dir, plan, &opened, read, emit, &RunProgress::default())
        .map_err(|e| DataError::new_err(format!("scoring the batch: {e}")))?;
    let batches = alert_batches(out.incidents, &out.strings, loaded, selection)?;
    let (store, opened) = opened;
    store
        .commit(opened, update, &Keys::of(plan))
        .map_err(|e| failed(&format!("writing the state in {}", state.display()), &e))?;
    Ok(batches)
}

/// The unit of numeric times, from its name (`s`, `ms`, `us`, `ns`).
fn time_unit_of(name: Option<String>) -> PyResult<Option<changeling::time::TimeUnit>> {
    name.map(|n| {
        changeling::time::TimeUnit::parse(&n).ok_or_else(|| {
            DataError::new_err(format!(
                "time_unit {n:?}: give \"s\", \"ms\", \"us\" or \"ns\" (the unit of numeric times)"
            ))
        })
    })
    .transpose()
}

/// Checks rules; see `changeling.check`.
#[pyfunction]
#[pyo3(signature = (rules=None))]
fn check(py: Python<'_>, rules: Option<Paths>) -> PyResult<Py<PyDict>> {
    let layers = layers_of(Paths::into_vec(rules))?;
    let (set, diags) = layers::load(&layers, &changeling::rules::Overrides::default());
    let out = PyDict::new(py);
    out.set_item("ok", set.is_some())?;
    out.set_item("rules", set.as_ref().map_or(0, |s| s.rules.len()))?;
    out.set_item("errors", diags.errors())?;
    out.set_item("diagnostics", diags.render())?;
    Ok(out.unbind())
}

/// Evaluates an alerts file against a dataset's labels; see
/// `changeling.eval`. Returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (alerts, data, rules=None, slack=None, tier=None, time_unit=None))]
fn eval_report(
    py: Python<'_>,
    alerts: PathBuf,
    data: PathBuf,
    rules: Option<Paths>,
    slack: Option<String>,
    tier: Option<String>,
    time_unit: Option<String>,
) -> PyResult<String> {
    let time_unit = time_unit_of(time_unit)?;
    let slack = match slack {
        Some(s) => changeling::time::parse_duration(&s).map_err(PyValueError::new_err)?,
        None => 3_600_000,
    };
    let loaded = load(Paths::into_vec(rules))?;
    let tiers = loaded.plan.config.tiers.iter().map(|t| t.name.clone()).collect();
    py.detach(|| {
        let file = eval::read_alerts(&alerts).map_err(|e| EvalError::new_err(e.to_string()))?;
        let opts = ReadOptions { projection: Some(eval::projection()), time_unit, ..ReadOptions::default() };
        let ds = Dataset::open(&data, &opts)
            .map_err(|e| DataError::new_err(format!("reading dataset {}: {e}", data.display())))?;
        let truth = eval::Truth::from_dataset(&ds).map_err(|e| EvalError::new_err(e.to_string()))?;
        let days = eval::account_days(&ds);
        let settings = Settings { tiers, tier_source: TierSource::Rules, slack, rules_tier: tier };
        let report = eval::evaluate(&truth, &days, &file, &settings).map_err(|e| EvalError::new_err(e.to_string()))?;
        serde_json::to_string(&report).map_err(|e| ChangelingError::new_err(e.to_string()))
    })
}

/// Alerts (a `pyarrow.Table` of the alerts schema, in output order) as
/// JSON Lines bytes, exactly as the CLI writes them.
#[pyfunction]
fn alerts_jsonl(py: Python<'_>, table: PyArrowType<Table>) -> PyResult<Vec<u8>> {
    let (batches, _) = table.0.into_inner();
    py.detach(|| {
        let mut out = Vec::new();
        alerts::write_jsonl_from_batches(&mut out, &batches).map_err(|e| ChangelingError::new_err(e.to_string()))?;
        Ok(out)
    })
}

/// The schema of alerts, as a `pyarrow.Schema`.
#[pyfunction]
fn alerts_schema() -> PyArrowType<arrow::datatypes::Schema> {
    PyArrowType(alerts::parquet_schema().as_ref().clone())
}

/// The rules and the facts of a whole run, for scoring streams of its
/// events (one per Spark partition).
#[pyclass(frozen)]
struct Run {
    run: Arc<RunFacts>,
    strict: bool,
}

#[pymethods]
impl Run {
    /// Reads the dataset in `data` and computes the facts of `rules` over
    /// all its events.
    #[new]
    #[pyo3(signature = (data, rules=None, strict=false))]
    fn new(py: Python<'_>, data: PathBuf, rules: Option<Paths>, strict: bool) -> PyResult<Run> {
        let loaded = load(Paths::into_vec(rules))?;
        let read = ReadOptions { strict, projection: Some(loaded.plan.projection()), ..ReadOptions::default() };
        let run = py
            .detach(|| RunFacts::read(&data, loaded.plan, loaded.info, &read))
            .map_err(|e| DataError::new_err(format!("scoring: {e}")))?;
        Ok(Run { run: Arc::new(run), strict })
    }

    /// A scorer for one stream of account-sorted event batches, scoring
    /// chunks of at least `chunk_rows` rows (default 64 Ki).
    #[pyo3(signature = (chunk_rows=None))]
    fn stream(&self, chunk_rows: Option<usize>) -> Stream {
        let read =
            ReadOptions { strict: self.strict, projection: Some(self.run.plan.projection()), ..ReadOptions::default() };
        let mut inner = StreamScorer::new(self.run.clone(), read);
        if let Some(n) = chunk_rows {
            inner = inner.with_chunk_rows(n);
        }
        Stream { inner }
    }
}

/// One stream of account-sorted event batches, scored in chunks.
#[pyclass]
struct Stream {
    inner: StreamScorer,
}

#[pymethods]
impl Stream {
    /// Takes a batch of events; returns alert batches for the accounts
    /// completed so far (often none).
    fn push(&mut self, py: Python<'_>, batch: PyArrowType<RecordBatch>) -> PyResult<Vec<PyArrowType<RecordBatch>>> {
        let batch = batch.0;
        let schema = batch.schema();
        let inner = &mut self.inner;
        let out = py.detach(|| inner.push(&schema, batch)).map_err(|e| DataError::new_err(e.to_string()))?;
        Ok(out.into_iter().map(PyArrowType).collect())
    }

    /// Scores what is pending; returns its alert batches.
    fn finish(&mut self, py: Python<'_>) -> PyResult<Vec<PyArrowType<RecordBatch>>> {
        let inner = &mut self.inner;
        let out = py.detach(|| inner.finish()).map_err(|e| DataError::new_err(e.to_string()))?;
        Ok(out.into_iter().map(PyArrowType).collect())
    }
}

/// The work of the Spark job's stages for one set of rules (see
/// `changeling/spark.py` and `changeling::facts::wire`): each method is
/// one stage's task, Arrow in and Arrow out, strings on the wire.
#[pyclass(frozen)]
struct Stages {
    loaded: Loaded,
    strict: bool,
}

fn wire_err(e: wire::WireError) -> PyErr {
    DataError::new_err(e.to_string())
}

fn one_table(t: PyArrowType<Table>) -> Vec<RecordBatch> {
    t.0.into_inner().0
}

impl Stages {
    fn dataset(&self, tables: ArrowTables) -> PyResult<Dataset> {
        let read = ReadOptions {
            strict: self.strict,
            projection: Some(self.loaded.plan.projection()),
            ..ReadOptions::default()
        };
        Dataset::from_arrow(tables, &read).map_err(|e| DataError::new_err(e.to_string()))
    }
}

#[pymethods]
impl Stages {
    /// Loads and compiles `rules` (as `changeling.score` takes them).
    #[new]
    #[pyo3(signature = (rules=None, strict=false))]
    fn new(rules: Option<Paths>, strict: bool) -> PyResult<Stages> {
        Ok(Stages { loaded: load(Paths::into_vec(rules))?, strict })
    }

    /// Stage A for account partition `part`: `tables` are its events
    /// (whole accounts) and the items they target. Returns its aggregate
    /// partial, its item rows and its questions, as record batches.
    #[allow(clippy::type_complexity)]
    fn part_facts(
        &self,
        py: Python<'_>,
        tables: &Bound<'_, PyDict>,
        part: u32,
    ) -> PyResult<(PyArrowType<RecordBatch>, PyArrowType<RecordBatch>, PyArrowType<RecordBatch>)> {
        let tables = tables_of(tables)?;
        let out = py.detach(|| -> PyResult<wire::PartFacts> {
            let data = self.dataset(tables)?;
            wire::part_facts(&self.loaded.plan, &data, part).map_err(wire_err)
        })?;
        Ok((PyArrowType(out.aggregates), PyArrowType(out.item_rows), PyArrowType(out.questions)))
    }

    /// Merges aggregate partials (tables of the partials' schema) into one
    /// record batch; the same bytes whatever their order.
    fn merge(&self, py: Python<'_>, partials: Vec<PyArrowType<Table>>) -> PyResult<PyArrowType<RecordBatch>> {
        let batches: Vec<RecordBatch> = partials.into_iter().flat_map(one_table).collect();
        let out = py.detach(|| Partial::from_batches(&self.loaded.plan, &batches)?.to_batch()).map_err(wire_err)?;
        Ok(PyArrowType(out))
    }

    /// The item stage for one group of whole items: answers the questions
    /// with the item rows; returns the answers, with their partition.
    fn answer(
        &self,
        py: Python<'_>,
        item_rows: PyArrowType<Table>,
        questions: PyArrowType<Table>,
    ) -> PyResult<PyArrowType<RecordBatch>> {
        let (rows, asked) = (one_table(item_rows), one_table(questions));
        let out = py.detach(|| wire::answer(&self.loaded.plan, &rows, &asked)).map_err(wire_err)?;
        Ok(PyArrowType(out))
    }

    /// Stage B for account partition `part`: scores its events (in
    /// `tables`, with its share of the other tables) with the merged
    /// aggregates and its answers. Returns its alerts.
    fn score(
        &self,
        py: Python<'_>,
        tables: &Bound<'_, PyDict>,
        aggregates: PyArrowType<Table>,
        answers: PyArrowType<Table>,
        part: u32,
    ) -> PyResult<PyArrowType<Table>> {
        let tables = tables_of(tables)?;
        let (aggregates, answers) = (one_table(aggregates), one_table(answers));
        let batches = py.detach(|| -> PyResult<Vec<RecordBatch>> {
            let plan = &self.loaded.plan;
            let mut data = self.dataset(tables)?;
            let partial = Partial::from_batches(plan, &aggregates).map_err(wire_err)?;
            let strings = Arc::get_mut(&mut data.strings).expect("a dataset just read shares its strings with none");
            let facts = wire::facts(plan, &partial, &answers, part, strings).map_err(wire_err)?;
            let bound = BoundPlan::with_facts(plan, &data, &facts).shared();
            let accounts = Scorer::bound(bound, &data).run_sequential();
            let cx = Context::new(plan, &self.loaded.info, &data.strings);
            alerts::record_batches(&accounts, cx).map_err(|e| ChangelingError::new_err(e.to_string()))
        })?;
        alerts_table(batches)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(eval_report, m)?)?;
    m.add_function(wrap_pyfunction!(alerts_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(alerts_schema, m)?)?;
    m.add_class::<Run>()?;
    m.add_class::<Stream>()?;
    m.add_class::<Stages>()?;
    m.add("ChangelingError", py.get_type::<ChangelingError>())?;
    m.add("RulesError", py.get_type::<RulesError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("EvalError", py.get_type::<EvalError>())?;
    Ok(())
}
