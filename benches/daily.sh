#!/usr/bin/env bash
# Daily runs at scale: a population of ACCOUNTS accounts over 91 days from
# `changeling synth --daily`; the state of days 1-90 built once; then, each
# timed as a whole process (/usr/bin/time -v) RUNS times from a fresh copy of
# that state:
#
#   daily      day 91 scored against the state of day 90 (score --state)
#   alone      day 91 scored with no history at all
#   since      the one-shot run over all 91 days, reporting day 91 (--since)
#   micro      five minutes of day 91's activity against the state of day 90
#
# and checks that the day-91 run's changes, folded onto the one-shot run
# over 90 days, give the one-shot run over 91 days (field for field apart
# from status). Prints medians, the ratios the daily-state issue asks for,
# the state's size per account and its read and write time. The state of
# day 90 is built as a daily job would: days 1-90 one after the other.
#
#   benches/daily.sh [ACCOUNTS] [RUNS]      default: 1000000 accounts, 3 runs
#
# STATE_BUILD=rebuild builds the state of day 90 in one run instead
# (`changeling state rebuild --data HIST`: every event of days 1-90 scored
# from nothing, faster than 90 daily runs but with the whole history in
# memory: 15 GB on a million accounts), into ${WORK}/state90-rebuilt; the
# day-91 runs then start from it. Its alerts are those of the daily-built
# state; its layers are merged, so no day-91 run pays for a merge.
#
# Needs: a Rust toolchain, python3, zstd, /usr/bin/time, about 8 GB free. Work
# files go to ${WORK:-/tmp/changeling-daily} (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${1:-1000000}
RUNS=${2:-3}
WORK=${WORK:-/tmp/changeling-daily}
# The one-shot runs over 90 and 91 days hold 100 M events: partitioned
# within this budget (same alerts as in memory).
ONE_SHOT_MEMORY=${ONE_SHOT_MEMORY:-6GiB}
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/release/changeling}   # BIN=path runs that binary instead of building
[ -n "$BIN_GIVEN" ] || cargo build --release --quiet
BIN=$(realpath "$BIN")
mkdir -p "$WORK"
POP=$WORK/pop
if [ ! -d "$POP/daily" ]; then
    "$BIN" synth --accounts "$ACCOUNTS" --days 91 --seed 1 --compress zst --out "$POP" --daily --force --quiet
fi
DAYS=($(ls "$POP/daily"))
LAST=${DAYS[90]}
# Days 1-90 as one dataset of part files (links to the days' files).
HIST=$WORK/hist
if [ ! -d "$HIST" ]; then
    for t in events impressions items; do
        mkdir -p "$HIST/$t"
        for d in "${DAYS[@]:0:90}"; do
            f=$(ls "$POP/daily/$d/$t".* 2>/dev/null | head -1 || true)
            [ -n "$f" ] && ln -s "$f" "$HIST/$t/part-$d.${f#*.}"
        done
        rmdir "$HIST/$t" 2>/dev/null || true
    done
    for t in follows accounts; do
        f=$(ls "$POP/daily/${DAYS[0]}/$t".* 2>/dev/null | head -1 || true)
        [ -n "$f" ] && ln -s "$f" "$HIST/$(basename "$f")"
    done
fi
# Five minutes of day 91: its first events, and the items created then.
MICRO=$WORK/micro
if [ ! -d "$MICRO" ]; then
    mkdir -p "$MICRO"
    python3 - "$POP/daily/$LAST" "$MICRO" "$LAST" <<'PYEOF'
import sys, subprocess, json
src, out, day = sys.argv[1:4]
end = day + "T00:05:00Z"
def lines(name):
    return subprocess.run(["zstd", "-dc", f"{src}/{name}.jsonl.zst"], capture_output=True, text=True, check=True).stdout.splitlines()
with open(f"{out}/events.jsonl", "w") as f:
    for l in lines("events"):
        if l and json.loads(l)["ts"] < end:
            f.write(l + "\n")
with open(f"{out}/items.jsonl", "w") as f:
    for l in lines("items"):
        if l and json.loads(l).get("created_at", "") < end:
            f.write(l + "\n")
PYEOF
fi
# The state of day 90, as a daily job builds it: days 1-90 one after the
# other (each run's time kept in days.log); or rebuilt in one run.
STATE90=$WORK/state90
if [ "${STATE_BUILD:-daily}" = rebuild ]; then
    STATE90=$WORK/state90-rebuilt
    if [ ! -f "$STATE90/CURRENT" ]; then
        rm -rf "$STATE90"
        /usr/bin/time -f "state rebuilt from days 1-90: %e s, peak %M KB" \
            "$BIN" state rebuild --data "$HIST" --state "$STATE90" --quiet
    fi
