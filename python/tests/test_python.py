"""The Python API gives the CLI's answers, bytes and errors."""

import json
import subprocess

import pyarrow.parquet as pq
import pytest

import changeling

from conftest import DEMO, cli_binary


def test_score_directory_equals_cli(cli_alerts):
    jsonl, _ = cli_alerts
    alerts = changeling.score(DEMO)
    assert changeling.write_jsonl(alerts) == jsonl


def test_score_arrow_tables_equals_cli(cli_alerts, demo_tables):
    jsonl, _ = cli_alerts
    alerts = changeling.score(demo_tables, "builtin")
    assert changeling.write_jsonl(alerts) == jsonl
    # Already in the contract's order.
    assert changeling.write_jsonl(changeling.sort_alerts(alerts)) == jsonl


def test_alerts_schema_is_the_parquet_alerts(cli_alerts):
    _, parquet = cli_alerts
    alerts = changeling.score(DEMO)
    assert alerts.schema == pq.read_schema(parquet).remove_metadata()
    assert alerts.equals(pq.read_table(parquet).replace_schema_metadata(None))


def test_record_batches_and_lists_are_tables_too(demo_tables, cli_alerts):
    jsonl, _ = cli_alerts
    data = dict(demo_tables)
    data["events"] = data["events"].to_batches(max_chunksize=5000)
    data["items"] = data["items"].to_reader()
    assert changeling.write_jsonl(changeling.score(data)) == jsonl


def test_min_tier_keeps_that_tier_and_higher():
    alerts = changeling.score(DEMO, min_tier="high")
    assert alerts.num_rows > 0
    assert set(alerts.column("tier").to_pylist()) == {"high"}
    with pytest.raises(ValueError, match="no such tier"):
        changeling.score(DEMO, min_tier="nope")


def test_errors_are_typed_with_the_cli_messages(tmp_path):
    with pytest.raises(changeling.DataError, match="no such dataset directory"):
        changeling.score(tmp_path / "missing")
    (tmp_path / "items.jsonl").write_text("")
    with pytest.raises(changeling.DataError, match="no events table"):
        changeling.score(tmp_path)
    with pytest.raises(changeling.RulesError, match="no such file or directory"):
        changeling.score(DEMO, tmp_path / "no-rules")
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x/y"\ntitle = "t"\n[events]\nactions = ["like"]\n[[signal]]\nkind = "no_such_kind"\n')
    with pytest.raises(changeling.RulesError) as e:
        changeling.score(DEMO, bad)
    assert "no_such_kind" in str(e.value)
    import pyarrow as pa

    with pytest.raises(changeling.DataError, match="no events table"):
        changeling.score({"items": pa.table({"id": ["a"], "author": ["b"]})})
    with pytest.raises(ValueError, match="no table `event`"):
        changeling.score({"event": pa.table({"x": [1]})})


def test_bad_rows_are_skipped_or_stop_a_strict_run():
    import pyarrow as pa

    events = pa.table({"ts": ["2024-01-01T00:00:00Z", "not a time"], "actor": ["a", "b"], "action": ["like", "like"]})
    assert changeling.score({"events": events}).num_rows == 0
    with pytest.raises(changeling.DataError, match="<events>"):
        changeling.score({"events": events}, strict=True)


def test_check_reports_diagnostics(tmp_path):
    ok = changeling.check("builtin")
    assert ok["ok"] and ok["rules"] > 0 and ok["errors"] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x/y"\ntitle = "t"\n[events]\nactions = ["like"]\n[[signal]]\nkind = "no_such_kind"\n')
    out = changeling.check(bad)
    assert not out["ok"] and out["errors"] >= 1
    assert "bad.toml" in out["diagnostics"] and "no_such_kind" in out["diagnostics"]


def test_eval_measures_alerts_against_labels(cli_alerts, tmp_path):
    jsonl, _ = cli_alerts
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(jsonl)
    report = changeling.eval(path, DEMO)
    assert report["accounts"]["compromised"] > 0
    assert report["tiers"][0] == "high"


def test_daily_runs_with_a_state_give_the_clis_bytes_and_share_its_state(tmp_path):
    pop = tmp_path / "pop"
    subprocess.run(
        [cli_binary(), "synth", "--quiet", "--accounts", "300", "--days", "4", "--seed", "5"]
        + ["--compromise-rate", "0.05", "--daily", "--out", str(pop)],
        check=True,
    )
    days = sorted((pop / "daily").iterdir())
    assert len(days) == 4

    def cli(day, state):
        return subprocess.run(
            [cli_binary(), "score", "--quiet", "--rules", "builtin", "--format", "jsonl", "-o", "-"]
            + ["--data", str(day), "--state", str(state)],
            check=True,
            capture_output=True,
        ).stdout

    ours, theirs = tmp_path / "py-state", tmp_path / "cli-state"
    statuses = set()
    for day in days[:-1]:
        got = changeling.write_jsonl(changeling.score(day, "builtin", state=ours))
        assert got == cli(day, theirs), day.name
        statuses |= {json.loads(line)["status"] for line in got.splitlines()}
    assert "new" in statuses, "the days should give incidents"
    # The CLI carries on from the state Python wrote, as from its own.
    assert cli(days[-1], ours) == cli(days[-1], theirs)
    with pytest.raises(ValueError, match="emit"):
        changeling.score(days[0], "builtin", state=tmp_path / "other", emit="all")


