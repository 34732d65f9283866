#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU: install memnp, run the CUDA kernel tests on the
# device (not the simulator), then the kernel benchmark and the MNIST training-epoch benchmark
# with the cuda backend. Logs and results go to $OUT
# (default /tmp/memnp-gpu-out). Run from anywhere: bash bench/gpu_check.sh
#
# Works offline when python3 already has numba, numba-cuda, numpy, scipy and pytest; otherwise it
# installs memnp[test,cuda] from the package index into a fresh virtual environment. A GPU without
# the CUDA toolkit's NVVM/NVRTC libraries may also need numba-cuda's extra: 'numba-cuda[cu12]'
# (driver for CUDA 12) or 'numba-cuda[cu13]' (driver for CUDA 13).
set -x
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/memnp-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
status=0

# 1. The machine.
{ nvidia-smi; python3 --version; python3 -m pip list 2>/dev/null \
    | grep -i -E '^(numba|numba-cuda|numpy|scipy|pytest|llvmlite|cuda-|nvidia-)'; } 2>&1 | tee "$OUT/env.log"

# 2. Install. Where python3 already has the dependencies (a GPU image with numba-cuda, usually
#    offline), use it as it is with the repo on PYTHONPATH; else install into a fresh venv.
if python3 -c "import numpy, scipy, numba, numba_cuda, pytest" 2>&1 | tee "$OUT/install.log"; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    py=python3
else
    VENV=${VENV:-/tmp/memnp-gpu-venv}
    python3 -m venv "$VENV" && "$VENV/bin/python" -m pip install -e '.[test,cuda]' 2>&1 \
        | tee -a "$OUT/install.log" || status=1
    py="$VENV/bin/python"
fi
"$py" -c "import memnp, numba, numba_cuda; from numba import cuda; cuda.detect(); \
print('numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'gpu', cuda.is_available())" 2>&1 \
    | tee -a "$OUT/env.log" || status=1

# 3. CUDA kernel tests on the device.
#    The line-resistance solver's CUDA path (tests/test_circuit_cuda.py) too.
timeout 420 "$py" -m pytest -q -ra tests/test_kernels_cuda.py tests/test_circuit_cuda.py 2>&1 \
    | tee "$OUT/test_kernels_cuda.log" || status=1

# 4. Kernel benchmark (numpy vs cpu vs cuda).
if [ -f bench/kernels.py ]; then
    timeout 420 "$py" bench/kernels.py --out "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.log" || status=1
else
    echo "bench/kernels.py is absent: benchmark skipped" | tee "$OUT/kernels.log"
fi

# 5. Training-epoch benchmark with the cuda backend (the same epochs as on the CPU; e: the combined stage).
timeout 300 "$py" bench/epoch.py --backend cuda --cases a,b,c,d,e --repeats 1 --json "$OUT/epoch_cuda.json" 2>&1 \
    | tee "$OUT/epoch_cuda.log" || status=1

echo "gpu_check status: $status" | tee -a "$OUT/env.log"
exit $status
