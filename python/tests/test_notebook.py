"""The notebook API: tables from pyarrow, pandas and polars; a run's stats;
a flat view of hits; eval on a table; explain, diff and sweep with the
CLI's answers; every error a ChangelingError."""

import json
import subprocess

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import changeling

from conftest import DEMO, TABLES, cli_binary, read_demo_table


def cli(*args, stdin=None):
    """The CLI's stdout (and stderr) for `args`."""
    out = subprocess.run([cli_binary(), *args], check=True, capture_output=True)
    return out.stdout, out.stderr


@pytest.fixture(scope="session")
def demo_with_labels(demo_tables):
    """The demo's tables, labels included."""
    tables = dict(demo_tables)
    tables["labels"] = read_demo_table("labels")
    return tables


# ---------------------------------------------------------------------------
# Input: anything with __arrow_c_stream__


def test_pandas_dataframes_score_as_the_cli(demo_tables, cli_alerts):
    pd = pytest.importorskip("pandas")
    jsonl, _ = cli_alerts
    frames = {name: t.to_pandas() for name, t in demo_tables.items()}
    assert all(isinstance(f, pd.DataFrame) for f in frames.values())
    assert hasattr(frames["events"], "__arrow_c_stream__"), "pandas 2.2 or later exports Arrow streams"
    assert changeling.write_jsonl(changeling.score(frames, "builtin")) == jsonl


def test_polars_dataframes_score_as_the_cli(demo_tables, cli_alerts):
    import polars as pl  # installed by ci.sh: not skipped

    jsonl, _ = cli_alerts
    frames = {name: pl.from_arrow(t) for name, t in demo_tables.items()}
    assert all(isinstance(f, pl.DataFrame) for f in frames.values())
    assert changeling.write_jsonl(changeling.score(frames, "builtin")) == jsonl
    # Polars takes the alerts back, and they write the same bytes.
    back = pl.from_arrow(changeling.score(frames, "builtin"))
    assert changeling.write_jsonl(back.to_arrow()) == jsonl


def test_pyarrow_readers_and_stream_objects_score_as_the_cli(demo_tables, cli_alerts):
    jsonl, _ = cli_alerts

    class Stream:
        """Only the Arrow PyCapsule stream protocol, nothing of pyarrow."""

        def __init__(self, t):
            self.t = t

        def __arrow_c_stream__(self, requested_schema=None):
            return self.t.__arrow_c_stream__(requested_schema)

    data = {name: Stream(t) for name, t in demo_tables.items()}
    data["items"] = demo_tables["items"].to_reader()
    assert changeling.write_jsonl(changeling.score(data, "builtin")) == jsonl


def test_a_value_that_is_no_table_is_a_data_error_naming_the_table():
    with pytest.raises(changeling.DataError, match=r"table `events`: a dict is not an Arrow table.*__arrow_c_stream__"):
        changeling.score({"events": {"ts": [1]}})


# ---------------------------------------------------------------------------
# Stats


def cli_summary(*args):
    """The CLI's `score --json` summary (stderr) for the demo."""
    _, err = cli("score", "--data", str(DEMO), "--rules", "builtin", "--json", "-o", "/dev/null", "--format", "jsonl", *args)
    return json.loads(err)


def test_stats_are_the_clis_summary(demo_tables):
    want = cli_summary()
    for data in (DEMO, demo_tables):
        alerts, stats = changeling.score(data, "builtin", stats=True)
        assert isinstance(stats, changeling.Stats)
        for key in ("events", "duplicates", "accounts", "accounts_flagged", "incidents_written", "per_rule"):
            assert getattr(stats, key) == want[key], key
        assert stats.incidents_per_tier == want["incidents_per_tier"]
        assert {k: v for k, v in stats.skipped.items() if k != "labels"} == {
            k: v for k, v in want["skipped"].items() if k != "labels"
        }
        assert stats.incidents_written == alerts.num_rows
        assert stats.rules == "builtin"
    # Without stats=True, the table alone, as before.
    assert isinstance(changeling.score(DEMO), pa.Table)


