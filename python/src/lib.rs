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
//! private half. Arguments that are not valid raise `ValueError` here
//! (as pyo3's conversions do); the package turns them, and every other
//! error that is not already one, into a `ChangelingError`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::pyarrow::{PyArrowType, Table};
use changeling::alerts::read::{self, ReadAlert};
use changeling::alerts::select::Selection;
use changeling::alerts::{self, Context, RuleInfo, summary};
use changeling::bind::BoundPlan;
use changeling::data::{Dataset, ReadOptions, ReadReport, TableKind};
use changeling::eval::{self, Settings, TierSource};

use changeling::facts::wire::{self, Partial};
use changeling::intern::Interner;
use changeling::plan::Plan;
use changeling::rules::layers::{self, RuleLayer};
use changeling::run::daily::Emit;
use changeling::run::{self, RunOptions, RunProgress};
use changeling::score::{AccountIncidents, Scorer};
use changeling::state::Keys;
use changeling::state::store::Store;
use changeling::stream::{RunFacts, StreamScorer};
use changeling::time::Millis;
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
    /// The layers, as the CLI names them (`builtin`, `builtin + team`).
    name: String,
    /// Warnings of loading them (an exception expired), for the stats.
    warnings: Vec<String>,
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
    Ok(Loaded {
        plan: Plan::compile(&set),
        info: RuleInfo::of_set(&set),
        name: layers::describe(&layers),
        warnings: Vec::new(),
    })
}

/// Applies the exceptions files `given` (None or empty: those of
/// $CHANGELING_EXCEPTIONS, as the CLI) to `loaded`, with their warnings (an
/// expired exception); their errors are raised as `RulesError` with file,
/// line and column.
fn with_exceptions(mut loaded: Loaded, given: Option<Vec<PathBuf>>) -> PyResult<Loaded> {
    use changeling::exceptions::{self, GivenError};
    let given = given.unwrap_or_default();
    match exceptions::given(&given, "exceptions=", &loaded.info, changeling::time::now_millis()) {
        Ok(None) => {}
        Ok(Some((bound, diags))) => {
            if !diags.items.is_empty() {
                loaded.warnings.push(diags.render());
            }
            loaded.plan = loaded.plan.with_exceptions(bound);
        }
        Err(GivenError::Invalid(diags)) => return Err(RulesError::new_err(diags.render())),
        Err(GivenError::Missing(m) | GivenError::Unbound(m)) => return Err(RulesError::new_err(m)),
    }
    Ok(loaded)
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

/// The batches of a table-like value: a `pyarrow.Table`, or anything with
/// `__arrow_c_stream__` (a pandas or polars DataFrame, a record batch
/// reader); `what` names it in the error.
fn arrow_table(v: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<RecordBatch>, arrow::datatypes::SchemaRef)> {
    let t: PyArrowType<Table> = v.extract().map_err(|e| {
        let ty = v.get_type().name().map_or_else(|_| "?".to_string(), |n| n.to_string());
        DataError::new_err(format!(
            "{what}: a {ty} is not an Arrow table ({e}); give a pyarrow Table, a pandas or polars DataFrame, or \
             anything with __arrow_c_stream__"
        ))
    })?;
    Ok(t.0.into_inner())
}

fn tables_of(dict: &Bound<'_, PyDict>) -> PyResult<ArrowTables> {
    let mut tables = Vec::new();
    for (k, v) in dict.iter() {
        let name = k.extract::<String>()?;
        let kind = kind_of(&name)?;
        let (batches, schema) = arrow_table(&v, &format!("table `{name}`"))?;
        tables.push((kind, schema, batches));
    }
    Ok(tables)
}

/// A dataset as Python gives it: a directory, or a dict of Arrow tables.
#[derive(Clone)]
enum DataArg {
    Dir(PathBuf),
    Tables(ArrowTables),
}

impl DataArg {
    fn of(data: &Bound<'_, PyAny>) -> PyResult<DataArg> {
        if let Ok(dict) = data.cast::<PyDict>() {
            return Ok(DataArg::Tables(tables_of(dict)?));
        }
        let dir: PathBuf = data.extract().map_err(|_| {
            PyValueError::new_err("data: expected a dataset directory (str or os.PathLike) or a dict of tables")
        })?;
        Ok(DataArg::Dir(dir))
    }

    /// Reads it, as `Dataset::open` reads a directory.
    fn open(self, opts: &ReadOptions) -> PyResult<Dataset> {
        match self {
            DataArg::Dir(d) => {
                Dataset::open(&d, opts).map_err(|e| DataError::new_err(format!("reading dataset {}: {e}", d.display())))
            }
            DataArg::Tables(t) => Dataset::from_arrow(t, opts).map_err(|e| DataError::new_err(e.to_string())),
        }
    }
}

/// Alerts as a `pyarrow.Table`.
fn alerts_table(batches: Vec<RecordBatch>) -> PyResult<PyArrowType<Table>> {
    let table =
        Table::try_new(batches, alerts::parquet_schema()).map_err(|e| ChangelingError::new_err(e.to_string()))?;
    Ok(PyArrowType(table))
}

/// What a run read and scored, for its stats.
struct RunFound<'a> {
    data: String,
    report: &'a ReadReport,
    events: u64,
    accounts: u64,
    notes: &'a [String],
}

