#!/usr/bin/env bash
# Side-by-side benchmark: changeling's standard rules against DuckDB
# computing the three mission signals in SQL (benches/mission_signals.sql),
# on the same generated files, from Parquet and from CSV (and changeling from
# JSONL too). Prints wall time and peak memory of each, and the ratios.
#
#   benches/compare.sh [ACCOUNTS] [DAYS]      default: 1000000 accounts, 9 days (about 10 M events)
#
# Needs: a Rust toolchain, python3 (DuckDB is installed from PyPI into
# benches/.venv on first use), /usr/bin/time. Work files go to
# ${WORK:-/tmp/changeling-compare}; nothing is written into the repository
# but the venv. Timings are whole-process (/usr/bin/time), DuckDB with one
# thread per core like changeling.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${1:-1000000}
DAYS=${2:-9}
WORK=${WORK:-/tmp/changeling-compare}
VENV=benches/.venv
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/release/changeling}   # BIN=path runs that binary instead of building

[ -n "${BIN_GIVEN:-}" ] || cargo build --release --quiet
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet duckdb
fi
PY="$VENV/bin/python"

mkdir -p "$WORK"
if [ ! -f "$WORK/jsonl/events.jsonl" ]; then
    "$BIN" synth --accounts "$ACCOUNTS" --days "$DAYS" --seed 1 --out "$WORK/jsonl" --quiet
fi
if [ ! -f "$WORK/parquet/events.parquet" ]; then
    mkdir -p "$WORK/parquet" "$WORK/csv"
    "$PY" - "$WORK" <<'PYEOF'
import sys, duckdb
w = sys.argv[1]
con = duckdb.connect()
for t in ["events", "items", "follows", "accounts", "labels"]:
    src = f"read_json('{w}/jsonl/{t}.jsonl', format='newline_delimited', sample_size=-1)"
    con.execute(f"COPY (SELECT * FROM {src}) TO '{w}/parquet/{t}.parquet' (FORMAT parquet, COMPRESSION zstd)")
    # CSV: lists as a|b|c, as the data contract says.
    cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    sel = ", ".join(f"array_to_string({c[0]}, '|') AS \"{c[0]}\"" if c[1].endswith("[]") else f'"{c[0]}"' for c in cols)
    con.execute(f"COPY (SELECT {sel} FROM {src}) TO '{w}/csv/{t}.csv' (HEADER)")
PYEOF
fi

EVENTS=$(wc -l < "$WORK/jsonl/events.jsonl")
timed() { # label, command...
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2> "$WORK/err.txt" || { cat "$WORK/err.txt"; exit 1; }
    read -r secs kb < "$WORK/time.txt"
    printf '%-34s %8.2f s  %9.0f k events/s  %7.0f MiB peak\n' "$label" "$secs" "$(echo "$EVENTS / $secs / 1000" | bc -l)" "$(echo "$kb / 1024" | bc -l)"
    echo "$secs" > "$WORK/last.txt"
}
duck() { # format: parquet or csv
    local f=$1 reader
    if [ "$f" = parquet ]; then reader="read_parquet('$WORK/parquet/%s.parquet')"; else reader="read_csv('$WORK/csv/%s.csv', header=true)"; fi
    # CSV lists arrive as a|b|c: split them back for the labels.
    local items; items=$(printf "$reader" items)
    if [ "$f" = csv ]; then items="(SELECT id, author, string_split(labels, '|') AS labels FROM $items)"; fi
    sed -e "s#@EVENTS@#$(printf "$reader" events)#" -e "s#@ITEMS@#$items#" -e "s#@FOLLOWS@#$(printf "$reader" follows)#" \
        benches/mission_signals.sql > "$WORK/q-$f.sql"
    "$PY" - "$WORK/q-$f.sql" <<'PYEOF'
import sys, duckdb
con = duckdb.connect()
text = "\n".join(l for l in open(sys.argv[1]).read().splitlines() if not l.strip().startswith("--"))
for q in text.split(";"):
    code = q.strip()
    if code:
        r = con.execute(code)
        if r is not None and r.description:
            print(r.fetchall())
PYEOF
}
export -f duck; export WORK PY

# The shipped rules tagged `mission` alone (off-pattern, feed exposure,
# unlike latency): the work DuckDB's three queries do, for a like-for-like
# line beside the full rule set.
MISSION="$WORK/mission-rules"
if [ ! -f "$MISSION/changeling.toml" ]; then
    rm -rf "$MISSION"
    "$BIN" rules export "$MISSION" > /dev/null
    rm -rf "$MISSION/tests"
    grep -L '^tags = \[.*"mission"' "$MISSION"/*/*.toml | xargs rm -f
fi

echo "$EVENTS events, $ACCOUNTS accounts, $(nproc) cores"
timed "changeling, JSONL" "$BIN" score --quiet --data "$WORK/jsonl" --out "$WORK/alerts-jsonl.jsonl"
timed "changeling, Parquet" "$BIN" score --quiet --data "$WORK/parquet" --out "$WORK/alerts-parquet.jsonl"; CP=$(cat "$WORK/last.txt")
timed "changeling, CSV" "$BIN" score --quiet --data "$WORK/csv" --out "$WORK/alerts-csv.jsonl"; CC=$(cat "$WORK/last.txt")
timed "changeling, mission rules, Parquet" "$BIN" score --quiet --rules "$MISSION" --data "$WORK/parquet" --out "$WORK/alerts-mission.jsonl"; CM=$(cat "$WORK/last.txt")
timed "DuckDB, 3 signals in SQL, Parquet" bash -c 'duck parquet'; DP=$(cat "$WORK/last.txt")
timed "DuckDB, 3 signals in SQL, CSV" bash -c 'duck csv'; DC=$(cat "$WORK/last.txt")
printf 'DuckDB / changeling: Parquet %.2fx, CSV %.2fx (above 1: changeling is faster)\n' "$(echo "$DP / $CP" | bc -l)" "$(echo "$DC / $CC" | bc -l)"
printf 'DuckDB / changeling with the mission rules only, Parquet: %.2fx\n' "$(echo "$DP / $CM" | bc -l)"
