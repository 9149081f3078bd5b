#!/usr/bin/env bash
# The GPU checks in one call, for a lent GPU machine (or any machine with CUDA):
#   1. ray/optuna and what they need from .whl/ when the image lacks them (nothing heavy:
#      torch with CUDA must already be there);
#   2. the gpu-marked engine tests (fp16 + GradScaler, resume with the scaler state, bf16,
#      no per-batch copies, divergence on the GPU);
#   3. the training step on the CPU and on the GPU side by side (benchmarks/bench_gpu.py);
#   4. a short sweep with --gpus-per-trial 0.25 (four trials share the GPU), the GPU's
#      processes and memory sampled every second meanwhile; then the same sweep with
#      --gpus-per-trial 0, whose trials must leave the GPU alone;
#   5. if time is left, tests/test_engine.py with CUDA as the default device.
# Writes everything under $OUT (default ./gpu-check-out) and prints a short summary last.
# Usage: bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AIR_NEW_OUTPUT=0
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
    echo "cpus $(nproc)"
} >"$OUT/machine.txt" 2>&1
summary "machine: $(tr '\n' ' ' <"$OUT/machine.txt")"

if ! python3 -c 'import ray, optuna' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >"$OUT/pip.log" 2>&1 && export PYTHONPATH=/tmp/site
    summary "wheels installed ($(elapsed) s): $(python3 -c 'import ray, optuna; print("ray", ray.__version__, "optuna", optuna.__version__)' 2>&1 | tail -1)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

timeout 150 python3 -m pytest tests/test_gpu.py -m gpu -q -rs -p no:cacheprovider >"$OUT/gpu_tests.log" 2>&1
summary "gpu tests ($(elapsed) s): $(tail -1 "$OUT/gpu_tests.log")"

timeout 150 python3 benchmarks/bench_gpu.py --batches 40 --repeats 2 --out "$OUT" >"$OUT/bench_gpu.log" 2>&1
status=$?
summary "bench_gpu ($(elapsed) s): exit $status"

nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader -l 1 >"$OUT/gpu_apps.log" 2>&1 &
smi_apps=$!
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 1 >"$OUT/gpu_util.log" 2>&1 &
smi_util=$!
sweep_start=$(date +%s.%N)
timeout 180 python3 -m tuning.search --num-samples 8 --max-epochs 3 --grace-period 1 --gpus-per-trial 0.25 \
    --cpus-per-trial 2 --storage-path /tmp/gpu-sweeps --name frac-gpu >"$OUT/sweep.log" 2>&1
status=$?
sweep_s=$(python3 -c "import time; print(f'{time.time() - $sweep_start:.1f}')")
kill $smi_apps $smi_util 2>/dev/null
most=$(grep -E '^[0-9]+,' "$OUT/gpu_apps.log" | cut -d, -f1 | sort -u | wc -l)
summary "fractional-GPU sweep ($(elapsed) s): exit $status, ${sweep_s} s wall, $most distinct GPU processes seen"
grep -E "best|val_mae" "$OUT/sweep.log" | tail -4 | tee -a "$OUT/summary.txt"
grep -E "sweep: an epoch" "$OUT/sweep.log" | tee -a "$OUT/summary.txt"

# The same sweep given no GPU: its trials must stay off the GPU (Ray 2.60 leaves them the
# machine's CUDA_VISIBLE_DEVICES; the trainable hides it).
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader -l 1 >"$OUT/gpu_apps_cpu.log" 2>&1 &
smi_apps=$!
timeout 150 python3 -m tuning.search --num-samples 8 --max-epochs 3 --grace-period 1 --gpus-per-trial 0 \
    --cpus-per-trial 2 --storage-path /tmp/gpu-sweeps --name cpu-only >"$OUT/sweep_cpu.log" 2>&1
status=$?
kill $smi_apps 2>/dev/null
on_gpu=$(grep -E '^[0-9]+,' "$OUT/gpu_apps_cpu.log" | cut -d, -f1 | sort -u | wc -l)
summary "sweep with --gpus-per-trial 0 ($(elapsed) s): exit $status, $on_gpu processes seen on the GPU (0 expected)"

if [ "$(elapsed)" -lt 240 ]; then
    timeout $((300 - $(elapsed))) python3 -m pytest tests/test_engine.py -q -p no:cacheprovider >"$OUT/engine_tests_cuda.log" 2>&1
    summary "tests/test_engine.py with CUDA the default device ($(elapsed) s): $(tail -1 "$OUT/engine_tests_cuda.log")"
fi

echo
grep -v INFO "$OUT/bench_gpu.log"
echo
tail -20 "$OUT/gpu_tests.log"
echo
cat "$OUT/summary.txt"
