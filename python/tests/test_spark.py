"""The Spark job gives the CLI's alerts, byte for byte once written in the
contract's order."""

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import changeling
from changeling import spark as cs

from conftest import DEMO, cli_binary


def test_dataframes_equal_cli(spark, demo_tables, cli_alerts, tmp_path):
    jsonl, _ = cli_alerts
    frames = {name: spark.createDataFrame(t) for name, t in demo_tables.items()}
    alerts = cs.score(spark, frames, "builtin")
    out = tmp_path / "alerts.jsonl"
    cs.write(alerts, str(out))
    assert out.read_bytes() == jsonl


@pytest.mark.parametrize("partitions,buckets", [(1, 1), (3, 2), (7, 5)])
def test_any_partition_count_gives_the_cli_alerts(spark, demo_parquet, cli_alerts, tmp_path, partitions, buckets):
    """The aggregate partials merge to the same facts, and the item stage
    answers the same, whatever the numbers of account partitions and item
    buckets; small Arrow batches make groups span several."""
    jsonl, _ = cli_alerts
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "700")
    try:
        alerts = cs.score(spark, str(demo_parquet), partitions=partitions, item_buckets=buckets)
        out = tmp_path / "parts"
        cs.write(alerts, str(out), "jsonl")
        parts = sorted(p for p in out.iterdir() if p.name.startswith("part-"))
        assert b"".join(p.read_bytes() for p in parts) == jsonl
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def test_a_synth_population_gives_the_cli_alerts(spark, tmp_path):
    """A generated population (JSON Lines read by Spark: timestamps as
    RFC 3339 strings) gives the CLI's alerts."""
    data = tmp_path / "synth"
    subprocess.run(
        [cli_binary(), "synth", "--accounts", "2000", "--days", "10", "--seed", "3", "--impressions", "--out", str(data), "--quiet"],
        check=True,
    )
    want = tmp_path / "cli.jsonl"
    subprocess.run(
        [cli_binary(), "score", "--data", str(data), "--rules", "builtin", "--out", str(want), "--quiet"], check=True
    )
    assert want.read_bytes().count(b"\n") > 10, "the synth population should give alerts"
    out = tmp_path / "spark.jsonl"
    cs.write(cs.score(spark, str(data), "builtin", partitions=5), str(out))
    assert out.read_bytes() == want.read_bytes()


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
