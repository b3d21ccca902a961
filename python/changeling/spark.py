"""changeling as a Spark job: alerts for events that live in Spark.

    from changeling.spark import score, write
    alerts = score(spark, {"events": events_df, "items": items_df,
                           "follows": follows_df, "impressions": impressions_df})
    write(alerts, "alerts.jsonl")      # byte for byte what the CLI writes

or, from a shell (the CLI's main flags)::

    spark-submit changeling/spark.py --data s3://.../dataset --out alerts/ --format parquet

How the work is laid out (see the README, "Spark"):

1. **Facts of the run.** Every signal that looks beyond one account (the
   population's label distribution and action rates, who liked or reposted
   an item when) reads facts computed over all events. In this first cut
   each Python worker computes them once, with the Rust engine, from the
   dataset directory (the DataFrames given are first staged there as
   Parquet by Spark's own distributed writer), and keeps them for every
   task it runs. The side tables (items, follows, accounts, impressions)
   come with them. This is correct but does not scale out: every worker
   reads every event once. Computing the facts as Spark stages (the item
   phase over item-partitioned data, ``ItemActors::answer`` in the
   engine) needs a wire format for the facts, which does not exist yet.
2. **Per-account phase.** The events are repartitioned by account and
   sorted by account and time, and each partition's Arrow batches stream
   through the Rust scorer (``mapInArrow``): it keeps the last account's
   rows until its id changes and scores complete accounts in chunks, bound
   to the facts like a partition of the CLI's partitioned run, so the
   incidents are the CLI's.
3. **Alerts** come back as a DataFrame in the contract's schema (the CLI's
   Parquet alerts schema, timestamps as Spark TIMESTAMP);
   :func:`write` sorts them in the contract's order and writes JSON Lines
   with the engine's writer (the CLI's bytes) or Parquet.

Timestamps: the engine's Arrow reader takes TIMESTAMP and TIMESTAMP_NTZ
columns of any unit (Spark hands over microseconds; without a zone the
value means UTC, as the data contract says), integer epoch milliseconds and
RFC 3339 strings, and truncates to milliseconds; ids of any integer type are
read as their decimal text. Account ids are cast to strings before the
partitioning sort, so that the sort is the engine's order.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from typing import Mapping, Optional, Sequence, Union

TABLES = ("events", "items", "follows", "accounts", "impressions")

#: The alerts schema as Spark DDL: the CLI's Parquet alerts schema.
ALERTS_DDL = (
    "actor string, start timestamp, end timestamp, score double, tier string, "
    "families array<struct<family:string,evidence:double>>, "
    "hits array<struct<rule:string,ts:timestamp,action:string,target:string,strength:double,"
    "why:string,effect:string,signals:array<string>,title:string,severity:string,"
    "tags:array<string>,version:bigint>>"
)

# Per Python worker: the facts of each run it has scored for, by
# (dataset, rules, strict). Spark reuses Python workers across tasks.
_RUNS: dict = {}


def _run(data_dir: str, rules, strict: bool):
    from changeling import _native

    key = (data_dir, tuple(rules) if isinstance(rules, list) else rules, strict)
    run = _RUNS.get(key)
    if run is None:
        run = _RUNS[key] = _native.Run(data_dir, rules, strict)
    return run


def alerts_schema():
    """The alerts schema as a Spark ``StructType`` (:data:`ALERTS_DDL`),
    built without a JVM (workers have none)."""
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    def struct(*fields):
        return StructType([StructField(n, t) for n, t in fields])

    s, ts, d = StringType(), TimestampType(), DoubleType()
    family = struct(("family", s), ("evidence", d))
    hit = struct(
        ("rule", s), ("ts", ts), ("action", s), ("target", s), ("strength", d), ("why", s), ("effect", s),
        ("signals", ArrayType(s)), ("title", s), ("severity", s), ("tags", ArrayType(s)), ("version", LongType()),
    )
    return struct(
        ("actor", s), ("start", ts), ("end", ts), ("score", d), ("tier", s),
        ("families", ArrayType(family)), ("hits", ArrayType(hit)),
    )


def _alerts_arrow_schema(timezone: str):
    """The alerts schema as Spark expects mapInArrow to return it
    (timestamps in microseconds, in the session's time zone)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(alerts_schema(), timezone=timezone)


def _score_partitions(data_dir: str, rules, strict: bool, chunk_rows: Optional[int], timezone: str):
    """The function mapInArrow runs over each account partition."""

    def score_partition(batches):
        import pyarrow as pa

        target = _alerts_arrow_schema(timezone)
        stream = _run(data_dir, rules, strict).stream(chunk_rows)

        def cast(out):
            for b in out:
                if b.num_rows:
                    yield pa.Table.from_batches([b]).cast(target).combine_chunks().to_batches()[0]

        for batch in batches:
            yield from cast(stream.push(batch))
        yield from cast(stream.finish())

    return score_partition


def _normalise_events(df):
    """Events as the per-account phase reads them: account ids as strings
    (their sort is the engine's), Spark's corrupt-record column dropped."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if "_corrupt_record" in df.columns:
        df = df.drop("_corrupt_record")
    if not isinstance(df.schema["actor"].dataType, StringType):
        df = df.withColumn("actor", F.col("actor").cast("string"))
    return df


def _read_table(spark, path: str):
    """A table directory or file of the contract, read by Spark (Parquet,
    JSON Lines or CSV, optionally .gz; zstd-compressed text is not readable
    by Spark without Hadoop's native codecs: convert it to Parquet)."""
    name = os.path.basename(path.rstrip("/"))
    files = [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if not f.startswith(("_", ".")))
        name = files[0] if files else name
    if name.endswith(".zst"):
        raise ValueError(
            f"{path}: Spark cannot read zstd-compressed text; convert the table to Parquet "
            "(or pass DataFrames)"
        )
    if ".parquet" in name:
        return spark.read.parquet(path)
    if ".csv" in name:
        return spark.read.option("header", True).csv(path)
    return spark.read.json(path)


def _events_path(data_dir: str) -> str:
    for f in sorted(os.listdir(data_dir)):
        if f == "events" or f.startswith("events."):
            return os.path.join(data_dir, f)
    raise FileNotFoundError(f"{data_dir}: no events table")


def _stage(spark, tables: Mapping[str, object], stage_dir: Optional[str]) -> str:
    """Writes the given DataFrames as a dataset directory of Parquet part
    files, with Spark's distributed writer; returns the directory."""
    if "events" not in tables:
        raise ValueError("data: an `events` DataFrame is required")
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"data: unknown tables {sorted(unknown)} (tables: {', '.join(TABLES)})")
    root = stage_dir or os.path.join(tempfile.gettempdir(), f"changeling-stage-{uuid.uuid4().hex[:12]}")
    previous = spark.conf.get("spark.sql.parquet.outputTimestampType", None)
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    try:
        for name, df in tables.items():
            df.write.mode("overwrite").parquet(os.path.join(root, name))
    finally:
        if previous is not None:
            spark.conf.set("spark.sql.parquet.outputTimestampType", previous)
    return root


def score(
    spark,
    data: Union[str, Mapping[str, object]],
    rules: Union[None, str, Sequence[str]] = None,
    *,
    partitions: Optional[int] = None,
    strict: bool = False,
    stage_dir: Optional[str] = None,
    chunk_rows: Optional[int] = None,
):
    """Scores events in Spark; returns the alerts as a DataFrame
    (:data:`ALERTS_DDL`), not sorted (see :func:`write`).

    ``data`` is a dataset directory visible to every executor (the data
    contract's layout; Parquet, JSON Lines or CSV for Spark to read the
    events) or a dict from table name to DataFrame, which is first staged
    as Parquet in ``stage_dir`` (default: the temp directory, which must be
    shared by the executors; on a cluster pass a shared path). ``rules`` as
    for :func:`changeling.score`. ``partitions`` is the number of account
    partitions (default: ``spark.sql.shuffle.partitions``); ``chunk_rows``
    the rows the scorer takes at least per chunk (default 64 Ki; small
    values are for tests).
    """
    if isinstance(data, Mapping):
        data_dir = _stage(spark, data, stage_dir)
        events = spark.read.parquet(os.path.join(data_dir, "events"))
    else:
        data_dir = os.fspath(data)
        events = _read_table(spark, _events_path(data_dir))
    if isinstance(rules, (list, tuple)):
        rules = [os.fspath(r) for r in rules]
    elif rules is not None:
        rules = os.fspath(rules)
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    timezone = spark.conf.get("spark.sql.session.timeZone")
    events = _normalise_events(events)
    by_account = events.repartition(n, "actor").sortWithinPartitions("actor", "ts")
    return by_account.mapInArrow(_score_partitions(data_dir, rules, strict, chunk_rows, timezone), alerts_schema())


def _jsonl_lines(batches):
    """mapInArrow over sorted alerts: each alert as its JSON line."""
    import pyarrow as pa

    from changeling import _native

    for b in batches:
        if b.num_rows == 0:
            continue
        text = _native.alerts_jsonl(pa.Table.from_batches([b])).decode("utf-8")
        yield pa.RecordBatch.from_arrays([pa.array(text.splitlines())], names=["line"])


def sorted_alerts(alerts):
    """Alerts in the contract's order: actor, then start (then end)."""
    return alerts.orderBy("actor", "start", "end")


def write(alerts, out: str, fmt: Optional[str] = None) -> None:
    """Writes alerts in the contract's order.

    ``fmt`` is ``jsonl`` or ``parquet`` (default: from the extension of
    ``out``; a path without one is a directory of Parquet part files).
    JSON Lines to a ``.jsonl`` path is one file written by the driver as
    the sorted partitions stream to it (``toLocalIterator``: one partition
    in the driver's memory at a time), byte for byte what the CLI writes;
    to a directory, part files that concatenate to the same bytes.
    """
    fmt = fmt or ("jsonl" if out.endswith((".jsonl", ".ndjson", ".json")) else "parquet")
    ordered = sorted_alerts(alerts)
    if fmt == "parquet":
        ordered.write.mode("overwrite").parquet(out)
        return
    if fmt != "jsonl":
        raise ValueError(f"--format {fmt}: expected jsonl or parquet")
    lines = ordered.mapInArrow(_jsonl_lines, "line string")
    if out.endswith((".jsonl", ".ndjson", ".json")):
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            for row in lines.toLocalIterator():
                f.write(row.line)
                f.write("\n")
    else:
        lines.write.mode("overwrite").text(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``spark-submit changeling/spark.py --data DIR --out FILE``."""
    p = argparse.ArgumentParser(prog="changeling.spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset directory (shared by the executors)")
    p.add_argument(
        "--rules",
        action="append",
        default=None,
        help="rules: a directory, a rule file or `builtin`; repeat to stack (default: $CHANGELING_RULES, else builtin)",
    )
    p.add_argument("--out", required=True, help="alerts: FILE.jsonl, or a directory (Parquet, or JSON Lines parts)")
    p.add_argument("--format", choices=["jsonl", "parquet"], help="default: from the --out extension")
    p.add_argument("--partitions", type=int, help="account partitions (default: spark.sql.shuffle.partitions)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad data record")
    p.add_argument("--master", help="Spark master, when not run by spark-submit (e.g. local[2])")
    args = p.parse_args(argv)

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("changeling")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    try:
        alerts = score(spark, args.data, args.rules, partitions=args.partitions, strict=args.strict)
        write(alerts, args.out, args.format)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
