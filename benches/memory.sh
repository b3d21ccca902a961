#!/usr/bin/env bash
# Bounded memory at scale: scores about 10 M and 100 M events (1 M accounts,
# 9 and 90 days from `changeling synth`, zstd-compressed JSONL) with
# `--memory BUDGET`, and prints for each the wall time and peak resident
# memory (/usr/bin/time -v), whether the peak stayed under the budget, and
# how the time grew with the events.
#
#   benches/memory.sh [BUDGET]      default: 2GiB
#
# Needs: a Rust toolchain, /usr/bin/time, about 3 GB free for the data and
# 4 GB for spill files. Data go to ${WORK:-/tmp/changeling-memory} (kept
# between runs; generating 100 M events takes a few minutes), spill files
# to ${TMPDIR:-/tmp}. CHANGELING_TRACE_MEMORY=1 in the environment adds
# resident memory per phase to each run's log.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-2GiB}
WORK=${WORK:-/tmp/changeling-memory}
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/release/changeling}   # BIN=path runs that binary instead of building

[ -n "${BIN_GIVEN:-}" ] || cargo build --release --quiet
budget_kb=$(python3 -c '
import re, sys
m = re.fullmatch(r"([0-9.]+)\s*([KMGT]?)i?B?", sys.argv[1], re.I)
n, u = float(m.group(1)), m.group(2).upper()
print(int(n * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[u] / 1024))' "$BUDGET")

mkdir -p "$WORK"
for days in 9 90; do
    if [ ! -f "$WORK/d$days/events.jsonl.zst" ]; then
        "$BIN" synth --accounts 1000000 --days "$days" --seed 1 --compress zst --out "$WORK/d$days" --quiet
    fi
done

declare -A secs events
for days in 9 90; do
    log="$WORK/d$days.log"
    /usr/bin/time -v "$BIN" score --memory "$BUDGET" --data "$WORK/d$days" --out "$WORK/d$days.alerts.jsonl" 2> "$log"
    secs[$days]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$log")
    peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    events[$days]=$(sed -n 's/^ *read *\([0-9,]*\) events.*/\1/p' "$log" | tr -d ,)
    verdict=$([ "$peak" -lt "$budget_kb" ] && echo "under" || echo "OVER")
    printf '%11s events  %8.1f s  peak %6.0f MiB  %s the %s budget\n' \
        "${events[$days]}" "${secs[$days]}" "$(echo "$peak / 1024" | bc -l)" "$verdict" "$BUDGET"
done
printf 'time grew %.1fx for %.1fx the events\n' \
    "$(echo "${secs[90]} / ${secs[9]}" | bc -l)" "$(echo "${events[90]} / ${events[9]}" | bc -l)"