/// A run's stats as JSON text: the keys of `changeling score --json`'s
/// summary that a run in Python has (not its timings, spill or state), and
/// the first skipped records of each table (`skipped_samples`).
fn stats_json(
    found: &RunFound<'_>,
    before: u64,
    accounts: &[AccountIncidents],
    cx: Context<'_>,
    loaded: &Loaded,
    campaigns: Option<&[changeling::campaigns::Campaign]>,
) -> PyResult<String> {
    let r = found.report;
    let tiers = &cx.plan.config.tiers;
    let mut per_tier = vec![0u64; tiers.len()];
    accounts.iter().flat_map(|a| &a.incidents).for_each(|i| per_tier[i.tier] += 1);
    let at = changeling::time::format_rfc3339;
    let v = serde_json::json!({
        "data": found.data,
        "rules": loaded.name,
        "events": found.events,
        "skipped": r.tables.iter().map(|(k, t)| (k.to_string(), t.skipped.into())).collect::<serde_json::Map<String, serde_json::Value>>(),
        "skipped_samples": r.tables.iter().map(|(k, t)| (k.to_string(), t.samples.iter().map(|s| s.to_string()).collect::<Vec<_>>().into())).collect::<serde_json::Map<String, serde_json::Value>>(),
        "duplicates": r.tables.iter().map(|(_, t)| t.duplicates).sum::<u64>(),
        "time_span": r.tables.iter().filter_map(|(k, t)| {
            let (first, last) = t.span?;
            Some((k.to_string(), serde_json::json!({"first": at(first), "last": at(last)})))
        }).collect::<serde_json::Map<String, serde_json::Value>>(),
        "accounts": found.accounts,
        "accounts_flagged": accounts.len(),
        "incidents_written": per_tier.iter().sum::<u64>(),
        "incidents_before_filters": before,
        "incidents_per_tier": tiers.iter().zip(&per_tier).map(|(t, n)| (t.name.clone(), (*n).into())).collect::<serde_json::Map<String, serde_json::Value>>(),
        "per_rule": summary::per_rule(accounts, cx),
        "notes": found.notes,
        "exceptions": cx.plan.exceptions.as_ref().map(|x| x.suppressed()),
        "warnings": loaded.warnings,
        "campaigns": campaigns,
    });
    serde_json::to_string(&v).map_err(|e| ChangelingError::new_err(e.to_string()))
}

