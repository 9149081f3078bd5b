#!/usr/bin/env bash
# bench_search.py on a bigger, otherwise idle machine: one seed per pair of cores
# (taskset), the seeds side by side, each run seeing 2 CPUs as on the project's
# machines. CUDA is hidden, so every contender trains on the CPU.
#
# Usage: bash benchmarks/bench_search_pinned.sh [LIMIT_S] [-- more bench_search.py flags]
#   e.g. bash benchmarks/bench_search_pinned.sh 330 --data odot --odot-file data/counts.csv
# Writes $OUT/bench.tgz (runs/events/probes CSV per seed, logs); merge the seeds with
#   python benchmarks/bench_search.py --report s0 s1 s2 --out results/bench
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-pinned-out}
limit=${1:-330}
shift || true
[ "${1:-}" = "--" ] && shift
work=/tmp/bench-pinned
rm -rf "$work" && mkdir -p "$work" "$OUT"
export CUDA_VISIBLE_DEVICES="" PYTHONUNBUFFERED=1 RAY_AIR_NEW_OUTPUT=0
pids=()
for seed in 0 1 2; do
    cores="$((2 * seed)),$((2 * seed + 1))"
    taskset -c "$cores" timeout "$limit" python3 benchmarks/bench_search.py --cpus 2 --seeds "$seed" \
        --contenders random ours optuna defaults --no-probes --out "$work/s$seed" "$@" >"$work/s$seed.log" 2>&1 &
    pids+=($!)
done
# the probes (fixed cost of --smoke-test, an epoch inside a trial) on a pair of their own
taskset -c 6,7 timeout "$limit" python3 benchmarks/bench_search.py --cpus 2 --probes-only --out "$work/probes" "$@" \
    >"$work/probes.log" 2>&1 &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
uptime >"$work/uptime.txt"
tar czf "$OUT/bench.tgz" -C "$work" --exclude='*.png' .
grep -h "^== " "$work"/s*.log
grep -h "PASS\|MISS" "$work/probes.log"
cat "$work/uptime.txt"
