#!/usr/bin/env bash
# GPU check of issue 17 ("Training on the GPU") in ONE run of at most 8 minutes, for a machine
# with an NVIDIA GPU: the CUDA tests on the device (not the simulator), the kernel benchmark (PF
# forward + VJP at 8192 x 785 x 50 float32, target <= 4.0 ms), device-resident training epochs
# (bench/device_epoch.py: case c at K = 1 and 32, case e at K = 32), `reproduce --preset default
# --backend cuda` (target <= 45 s), the GPU random numbers, issue 15's K-member CPU epochs on the
# machine's cores, and the MNIST training-epoch benchmark with the cuda backend; then one table (what, measured, target)
# printed and written to $OUT/gpu_check.json (bench/gpu_table.py). Logs go to $OUT too
# (default /tmp/memnp-gpu-out). Run from anywhere: bash bench/gpu_check.sh
#
# Time: every step runs under `timeout`, capped by what is left of GPU_CHECK_BUDGET_S (default 440
# s) so the whole run ends within 8 minutes; a step with no time left is skipped and the table says
# so. Offline: uses python3 as it is when it has numpy, scipy, numba, numba-cuda and pytest
# (else tries to install memnp[test,cuda] into a venv, which needs the package index).
# numba-cuda up to 0.30 breaks on numpy 2.5 (its first kernel compile looks up np.row_stack, which
# numpy 2.5 removed): a sitecustomize.py in a temporary folder, on PYTHONPATH for this script's
# processes only, sets numpy.row_stack = numpy.vstack where it is missing.
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/memnp-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
BUDGET=${GPU_CHECK_BUDGET_S:-440}
RESERVE=15                       # seconds kept for the table
START=$(date +%s)
THREADS=$(nproc 2>/dev/null || echo 2)
: > "$OUT/steps.tsv"

# Seconds a step may take: min(its cap, what is left of the budget less the reserve).
left() {
    local cap=$1 rest
    rest=$(( START + BUDGET - RESERVE - $(date +%s) ))
    if [ "$rest" -lt "$cap" ]; then echo "$rest"; else echo "$cap"; fi
}
# step NAME CAP LOG COMMAND...: run under timeout, log to $OUT/LOG, record status and seconds.
step() {
    local name=$1 cap=$2 log=$3 t t0 rc
    shift 3
    t=$(left "$cap")
    if [ "$t" -lt 10 ]; then
        printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"
        echo "== $name: skipped (no time left)" | tee -a "$OUT/$log"
        return
    fi
    echo "== $name (timeout ${t} s): $*" | tee -a "$OUT/$log"
    t0=$(date +%s)
    timeout -k 10 "$t" "$@" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$OUT/steps.tsv"
}

# 0. The numpy 2.5 shim (this script's processes only; another sitecustomize is run after it).
SHIM=$(mktemp -d)
cat > "$SHIM/sitecustomize.py" <<'EOF'
import os
import sys
try:
    import numpy
    if not hasattr(numpy, "row_stack"):
        numpy.row_stack = numpy.vstack
except Exception:
    pass
_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _path = os.path.join(os.path.abspath(_entry or "."), "sitecustomize.py")
    if os.path.dirname(_path) != _here and os.path.isfile(_path):
        with open(_path) as _f:
            exec(compile(_f.read(), _path, "exec"), {"__name__": "sitecustomize", "__file__": _path})
        break
EOF
export PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 1. The machine and the Python to use.
{ timeout 20 nvidia-smi; python3 --version; python3 -m pip list 2>/dev/null \
    | grep -i -E '^(numba|numba-cuda|numpy|scipy|pytest|llvmlite|cuda-|nvidia-)'; } > "$OUT/env.log" 2>&1
py=python3
if ! python3 -c "import numpy, scipy, numba, numba_cuda, pytest" >> "$OUT/env.log" 2>&1; then
    VENV=${VENV:-/tmp/memnp-gpu-venv}
    step install 150 install.log bash -c "python3 -m venv '$VENV' && '$VENV/bin/python' -m pip install -e '.[test,cuda]'"
    py="$VENV/bin/python"
