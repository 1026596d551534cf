#!/usr/bin/env bash
# Runs every target in turn, one process (one core) at a time, for SECONDS each (default
# 120), with the limits of docs/RELIABILITY.md, and prints one summary line per target:
# executions, seconds, and what it left in artifacts/. Logs go to fuzz/logs/<target>.log.
# RUNS=N stops a target earlier, once it has executed N inputs (the default is no limit).
#   [RUNS=N] ./run-all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-120}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors pytorch_zip pytorch_legacy tf_bundle onnx image manifest)
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    cargo fuzz run "$t" "corpus/$t" -- -rss_limit_mb=2048 -timeout=10 \
        -max_total_time="$seconds" -runs="${RUNS:--1}" -print_final_stats=1 > "logs/$t.log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | tail -1)
    found=$(ls "artifacts/$t" | wc -l)
    echo "$t: rc=$rc executions=${runs:-?} (${took:-stopped early}) artifacts=$found"
done
