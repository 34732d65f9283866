"""Kernel benchmark: Poole-Frenkel forward, backward (VJP) and power, per backend.

For p x m x n = 64 x 785 x 50, 64 x 26 x 20 and 64 x 1025 x 50 (batch x crossbar rows x columns:
the paper's MNIST layers and the CIFAR-10 CNN's first memristive layer), float32 and float64, it
times the NumPy reference (materializing), the Numba CPU backend (optionally also its dense
kernels alone, "cpu-dense") and, where a CUDA GPU is usable
(not the simulator), the CUDA backend: once with device-resident arrays ("cuda") and once with
host arrays copied both ways ("cuda+copy"). Inputs: V = k_V x with x uniform in [0, 1] (k_V =
0.5 V; no exact zeros), c and d_eps drawn as the high-resistance SiOx PF model draws them.

Reported per case: median and minimum wall time, device evaluations per second
(p m n / time) for both, the speed-up over NumPy (ratio of medians) and the normwise relative
error against the NumPy reference (the largest over the outputs, for the backward pass).
It also measures the first-call compile time of the CPU kernels in fresh processes, with an empty
Numba cache and again with the cache filled (cache=True), per function and dtype.

Usage: python bench/kernels.py [--repeats 30] [--quick] [--threads N] [--backends numpy,cpu,cuda]
                               [--dtypes float32,float64] [--shapes 64x785x50,...]
                               [--wait-idle SECONDS] [--markdown]
                               [--no-compile] [--out bench/out/kernels.json]
Threads: Numba's (NUMBA_NUM_THREADS, or --threads); record the load average too, because other
processes on the machine slow the timings down.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # use the repository's memnp without installing it

from common import (bounded_int, format_markdown, format_table, gpu_name, machine_info, summarize,  # noqa: E402
                    thread_info, time_calls, versions, wait_for_idle, write_json)

SHAPES = ((64, 785, 50), (64, 26, 20), (64, 1025, 50))
DTYPES = ("float32", "float64")
OPS = ("forward", "backward", "power")
K_V = 0.5
# High-resistance SiOx (docs/model.md §6): G_off, G_on, slopes (s_c, s_d), intercepts (b_c, b_d), Sigma.
G_OFF, G_ON = 5.24841e-7, 2.6242e-6
SLOPES, INTERCEPTS = (-1.03023, -0.0901078), (-0.250595, -37.1186)
SIGMA = [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]


def make_case(shape, dtype, seed=0):
    """(V (p, m), c (m, n), d_eps (m, n), grad_I (p, n)) of the given dtype."""
    p, m, n = shape
    rng = np.random.default_rng(seed)
    ln_R = -np.log(rng.uniform(G_OFF, G_ON, size=(m, n)))
    e = rng.multivariate_normal([0.0, 0.0], SIGMA, size=(m, n))
    c = np.exp(SLOPES[0] * ln_R + INTERCEPTS[0] + e[..., 0])
    d_eps = np.exp(SLOPES[1] * ln_R + INTERCEPTS[1] + e[..., 1])
    V = K_V * rng.random((p, m))
    grad_I = rng.normal(size=(p, n))
    return tuple(a.astype(dtype) for a in (V, c, d_eps, grad_I))


def cuda_usable():
    """True when numba.cuda sees a real GPU (not the simulator) and memnp's CUDA module imports."""
    try:
        from numba import cuda
        from numba.core import config
        if config.ENABLE_CUDASIM or not cuda.is_available():
            return False
        from memnp.kernels import get_backend
        get_backend("cuda")
        return True
    except Exception:
        return False


def backends(names):
    """{label: (module, to_backend(array), to_host(result), sync or None)} for usable backends."""
    from memnp.kernels import get_backend
    same = (lambda a: a)
    out = {}
    if "numpy" in names:
        out["numpy"] = (get_backend("numpy"), same, same, None)
    if "cpu" in names:
        out["cpu"] = (get_backend("cpu"), same, same, None)
    if "cpu-dense" in names:
        import memnp.kernels.cpu as dense
        out["cpu-dense"] = (dense, same, same, None)
    if "cuda" in names and cuda_usable():
        from numba import cuda
        module = get_backend("cuda")
        out["cuda"] = (module, cuda.to_device,
                       lambda r: r.copy_to_host() if hasattr(r, "copy_to_host") else r,
                       cuda.synchronize)
        out["cuda+copy"] = (module, same, same, cuda.synchronize)
    return out


def call(module, op, args):
    V, c, d_eps, grad_I = args
    if op == "forward":
        return module.pf_currents(V, c, d_eps)
    if op == "backward":
        return module.pf_currents_vjp(V, c, d_eps, grad_I)
    return module.pf_power(V, c, d_eps)