fi
step env 60 env.log "$py" -c "import numpy, numba, numba_cuda, memnp; from numba import cuda; cuda.detect(); \
print('numpy', numpy.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, \
'gpu', cuda.is_available())"

# 2. Kernel benchmark: the target shape and a narrow layer, float32, device-resident arrays
#    ("cuda") and host arrays copied both ways ("cuda+copy"); no NumPy reference at this size.
step kernels 100 kernels.log "$py" bench/kernels.py --backends cuda --dtypes float32 \
    --shapes 8192x785x50,8192x26x10 --repeats 50 --no-compile --out "$OUT/kernels.json"

# 2b. Device-resident training epochs (memnp.nn.device): case c, float32, K = 1 and 32 members
#     per launch (targets 0.6 s and 1.6 s per epoch).
step device_epoch 150 device_epoch.log "$py" bench/device_epoch.py --members 1,32 --repeats 2 \
    --json "$OUT/device_epoch.json"
#     The combined stage (case e: conductance phases, DAC, ADC, tiles on the device), K = 32
#     (target 2.5 s per epoch).
step device_epoch_e 90 device_epoch.log "$py" bench/device_epoch.py --cases e --members 32 --repeats 1 \
    --json "$OUT/device_epoch_e.json"

# 3. The CUDA tests on the device, in steps so that one running out of time keeps the others'
#    results: the kernels (and GPU random numbers), device training, the line-resistance solver.
step tests_kernels 120 tests_kernels.log "$py" -m pytest -q -ra -p no:cacheprovider \
    tests/test_kernels*cuda*.py
step tests_device 120 tests_device.log "$py" -m pytest -q -ra -p no:cacheprovider \
    tests/test_nn_device.py tests/test_nn_device_stage.py tests/test_nn_device_linear.py \
    tests/test_nn_device_standard.py
step tests_circuit 120 tests_circuit.log "$py" -m pytest -q -ra -p no:cacheprovider \
    tests/test_circuit*cuda*.py

# 3b. The default reproduction on the GPU (target <= 45 s wall; the figures are not drawn): the
#     table reads this step's seconds.
step reproduce 150 reproduce.log "$py" run.py reproduce --preset default --backend cuda --no-figures \
    --out "$OUT/reproduce"

# 4. GPU random numbers against the CPU's.
step random 40 random.log "$py" bench/cuda_random.py --out "$OUT/random.json"

# 4b. Issue 15 on this machine's CPU cores (the 16 of a GPU box): case c, K = 1, 5 and 16 members
#     per pass, same-run pairs (targets: per member at most 0.45x the single network at K = 5, 0.35x
#     at K = 16), all three in the one-call step (its first compilation is in this step's time; K = 5
#     has fewer members than threads).
step ensemble_cpu 90 ensemble_cpu.log "$py" bench/ensemble.py --cases c --members 1,5,16 --epochs 1 \
    --examples 6000 --out "$OUT/ensemble_cpu.json"

# 5. Training epochs with the cuda backend, one case per process and timeout (e: the combined stage).
for case in a b c d e; do
    step "epoch_$case" 90 epoch_cuda.log "$py" bench/epoch.py --backend cuda --cases "$case" \
        --repeats 1 --threads "$THREADS" --json "$OUT/epoch_$case.json"
done

# 6. The table (printed, and written to $OUT/gpu_check.json).
timeout -k 5 30 "$py" bench/gpu_table.py "$OUT" 2>&1 | tee "$OUT/table.log"
rm -rf "$SHIM"
status=0
while IFS=$'\t' read -r name rc seconds; do
    [ "$rc" = 0 ] || status=1
done < "$OUT/steps.tsv"
echo "gpu_check status: $status ($(( $(date +%s) - START )) s)" | tee -a "$OUT/env.log"
exit $status
