#!/usr/bin/env bash
# The Spark job (local[2]) next to the CLI on the same generated dataset
# (JSON Lines, with impressions): whole-process wall time and peak memory
# of each, their ratio, whether the alerts are byte-identical, and Spark's
# shuffle bytes per stage (read back from its event log).
#
#   benches/spark.sh [ACCOUNTS] [DAYS]     default: 1000000 accounts, 9 days (about 10 M events)
#
# Environment:
#   WORK        work directory (default /tmp/changeling-spark-bench); nothing
#               is written into the repository
#   BIN         the CLI to run (default: target/release/changeling, built)
#   PY          a python with pyspark, pyarrow and the changeling wheel
#               (default: $CHANGELING_VENV/bin/python, else python/.venv/bin/python)
#   PARTITIONS  account partitions and item buckets of the Spark job (default 8)
#   DRIVER_MEMORY  Spark driver memory, which in local mode holds the
#               executors too (default 4g)
#
# Peak memory: GNU time's maximum resident set size of the process it
# waits for, and the peak of the sum over the whole process tree (for the
# Spark job: driver Python, the JVM and its Python workers), sampled every
# half second.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${1:-1000000}
DAYS=${2:-9}
WORK=${WORK:-/tmp/changeling-spark-bench}
PARTITIONS=${PARTITIONS:-8}
DRIVER_MEMORY=${DRIVER_MEMORY:-4g}
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/release/changeling}
VENV=${CHANGELING_VENV:-python/.venv}
PY=${PY:-$VENV/bin/python}

[ -n "$BIN_GIVEN" ] || cargo build --release --quiet --bin changeling
"$PY" -c 'import pyspark, changeling' || { echo "PY=$PY lacks pyspark or changeling (run python/ci.sh first)" >&2; exit 2; }
export PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON
PYSPARK_PYTHON=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
PYSPARK_DRIVER_PYTHON=$PYSPARK_PYTHON

DATA="$WORK/data-$ACCOUNTS-$DAYS"
mkdir -p "$WORK"
if [ ! -f "$DATA/events.jsonl" ]; then
    "$BIN" synth --accounts "$ACCOUNTS" --days "$DAYS" --seed 1 --impressions --out "$DATA" --quiet
fi
EVENTS=$(wc -l < "$DATA/events.jsonl")

tree_kb() { # pid: resident KiB of the process and all its descendants
    ps -eo pid=,ppid=,rss= | awk -v root="$1" '
        { parent[$1] = $2; rss[$1] = $3 }
        END { for (p in rss) { q = p; while (q != "" && q != 0 && q != root) q = parent[q]; if (q == root) sum += rss[p] }
              print sum + 0 }'
}

timed() { # label, output file, command...
    local label=$1 out=$2; shift 2
    /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/stdout.txt" 2> "$WORK/stderr.txt" &
    local pid=$! peak=0 kb
    while kill -0 "$pid" 2> /dev/null; do
        kb=$(tree_kb "$pid")
        [ "$kb" -gt "$peak" ] && peak=$kb
        sleep 0.5
    done
    wait "$pid" || { tail -n 40 "$WORK/stderr.txt"; exit 1; }
    local secs
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$WORK/time.txt")
    kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")
    printf '%-16s %8.2f s  %7.0f k events/s  max RSS %6.0f MiB  process tree peak %6.0f MiB\n' "$label" "$secs" \
        "$(echo "$EVENTS / $secs / 1000" | bc -l)" "$(echo "$kb / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)"
    echo "$secs" > "$out"
}

echo "dataset: $DATA ($EVENTS event lines), Spark: local[2], $PARTITIONS partitions"
timed "CLI" "$WORK/cli.secs" "$BIN" score --data "$DATA" --rules builtin --out "$WORK/cli.jsonl" --quiet

rm -rf "$WORK/eventlog" "$WORK/spark.jsonl"
mkdir -p "$WORK/eventlog"
export PYSPARK_SUBMIT_ARGS="--driver-memory $DRIVER_MEMORY --conf spark.ui.enabled=false \
--conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false --conf spark.eventLog.dir=file://$WORK/eventlog \
--conf spark.sql.shuffle.partitions=$PARTITIONS pyspark-shell"
timed "Spark local[2]" "$WORK/spark.secs" "$PY" -m changeling.spark --master 'local[2]' --data "$DATA" \
    --rules builtin --out "$WORK/spark.jsonl" --partitions "$PARTITIONS" --item-buckets "$PARTITIONS"

printf 'Spark / CLI wall time: %.1fx\n' "$(echo "$(cat "$WORK/spark.secs") / $(cat "$WORK/cli.secs")" | bc -l)"
if cmp -s "$WORK/cli.jsonl" "$WORK/spark.jsonl"; then
    echo "alerts: identical ($(wc -l < "$WORK/cli.jsonl") lines)"
else
    echo "alerts: DIFFER (cmp $WORK/cli.jsonl $WORK/spark.jsonl)"
fi

# Shuffle bytes per stage, from the event log.
"$PY" - "$WORK/eventlog" <<'PYEOF'
import json, os, sys
d = sys.argv[1]
rows = []
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if not f.startswith((".", "appstatus")))
for path in files:
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            if e.get("Event") != "SparkListenerStageCompleted":
                continue
            info = e["Stage Info"]
            acc = {a["Name"]: a.get("Value", 0) for a in info.get("Accumulables", [])}
            get = lambda k: int(acc.get(k, 0) or 0)
            read = get("internal.metrics.shuffle.read.localBytesRead") + get("internal.metrics.shuffle.read.remoteBytesRead")
            rows.append((info["Stage ID"], info.get("Number of Tasks", 0), get("internal.metrics.shuffle.write.bytesWritten"),
                         read, get("internal.metrics.executorRunTime") / 1000, info.get("Stage Name", "")[:60]))
print(f"{'stage':>5} {'tasks':>5} {'shuffle write':>14} {'shuffle read':>14} {'task secs':>9}  name")
for sid, tasks, w, r, secs, name in sorted(rows):
    print(f"{sid:>5} {tasks:>5} {w:>14,} {r:>14,} {secs:>9.1f}  {name}")
print(f"{'all':>5} {'':>5} {sum(r[2] for r in rows):>14,} {sum(r[3] for r in rows):>14,}")
PYEOF