def error(result, expected):
    """Normwise relative error (largest over the outputs of a tuple; relative for a scalar)."""
    if isinstance(expected, float):
        return abs(result / expected - 1.0)
    if isinstance(expected, tuple):
        return max(error(r, e) for r, e in zip(result, expected))
    expected = np.asarray(expected, dtype=np.float64)
    diff = np.asarray(result, dtype=np.float64) - expected
    return float(np.linalg.norm(diff) / np.linalg.norm(expected))


def run_timings(shapes, dtypes, labels, repeats, budget_s, wait_idle_s=0.0):
    rows = []
    available = backends(labels)
    for shape in shapes:
        evaluations = int(np.prod(shape))
        for dtype in dtypes:
            host = make_case(shape, dtype)
            idle = wait_for_idle(0.95, wait_idle_s) if wait_idle_s > 0 else None
            reference = {op: call(available["numpy"][0], op, host) for op in OPS} \
                if "numpy" in available else None
            # Fast backends first: the numpy runs take seconds, and a busy machine spoils less.
            order = [label for label in available if label != "numpy"]
            order += ["numpy"] if "numpy" in available else []
            case_rows = []
            for label in order:
                module, to_backend, to_host, sync = available[label]
                args = tuple(to_backend(a) for a in host)
                for op in OPS:
                    result = call(module, op, args)
                    if isinstance(result, tuple):
                        result = tuple(to_host(r) for r in result)
                    elif not isinstance(result, float):
                        result = to_host(result)
                    # The reference is slow: give it a small time budget instead of all repeats.
                    times = time_calls(lambda: call(module, op, args), repeats,
                                       budget_s=budget_s if label == "numpy" else 4 * budget_s,
                                       sync=sync)
                    row = dict(shape="x".join(map(str, shape)), p=shape[0], m=shape[1],
                               n=shape[2], dtype=dtype, op=op, backend=label, **summarize(times))
                    row["idle_before"] = idle
                    row["evals_per_s"] = evaluations / row["median_s"]
                    row["best_evals_per_s"] = evaluations / row["min_s"]
                    row["error_vs_numpy"] = None if reference is None else error(result,
                                                                                 reference[op])
                    case_rows.append(row)
                    print(f"  {row['shape']:>10} {dtype} {op:8} {label:9} "
                          f"{row['median_s'] * 1e3:9.3f} ms  {row['evals_per_s'] / 1e9:6.2f} G/s",
                          flush=True)
            numpy_median = {row["op"]: row["median_s"] for row in case_rows
                            if row["backend"] == "numpy"}
            for row in case_rows:
                if row["op"] in numpy_median:
                    row["speedup_vs_numpy"] = numpy_median[row["op"]] / row["median_s"]
            rows.extend(sorted(case_rows, key=lambda r: (r["backend"] != "numpy", r["backend"])))
    return rows


# --- first-call compile time (fresh processes) -----------------------------------------------

_COMPILE_CHILD = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
from memnp.kernels import cpu
t1, c1 = time.perf_counter(), time.process_time()
dtype, name = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
V = (0.5 * rng.random((8, 9))).astype(dtype)
c = (1e-6 * rng.random((9, 5))).astype(dtype)
d = np.full((9, 5), 1e-17, dtype=dtype)
g = rng.random((8, 5)).astype(dtype)
args = {"pf_currents": (V, c, d), "pf_currents_vjp": (V, c, d, g), "pf_power": (V, c, d)}[name]
fn = getattr(cpu, name)
t2, c2 = time.perf_counter(), time.process_time()
fn(*args)
t3, c3 = time.perf_counter(), time.process_time()
fn(*args)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2, "first_call_cpu_s": c3 - c2,
                  "second_call_s": t4 - t3}))