def test_stats_count_skipped_records_per_table_and_filtered_incidents():
    events = pa.table(
        {
            "ts": ["2024-01-01T00:00:00Z", "not a time", "2024-01-01T00:01:00Z"],
            "actor": ["a", "b", "c"],
            "action": ["like", "like", "like"],
        }
    )
    items = pa.table({"id": ["t1", "t2"], "author": ["x", None]})
    alerts, stats = changeling.score({"events": events, "items": items}, stats=True)
    assert alerts.num_rows == 0
    assert stats.skipped == {"items": 1, "events": 1}
    assert "<events>: row 2" in stats.skipped_samples["events"][0]
    assert stats.events == 2 and stats.accounts == 2
    assert stats.time_span["events"] == {"first": "2024-01-01T00:00:00Z", "last": "2024-01-01T00:01:00Z"}
    # The per-rule summary as a table.
    assert stats.per_rule_table().num_rows == len(stats.per_rule) > 0

    high, s = changeling.score(DEMO, min_tier="high", stats=True)
    assert s.incidents_written == high.num_rows < s.incidents_before_filters
    assert list(s.incidents_per_tier.values())[1:] == [0] * (len(s.incidents_per_tier) - 1)


def test_daily_runs_give_stats_too(tmp_path):
    alerts, stats = changeling.score(DEMO, "builtin", state=tmp_path / "state", stats=True)
    assert stats.events > 0 and stats.incidents_written == alerts.num_rows


# ---------------------------------------------------------------------------
# Hits, flat


def test_hits_are_one_row_per_hit_as_the_clis_hit_rows(tmp_path):
    import csv

    alerts = changeling.score(DEMO, "builtin")
    flat = changeling.hits(alerts)
    assert flat.num_rows == pc.sum(pc.list_value_length(alerts.column("hits"))).as_py()
    out = tmp_path / "hits.csv"
    cli("score", "--data", str(DEMO), "--rules", "builtin", "--quiet", "--csv-rows", "hit", "-o", str(out))
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert flat.column_names == list(rows[0].keys())
    assert len(rows) == flat.num_rows
    got = flat.to_pylist()
    for row, mine in zip(rows, got):
        for key in ("actor", "id", "tier", "rule", "action", "severity"):
            assert row[key] == str(mine[key]), key
        assert row["why"].lstrip("'") == mine["why"]
    # A Scored, and alerts that went through pandas, flatten the same.
    assert changeling.hits(changeling.score(DEMO, stats=True)).equals(flat)
    assert changeling.hits(alerts.to_pandas()).column("rule").equals(flat.column("rule"))
    # No alerts: no rows, the same columns.
    none = changeling.hits(alerts.slice(0, 0))
    assert none.num_rows == 0 and none.column_names == flat.column_names


# ---------------------------------------------------------------------------
# Eval on a table


def test_eval_takes_the_table_score_returns(cli_alerts, tmp_path, demo_with_labels):
    jsonl, _ = cli_alerts
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(jsonl)
    from_file = changeling.eval(path, DEMO)
    alerts = changeling.score(DEMO)
    assert changeling.eval(alerts, DEMO) == from_file
    assert changeling.eval(changeling.score(DEMO, stats=True), DEMO) == from_file
    # Labels given as tables too.
    assert changeling.eval(alerts, demo_with_labels) == from_file
    # A filtered DataFrame of alerts: fewer alerts, measured as such.
    df = alerts.to_pandas()
    high = df[df["tier"] == "high"]
    report = changeling.eval(high, DEMO)
    assert report["alerts"]["read"] == len(high) < from_file["alerts"]["read"]
    # The CLI agrees on the same alerts written to a file.
    changeling.write_jsonl(pa.Table.from_pandas(high, preserve_index=False), tmp_path / "high.jsonl")
    assert report == changeling.eval(tmp_path / "high.jsonl", DEMO)


def test_eval_of_a_table_that_is_not_alerts_names_what_is_missing():
    with pytest.raises(changeling.EvalError, match=r"<alerts>: not an alerts table: no column `actor`"):
        changeling.eval(pa.table({"x": [1]}), DEMO)


# ---------------------------------------------------------------------------
# Explain, diff, sweep: the CLI's answers


def flagged_accounts():
    alerts = changeling.score(DEMO, min_tier="high")
    return sorted(set(alerts.column("actor").to_pylist()))


def test_explain_gives_the_clis_json_and_text(demo_tables):
    a, b = flagged_accounts()[:2]
    out, _ = cli("explain", "--data", str(DEMO), "--actor", a, "--actor", b, "--json")
    want = [json.loads(line) for line in out.splitlines()]
    got = changeling.explain(DEMO, [a, b])
    assert [dict(x) for x in got] == want
    one = changeling.explain(demo_tables, a)
    assert isinstance(one, changeling.Explanation) and dict(one) == want[0]
    text, _ = cli("explain", "--data", str(DEMO), "--actor", a)
    # The CLI's text after its header line.
    assert text.decode().split("\n", 1)[1] == str(one) == one.text
    around, _ = cli("explain", "--data", str(DEMO), "--actor", a, "--json", "--around", want[0]["incidents"][0]["start"])
    import datetime

    start = datetime.datetime.fromisoformat(want[0]["incidents"][0]["start"].replace("Z", "+00:00"))
    assert dict(changeling.explain(DEMO, a, around=start)) == json.loads(around)


