"""Fixtures: the demo dataset as the CLI scores it, as Arrow tables, and a
local Spark session (two cores, UI off, few shuffle partitions)."""

import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pj
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "datasets" / "demo"
TABLES = ["events", "items", "follows", "accounts", "impressions"]


def cli_binary() -> str:
    """The CLI to compare with: $CHANGELING_BIN, else the repository's
    release build, else its debug build."""
    env = os.environ.get("CHANGELING_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "changeling"
        if p.exists():
            return str(p)
    pytest.skip("no changeling binary: build it with `cargo build --release` or set CHANGELING_BIN")


@pytest.fixture(scope="session")
def cli_alerts(tmp_path_factory):
    """The CLI's alerts on the demo: (JSON Lines bytes, Parquet path)."""
    out = tmp_path_factory.mktemp("cli")
    jsonl, parquet = out / "alerts.jsonl", out / "alerts.parquet"
    for path in (jsonl, parquet):
        subprocess.run(
            [cli_binary(), "score", "--data", str(DEMO), "--rules", "builtin", "--out", str(path), "--quiet"],
            check=True,
        )
    data = jsonl.read_bytes()
    assert data.count(b"\n") > 10, "the demo should give alerts"
    return data, parquet


def read_demo_table(name: str) -> pa.Table:
    with pa.CompressedInputStream(str(DEMO / f"{name}.jsonl.zst"), "zstd") as f:
        return pj.read_json(f)


def as_spark_gives_them(t: pa.Table) -> pa.Table:
    """Timestamps as Spark hands them over: microseconds, no time zone
    (TIMESTAMP_NTZ)."""
    fields = []
    for f in t.schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us"))
        fields.append(f)
    return t.cast(pa.schema(fields))


@pytest.fixture(scope="session")
def demo_tables():
    """The demo's tables (without labels) as Arrow, timestamps in
    microseconds without a zone."""
    return {name: as_spark_gives_them(read_demo_table(name)) for name in TABLES}


@pytest.fixture(scope="session")
def demo_parquet(tmp_path_factory, demo_tables):
    """The demo as a Parquet dataset directory (TIMESTAMP_NTZ micros)."""
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("demo-parquet")
    for name, t in demo_tables.items():
        pq.write_table(t, d / f"{name}.parquet", row_group_size=8192)
    return d


@pytest.fixture(scope="session")
def spark():
    pyspark = pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master(os.environ.get("CHANGELING_SPARK_MASTER", "local[2]"))
        .appName("changeling-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()