"""


def measure_compile(dtypes):
    """First-call times of the CPU functions in fresh processes, cold and warm Numba cache."""
    rows = []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for dtype in dtypes:
        for name in ("pf_currents", "pf_currents_vjp", "pf_power"):
            with tempfile.TemporaryDirectory(prefix="memnp-numba-cache-") as cache_dir:
                for cache in ("cold", "warm"):   # empty cache dir, then the one just filled
                    out = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, dtype, name],
                                         env=dict(env, NUMBA_CACHE_DIR=cache_dir),
                                         capture_output=True, text=True, check=True)
                    row = dict(function=name, dtype=dtype, cache=cache,
                               **json.loads(out.stdout.strip().splitlines()[-1]))
                    rows.append(row)
                    print(f"  {name:16} {dtype} {cache} cache: first call "
                          f"{row['first_call_s']:.2f} s (CPU {row['first_call_cpu_s']:.2f} s)",
                          flush=True)
    return rows


TIMING_COLUMNS = [("shape", "p x m x n", "{}"), ("dtype", "dtype", "{}"), ("op", "op", "{}"),
                  ("backend", "backend", "{}"), ("median_ms", "median ms", "{:.3f}"),
                  ("min_ms", "min ms", "{:.3f}"), ("G_evals", "G eval/s", "{:.2f}"),
                  ("G_evals_best", "best G eval/s", "{:.2f}"),
                  ("speedup_vs_numpy", "x numpy", "{:.1f}"), ("error_vs_numpy", "error", "{:.1e}")]
COMPILE_COLUMNS = [("function", "function", "{}"), ("dtype", "dtype", "{}"),
                   ("cache", "cache", "{}"), ("first_call_s", "first call s", "{:.2f}"),
                   ("first_call_cpu_s", "CPU s", "{:.2f}"), ("second_call_s", "second call s",
                                                             "{:.4f}")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30,
                        help="timed calls per case (the NumPy reference stops at its time budget)")
    parser.add_argument("--quick", action="store_true",
                        help="5 repeats, only 64x785x50, no compile-time measurement")
    parser.add_argument("--threads", type=bounded_int(1, 1024), default=None,
                        help="Numba threads (at most NUMBA_NUM_THREADS; default: all of them)")
    parser.add_argument("--backends", default="numpy,cpu,cuda",
                        help="comma-separated subset of numpy,cpu,cpu-dense,cuda (cpu: the cpu "
                             "backend as get_backend gives it; cpu-dense: memnp.kernels.cpu "
                             "itself; cuda only where usable)")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    parser.add_argument("--shapes", default=None,
                        help="comma-separated PxMxN shapes (default: " +
                             ", ".join("x".join(map(str, s)) for s in SHAPES) + ")")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time runs")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each shape and dtype, wait up to SECONDS for the machine to "
                             "be 95%% idle (Linux; other processes distort the timings)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the tables as Markdown (for bench/RESULTS.md)")
    parser.add_argument("--out", default=str(HERE / "out" / "kernels.json"),
                        help="JSON output file (default: bench/out/kernels.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    labels = [s.strip() for s in args.backends.split(",") if s.strip()]
    known = ("numpy", "cpu", "cpu-dense", "cuda")
    for label in labels:
        if label not in known:
            parser.error(f"--backends: {label!r} is not one of {', '.join(known)}")
    dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    for d in dtypes:
        if d not in DTYPES:
            parser.error(f"--dtypes: {d!r} is not one of {', '.join(DTYPES)}")
    repeats = 5 if args.quick else args.repeats
    shapes = SHAPES[:1] if args.quick else SHAPES
    if args.shapes:
        try:
            shapes = [tuple(int(k) for k in s.lower().split("x")) for s in args.shapes.split(",")]
        except ValueError:
            shapes = [()]
        if any(len(s) != 3 or min(s) < 1 for s in shapes):
            parser.error(f"--shapes: expected comma-separated PxMxN with positive sizes; "
                         f"got {args.shapes!r}")
    if args.threads is not None:
        import numba
        if args.threads > numba.config.NUMBA_NUM_THREADS:
            parser.error(f"argument --threads: must be an integer from 1 to NUMBA_NUM_THREADS "
                         f"({numba.config.NUMBA_NUM_THREADS}); got {args.threads}")
        numba.set_num_threads(args.threads)

    record = {"benchmark": "kernels", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": machine_info(), "versions": versions(), "repeats": repeats,
              "inputs": "V = 0.5 * uniform[0, 1) (no zeros); c, d_eps: high-resistance SiOx PF"}
    print(f"machine: {record['machine']}\nversions: {record['versions']}", flush=True)
    rows = run_timings(shapes, dtypes, labels, repeats, budget_s=1.0 if args.quick else 3.0,
                       wait_idle_s=args.wait_idle)
    record["threads"] = thread_info()
    record["load_average_after"] = machine_info().get("load_average")
    record["timings"] = rows
    record["gpu"] = gpu_name("cuda") if any(row["backend"].startswith("cuda") for row in rows) else None
    for row in rows:
        row.update(median_ms=row["median_s"] * 1e3, min_ms=row["min_s"] * 1e3,
                   G_evals=row["evals_per_s"] / 1e9, G_evals_best=row["best_evals_per_s"] / 1e9)
    print("\n" + format_table(rows, TIMING_COLUMNS))
    if not (args.quick or args.no_compile) and "cpu" in labels:
        print("\nfirst-call compile time of the cpu backend (fresh processes):", flush=True)
        record["compile"] = measure_compile(dtypes)
        print("\n" + format_table(record["compile"], COMPILE_COLUMNS))
    write_json(args.out, record)
    if args.markdown:
        print("\n" + format_markdown(rows, TIMING_COLUMNS))
        if "compile" in record:
            print("\n" + format_markdown(record["compile"], COMPILE_COLUMNS))
    print(f"\nthreads: {record['threads']}\nwritten: {args.out}")


if __name__ == "__main__":
    main()
