"""changeling: account-compromise heuristics over activity logs, from Python.

The engine is the Rust library the ``changeling`` CLI is built on; data
crosses over Arrow (the C data interface), and answers and error messages
are the CLI's. Tables go in as anything with ``__arrow_c_stream__``: a
``pyarrow.Table``, a pandas (2.2 or later) or polars DataFrame, a record
batch reader. Tables come out as ``pyarrow.Table`` (``.to_pandas()``,
``polars.from_arrow``).

- :func:`score` scores a dataset directory or a dict of tables and returns
  the alerts (with ``stats=True``, beside the run's stats: skipped records
  per table, the per-rule summary).
- :func:`hits` flattens alerts into one row per hit.
- :func:`explain` gives accounts' timelines with every rule's decision.
- :func:`eval` measures alerts (a file or a table) against labels.
- :func:`diff` compares two alert sets, or two rule sets on one dataset.
- :func:`sweep` measures a grid of rule parameters against labels.
- :func:`check` checks rules and returns their diagnostics.
- :func:`write_jsonl` writes alerts as JSON Lines, byte for byte as the
  CLI does.
- :mod:`changeling.spark` runs the engine as a Spark job.

Every error is a :class:`ChangelingError`: :class:`RulesError`,
:class:`DataError`, :class:`EvalError`, or :class:`ArgumentError` (an
argument that is not valid; also a ``ValueError``), with the CLI's
messages. See python/README.md for a notebook-style tour.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import itertools
import json
import os
import warnings
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    TypeVar,
    Union,
    cast,
    overload,
)

from . import _native
from ._native import ChangelingError, DataError, EvalError, RulesError

__all__ = [
    "score",
    "hits",
    "explain",
    "check",
    "eval",
    "diff",
    "sweep",
    "write_jsonl",
    "sort_alerts",
    "alerts_schema",
    "Scored",
    "Stats",
    "Explanation",
    "Diff",
    "ChangelingError",
    "RulesError",
    "DataError",
    "EvalError",
    "ArgumentError",
]

PathLike = Union[str, "os.PathLike[str]"]
Rules = Union[None, PathLike, Sequence[PathLike]]
#: A table: a ``pyarrow.Table``, RecordBatch or RecordBatchReader, a list
#: of record batches, or anything with ``__arrow_c_stream__`` (a pandas or
#: polars DataFrame).
TableLike = Any
#: A dataset: a directory laid out as the data contract says, or a dict
#: from table name (``events``, ``items``, ``follows``, ``accounts``,
#: ``impressions``, ``labels``) to a table.
Data = Union[PathLike, Mapping[str, TableLike]]


class ArgumentError(ChangelingError, ValueError):
    """An argument that is not valid (a tier, a table name, a duration, a
    value of the wrong type). Also a ``ValueError``, as such errors were
    before there was this class."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _errors(f: _F) -> _F:
    """Makes every error of ``f`` a :class:`ChangelingError`: a
    ``TypeError``, ``ValueError`` or ``OverflowError`` (of an argument, or
    of Arrow converting it) becomes an :class:`ArgumentError`, an
    ``OSError`` (writing a file) a :class:`ChangelingError`; the original
    is the new one's ``__cause__``."""

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ChangelingError:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise ArgumentError(str(e)) from e
        except OSError as e:
            raise ChangelingError(str(e)) from e

    return cast(_F, wrapped)


def _rules(rules: Rules) -> Union[None, str, List[str]]:
    if rules is None:
        return None
    if isinstance(rules, (str, os.PathLike)):
        return os.fspath(rules)
    return [os.fspath(r) for r in rules]


def _table(value: TableLike) -> Any:
    """A value the engine takes as a table: anything with
    ``__arrow_c_stream__`` as it is; a pyarrow RecordBatch or a list of
    them as a table."""
    import pyarrow as pa

    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, list):
        return pa.Table.from_batches(value)
    return value


def _data(data: Data) -> Any:
    if isinstance(data, Mapping):
        return {k: _table(v) for k, v in data.items()}
    return os.fspath(data)


