"""changeling as a Spark job: alerts for events that live in Spark.

    from changeling.spark import score, write
    alerts = score(spark, {"events": events_df, "items": items_df,
                           "follows": follows_df, "impressions": impressions_df})
    write(alerts, "alerts.jsonl")      # byte for byte what the CLI writes

or, from a shell (the CLI's main flags)::

    spark-submit changeling/spark.py --data s3://.../dataset --out alerts/ --format parquet

The engine's two phases run as Spark stages, as the CLI's partitioned run
runs them on one machine (``src/run/partitioned.rs``); what crosses between
stages is the engine's wire format for facts (``src/facts/wire.rs``),
strings as strings. Every account belongs to one of ``partitions`` account
partitions, ``pmod(hash(actor), partitions)``:

1. **Stage A**, per account partition (the events grouped by partition,
   cogrouped with the items they target): the engine folds the partition's
   share of the population aggregates (a partial), and emits its rows of
   the item indexes (who liked or reposted what, when) and its questions to
   them (each event's target and time).
2. **Aggregates**: the partials (one per partition: per prior the distinct
   history inputs with counts, per rate one row per account, see the wire
   module) are collected, merged by the engine (the merge is associative
   and its result does not depend on order) and broadcast.
3. **Item stage**, per bucket of items (``pmod(hash(item), item_buckets)``):
   the bucket's item rows and the questions about its items go to one task,
   which builds the bucket's part of each item index and answers each
   partition with the entries within its readers' reach
   (``ItemActors::answer``), keyed by account partition.
4. **Stage B**, per account partition: its events, cogrouped with its
   answers and its share of the side tables, are scored with the merged
   aggregates; alerts come back in the contract's schema.

Side tables are never collected to the driver; each account partition gets
the rows its events can read: **items** of its events' targets (a join on
target; the item's author, labels and language are read by the scorer and
by stage A's prior inputs), **accounts** of its actors and of the authors
of its targets (rule filters read both), **follows** with a follower in the
partition, **impressions** of its actors. Each share reaches the task as
Arrow IPC blobs keyed by partition, cogrouped with the events.

Each account partition is one group of the cogroups, held whole by its task
(the events as Arrow, then the engine's columns): choose ``partitions`` so
that one fits an executor's Python memory. The groups are partitions, not
accounts, so there is one Python call per partition.

Alerts come back as a DataFrame in the contract's schema (the CLI's Parquet
alerts schema, timestamps as Spark TIMESTAMP); :func:`write` sorts them in
the contract's order and writes JSON Lines with the engine's writer (the
CLI's bytes) or Parquet.

Timestamps: the engine's Arrow reader takes TIMESTAMP and TIMESTAMP_NTZ
columns of any unit (Spark hands over microseconds; without a zone the
value means UTC, as the data contract says), integer epoch milliseconds and
RFC 3339 strings, and truncates to milliseconds; ids of any integer type are
read as their decimal text, and are cast to strings before hashing, so that
an id hashes the same in every table.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Optional, Sequence, Union

TABLES = ("events", "items", "follows", "accounts", "impressions")
SIDE = ("items", "follows", "accounts", "impressions")

#: The alerts schema as Spark DDL: the CLI's Parquet alerts schema.
ALERTS_DDL = (
    "actor string, start timestamp, end timestamp, score double, tier string, "
    "id string, status string, final_after timestamp, campaign string, "
    "families array<struct<family:string,evidence:double>>, "
    "hits array<struct<rule:string,ts:timestamp,action:string,target:string,strength:double,"
    "why:string,effect:string,signals:array<string>,title:string,severity:string,"
    "tags:array<string>,version:bigint>>"
)

#: The account partition column added to events and side-table shares.
PART = "__changeling_part"
#: The item bucket column of the item stage.
BUCKET = "__changeling_bucket"
#: Stage A's output: kind 0 an aggregate partial (in ``blob``), 1 an item
#: row (slot, item, ts, actor), 2 a question (item, ts, part).
STAGE_A_DDL = "kind tinyint, part int, slot int, item string, ts bigint, actor string, blob binary"
#: Side-table shares and answers: Arrow IPC streams keyed by partition.
BLOBS_DDL = f"{PART} int, table string, blob binary"

# Per Python worker: the compiled rules, by (rules, strict). Spark reuses
# Python workers across tasks.
_STAGES: dict = {}


def _stages(rules, strict: bool):
    from changeling import _native

    key = (tuple(rules) if isinstance(rules, list) else rules, strict)
    stages = _STAGES.get(key)
    if stages is None:
        stages = _STAGES[key] = _native.Stages(rules, strict)
    return stages


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
        ("id", s), ("status", s), ("final_after", ts), ("campaign", s),
        ("families", ArrayType(family)), ("hits", ArrayType(hit)),
    )


def _alerts_arrow_schema():
    """The alerts schema as Spark expects a grouped Arrow UDF to return it
    (timestamps in microseconds, zone UTC whatever the session's)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(alerts_schema(), timezone="UTC")


def _ipc(batch) -> bytes:
    """A record batch or table as Arrow IPC stream bytes."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write(batch)
    return sink.getvalue().to_pybytes()


def _unipc(blobs, schema=None):
    """The table in Arrow IPC streams ``blobs`` (empty, of ``schema``, when
    there are none)."""
    import pyarrow as pa

    tables = [pa.ipc.open_stream(b).read_all() for b in blobs]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _part_of(column: str, n: int):
    """The account partition of the id in ``column``."""
    from pyspark.sql import functions as F

    return F.pmod(F.hash(F.col(column).cast("string")), F.lit(n)).cast("int")


def _to_blobs(name: str):
    """mapInArrow over a share of a side table (with :data:`PART`): each
    batch's rows of each partition as one Arrow IPC blob."""

    def to_blobs(batches):
        import pyarrow as pa
        import pyarrow.compute as pc

        for b in batches:
            if b.num_rows == 0:
                continue
            parts = b.column(PART)
            rows = b.drop_columns([PART])
            for p in pc.unique(parts).to_pylist():
                share = rows.filter(pc.equal(parts, p))
                yield pa.RecordBatch.from_pydict(
                    {PART: [p], "table": [name], "blob": [_ipc(share)]}, schema=_blobs_schema()
                )

    return to_blobs


def _stage_a(rules, strict: bool, items_schema):
    """Stage A over one account partition (cogroup of its events with its
    items' blobs)."""

    def stage_a(key, events, side):
        import numpy as np
        import pyarrow as pa

        part = key[0].as_py()
        tables = {"events": events.drop_columns([PART])}
        if items_schema is not None:
            tables["items"] = _unipc(side.column("blob").to_pylist(), items_schema)
        aggregates, rows, questions = _stages(rules, strict).part_facts(tables, part)
        n, q = rows.num_rows, questions.num_rows
        i8, i32, i64, s = pa.int8(), pa.int32(), pa.int64(), pa.string()
        kind = pa.array(np.repeat(np.array([0, 1, 2], dtype=np.int8), [1, n, q]))
        nulls = lambda t, k: pa.nulls(k, t)  # noqa: E731
        columns = {
            "kind": kind,
            "part": pa.concat_arrays([pa.array([part], i32), nulls(i32, n), questions.column("part").cast(i32)]),
            "slot": pa.concat_arrays([nulls(i32, 1), rows.column("slot").cast(i32), nulls(i32, q)]),
            "item": pa.concat_arrays([nulls(s, 1), rows.column("item").cast(s), questions.column("item").cast(s)]),
            "ts": pa.concat_arrays([nulls(i64, 1), rows.column("ts").cast(i64), questions.column("ts").cast(i64)]),
            "actor": pa.concat_arrays([nulls(s, 1), rows.column("actor").cast(s), nulls(s, q)]),
            "blob": pa.concat_arrays([pa.array([_ipc(aggregates)], pa.binary()), nulls(pa.binary(), n + q)]),
        }
        return pa.table(columns)

    return stage_a


def _item_stage(rules, strict: bool):
    """The item stage over one bucket of items: answers, as one blob per
    account partition asking."""

    def item_stage(key, t):
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = t.column("kind")
        rows = t.filter(pc.equal(kind, 1)).select(["slot", "item", "ts", "actor"])
        questions = t.filter(pc.equal(kind, 2)).select(["item", "ts", "part"])
        answers = _stages(rules, strict).answer(rows, questions)
        parts = answers.column("part")
        out = {PART: [], "table": [], "blob": []}
        for p in pc.unique(parts).to_pylist():
            out[PART].append(p)
            out["table"].append("answers")
            out["blob"].append(_ipc(answers.filter(pc.equal(parts, p))))
        return pa.table(out, schema=_blobs_schema())

    return item_stage


def _stage_b(rules, strict: bool, aggregates, schemas: dict):
    """Stage B over one account partition (cogroup of its events with its
    answers and side-table shares): its alerts."""

    def stage_b(key, events, side):
        import pyarrow as pa
        import pyarrow.compute as pc

        part = key[0].as_py()
        target = _alerts_arrow_schema()
        if events.num_rows == 0:
            return target.empty_table()
        names = side.column("table")
        blobs = lambda name: side.filter(pc.equal(names, name)).column("blob").to_pylist()  # noqa: E731
        tables = {"events": events.drop_columns([PART])}
        for name, schema in schemas.items():
            tables[name] = _unipc(blobs(name), schema)
        answers = _unipc(blobs("answers"), _answers_schema())
        agg = pa.ipc.open_stream(aggregates.value).read_all()
        alerts = _stages(rules, strict).score(tables, agg, answers, part)
        return alerts.cast(target)

    return stage_b


def _blobs_schema():
    """:data:`BLOBS_DDL` as an Arrow schema."""
    import pyarrow as pa

    return pa.schema([(PART, pa.int32()), ("table", pa.string()), ("blob", pa.binary())])


def _answers_schema():
    import pyarrow as pa

    return pa.schema([("part", pa.int32()), ("slot", pa.int32()), ("item", pa.string()), ("ts", pa.int64()),
                      ("actor", pa.string())])


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


def _table_path(data_dir: str, name: str) -> Optional[str]:
    """The file or directory of table ``name`` in a dataset directory."""
    for f in sorted(os.listdir(data_dir)):
        if f == name or f.startswith(name + "."):
            return os.path.join(data_dir, f)
    return None


def _tables(spark, data) -> dict:
    """The dataset's tables as DataFrames, by name (labels left out)."""
    if isinstance(data, Mapping):
        if "events" not in data:
            raise ValueError("data: an `events` DataFrame is required")
        unknown = set(data) - set(TABLES)
        if unknown:
            raise ValueError(f"data: unknown tables {sorted(unknown)} (tables: {', '.join(TABLES)})")
        return dict(data)
    data_dir = os.fspath(data)
    out = {}
    for name in TABLES:
        path = _table_path(data_dir, name)
        if path is not None:
            out[name] = _read_table(spark, path)
    if "events" not in out:
        raise FileNotFoundError(f"{data_dir}: no events table")
    return out


def _as_string(df, column: str):
    from pyspark.sql import functions as F

    return F.col(column).cast("string") if column in df.columns else F.lit(None).cast("string")


def _arrow_schema(df, timezone: str):
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone=timezone)