def test_epoch_seconds_raise_naming_time_unit_and_read_right_with_it(demo_tables, cli_alerts):
    import pyarrow as pa
    import pyarrow.compute as pc

    jsonl, _ = cli_alerts
    data = dict(demo_tables)
    events = data["events"]
    # The demo's times as integer epoch seconds.
    ms = pc.cast(pc.cast(events.column("ts"), pa.timestamp("ms", tz="UTC")), pa.int64())
    seconds = pc.divide(ms, 1000)
    assert pc.all(pc.equal(pc.multiply(seconds, 1000), ms)).as_py(), "the demo's times are whole seconds"
    data["events"] = events.set_column(events.schema.get_field_index("ts"), "ts", seconds)
    with pytest.raises(changeling.DataError, match=r"look like epoch seconds.*--time-unit s"):
        changeling.score(data)
    assert changeling.write_jsonl(changeling.score(data, time_unit="s")) == jsonl
    with pytest.raises(changeling.DataError, match="time_unit"):
        changeling.score(data, time_unit="minutes")


STORY = DEMO.parents[1] / "tests" / "fixtures" / "story"


def test_exceptions_suppress_hits_count_them_warn_and_fail_as_the_cli(tmp_path):
    cleared = tmp_path / "cleared.toml"
    cleared.write_text(
        '[[exception]]\nactor = "liu"\nrules = ["likes/*"]\nreason = "cleared after review, case 881"\n'
        'expires = "2100-01-01"\n'
    )

    def like_hits(alerts):
        return [h for h in changeling.hits(alerts).to_pylist() if h["actor"] == "liu" and h["rule"].startswith("likes/")]

    before = changeling.score(STORY, "builtin")
    assert like_hits(before)
    scored = changeling.score(STORY, "builtin", exceptions=cleared, stats=True)
    assert not like_hits(scored.alerts)
    (counted,) = scored.stats.exceptions
    assert counted["hits"] == len(like_hits(before)) and counted["reason"].startswith("cleared")
    cli = subprocess.run(
        [cli_binary(), "score", "--data", str(STORY), "--rules", "builtin", "--exceptions", str(cleared), "--quiet"],
        check=True,
        capture_output=True,
    ).stdout
    assert changeling.write_jsonl(scored.alerts) == cli
    # Without exceptions, the stats say so and nothing changes.
    assert changeling.score(DEMO, stats=True).stats.exceptions is None
    # An expired one covers nothing and warns.
    old = tmp_path / "old.toml"
    old.write_text('[[exception]]\nactor = "liu"\nreason = "old"\nexpires = "2020-01-01"\n')
    with pytest.warns(UserWarning, match="expired on 2020-01-01"):
        kept = changeling.score(STORY, "builtin", exceptions=[old])
    assert changeling.write_jsonl(kept) == changeling.write_jsonl(before)
    # A malformed one is an error at its place.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[exception]]\nactor = "liu"\nreason = "r"\nrule = ["likes/*"]\n')
    with pytest.raises(changeling.RulesError, match=r"bad.toml:4:1"):
        changeling.score(STORY, exceptions=bad)
    with pytest.raises(changeling.RulesError, match="does not exist"):
        changeling.score(STORY, exceptions=tmp_path / "missing.toml")


def test_campaigns_group_lockstep_incidents_as_the_cli():
    cli = subprocess.run(
        [cli_binary(), "score", "--data", str(DEMO), "--rules", "builtin", "--campaigns", "--json"],
        check=True,
        capture_output=True,
    )
    summary = json.loads(cli.stderr)
    scored = changeling.score(DEMO, "builtin", campaigns=True, stats=True)
    assert changeling.write_jsonl(scored.alerts) == cli.stdout
    assert scored.stats.campaigns == summary["campaigns"]
    (campaign,) = [c for c in scored.stats.campaigns if "u1086" in c["members"]]
    named = {a for a, c in zip(scored.alerts["actor"].to_pylist(), scored.alerts["campaign"].to_pylist()) if c == campaign["id"]}
    assert sorted(named) == campaign["members"]
    # Not asked: none, as before.
    assert changeling.score(DEMO, stats=True).stats.campaigns is None

