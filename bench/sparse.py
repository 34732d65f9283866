"""Sparse vs dense PF kernels: does skipping zero voltages element by element pay?

Part 1 (MNIST): p x m x n = 64 x 785 x 50 (the paper's first MNIST layer), V = k_V [x / 255, 1]
with k_V = 0.5 V for 64 random digits of the embedded memnp/data/mnist-10k.npz (about 80 % of
the entries exactly 0). It times forward, backward (VJP) and power of
- ``dense``: memnp.kernels.cpu on the whole V;
- ``dense-active``: memnp.kernels.cpu on the rows that are nonzero for some example only (what
  the memristive layer does before calling the kernels; the slicing is not timed);
- ``sparse``: memnp.kernels.sparse on the whole V;
- ``auto``: the cpu backend's dispatch (memnp.kernels.cpu_auto: dense or sparse, threads) on the whole V.
Part 2 (crossover): p = 64, m in {26, 300, 500, 785, 1025}, n in {20, 50}, V = k_V x with x
uniform in [0, 1] and a given fraction of entries set to 0 at random; dense-active vs sparse,
forward and backward, and the zero fraction from which sparse wins (forward + backward).

Timing: the candidates are called in turn within each repeat (so load from other processes hits
them alike) and the medians reported; evaluations/s count all p m n device evaluations, zeros
included. Inputs c, d_eps: the high-resistance SiOx PF model (docs/model.md §6), as bench/kernels.py.

Usage: python bench/sparse.py [--repeats 60] [--sweep-repeats 15] [--threads 2]
                              [--dtype float32] [--quick] [--no-sweep] [--zeros 0,0.3,...]
                              [--rows 26,300,...] [--columns 20,50] [--out bench/out/sparse.json]
OMP_WAIT_POLICY is set to passive unless already set (idle threads then sleep instead of
spinning, which helps on a shared, loaded machine).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # use the repository's memnp without installing it

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

from common import format_table, machine_info, thread_info, versions, write_json  # noqa: E402
from kernels import K_V, make_case  # noqa: E402

MNIST = ROOT / "memnp" / "data" / "mnist-10k.npz"
SWEEP_M = (26, 300, 500, 785, 1025)
SWEEP_N = (20, 50)
SWEEP_ZEROS = (0.0, 0.3, 0.6, 0.8, 0.9)


def mnist_voltages(p, dtype, seed):
    """V (p, 785) = k_V [x / 255, 1] for p random digits of the embedded MNIST subset."""
    with np.load(MNIST, allow_pickle=False) as data:
        images = data["images"]
    rng = np.random.default_rng(seed)
    x = images[rng.choice(len(images), size=p, replace=False)].reshape(p, -1) / 255.0
    return (K_V * np.concatenate([x, np.ones((p, 1))], axis=1)).astype(dtype)


def random_voltages(p, m, zeros, dtype, seed):
    """V (p, m) = k_V x, x uniform in [0, 1], with a fraction ``zeros`` set to 0 at random."""
    rng = np.random.default_rng(seed + 1)
    V = K_V * rng.random((p, m))
    V[rng.random((p, m)) < zeros] = 0.0
    return V.astype(dtype)


def interleaved(calls, repeats, warmup=2):
    """{name: [wall times (s)]} of each call, the calls run in turn within each repeat."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def candidates(V, c, d_eps, grad_I, op):
    """{name: zero-argument call} of the op ('forward', 'backward', 'power') per method."""
    from memnp.kernels import cpu, cpu_auto, sparse
    active = V.any(axis=0)
    Va, ca, da = (np.ascontiguousarray(a) for a in (V[:, active], c[active], d_eps[active]))
    fns = {"forward": ("pf_currents",), "backward": ("pf_currents_vjp",), "power": ("pf_power",)}[op]
    extra = (grad_I,) if op == "backward" else ()
    return {"dense": lambda: getattr(cpu, fns[0])(V, c, d_eps, *extra),
            "dense-active": lambda: getattr(cpu, fns[0])(Va, ca, da, *extra),
            "sparse": lambda: getattr(sparse, fns[0])(V, c, d_eps, *extra),
            "auto": lambda: getattr(cpu_auto, fns[0])(V, c, d_eps, *extra)}


def mnist_part(args):
    p, m, n = 64, 785, 50
    V = mnist_voltages(p, args.dtype, args.seed)
    _, c, d_eps, grad_I = make_case((p, m, n), args.dtype, args.seed)
    active = V.any(axis=0)
    info = {"shape": [p, m, n], "zero_fraction": float(1 - np.count_nonzero(V) / V.size),
            "active_rows": int(active.sum()),
            "zero_fraction_active": float(1 - np.count_nonzero(V[:, active]) / V[:, active].size)}
    rows = []
    for op in ("forward", "backward", "power"):
        times = interleaved(candidates(V, c, d_eps, grad_I, op), args.repeats)
        base = statistics.median(times["dense-active"])
        for name, t in times.items():
            med = statistics.median(t)
            rows.append({"op": op, "method": name, "median_ms": med * 1e3, "min_ms": min(t) * 1e3,
                         "geval_s": p * m * n / med / 1e9, "speedup": base / med})
    return info, rows