/// Scores a dataset directory or a dict of Arrow tables; see
/// `changeling.score`. Returns the alerts and the run's stats (JSON text).
#[pyfunction]
#[pyo3(signature = (data, rules=None, *, min_tier=None, memory=None, strict=false, threads=None, time_unit=None, state=None, emit=None, exceptions=None, campaigns=false))]
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
    exceptions: Option<Paths>,
    campaigns: bool,
) -> PyResult<(PyArrowType<Table>, String)> {
    let time_unit = time_unit_of(time_unit)?;
    let loaded = with_exceptions(load(Paths::into_vec(rules))?, Paths::into_vec(exceptions))?;
    let plan = &loaded.plan;
    let mut selection = Selection::default();
    if let Some(t) = &min_tier {
        let i = plan.config.tiers.iter().position(|x| &x.name == t).ok_or_else(|| {
            let names: Vec<&str> = plan.config.tiers.iter().map(|t| t.name.as_str()).collect();
            PyValueError::new_err(format!("min_tier {t:?}: no such tier (tiers: {})", names.join(", ")))
        })?;
        selection.min_tier = Some(i);
    }
    let memory = match memory {
        Some(m) => run::parse_memory(&m).map_err(PyValueError::new_err)?,
        None => run::default_memory(),
    };
    let read = ReadOptions { strict, projection: Some(plan.projection()), time_unit, ..ReadOptions::default() };
    let pool = pool(threads)?;

    let emit = match emit.as_deref() {
        None | Some("changes") => Emit::Changes,
        Some("open") => Emit::Open,
        Some(e) => return Err(PyValueError::new_err(format!("emit: {e:?} is neither \"changes\" nor \"open\""))),
    };
    if let Some(state) = state {
        let dir: PathBuf = data.extract().map_err(|_| {
            PyValueError::new_err("data: a run with a state takes a dataset directory (str or os.PathLike)")
        })?;
        let (batches, stats) = py.detach(|| pool.install(|| daily(&dir, &state, &loaded, &read, emit, &selection)))?;
        return Ok((alerts_table(batches)?, stats));
    }
    let (batches, stats) = match DataArg::of(data)? {
        DataArg::Tables(tables) => py.detach(|| {
            pool.install(|| -> PyResult<(Vec<RecordBatch>, String)> {
                let data = Dataset::from_arrow(tables, &read).map_err(|e| DataError::new_err(e.to_string()))?;
                let scorer = Scorer::new(plan, &data);
                let accounts = scorer.run();
                let found = RunFound {
                    data: "the tables given".into(),
                    report: &data.report,
                    events: data.events.len() as u64,
                    accounts: data.events.accounts.len() as u64,
                    notes: scorer.notes(),
                };
                selected_alerts(accounts, &found, &data.strings, &loaded, &selection, campaigns)
            })
        })?,
        DataArg::Dir(dir) => {
            let opts = RunOptions {
                read,
                memory,
                tmp: std::env::temp_dir(),
                force_partitions: None,
                force_split_before_scoring: false,
            };
            py.detach(|| {
                pool.install(|| -> PyResult<(Vec<RecordBatch>, String)> {
                    let out = run::run(&dir, plan, &opts, &RunProgress::default())
                        .map_err(|e| DataError::new_err(format!("scoring: {e}")))?;
                    let accounts = out
                        .incidents
                        .into_vec()
                        .map_err(|e| DataError::new_err(format!("reading incidents back: {e}")))?;
                    let found = RunFound {
                        data: dir.display().to_string(),
                        report: &out.report,
                        events: out.events,
                        accounts: out.accounts_seen,
                        notes: &out.notes,
                    };
                    selected_alerts(accounts, &found, &out.strings, &loaded, &selection, campaigns)
                })
            })?
        }
    };
    Ok((alerts_table(batches)?, stats))
}

/// A worker pool of `threads` threads (default: one per core).
fn pool(threads: Option<usize>) -> PyResult<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| ChangelingError::new_err(e.to_string()))
}