def score(
    spark,
    data: Union[str, Mapping[str, object]],
    rules: Union[None, str, Sequence[str]] = None,
    *,
    partitions: Optional[int] = None,
    item_buckets: Optional[int] = None,
    strict: bool = False,
):
    """Scores events in Spark; returns the alerts as a DataFrame
    (:data:`ALERTS_DDL`), not sorted (see :func:`write`).

    ``data`` is a dataset directory visible to every executor (the data
    contract's layout; Parquet, JSON Lines or CSV for Spark to read) or a
    dict from table name to DataFrame. ``rules`` as for
    :func:`changeling.score`. ``partitions`` is the number of account
    partitions and ``item_buckets`` the number of item buckets of the item
    stage (both default to ``spark.sql.shuffle.partitions``). Runs the
    aggregate partials' collection (a Spark job) before returning.
    """
    from pyspark.sql import functions as F

    tables = _tables(spark, data)
    if isinstance(rules, (list, tuple)):
        rules = [os.fspath(r) for r in rules]
    elif rules is not None:
        rules = os.fspath(rules)
    _stages(rules, strict)  # the rules' errors, raised on the driver
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    m = item_buckets or int(spark.conf.get("spark.sql.shuffle.partitions"))
    timezone = spark.conf.get("spark.sql.session.timeZone")

    events = _normalise_events(tables["events"]).withColumn(PART, _part_of("actor", n))
    shares = {}
    if "items" in tables:
        items = tables["items"]
        targets = events.select(PART, _as_string(events, "target").alias("__id")).where("__id is not null").distinct()
        shares["items"] = targets.join(items.withColumn("__id", F.col("id").cast("string")), "__id").drop("__id")
    if "accounts" in tables:
        ids = events.select(PART, F.col("actor").alias("__id")).union(
            events.select(PART, _as_string(events, "target_author").alias("__id"))
        )
        if "items" in shares:
            ids = ids.union(shares["items"].select(PART, _as_string(shares["items"], "author").alias("__id")))
        ids = ids.where("__id is not null").distinct()
        accounts = tables["accounts"]
        shares["accounts"] = ids.join(accounts.withColumn("__id", F.col("id").cast("string")), "__id").drop("__id")
    if "follows" in tables:
        shares["follows"] = tables["follows"].withColumn(PART, _part_of("follower", n))
    if "impressions" in tables:
        shares["impressions"] = tables["impressions"].withColumn(PART, _part_of("actor", n))
    blobs = {name: df.mapInArrow(_to_blobs(name), BLOBS_DDL) for name, df in shares.items()}
    schemas = {name: _arrow_schema(df.drop(PART), timezone) for name, df in shares.items()}
    empty = spark.createDataFrame([], BLOBS_DDL)

    # Stage A.
    items_blobs = blobs.get("items", empty)
    stage_a = events.groupBy(PART).cogroup(items_blobs.groupBy(PART)).applyInArrow(
        _stage_a(rules, strict, schemas.get("items")), STAGE_A_DDL
    )
    stage_a = stage_a.persist()

    # The aggregates, merged on the driver and broadcast.
    import pyarrow as pa

    partials = [pa.ipc.open_stream(r.blob).read_all() for r in stage_a.where("kind = 0").select("blob").collect()]
    merged = _stages(rules, strict).merge(partials)
    aggregates = spark.sparkContext.broadcast(_ipc(merged))

    # The item stage.
    answers = (
        stage_a.where("kind != 0")
        .withColumn(BUCKET, F.pmod(F.hash("item"), F.lit(m)))
        .groupBy(BUCKET)
        .applyInArrow(_item_stage(rules, strict), BLOBS_DDL)
    )

    # Stage B.
    bundle = answers
    for df in blobs.values():
        bundle = bundle.unionByName(df)
    return events.groupBy(PART).cogroup(bundle.groupBy(PART)).applyInArrow(
        _stage_b(rules, strict, aggregates, schemas), alerts_schema()
    )


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
    # The sort samples its input before sorting it: kept, the alerts are
    # scored once.
    ordered = sorted_alerts(alerts.persist())
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
    p.add_argument("--item-buckets", type=int, help="item buckets (default: spark.sql.shuffle.partitions)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad data record")
    p.add_argument("--master", help="Spark master, when not run by spark-submit (e.g. local[2])")
    args = p.parse_args(argv)

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("changeling")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    try:
        alerts = score(
            spark, args.data, args.rules, partitions=args.partitions, item_buckets=args.item_buckets, strict=args.strict
        )
        write(alerts, args.out, args.format)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    # Run as the package's module, not as __main__: Spark then pickles the
    # stages' functions by reference, not with this run's module state.
    from changeling.spark import main as _main

    sys.exit(_main())