def test_explain_of_an_account_without_events_is_a_data_error():
    with pytest.raises(changeling.DataError, match=r"account `nobody` has no events"):
        changeling.explain(DEMO, "nobody")
    with pytest.raises(changeling.ArgumentError, match="not a time"):
        changeling.explain(DEMO, "u1", around="yesterday")


def test_diff_gives_the_clis_json_and_text(tmp_path, demo_with_labels):
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    alerts = changeling.score(DEMO)
    changeling.write_jsonl(alerts, old)
    high = changeling.score(DEMO, min_tier="high")
    changeling.write_jsonl(high, new)
    out, _ = cli("diff", str(old), str(new), "--data", str(DEMO), "--json")
    want = json.loads(out)
    got = changeling.diff(old, new, DEMO)
    assert dict(got) == want
    text, _ = cli("diff", str(old), str(new), "--data", str(DEMO))
    assert str(got) == got.text == text.decode()
    # Tables in place of the files: the same diff, the sides named as tables.
    tables = changeling.diff(alerts, high, DEMO)
    assert tables["diff"] == want["diff"]
    assert tables["old"] == "the old alerts"
    # Rules scored on the data, from a directory or from tables.
    out, _ = cli("diff", "builtin", str(new), "--data", str(DEMO), "--json")
    assert dict(changeling.diff("builtin", new, DEMO)) == json.loads(out)
    assert changeling.diff("builtin", new, demo_with_labels)["diff"] == json.loads(out)["diff"]
    with pytest.raises(changeling.ArgumentError, match="is rules: give data"):
        changeling.diff("builtin", new)


def test_sweep_gives_the_clis_figures():
    grid = {"tier.high.min_score": [0.8, 0.9], "incident.gap": ["6h", "12h"]}
    out, _ = cli(
        "sweep", "--data", str(DEMO), "--set", "tier.high.min_score=0.8,0.9", "--set", "incident.gap=6h,12h", "--json", "-q"
    )
    want = json.loads(out)
    t = changeling.sweep(DEMO, grid)
    assert t.num_rows == len(want["settings"]) == 4
    rows = t.to_pylist()
    tiers = want["settings"][0]["worst"]["tiers"]
    for row, setting in zip(rows, want["settings"]):
        w = setting["worst"]
        assert [row[p] for p in grid] == [setting["values"][p] for p in grid]
        for i, tier in enumerate(tiers):
            assert row[f"precision {tier}"] == w["precision"][i]
            assert row[f"recall {tier}"] == w["recall"][i]
            assert row[f"benign {tier}"] == w["benign_flagged"][i]
            assert row[f"front {tier}"] == (tier in setting["pareto_tiers"])
        assert row["roc_auc"] == w["roc_auc"] and row["pr_auc"] == w["pr_auc"]
        assert row["fp_per_million"] == w["fp_per_million_account_days"]
    with pytest.raises(changeling.RulesError, match="do not load under 2 of 2 settings"):
        changeling.sweep(DEMO, {"tier.high.min_score": ["x", "y"]})


# ---------------------------------------------------------------------------
# Errors


def test_every_error_is_a_changeling_error():
    cases = [
        lambda: changeling.score(DEMO, min_tier="nope"),
        lambda: changeling.score({"event": pa.table({"x": [1]})}),
        lambda: changeling.score(DEMO, rules=123),
        lambda: changeling.score(DEMO, threads=-1),
        lambda: changeling.score(DEMO, memory="lots"),
        lambda: changeling.score(42),
        lambda: changeling.eval(DEMO, DEMO, slack="soon"),
        lambda: changeling.sweep(DEMO, {"tier.high.min_score": [object()]}),
    ]
    for case in cases:
        with pytest.raises(changeling.ChangelingError) as e:
            case()
        # Argument errors stay ValueErrors, as they were.
        assert isinstance(e.value, changeling.ArgumentError) and isinstance(e.value, ValueError), e.value
    with pytest.raises(changeling.ArgumentError, match="no such tier"):
        changeling.score(DEMO, min_tier="nope")


def test_writing_to_a_missing_directory_is_a_changeling_error(tmp_path):
    alerts = changeling.score(DEMO, min_tier="high")
    with pytest.raises(changeling.ChangelingError):
        changeling.write_jsonl(alerts, tmp_path / "no" / "such" / "dir.jsonl")