/// The alerts of a run's incidents that `selection` keeps, as Arrow, and
/// the run's stats; with `campaigns`, the incidents grouped into campaigns
/// first (all of them, as `score --campaigns` groups them before it
/// selects), each member's alert naming its campaign.
fn selected_alerts(
    mut accounts: Vec<AccountIncidents>,
    found: &RunFound<'_>,
    strings: &Interner,
    loaded: &Loaded,
    selection: &Selection,
    campaigns: bool,
) -> PyResult<(Vec<RecordBatch>, String)> {
    let before = accounts.iter().map(|a| a.incidents.len() as u64).sum();
    let grouped = campaigns.then(|| changeling::campaigns::find(&accounts, &loaded.plan, strings));
    let by_incident = changeling::campaigns::by_incident(grouped.as_deref().unwrap_or_default());
    selection.apply(&mut accounts, &loaded.info);
    let cx = Context::new(&loaded.plan, &loaded.info, strings).with_campaigns(&by_incident);
    let stats = stats_json(found, before, &accounts, cx, loaded, grouped.as_deref())?;
    let batches = alerts::record_batches(&accounts, cx).map_err(|e| ChangelingError::new_err(e.to_string()))?;
    Ok((batches, stats))
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
) -> PyResult<(Vec<RecordBatch>, String)> {
    let plan = &loaded.plan;
    let failed = |what: &str, e: &dyn std::fmt::Display| ChangelingError::new_err(format!("{what}: {e}"));
    let opened = Store::open(state).map_err(|e| failed(&format!("opening the state in {}", state.display()), &e))?;
    let (out, update) = run::daily::run(dir, plan, &opened, read, emit, &RunProgress::default())
        .map_err(|e| DataError::new_err(format!("scoring the batch: {e}")))?;
    let accounts = out.incidents.into_vec().map_err(|e| DataError::new_err(format!("reading incidents back: {e}")))?;
    let found = RunFound {
        data: dir.display().to_string(),
        report: &out.report,
        events: out.events,
        accounts: out.accounts_seen,
        notes: &out.notes,
    };
    // As the CLI: a run with a state does not group campaigns.
    let (batches, stats) = selected_alerts(accounts, &found, &out.strings, loaded, selection, false)?;
    let (store, opened) = opened;
    store
        .commit(opened, update, &Keys::of(plan))
        .map_err(|e| failed(&format!("writing the state in {}", state.display()), &e))?;
    Ok((batches, stats))
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

/// Alerts as Python gives them: a file (JSON Lines, Parquet, CSV), or a
/// table of the alerts' columns.
enum AlertsArg {
    File(PathBuf),
    Table(Vec<RecordBatch>),
}

impl AlertsArg {
    fn of(v: &Bound<'_, PyAny>, what: &str) -> PyResult<AlertsArg> {
        if let Ok(p) = v.extract::<PathBuf>() {
            return Ok(AlertsArg::File(p));
        }
        Ok(AlertsArg::Table(arrow_table(v, what)?.0))
    }

    /// Its alerts, read as `changeling eval` and `diff` read a file; a
    /// table is named `name` in errors.
    fn read(&self, name: &str) -> Result<Vec<ReadAlert>, read::ReadError> {
        match self {
            AlertsArg::File(p) => read::read_for(p, read::Need::Rules),
            AlertsArg::Table(batches) => read::from_batches(std::path::Path::new(name), batches),
        }
    }
}

/// Evaluates alerts (a file or a table) against a dataset's labels (a
/// directory or a dict of tables); see `changeling.eval`. Returns the
/// report as JSON text.
#[pyfunction]
#[pyo3(signature = (alerts, data, rules=None, slack=None, tier=None, time_unit=None))]
fn eval_report(
    py: Python<'_>,
    alerts: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    rules: Option<Paths>,
    slack: Option<String>,
    tier: Option<String>,
    time_unit: Option<String>,
) -> PyResult<String> {
    let time_unit = time_unit_of(time_unit)?;
    let slack = slack_of(slack)?;
    let alerts = AlertsArg::of(alerts, "alerts")?;
    let data = DataArg::of(data)?;
    let loaded = load(Paths::into_vec(rules))?;
    let tiers = loaded.plan.config.tiers.iter().map(|t| t.name.clone()).collect();
    py.detach(|| {
        let read = alerts.read("<alerts>").map_err(|e| EvalError::new_err(e.to_string()))?;
        let name = match &alerts {
            AlertsArg::File(p) => p.clone(),
            AlertsArg::Table(_) => PathBuf::from("<alerts>"),
        };
        let file = eval::AlertFile::from_read(&name, &read);
        let opts = ReadOptions { projection: Some(eval::projection()), time_unit, ..ReadOptions::default() };
        let ds = data.open(&opts)?;
        let truth = eval::Truth::from_dataset(&ds).map_err(|e| EvalError::new_err(e.to_string()))?;
        let days = eval::account_days(&ds);
        let settings = Settings { tiers, tier_source: TierSource::Rules, slack, rules_tier: tier };
        let report = eval::evaluate(&truth, &days, &file, &settings).map_err(|e| EvalError::new_err(e.to_string()))?;
        serde_json::to_string(&report).map_err(|e| ChangelingError::new_err(e.to_string()))
    })
}

/// A duration (`1h`, `30m`); an hour when not given.
fn slack_of(slack: Option<String>) -> PyResult<Millis> {
    match slack {
        Some(s) => changeling::time::parse_duration(&s).map_err(|e| PyValueError::new_err(format!("slack: {e}"))),
        None => Ok(changeling::time::HOUR),
    }
}

/// A time as the CLI's `--around` takes it: RFC 3339, a date, or epoch
/// milliseconds.
fn time_of(what: &str, s: &str) -> PyResult<Millis> {
    changeling::time::parse_timestamp(s)
        .or_else(|| changeling::time::parse_timestamp(&format!("{s}T00:00:00Z")))
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{what}: `{s}` is not a time: give RFC 3339 (2020-09-09T14:00:00Z), a date (2020-09-09), a datetime \
                 or epoch milliseconds"
            ))
        })
}