elif [ ! -f "$STATE90/CURRENT" ]; then
    rm -rf "$STATE90.building"
    for d in "${DAYS[@]:0:90}"; do
        /usr/bin/time -f "$d %e s %M KB" -a -o "$WORK/days.log" \
            "$BIN" score --data "$POP/daily/$d" --state "$STATE90.building" --quiet --format jsonl -o /dev/null
    done
    mv "$STATE90.building" "$STATE90"
    awk '{print $2}' "$WORK/days.log" | sort -n | awk '{a[NR]=$1} END {printf "days 1-90: median %.2f s a day, slowest %.2f s\n", a[int((NR+1)/2)], a[NR]}'
fi

secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$1"; }
peak() { awk -F': ' '/Maximum resident set size/ {print int($2 / 1024)}' "$1"; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
declare -A T P
run() { # name, state copy (or -), command...
    local name=$1 copy=$2; shift 2
    local times=() peaks=()
    for i in $(seq "$RUNS"); do
        if [ "$copy" != - ]; then rm -rf "$copy"; cp -a "$STATE90" "$copy"; fi
        /usr/bin/time -v "$@" 2> "$WORK/$name.log" > /dev/null
        times+=("$(secs "$WORK/$name.log")"); peaks+=("$(peak "$WORK/$name.log")")
    done
    T[$name]=$(printf '%s\n' "${times[@]}" | median); P[$name]=$(printf '%s\n' "${peaks[@]}" | median)
    printf '%-8s %8.2f s  (runs: %s)  peak %5d MiB\n' "$name" "${T[$name]}" "${times[*]}" "${P[$name]}"
}
run daily "$WORK/s" "$BIN" score --data "$POP/daily/$LAST" --state "$WORK/s" --json -o "$WORK/daily.jsonl"
cp "$WORK/daily.log" "$WORK/daily.summary"
run alone - "$BIN" score --data "$POP/daily/$LAST" --quiet -o "$WORK/alone.jsonl"
run micro "$WORK/m" "$BIN" score --data "$MICRO" --state "$WORK/m" --json -o "$WORK/micro.jsonl"
run since - "$BIN" score --data "$POP" --since "$LAST" --memory "$ONE_SHOT_MEMORY" --quiet -o "$WORK/since.jsonl"

# The state after day 91, and its read and write time in the daily run.
python3 - "$WORK/daily.summary" <<'PYEOF'
import json, sys
text = open(sys.argv[1]).read()
s = json.loads(text[text.index("{"):text.rindex("}") + 1])["state"]
print(f"state    {s['accounts']:,} accounts, {s['bytes'] / 2**20:.1f} MiB, {s['bytes'] / max(s['accounts'], 1):.0f} bytes an account; "
      f"read {s['state_read_secs']:.2f} s, written {s['state_write_secs']:.2f} s")
PYEOF
printf 'ratios   daily / alone %.2f (target at most 2); since / daily %.1f (target at least 20)\n' \
    "$(echo "${T[daily]} / ${T[alone]}" | bc -l)" "$(echo "${T[since]} / ${T[daily]}" | bc -l)"

# Folded onto the one-shot run over 90 days, the day's changes give the
# one-shot run over 91 days.
if [ ! -f "$WORK/all90.jsonl" ]; then "$BIN" score --data "$HIST" --memory "$ONE_SHOT_MEMORY" --quiet -o "$WORK/all90.jsonl"; fi
if [ ! -f "$WORK/all91.jsonl" ]; then "$BIN" score --data "$POP" --memory "$ONE_SHOT_MEMORY" --quiet -o "$WORK/all91.jsonl"; fi
python3 - "$WORK" <<'PYEOF'
import json, sys
w = sys.argv[1]
def load(name):
    out = {}
    for l in open(f"{w}/{name}"):
        d = json.loads(l); st = d.pop("status"); out[d["id"]] = (st, d)
    return out
folded = {k: v for k, (_, v) in load("all90.jsonl").items()}
for k, (st, v) in load("daily.jsonl").items():
    if st == "withdrawn": folded.pop(k, None)
    else: folded[k] = v
want = {k: v for k, (_, v) in load("all91.jsonl").items()}
differ = [k for k in set(folded) | set(want) if folded.get(k) != want.get(k)]
print(f"equal    {len(want):,} incidents over 91 days; folded {'equal' if not differ else f'DIFFERENT in {len(differ)}'}")
PYEOF
