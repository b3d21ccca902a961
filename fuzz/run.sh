#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's input surfaces (cargo-fuzz over
# libFuzzer; needs the nightly toolchain and `cargo install cargo-fuzz`).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 1800 s for each of rules, jsonl, csv, parquet, block_cutter,
# spill_decoder, alerts, state_payload, state_files, exceptions and arrow
# (Arrow tables as the Python package hands them over); JOBS=n runs n
# targets at once (default 1). Each target starts from its seeds
# (fuzz/seeds/<target>, committed) and grows fuzz/corpus/<target> (not
# committed). libFuzzer runs in fork mode, so a
# crash is saved under fuzz/artifacts/<target>/ and fuzzing goes on.
# A crash is then fixed and its input copied into fuzz/regressions/<target>/,
# where `cargo test --test fuzz_corpus` replays it on stable.
#
# Prints per target: seconds, executions, corpus entries, crashes, ooms and
# timeouts (from libFuzzer's last status line; logs in fuzz/logs/).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER=${1:-1800}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(rules jsonl csv parquet block_cutter spill_decoder alerts state_payload state_files exceptions arrow)
JOBS=${JOBS:-1}

# Built once: the targets then run as built, even if the sources change
# while they run.
cargo +nightly fuzz build -O
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs

max_len() {
    case "$1" in
        jsonl | csv | parquet | alerts) echo 16384 ;;
        state_files | arrow) echo 32768 ;;
        *) echo 8192 ;;
    esac
}

run_one() {
    local t=$1
    mkdir -p "corpus/$t" "artifacts/$t"
    # One scoring thread: the fuzzer's own fork children are the parallelism.
    RAYON_NUM_THREADS=1 "$bin/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
        -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -max_total_time="$SECONDS_PER" -max_len="$(max_len "$t")" \
        -rss_limit_mb=2048 -timeout=20 >"logs/$t.log" 2>&1 || true
}

summary() {
    local t=$1 last
    last=$(grep -E '^#[0-9]+: cov:' "logs/$t.log" | tail -1 || true)
    printf '%-14s %s\n' "$t" "${last:-no status line; see fuzz/logs/$t.log}"
    ls "artifacts/$t" 2>/dev/null | sed "s|^|    artifact: artifacts/$t/|"
}

running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
echo "target         last status: #executions cov ft corp exec/s oom/timeout/crash time"
for t in "${TARGETS[@]}"; do summary "$t"; done