/// Explains accounts, as `changeling explain --json` and its text do; see
/// `changeling.explain`. Returns, per account, its explanation as JSON
/// text and as the CLI's text.
#[pyfunction]
#[pyo3(signature = (data, actors, rules=None, *, around=None, window=None, all=false, pivots=20, time_unit=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn explain(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    actors: Vec<String>,
    rules: Option<Paths>,
    around: Option<String>,
    window: Option<String>,
    all: bool,
    pivots: usize,
    time_unit: Option<String>,
    threads: Option<usize>,
) -> PyResult<Vec<(String, String)>> {
    let time_unit = time_unit_of(time_unit)?;
    let around = around.map(|a| time_of("around", &a)).transpose()?;
    let window = match window {
        Some(w) => changeling::time::parse_duration(&w).map_err(|e| PyValueError::new_err(format!("window: {e}")))?,
        None => changeling::explain::Options::default().window,
    };
    let opts = changeling::explain::Options { around, window, all, max_pivots: pivots };
    let data = DataArg::of(data)?;
    let loaded = load(Paths::into_vec(rules))?;
    let pool = pool(threads)?;
    py.detach(|| {
        pool.install(|| -> PyResult<Vec<(String, String)>> {
            let ds = data.open(&ReadOptions { time_unit, ..ReadOptions::default() })?;
            let explainer = changeling::explain::Explainer::new(&loaded.plan, &ds);
            let cx = Context::new(&loaded.plan, &loaded.info, &ds.strings);
            actors
                .iter()
                .map(|actor| {
                    let x = explainer.explain(actor, &opts).map_err(|e| DataError::new_err(e.to_string()))?;
                    let json = serde_json::to_string(&changeling::explain::to_json(&x, cx))
                        .map_err(|e| ChangelingError::new_err(e.to_string()))?;
                    // As the CLI prints it: values from the data made safe
                    // for a terminal (a notebook's output is one too).
                    let text = changeling::explain::render(&x, &loaded.plan);
                    Ok((json, changeling::terminal::for_terminal(&text).into_owned()))
                })
                .collect()
        })
    })
}

/// One side of a diff: alerts, or rules to score the data with.
enum DiffSide {
    Alerts(AlertsArg),
    Rules(PathBuf),
}