def _alerts(alerts: Any) -> Any:
    """Alerts as the engine takes them: a path, or a table (a
    :class:`Scored` gives its alerts)."""
    if isinstance(alerts, Scored):
        return alerts.alerts
    if isinstance(alerts, (str, os.PathLike)):
        return os.fspath(alerts)
    return _table(alerts)


@dataclasses.dataclass(frozen=True)
class Stats:
    """What a :func:`score` run read and found: the keys of ``changeling
    score --json``'s summary that a run from Python has (not its timings),
    and the first skipped records of each table."""

    #: The dataset directory, or ``"the tables given"``.
    data: str
    #: The rules, as the CLI names them (``builtin``).
    rules: str
    #: Events scored (after dropping duplicates).
    events: int
    #: Records skipped as bad, per table read.
    skipped: Dict[str, int]
    #: The first skipped records of each table: where and why.
    skipped_samples: Dict[str, List[str]]
    #: Exact duplicate events dropped.
    duplicates: int
    #: Each table's first and last time (RFC 3339): ``{"first", "last"}``.
    time_span: Dict[str, Dict[str, str]]
    #: Accounts with events.
    accounts: int
    #: Accounts with an incident in the alerts.
    accounts_flagged: int
    #: Incidents in the alerts.
    incidents_written: int
    #: Incidents before ``min_tier``.
    incidents_before_filters: int
    #: Incidents in the alerts, per tier (highest first).
    incidents_per_tier: Dict[str, int]
    #: Per rule, over the alerts: ``rule``, ``severity``, ``hits``,
    #: ``accounts``, ``incidents`` (per tier); every rule, by plan order.
    per_rule: List[Dict[str, Any]]
    #: Notes of the run (a signal abstaining on this dataset, say).
    notes: List[str]
    #: Per exception applied: ``exception``, ``on``, ``rules``, ``reason``,
    #: ``expires`` and the ``hits`` it suppressed; ``None`` without
    #: exceptions.
    exceptions: Optional[List[Dict[str, Any]]] = None
    #: Warnings of loading the rules and exceptions (an exception expired).
    warnings: List[str] = dataclasses.field(default_factory=list)
    #: With ``campaigns=True``: each campaign's ``id``, ``members``,
    #: ``items``, ``span`` and ``tiers`` (its incidents per tier), as
    #: ``score --campaigns --json`` lists them; else ``None``.
    campaigns: Optional[List[Dict[str, Any]]] = None

    def per_rule_table(self) -> Any:
        """The per-rule summary as a ``pyarrow.Table``, one row per rule,
        with an ``incidents <tier>`` column per tier."""
        import pyarrow as pa

        rows = []
        for r in self.per_rule:
            row = {k: v for k, v in r.items() if k != "incidents"}
            row.update({f"incidents {t}": n for t, n in r["incidents"].items()})
            rows.append(row)
        return pa.Table.from_pylist(rows)


class Scored(NamedTuple):
    """A run's alerts and stats: ``alerts, stats = score(..., stats=True)``."""

    #: The alerts, as :func:`score` returns them without ``stats``.
    alerts: Any
    #: What the run read and found.
    stats: Stats


@overload
def score(
    data: Data,
    rules: Rules = ...,
    *,
    min_tier: Optional[str] = ...,
    memory: Optional[str] = ...,
    strict: bool = ...,
    threads: Optional[int] = ...,
    state: Optional[PathLike] = ...,
    emit: str = ...,
    time_unit: Optional[str] = ...,
    exceptions: Rules = ...,
    campaigns: bool = ...,
    stats: Literal[False] = ...,
) -> Any: ...


@overload
def score(
    data: Data,
    rules: Rules = ...,
    *,
    min_tier: Optional[str] = ...,
    memory: Optional[str] = ...,
    strict: bool = ...,
    threads: Optional[int] = ...,
    state: Optional[PathLike] = ...,
    emit: str = ...,
    time_unit: Optional[str] = ...,
    exceptions: Rules = ...,
    campaigns: bool = ...,
    stats: Literal[True],
) -> Scored: ...


