"""Type stubs of ``changeling._native``, the engine's private half (the
Rust extension). The public API is ``changeling``; see its docstrings."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

_Paths = Union[str, Sequence[str], None]

class ChangelingError(Exception): ...
class RulesError(ChangelingError): ...
class DataError(ChangelingError): ...
class EvalError(ChangelingError): ...

def score(
    data: Any,
    rules: _Paths = None,
    *,
    min_tier: Optional[str] = None,
    memory: Optional[str] = None,
    strict: bool = False,
    threads: Optional[int] = None,
    time_unit: Optional[str] = None,
    state: Optional[str] = None,
    emit: Optional[str] = None,
    exceptions: _Paths = None,
    campaigns: bool = False,
) -> Tuple[pa.Table, str]: ...
def check(rules: _Paths = None) -> Dict[str, Any]: ...
def eval_report(
    alerts: Any,
    data: Any,
    rules: _Paths = None,
    slack: Optional[str] = None,
    tier: Optional[str] = None,
    time_unit: Optional[str] = None,
) -> str: ...
def explain(
    data: Any,
    actors: List[str],
    rules: _Paths = None,
    *,
    around: Optional[str] = None,
    window: Optional[str] = None,
    all: bool = False,
    pivots: int = 20,
    time_unit: Optional[str] = None,
    threads: Optional[int] = None,
) -> List[Tuple[str, str]]: ...
def diff(
    old: Any,
    new: Any,
    data: Any = None,
    rules: _Paths = None,
    *,
    slack: Optional[str] = None,
    time_unit: Optional[str] = None,
    max_hits: int = 12,
    threads: Optional[int] = None,
) -> Tuple[str, str]: ...
def sweep(
    data: List[Any],
    grid: List[Tuple[str, List[str]]],
    rules: _Paths = None,
    *,
    slack: Optional[str] = None,
    time_unit: Optional[str] = None,
    threads: Optional[int] = None,
) -> str: ...
def alerts_jsonl(table: Any) -> bytes: ...
def alerts_schema() -> pa.Schema: ...

class Run:
    def __init__(self, data: str, rules: _Paths = None, strict: bool = False) -> None: ...
    def stream(self, chunk_rows: Optional[int] = None) -> Stream: ...

class Stream:
    def push(self, batch: pa.RecordBatch) -> List[pa.RecordBatch]: ...
    def finish(self) -> List[pa.RecordBatch]: ...

class Stages:
    def __init__(self, rules: _Paths = None, strict: bool = False) -> None: ...
    def part_facts(
        self, tables: Dict[str, Any], part: int
    ) -> Tuple[pa.RecordBatch, pa.RecordBatch, pa.RecordBatch]: ...
    def merge(self, partials: List[pa.Table]) -> pa.RecordBatch: ...
    def answer(self, item_rows: pa.Table, questions: pa.Table) -> pa.RecordBatch: ...
    def score(
        self, tables: Dict[str, Any], aggregates: pa.Table, answers: pa.Table, part: int
    ) -> pa.Table: ...