impl DiffSide {
    /// Rules when `v` is `builtin`, a directory or a `.toml` file, as the
    /// CLI's `diff` decides.
    fn of(v: &Bound<'_, PyAny>, what: &str) -> PyResult<DiffSide> {
        Ok(match AlertsArg::of(v, what)? {
            AlertsArg::File(p)
                if p.as_os_str() == changeling::rules::embedded::BUILTIN
                    || p.is_dir()
                    || p.extension().is_some_and(|e| e == "toml") =>
            {
                DiffSide::Rules(p)
            }
            a => DiffSide::Alerts(a),
        })
    }
}

/// A side's alerts, its tiers when it is rules, and its name: the CLI's
/// `diff` sides, a table named `<old>` or `<new>`.
fn diff_side(
    side: &DiffSide,
    which: &str,
    data: Option<&DataArg>,
    time_unit: Option<changeling::time::TimeUnit>,
) -> PyResult<(Vec<ReadAlert>, Option<Vec<String>>, String)> {
    let rules = match side {
        DiffSide::Alerts(a) => {
            let alerts = a.read(&format!("<{which}>")).map_err(|e| EvalError::new_err(e.to_string()))?;
            let name = match a {
                AlertsArg::File(p) => p.display().to_string(),
                AlertsArg::Table(_) => format!("the {which} alerts"),
            };
            return Ok((alerts, None, name));
        }
        DiffSide::Rules(p) => p,
    };
    let Some(data) = data else {
        return Err(PyValueError::new_err(format!(
            "{which}: {} is rules: give data to score them on",
            rules.display()
        )));
    };
    let loaded = load(Some(vec![rules.clone()]))?;
    let read = ReadOptions { projection: Some(loaded.plan.projection()), time_unit, ..ReadOptions::default() };
    let (accounts, strings) = match data.clone() {
        DataArg::Tables(t) => {
            let ds = Dataset::from_arrow(t, &read).map_err(|e| DataError::new_err(e.to_string()))?;
            (Scorer::new(&loaded.plan, &ds).run(), ds.strings.clone())
        }
        DataArg::Dir(d) => {
            let opts = RunOptions {
                read,
                memory: run::default_memory(),
                tmp: std::env::temp_dir(),
                force_partitions: None,
                force_split_before_scoring: false,
            };
            let out = run::run(&d, &loaded.plan, &opts, &RunProgress::default())
                .map_err(|e| DataError::new_err(format!("scoring {} with {}: {e}", d.display(), rules.display())))?;
            let accounts =
                out.incidents.into_vec().map_err(|e| DataError::new_err(format!("reading incidents back: {e}")))?;
            (accounts, out.strings)
        }
    };
    // As the CLI: written as JSON Lines and read back, so that both sides
    // are alerts as read.
    let mut bytes = Vec::new();
    let cx = Context::new(&loaded.plan, &loaded.info, &strings);
    alerts::write_jsonl(&mut bytes, &accounts, cx).map_err(|e| ChangelingError::new_err(e.to_string()))?;
    let alerts = read::parse_jsonl(std::path::Path::new("<scored>"), bytes.as_slice())
        .map_err(|e| ChangelingError::new_err(e.to_string()))?;
    let tiers = loaded.plan.config.tiers.iter().map(|t| t.name.clone()).collect();
    let name = if rules.as_os_str() == changeling::rules::embedded::BUILTIN {
        "the built-in rules".to_string()
    } else {
        format!("the rules in {}", rules.display())
    };
    Ok((alerts, Some(tiers), name))
}