@_errors
def score(
    data: Data,
    rules: Rules = None,
    *,
    min_tier: Optional[str] = None,
    memory: Optional[str] = None,
    strict: bool = False,
    threads: Optional[int] = None,
    state: Optional[PathLike] = None,
    emit: str = "changes",
    time_unit: Optional[str] = None,
    exceptions: Rules = None,
    campaigns: bool = False,
    stats: bool = False,
) -> Union[Any, Scored]:
    """Scores a dataset and returns its alerts as a ``pyarrow.Table``; with
    ``stats=True``, a :class:`Scored` ``(alerts, stats)``.

    ``data`` is a dataset directory (``events.jsonl.zst``, ``items.parquet``,
    ... as the data contract lays them out) or a dict from table name
    (``events``, ``items``, ``follows``, ``accounts``, ``impressions``) to a
    table: a ``pyarrow.Table``, a pandas or polars DataFrame (anything with
    ``__arrow_c_stream__``), a record batch, a record batch reader or a
    list of batches. Tables are read as Parquet columns of the same types
    are (timestamps of any unit and zone, integer ids as their decimal
    text). ``rules`` is ``None`` ($CHANGELING_RULES, else the built-in
    rules), ``"builtin"``, a rules directory or file, or a list of them
    stacked as ``--rules`` does. ``min_tier``, ``memory`` (``"2GiB"``),
    ``strict`` and ``threads`` are the CLI's flags of the same names
    (``memory`` and the spill to disk apply to a directory only), and so is
    ``time_unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``: the unit of
    numeric times; by default milliseconds, and times that fall in 1970
    raise :class:`DataError` saying they look like seconds).

    Bad records are skipped (``strict=True`` stops at the first, raising
    :class:`DataError`): ``stats=True`` says how many per table, and the
    first of them, as the CLI's summary does, with the per-rule summary.

    With ``state`` (a directory, as ``score --state``), ``data`` is a
    batch directory: it is scored against the state the previous run left
    (none: the first run), the alerts are the incidents it made new or
    changed (``emit="changes"``, withdrawn ones included) or every
    incident not yet final (``emit="open"``), and the next state is written
    before the table is returned. The state's files are the CLI's: the CLI
    and Python can take turns on one state.

    ``exceptions`` is an exceptions file (TOML ``[[exception]]`` tables, as
    ``--exceptions`` takes) or a list of them, layered in order; ``None``:
    those of $CHANGELING_EXCEPTIONS, if any. A suppressed hit is left out of
    the alerts and counted per exception (``stats=True``: ``exceptions``);
    an expired exception warns (:class:`UserWarning`); a malformed file
    raises :class:`RulesError` naming its file, line and column.

    ``campaigns=True`` (``--campaigns``) groups incidents of several
    accounts that share lockstep items into campaigns: each member's alert
    names its campaign (``campaign``), and ``stats=True`` lists them
    (``campaigns``: id, members, items, span, tiers). A run with ``state``
    does not group them, as the CLI's does not.

    Alerts are in the contract's order (actor, then start), one row per
    incident, ``hits`` a list of structs (:func:`hits` flattens them).
    """
    table, stats_text = _native.score(
        _data(data),
        _rules(rules),
        min_tier=min_tier,
        memory=memory,
        strict=strict,
        threads=threads,
        time_unit=time_unit,
        state=None if state is None else os.fspath(state),
        emit=emit,
        exceptions=_rules(exceptions),
        campaigns=campaigns,
    )
    summary = Stats(**json.loads(stats_text))
    for text in summary.warnings:
        warnings.warn(text, stacklevel=3)
    if not stats:
        return table
    return Scored(table, summary)


#: The columns of :func:`hits`: those of ``score --csv-rows hit``.
_INCIDENT_COLUMNS = ["actor", "start", "end", "score", "tier", "id", "status", "final_after", "campaign", "families"]
_HIT_COLUMNS = [
    "rule",
    "title",
    "severity",
    "tags",
    "version",
    "ts",
    "action",
    "target",
    "strength",
    "effect",
    "signals",
    "why",
]


