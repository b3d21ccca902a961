"""changeling: account-compromise heuristics over activity logs, from Python.

The engine is the Rust library the ``changeling`` CLI is built on; data
crosses over Arrow (the C data interface), and answers and error messages
are the CLI's.

- :func:`score` scores a dataset directory (the data contract's layout) or a
  dict of Arrow tables, and returns the alerts as a ``pyarrow.Table`` (the
  schema of ``changeling score --out alerts.parquet``).
- :func:`check` checks rules and returns their diagnostics.
- :func:`eval` measures an alerts file against a dataset's labels.
- :func:`write_jsonl` writes an alerts table as JSON Lines, byte for byte as
  the CLI does.
- :mod:`changeling.spark` runs the engine as a Spark job.

Errors are :class:`ChangelingError` (and its subclasses :class:`RulesError`,
:class:`DataError`, :class:`EvalError`), with the CLI's messages.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence, Union

from . import _native
from ._native import ChangelingError, DataError, EvalError, RulesError

__all__ = [
    "score",
    "check",
    "eval",
    "write_jsonl",
    "sort_alerts",
    "alerts_schema",
    "ChangelingError",
    "RulesError",
    "DataError",
    "EvalError",
]

PathLike = Union[str, "os.PathLike[str]"]
Rules = Union[None, PathLike, Sequence[PathLike]]


def _rules(rules: Rules):
    if rules is None:
        return None
    if isinstance(rules, (str, os.PathLike)):
        return os.fspath(rules)
    return [os.fspath(r) for r in rules]


def _table(value: Any):
    """A pyarrow table (or anything with ``__arrow_c_stream__``) from a
    table-like value: pyarrow Table, RecordBatch, RecordBatchReader or a
    list of record batches."""
    import pyarrow as pa

    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, list):
        return pa.Table.from_batches(value)
    return value


def score(
    data: Union[PathLike, Mapping[str, Any]],
    rules: Rules = None,
    *,
    min_tier: Optional[str] = None,
    memory: Optional[str] = None,
    strict: bool = False,
    threads: Optional[int] = None,
    state: Optional[PathLike] = None,
    emit: str = "changes",
    time_unit: Optional[str] = None,
):
    """Scores a dataset and returns its alerts as a ``pyarrow.Table``.

    ``data`` is a dataset directory (``events.jsonl.zst``, ``items.parquet``,
    ... as the data contract lays them out) or a dict from table name
    (``events``, ``items``, ``follows``, ``accounts``, ``impressions``) to a
    ``pyarrow.Table``, record batch, record batch reader or list of batches;
    tables are read as Parquet columns of the same types are (timestamps of
    any unit and zone, integer ids as their decimal text). ``rules`` is
    ``None`` ($CHANGELING_RULES, else the built-in rules), ``"builtin"``, a
    rules directory or file, or a list of them stacked as ``--rules`` does.
    ``min_tier``, ``memory`` (``"2GiB"``), ``strict`` and ``threads`` are
    the CLI's flags of the same names (``memory`` and the spill to disk
    apply to a directory only), and so is ``time_unit`` (``"s"``, ``"ms"``,
    ``"us"``, ``"ns"``: the unit of numeric times; by default milliseconds,
    and times that fall in 1970 raise :class:`DataError` saying they look
    like seconds).

    With ``state`` (a directory, as ``score --state``), ``data`` is a
    batch directory: it is scored against the state the previous run left
    (none: the first run), the alerts are the incidents it made new or
    changed (``emit="changes"``, withdrawn ones included) or every
    incident not yet final (``emit="open"``), and the next state is written
    before the table is returned. The state's files are the CLI's: the CLI
    and Python can take turns on one state.

    Alerts are in the contract's order (actor, then start), one row per
    incident, ``hits`` a list of structs.
    """
    if isinstance(data, Mapping):
        data = {k: _table(v) for k, v in data.items()}
    else:
        data = os.fspath(data)
    if state is not None:
        state = os.fspath(state)
    return _native.score(
        data,
        _rules(rules),
        min_tier=min_tier,
        memory=memory,
        strict=strict,
        threads=threads,
        time_unit=time_unit,
        state=state,
        emit=emit,
    )


def check(rules: Rules = None) -> dict:
    """Checks rules as ``changeling check`` does.

    Returns ``{"ok": bool, "rules": n, "errors": n, "diagnostics": text}``,
    the diagnostics rendered as the CLI prints them (code, message, caret).
    A rules path that does not exist raises :class:`RulesError`.
    """
    return _native.check(_rules(rules))


def eval(
    alerts: PathLike,
    data: PathLike,
    rules: Rules = None,
    *,
    slack: str = "1h",
    tier: Optional[str] = None,
    time_unit: Optional[str] = None,
) -> dict:
    """Measures an alerts file (JSON Lines or Parquet) against the labels of
    the dataset in ``data``, as ``changeling eval --alerts`` does; returns
    the report (the CLI's ``--json`` report) as a dict. Tiers come from
    ``rules``."""
    text = _native.eval_report(os.fspath(alerts), os.fspath(data), _rules(rules), slack, tier, time_unit)
    return json.loads(text)


def alerts_schema():
    """The ``pyarrow.Schema`` of alerts (that of ``--out alerts.parquet``)."""
    return _native.alerts_schema()


def sort_alerts(table):
    """Alerts in the contract's order: by actor, then start (then end)."""
    return table.sort_by([("actor", "ascending"), ("start", "ascending"), ("end", "ascending")])


def write_jsonl(table, path: Optional[PathLike] = None) -> bytes:
    """Alerts (a table of the alerts schema, in the order to write) as JSON
    Lines, byte for byte as ``changeling score --out x.jsonl`` writes them.
    Writes them to ``path`` when given; returns the bytes."""
    out = _native.alerts_jsonl(_table(table))
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(out)
    return out