/// Compares two sides (alerts files or tables, or rules scored on
/// `data`), as `changeling diff --json` and its text do; see
/// `changeling.diff`. Returns the diff as JSON text and as the CLI's text.
#[pyfunction]
#[pyo3(signature = (old, new, data=None, rules=None, *, slack=None, time_unit=None, max_hits=12, threads=None))]
#[allow(clippy::too_many_arguments)]
fn diff(
    py: Python<'_>,
    old: &Bound<'_, PyAny>,
    new: &Bound<'_, PyAny>,
    data: Option<&Bound<'_, PyAny>>,
    rules: Option<Paths>,
    slack: Option<String>,
    time_unit: Option<String>,
    max_hits: usize,
    threads: Option<usize>,
) -> PyResult<(String, String)> {
    let time_unit = time_unit_of(time_unit)?;
    let slack = slack_of(slack)?;
    let (old, new) = (DiffSide::of(old, "old")?, DiffSide::of(new, "new")?);
    let data = data.map(DataArg::of).transpose()?;
    let rules = Paths::into_vec(rules);
    let pool = pool(threads)?;
    py.detach(|| {
        pool.install(|| -> PyResult<(String, String)> {
            let (old_alerts, old_tiers, old_name) = diff_side(&old, "old", data.as_ref(), time_unit)?;
            let (new_alerts, new_tiers, new_name) = diff_side(&new, "new", data.as_ref(), time_unit)?;
            let tiers = match (old_tiers, new_tiers) {
                (Some(t), _) | (None, Some(t)) => t,
                (None, None) => match load(rules) {
                    Ok(l) => l.plan.config.tiers.iter().map(|t| t.name.clone()).collect(),
                    Err(_) => {
                        let mut both = old_alerts.clone();
                        both.extend(new_alerts.iter().cloned());
                        read::tiers_of(&both)
                    }
                },
            };
            // An alert of a tier the rules do not have would count as no
            // alert: refused, as `eval` and the CLI's `diff` do.
            for (alerts, name) in [(&old_alerts, &old_name), (&new_alerts, &new_name)] {
                if let Some(a) = alerts.iter().find(|a| !tiers.contains(&a.tier)) {
                    let e = eval::EvalError::UnknownAlertTier {
                        path: PathBuf::from(name),
                        line: a.line,
                        tier: a.tier.clone(),
                        tiers: tiers.clone(),
                    };
                    return Err(EvalError::new_err(e.to_string()));
                }
            }
            let truth = match data {
                Some(d) => {
                    let ds = d.open(&ReadOptions {
                        projection: Some(eval::projection()),
                        time_unit,
                        ..ReadOptions::default()
                    })?;
                    match ds.labels.is_some() {
                        true => Some(eval::Truth::from_dataset(&ds).map_err(|e| EvalError::new_err(e.to_string()))?),
                        false => None,
                    }
                }
                None => None,
            };
            let labels = truth.as_ref().map(|t| changeling::diff::Labels { truth: t, slack });
            let d = changeling::diff::diff(&old_alerts, &new_alerts, &tiers, labels.as_ref());
            let json = serde_json::to_string(&serde_json::json!({"old": old_name, "new": new_name, "diff": d}))
                .map_err(|e| ChangelingError::new_err(e.to_string()))?;
            let text = changeling::diff::render(&d, &old_name, &new_name, max_hits);
            Ok((json, changeling::terminal::for_terminal(&text).into_owned()))
        })
    })
}