@_errors
def hits(alerts: Union[TableLike, Scored]) -> Any:
    """Alerts flattened: one row per hit, with its incident's fields, as a
    ``pyarrow.Table`` in the columns of ``changeling score --csv-rows hit``
    (``actor, incident_start, incident_end, score, tier, id, status,
    final_after, campaign, families``, then the hit's ``rule, title,
    severity, tags, version, ts, action, target, strength, effect, signals,
    why``), in the alerts' order and each incident's hit order. Lists stay
    lists. ``alerts`` is a table of alerts (as :func:`score` returns them,
    or after pandas or polars) or a :class:`Scored`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = _alerts(alerts)
    if not isinstance(t, pa.Table):
        t = pa.table(t)
    nested = t.column("hits")
    parents = pc.list_parent_indices(nested)
    flat = pc.list_flatten(nested)
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks() if flat.num_chunks else pa.array([], nested.type.value_type)
    incident = t.select(_INCIDENT_COLUMNS).take(parents)
    names = {"start": "incident_start", "end": "incident_end"}
    columns = {names.get(c, c): incident.column(c) for c in _INCIDENT_COLUMNS}
    for name in _HIT_COLUMNS:
        columns[name] = flat.field(name)
    return pa.table(columns)


class _Rendered(dict):  # type: ignore[type-arg]
    """The data of a command's ``--json``, as a dict; ``text`` (and
    ``str()``, ``print``) is the CLI's text."""

    text: str

    def __init__(self, data: Dict[str, Any], text: str) -> None:
        super().__init__(data)
        self.text = text

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)


class Explanation(_Rendered):
    """One account explained: the data of ``changeling explain --json``
    (``actor``, ``events``, ``from``, ``to``, ``incidents`` as ``score``
    writes them, ``timeline`` with every rule's decision on each event
    shown, ``pivots``), as a dict; ``text`` (and ``str()``, ``print``) is
    the CLI's text."""


class Diff(_Rendered):
    """Two alert sets compared: the data of ``changeling diff --json``
    (``old``, ``new``: the sides' names; ``diff``: accounts whose tier
    moved and the hits that explain it, label deltas when the data has
    labels), as a dict; ``text`` (and ``str()``, ``print``) is the CLI's
    text."""


def _time(t: Union[None, str, int, _dt.datetime, _dt.date]) -> Optional[str]:
    """A time as the CLI's ``--around`` takes it; a naive datetime is UTC."""
    if t is None:
        return None
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return t.isoformat()
    if isinstance(t, _dt.date):
        return t.isoformat()
    if isinstance(t, bool):
        raise ArgumentError(f"around: {t!r} is not a time")
    if isinstance(t, int):
        return str(t)
    return t


@overload
def explain(
    data: Data,
    actor: str,
    rules: Rules = ...,
    *,
    around: Union[None, str, int, _dt.datetime, _dt.date] = ...,
    window: str = ...,
    all: bool = ...,
    pivots: int = ...,
    time_unit: Optional[str] = ...,
    threads: Optional[int] = ...,
) -> Explanation: ...


@overload
def explain(
    data: Data,
    actor: Sequence[str],
    rules: Rules = ...,
    *,
    around: Union[None, str, int, _dt.datetime, _dt.date] = ...,
    window: str = ...,
    all: bool = ...,
    pivots: int = ...,
    time_unit: Optional[str] = ...,
    threads: Optional[int] = ...,
) -> List[Explanation]: ...