def sweep_part(args):
    rows = []
    for n in args.columns:
        for m in args.rows:
            _, c, d_eps, grad_I = make_case((64, m, n), args.dtype, args.seed)
            for zeros in args.zeros:
                V = random_voltages(64, m, zeros, args.dtype, args.seed)
                row = {"m": m, "n": n, "zeros": zeros}
                for op in ("forward", "backward"):
                    calls = candidates(V, c, d_eps, grad_I, op)
                    times = interleaved({k: calls[k] for k in ("dense-active", "sparse")},
                                        args.sweep_repeats)
                    row[op + "_dense_ms"] = statistics.median(times["dense-active"]) * 1e3
                    row[op + "_sparse_ms"] = statistics.median(times["sparse"]) * 1e3
                row["ratio"] = ((row["forward_dense_ms"] + row["backward_dense_ms"])
                                / (row["forward_sparse_ms"] + row["backward_sparse_ms"]))
                rows.append(row)
                print(f"  m={m:5d} n={n:3d} zeros={zeros:.1f}  dense/sparse {row['ratio']:.2f}",
                      flush=True)
    crossover = {}
    for n in args.columns:
        for m in args.rows:
            wins = [r["zeros"] for r in rows if r["m"] == m and r["n"] == n and r["ratio"] > 1.0]
            crossover[f"64x{m}x{n}"] = min(wins) if wins else None
    return rows, crossover


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed calls per case (MNIST)")
    parser.add_argument("--sweep-repeats", type=int, default=15, help="timed calls per sweep case")
    parser.add_argument("--threads", type=int, default=2, help="Numba threads")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke test)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the crossover sweep")
    parser.add_argument("--zeros", default=",".join(map(str, SWEEP_ZEROS)),
                        help="comma-separated zero fractions of the sweep")
    parser.add_argument("--rows", default=",".join(map(str, SWEEP_M)),
                        help="comma-separated crossbar row counts m of the sweep")
    parser.add_argument("--columns", default=",".join(map(str, SWEEP_N)),
                        help="comma-separated crossbar column counts n of the sweep")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "sparse.json")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.sweep_repeats < 1:
        parser.error("--repeats and --sweep-repeats must be >= 1")
    try:
        args.zeros = [float(z) for z in args.zeros.split(",")]
        args.rows = [int(m) for m in args.rows.split(",")]
        args.columns = [int(n) for n in args.columns.split(",")]
    except ValueError:
        parser.error("--zeros, --rows and --columns take comma-separated numbers")
    if not all(0.0 <= z < 1.0 for z in args.zeros):
        parser.error("--zeros must be in [0, 1)")
    if min(args.rows) < 1 or min(args.columns) < 1:
        parser.error("--rows and --columns must be >= 1")
    if args.quick:
        args.repeats, args.sweep_repeats = 5, 3
    import numba
    if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
        parser.error(f"--threads must be in [1, {numba.config.NUMBA_NUM_THREADS}] "
                     "(NUMBA_NUM_THREADS)")
    numba.set_num_threads(args.threads)
    args.dtype = np.dtype(args.dtype)

    from memnp.kernels import sparse
    print(f"dtype {args.dtype}, {args.threads} threads, OMP_WAIT_POLICY="
          f"{os.environ['OMP_WAIT_POLICY']}; auto takes sparse at >= {sparse.SPARSE_MIN_ZEROS:.0%} "
          f"zeros (n >= {sparse.WIDE_COLUMNS}), >= {sparse.NARROW_MIN_ZEROS:.0%} (narrower)")
    info, mnist_rows = mnist_part(args)
    print(f"MNIST 64 x 785 x 50: {info['zero_fraction']:.1%} zeros; {info['active_rows']} active "
          f"rows with {info['zero_fraction_active']:.1%} zeros")
    print(format_table(mnist_rows, [("op", "op", "{}"), ("method", "method", "{}"),
                                    ("median_ms", "median ms", "{:.3f}"),
                                    ("min_ms", "min ms", "{:.3f}"),
                                    ("geval_s", "G eval/s", "{:.2f}"),
                                    ("speedup", "vs dense-active", "{:.2f}")]))
    record = {"machine": machine_info(), "versions": versions(), "threads": thread_info(),
              "dtype": str(args.dtype), "repeats": args.repeats, "mnist": info,
              "mnist_rows": mnist_rows}
    if not args.no_sweep:
        print("crossover sweep (random zeros; dense-active vs sparse, forward + backward):")
        sweep_rows, crossover = sweep_part(args)
        print(format_table(sweep_rows, [
            ("m", "m", "{}"), ("n", "n", "{}"), ("zeros", "zeros", "{:.1f}"),
            ("forward_dense_ms", "fwd dense ms", "{:.3f}"),
            ("forward_sparse_ms", "fwd sparse ms", "{:.3f}"),
            ("backward_dense_ms", "bwd dense ms", "{:.3f}"),
            ("backward_sparse_ms", "bwd sparse ms", "{:.3f}"),
            ("ratio", "dense/sparse", "{:.2f}")]))
        print("smallest zero fraction where sparse wins:", crossover)
        record.update(sweep_repeats=args.sweep_repeats, sweep=sweep_rows, crossover=crossover)
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
