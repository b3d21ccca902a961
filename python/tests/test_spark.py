"""The Spark job gives the CLI's alerts, byte for byte once written in the
contract's order."""

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import changeling
from changeling import spark as cs

from conftest import DEMO


def test_dataframes_equal_cli(spark, demo_tables, cli_alerts, tmp_path):
    jsonl, _ = cli_alerts
    frames = {name: spark.createDataFrame(t) for name, t in demo_tables.items()}
    alerts = cs.score(spark, frames, "builtin", stage_dir=str(tmp_path / "stage"))
    out = tmp_path / "alerts.jsonl"
    cs.write(alerts, str(out))
    assert out.read_bytes() == jsonl


def test_accounts_spanning_batches_and_chunks(spark, demo_parquet, cli_alerts, tmp_path):
    """Small Arrow batches and small scoring chunks: accounts cross both."""
    jsonl, _ = cli_alerts
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "700")
    try:
        alerts = cs.score(spark, str(demo_parquet), partitions=3, chunk_rows=1000)
        out = tmp_path / "parts"
        cs.write(alerts, str(out), "jsonl")
        parts = sorted(p for p in out.iterdir() if p.name.startswith("part-"))
        assert b"".join(p.read_bytes() for p in parts) == jsonl
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def test_parquet_output_reads_back_as_the_cli_alerts(spark, demo_parquet, cli_alerts, tmp_path):
    jsonl, _ = cli_alerts
    out = tmp_path / "alerts-parquet"
    cs.write(cs.score(spark, str(demo_parquet)), str(out))
    table = pq.read_table(out)
    assert changeling.write_jsonl(changeling.sort_alerts(table)) == jsonl


def test_spark_submit_entry_point(demo_parquet, cli_alerts, tmp_path):
    jsonl, _ = cli_alerts
    out = tmp_path / "alerts.jsonl"
    subprocess.run(
        [sys.executable, "-m", "changeling.spark", "--master", "local[2]", "--data", str(demo_parquet),
         "--out", str(out), "--partitions", "2"],
        check=True,
        env={**__import__("os").environ, "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false pyspark-shell"},
    )
    assert out.read_bytes() == jsonl


def test_zstd_text_is_refused_with_a_clear_message(spark):
    with pytest.raises(ValueError, match="zstd"):
        cs.score(spark, str(DEMO))