@_errors
def explain(
    data: Data,
    actor: Union[str, Sequence[str]],
    rules: Rules = None,
    *,
    around: Union[None, str, int, _dt.datetime, _dt.date] = None,
    window: str = "2h",
    all: bool = False,
    pivots: int = 20,
    time_unit: Optional[str] = None,
    threads: Optional[int] = None,
) -> Union[Explanation, List[Explanation]]:
    """Explains an account (``actor`` a str: one :class:`Explanation`) or
    several (a list: one each, the dataset read once), as ``changeling
    explain`` does: the account's timeline with every rule's decision on
    each event, the hits, the near misses and the accounts to pivot to.

    ``data`` is a dataset directory or a dict of tables, as for
    :func:`score`. ``around`` (RFC 3339 text, a date, a ``datetime``, or
    epoch milliseconds) shows every event within ``window`` of it with
    every decision; ``all`` shows every event; ``pivots`` caps the accounts
    to pivot to per lockstep rule. An account without events raises
    :class:`DataError` (with a close id, if any)."""
    one = isinstance(actor, str)
    actors = [actor] if isinstance(actor, str) else list(actor)
    out = _native.explain(
        _data(data),
        actors,
        _rules(rules),
        around=_time(around),
        window=window,
        all=all,
        pivots=pivots,
        time_unit=time_unit,
        threads=threads,
    )
    explained = [Explanation(json.loads(j), text) for j, text in out]
    return explained[0] if one else explained


@_errors
def check(rules: Rules = None) -> Dict[str, Any]:
    """Checks rules as ``changeling check`` does.

    Returns ``{"ok": bool, "rules": n, "errors": n, "diagnostics": text}``,
    the diagnostics rendered as the CLI prints them (code, message, caret).
    A rules path that does not exist raises :class:`RulesError`.
    """
    return cast(Dict[str, Any], _native.check(_rules(rules)))


@_errors
def eval(
    alerts: Union[PathLike, TableLike, Scored],
    data: Data,
    rules: Rules = None,
    *,
    slack: str = "1h",
    tier: Optional[str] = None,
    time_unit: Optional[str] = None,
) -> Dict[str, Any]:
    """Measures alerts against the labels of a dataset, as ``changeling
    eval --alerts`` does; returns the report (the CLI's ``--json`` report)
    as a dict.

    ``alerts`` is an alerts file (JSON Lines, Parquet or CSV, by its name),
    or a table of alerts: as :func:`score` returns it, a :class:`Scored`,
    or after a trip through pandas or polars (a filtered DataFrame, say).
    ``data`` is a dataset directory or a dict of tables with a ``labels``
    table. Tiers come from ``rules``; ``slack`` widens each labelled
    compromise window; ``tier`` is the tier of the report's rule table
    (default: the highest)."""
    text = _native.eval_report(_alerts(alerts), _data(data), _rules(rules), slack, tier, time_unit)
    return cast(Dict[str, Any], json.loads(text))


@_errors
def diff(
    old: Union[PathLike, TableLike, Scored],
    new: Union[PathLike, TableLike, Scored],
    data: Optional[Data] = None,
    rules: Rules = None,
    *,
    slack: str = "1h",
    time_unit: Optional[str] = None,
    max_hits: int = 12,
    threads: Optional[int] = None,
) -> Diff:
    """Compares two sides, as ``changeling diff`` does: the accounts whose
    tier moved and the hits that explain it, and with labelled ``data``
    which moves were right.

    Each side is alerts (a file, or a table as :func:`score` returns it, or
    a :class:`Scored`), or rules (``"builtin"``, a directory or a ``.toml``
    file) scored on ``data`` (a directory or a dict of tables). Alert
    sides take their tiers from ``rules`` (default: builtin); a rules side
    from itself. ``max_hits`` caps the hit lines per account in the text.
    """
    js, text = _native.diff(
        _alerts(old),
        _alerts(new),
        None if data is None else _data(data),
        _rules(rules),
        slack=slack,
        time_unit=time_unit,
        max_hits=max_hits,
        threads=threads,
    )
    return Diff(json.loads(js), text)


