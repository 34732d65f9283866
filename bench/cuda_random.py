"""GPU random numbers (memnp.kernels.cuda_random) against the CPU's, on a CUDA GPU.

Times ``random_raw`` (PCG64 words) and ``standard_normal`` (float32 and float64) into device
arrays, and the CPU's ``bit_generator.random_raw`` and memnp.kernels.normal.standard_normal for the
same counts; checks that the GPU's words are the CPU's (bit for bit) and its normals within 2
float64 ulp (float32: one float32 ulp). Medians over --repeats calls after one warm-up call.

Usage: python bench/cuda_random.py [--count 16777216] [--repeats 10] [--out random.json]
Needs a usable CUDA GPU (not the simulator); exits 1 with one line otherwise.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # use the repository's memnp without installing it

from common import summarize, time_calls, write_json  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2 ** 24, help="numbers per call (>= 1)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (>= 1)")
    parser.add_argument("--out", default=None, help="JSON output file")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeats < 1:
        parser.error("--count and --repeats must be >= 1")
    from numba import cuda
    from numba.core import config
    if config.ENABLE_CUDASIM or not cuda.is_available():
        raise SystemExit("bench/cuda_random.py: no usable CUDA GPU (or the simulator is on)")
    from memnp.kernels import cuda_random, normal

    n = args.count
    results = []
    cases = [("words", None), ("normals float32", np.float32), ("normals float64", np.float64)]
    for what, dtype in cases:
        if dtype is None:
            def gpu(rng):
                return cuda_random.random_raw(rng, n)

            def cpu(rng):
                return rng.bit_generator.random_raw(n)
        else:
            def gpu(rng, dtype=dtype):
                return cuda_random.standard_normal(rng, n, dtype)

            def cpu(rng, dtype=dtype):
                return normal.standard_normal(rng, n, dtype)
        rng_gpu, rng_cpu = np.random.default_rng(1), np.random.default_rng(1)
        got, want = gpu(rng_gpu).copy_to_host(), cpu(rng_cpu)
        if dtype is None:
            same = bool(np.array_equal(got, want))
        elif dtype == np.float64:
            same = bool(np.all(np.abs(got - want) <= 2 * np.spacing(np.maximum(np.abs(want), 1.0))))
        else:
            same = bool(np.all(np.abs(got - want) <= np.spacing(np.abs(want))))
        same = same and rng_gpu.bit_generator.state == rng_cpu.bit_generator.state
        rng = np.random.default_rng(2)
        gpu_times = summarize(time_calls(lambda: gpu(rng), args.repeats, sync=cuda.synchronize))
        cpu_times = summarize(time_calls(lambda: cpu(rng), max(3, args.repeats // 3)))
        row = dict(what=what, count=n, median_ms=gpu_times["median_s"] * 1e3,
                   min_ms=gpu_times["min_s"] * 1e3, cpu_median_ms=cpu_times["median_s"] * 1e3,
                   same_as_cpu=same)
        results.append(row)
        print(f"{what:16} {n:>10,}  gpu {row['median_ms']:8.3f} ms  cpu {row['cpu_median_ms']:8.1f} ms"
              f"  same as cpu: {same}", flush=True)
    if args.out:
        write_json(args.out, {"benchmark": "cuda_random", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "results": results})


if __name__ == "__main__":
    main()