/// Measures a grid of settings of the rules on labelled datasets, each
/// read once, as `changeling sweep` does; see `changeling.sweep`. Returns
/// JSON text: the tiers, the passes, and per setting its values (TOML
/// text, in grid order), each dataset's summary, the worst of them, and
/// whether it is on the Pareto front at each tier.
#[pyfunction]
#[pyo3(signature = (data, grid, rules=None, *, slack=None, time_unit=None, threads=None))]
fn sweep(
    py: Python<'_>,
    data: Vec<Bound<'_, PyAny>>,
    grid: Vec<(String, Vec<String>)>,
    rules: Option<Paths>,
    slack: Option<String>,
    time_unit: Option<String>,
    threads: Option<usize>,
) -> PyResult<String> {
    use changeling::rules::overrides::Assignment;
    use changeling::tune::{self, Grid, Summary};
    let time_unit = time_unit_of(time_unit)?;
    let slack = slack_of(slack)?;
    let data: Vec<DataArg> = data.iter().map(DataArg::of).collect::<PyResult<_>>()?;
    if data.is_empty() {
        return Err(PyValueError::new_err("data: give at least one labelled dataset"));
    }
    // Each value as `--set` takes it (TOML, or a bare word as a string).
    let axes = grid
        .into_iter()
        .map(|(path, values)| {
            let values = values
                .iter()
                .map(|v| Assignment::new(&path, v).map(|a| a.value))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PyValueError::new_err(format!("grid: {path}: {e}")))?;
            Ok((path, values))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let grid = Grid::new(axes).map_err(PyValueError::new_err)?;
    let settings = grid.settings();
    let layers = layers_of(Paths::into_vec(rules))?;
    // Every setting loaded; the errors of those that do not load, each
    // distinct diagnostic once, as the CLI prints them.
    let mut plans = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (i, o) in settings.iter().enumerate() {
        match layers::load(&layers, o) {
            (Some(set), _) => plans.push(Plan::compile(&set)),
            (None, diags) => {
                for d in diags.sorted().into_iter().filter(|d| d.is_error()) {
                    let text = d.render();
                    if !errors.contains(&text) {
                        errors.push(text);
                    }
                }
                let values: Vec<String> = o.assignments.iter().map(|a| a.text()).collect();
                failed.push(format!("#{} ({})", i + 1, values.join(" ")));
            }
        }
    }
    if !failed.is_empty() {
        return Err(RulesError::new_err(format!(
            "{}\nrules in {} do not load under {} of {} settings: {}",
            errors.join("\n"),
            layers::describe(&layers),
            failed.len(),
            settings.len(),
            failed.join(", ")
        )));
    }
    let pool = pool(threads)?;
    py.detach(|| {
        pool.install(|| -> PyResult<String> {
            let projection =
                tune::union(plans.iter().map(Plan::projection).chain([eval::projection()]));
            let refs: Vec<&Plan> = plans.iter().collect();
            let mut summaries: Vec<Vec<Summary>> = plans.iter().map(|_| Vec::new()).collect();
            let mut notes: Vec<String> = Vec::new();
            for d in data {
                let loaded = match d {
                    DataArg::Dir(dir) => tune::Loaded::read(
                        &dir,
                        projection.clone(),
                        time_unit,
                        &changeling::data::ReadProgress::default(),
                    )
                    .map_err(|e| DataError::new_err(format!("reading dataset {}: {e}", dir.display())))?,
                    DataArg::Tables(t) => {
                        let opts = ReadOptions { projection: Some(projection.clone()), time_unit, ..ReadOptions::default() };
                        let data = Dataset::from_arrow(t, &opts).map_err(|e| DataError::new_err(e.to_string()))?;
                        let truth = eval::Truth::from_dataset(&data).map_err(|e| EvalError::new_err(e.to_string()))?;
                        let days = eval::account_days(&data);
                        tune::Loaded { data, truth, days, notes: Vec::new() }
                    }
                };
                let scored = tune::score_plans(&loaded.data, &refs, &std::sync::atomic::AtomicU64::new(0));
                for (s, (plan, scored)) in plans.iter().zip(&scored).enumerate() {
                    let report = tune::evaluate(&loaded, plan, scored, slack, None)
                        .map_err(|e| EvalError::new_err(e.to_string()))?;
                    for n in &report.notes {
                        if !notes.contains(n) {
                            notes.push(n.clone());
                        }
                    }
                    summaries[s].push(Summary::of(&report));
                }
            }
            let worst: Vec<Summary> = summaries.iter().map(|s| Summary::worst(s)).collect();
            let tiers = worst.first().map(|w| w.tiers.clone()).unwrap_or_default();
            // fronts[t][i]: setting i is on the Pareto front at tier t.
            let fronts = tune::fronts(&worst, tiers.len());
            let out = serde_json::json!({
                "tiers": tiers,
                "parameters": grid.axes.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                "passes": tune::passes(&refs),
                "notes": notes,
                "settings": settings.iter().zip(&summaries).zip(&worst).enumerate().map(|(i, ((o, each), worst))| serde_json::json!({
                    "values": o.assignments.iter().map(|a| a.value.clone()).collect::<Vec<_>>(),
                    "worst": worst,
                    "datasets": each,
                    "front": fronts.iter().map(|f| f[i]).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string(&out).map_err(|e| ChangelingError::new_err(e.to_string()))
        })
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
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
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