def _toml(v: Any) -> str:
    """A value as ``--set`` takes it: TOML text (a str is given as is, so a
    bare word such as ``6h`` is a string)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(json.dumps(x) if isinstance(x, str) else _toml(x) for x in v) + "]"
    raise ArgumentError(f"{v!r}: give a str, number, bool or list")


@_errors
def sweep(
    data: Union[Data, Sequence[Data]],
    grid: Mapping[str, Sequence[Any]],
    rules: Rules = None,
    *,
    slack: str = "1h",
    time_unit: Optional[str] = None,
    threads: Optional[int] = None,
) -> Any:
    """Measures every setting of a grid of rule and engine parameters on
    labelled datasets, each read once, as ``changeling sweep`` does, and
    returns a ``pyarrow.Table`` with one row per setting.

    ``grid`` maps a parameter path (``<rule id>.<signal kind>.<param>``,
    ``<rule id>.hit.<key>``, ``tier.high.min_score``: as ``--set``) to the
    values to try (numbers, bools, lists, or str as ``--set`` takes them:
    ``"6h"``); every combination is one setting, the first parameter
    varying slowest. ``data`` is a labelled dataset (directory or dict of
    tables) or a list of them: each figure is then the worst across them.

    Columns: ``setting`` (from 1), one per parameter (its value), then per
    tier ``precision <tier>``, ``recall <tier>``, ``benign <tier>`` (benign
    accounts flagged at that tier or higher), ``fp_per_million`` (at the
    highest tier, per million benign account-days), ``roc_auc``,
    ``pr_auc``, and ``front <tier>``: on the Pareto front of recall against
    benign accounts flagged at that tier."""
    import pyarrow as pa

    many = isinstance(data, (list, tuple))
    datasets = [_data(d) for d in cast(Sequence[Data], data)] if many else [_data(cast(Data, data))]
    paths = list(grid)
    values = [list(grid[p]) for p in paths]
    out = json.loads(
        _native.sweep(
            datasets,
            [(p, [_toml(v) for v in vs]) for p, vs in zip(paths, values)],
            _rules(rules),
            slack=slack,
            time_unit=time_unit,
            threads=threads,
        )
    )
    settings = out["settings"]
    tiers = out["tiers"]
    combos = list(itertools.product(*values))
    columns: Dict[str, List[Any]] = {"setting": list(range(1, len(settings) + 1))}
    for i, p in enumerate(paths):
        columns[p] = [c[i] for c in combos]
    for key, name in (("precision", "precision"), ("recall", "recall"), ("benign_flagged", "benign")):
        for t, tier in enumerate(tiers):
            columns[f"{name} {tier}"] = [s["worst"][key][t] for s in settings]
    columns["fp_per_million"] = [s["worst"]["fp_per_million_account_days"] for s in settings]
    columns["roc_auc"] = [s["worst"]["roc_auc"] for s in settings]
    columns["pr_auc"] = [s["worst"]["pr_auc"] for s in settings]
    for t, tier in enumerate(tiers):
        columns[f"front {tier}"] = [s["front"][t] for s in settings]
    return pa.table(columns)


def alerts_schema() -> Any:
    """The ``pyarrow.Schema`` of alerts (that of ``--out alerts.parquet``)."""
    return _native.alerts_schema()


def sort_alerts(table: Any) -> Any:
    """Alerts in the contract's order: by actor, then start (then end)."""
    return table.sort_by([("actor", "ascending"), ("start", "ascending"), ("end", "ascending")])


@_errors
def write_jsonl(table: Union[TableLike, Scored], path: Optional[PathLike] = None) -> bytes:
    """Alerts (a table of the alerts schema, in the order to write) as JSON
    Lines, byte for byte as ``changeling score --out x.jsonl`` writes them.
    Writes them to ``path`` when given; returns the bytes. Alerts that went
    through polars or pandas (large strings, other time units) are cast
    back to the alerts schema first."""
    import pyarrow as pa

    t = _alerts(table)
    if not isinstance(t, pa.Table):
        t = pa.table(t)
    schema = alerts_schema()
    if t.schema != schema and set(schema.names) <= set(t.column_names):
        t = t.select(schema.names).cast(schema)
    out = cast(bytes, _native.alerts_jsonl(t))
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(out)
    return out
