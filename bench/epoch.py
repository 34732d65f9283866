"""Training-epoch benchmark of the nn engine (issue 3).

Cases (MNIST-shaped: 48,000 examples of 28 x 28, batch 64; the paper's 784-25-10 network):
  a  ideal training, standard weights (the digital shortcut)
  b  double weights on an ideal stage (linear crossbar)
  c  PF-aware double-weight training on the high-resistance SiOx stage
  d  as c, with device-to-device variability (lognormal, sigma_on = sigma_off = 0.25) as well
  e  as d, with the whole nonideality pipeline (issue 10): 2 % stuck at G_off, drift to one day
     (nu 0.01 +- 0.005), 5 % read noise (fresh every batch), 6-bit DAC and ADC, 128 x 64 tiles
  cnn  the paper's CIFAR-10 CNN (40,000 examples of 32 x 32 x 3, batch 64), standard weights,
       PF memristive dense layers

Threads: NUMBA_NUM_THREADS=--threads (2) for the kernels; OpenBLAS --blas-threads (1: the MNIST
GEMMs, 64 x 785 x 50, lose more to thread hand-offs than they gain, and on the shared 2-core
development machine one BLAS thread was also faster for the CNN). The environment is passed
through, so e.g. OMP_WAIT_POLICY=passive (recorded in the JSON) applies to Numba's OpenMP threads.

Each case runs in a fresh subprocess (so its peak RSS is its own): one untimed warm-up batch (JIT
compilation), then whole epochs (reshuffled every epoch, draws fresh per batch); the median of
the repeats is reported. Images are kept as uint8 and scaled per batch, as a trainer streaming a
data set would. MNIST-shaped inputs are the embedded MNIST digits (tiled), so the inputs have
MNIST's sparsity; CIFAR-shaped inputs are random pixels.

Usage: python bench/epoch.py [--cases a,b,c,d,e,cnn] [--repeats 3] [--quick] [--json out.json]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (bounded_int, check_backend, gpu_name, machine_info, thread_info, versions,  # bench/ on sys.path
                    write_json)

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "a": "MNIST ideal, standard weights",
    "b": "MNIST double weights, ideal stage",
    "c": "MNIST PF-aware (high-R SiOx), double",
    "d": "MNIST PF + D2D aware, double",
    "e": "MNIST combined stage aware, double",
    "cnn": "CIFAR CNN, PF memristive dense",
}
G_OFF, G_ON, K_V = 5.24841e-7, 2.6242e-6, 0.5
HIGH_PF = dict(type="IVNonlinearityPF", k_V=K_V, slopes=[-1.03023, -0.0901078],
               intercepts=[-0.250595, -37.1186],
               covariance=[[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
D2D = dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25)


#: Case e: the README's worked example, the whole pipeline on the high-R SiOx PF model.
COMBINED = [D2D, dict(type="StuckAtGOff", G_off=G_OFF, p=0.02), dict(type="Drift", nu_mean=0.01, nu_std=0.005,
                                                                     t=86400.0),
            dict(type="ReadNoise", sigma_rel=0.05), dict(type="DAC", bits=6), HIGH_PF,
            dict(type="ADC", bits=6), dict(type="Tiles", rows=128, cols=64)]


def stage_for(case):
    from memnp.crossbar import Stage
    nonidealities = {"a": [], "b": [], "c": [HIGH_PF], "d": [D2D, HIGH_PF], "e": COMBINED,
                     "cnn": [HIGH_PF]}[case]
    return Stage(G_OFF, G_ON, K_V, tuple(nonidealities))


def data_for(case, examples, rng):
    """(uint8 image pool, labels, examples per epoch): the epoch indexes the pool modulo its size."""
    import numpy as np
    if case == "cnn":
        pool = rng.integers(0, 256, (min(examples, 10_000), 32, 32, 3), dtype=np.uint8)
        return pool, rng.integers(0, 10, len(pool)), examples
    with np.load(ROOT / "memnp" / "data" / "mnist-10k.npz", allow_pickle=False) as data:
        return data["images"], data["labels"].astype(np.int64), examples


def worker(case, repeats, examples, batch, backend, dtype):
    """Run one case in this process; print a JSON record."""
    import numpy as np

    from memnp.kernels import backend_name
    from memnp.nn import cifar_cnn, mnist_mlp
    rng = np.random.default_rng(2022)
    weights = "standard" if case in ("a", "cnn") else "double"
    build = cifar_cnn if case == "cnn" else mnist_mlp
    model = build(rng, weights, dtype=dtype, stage=stage_for(case), backend=backend)
    pool, labels, examples = data_for(case, examples, rng)
    scale = np.asarray(1 / 255, dtype=dtype)

    def batch_at(idx):
        idx = idx % len(pool)
        return np.multiply(pool[idx], scale, dtype=dtype), labels[idx]   # one pass: cast and scale

    start = time.perf_counter()
    model.train_step(*batch_at(np.arange(batch)), rng)
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        order = rng.permutation(examples)
        for i in range(0, examples, batch):
            x, y = batch_at(order[i:i + batch])
            model.train_step(x, y, rng)
        times.append(time.perf_counter() - start)
    record = {"case": case, "description": CASES[case], "examples": examples, "batch": batch,
              "dtype": dtype, "backend": backend_name(backend), "repeats": repeats, "times_s": times,
              "s_per_epoch": statistics.median(times), "warmup_s": warmup,
              "examples_per_s": examples / statistics.median(times),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "threads": thread_info()}
    print(json.dumps(record))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="a,b,c,d,e,cnn", help="comma-separated cases (a, b, c, d, e, cnn)")
    parser.add_argument("--repeats", type=bounded_int(1, 1000), default=3,
                        help="timed epochs per case (median reported), 1 to 1000")
    parser.add_argument("--quick", action="store_true", help="1 epoch of a tenth of the examples per case")
    parser.add_argument("--backend", default=None,
                        help="kernel backend: cpu, cuda or numpy (default: MEMNP_BACKEND or cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=bounded_int(1, 1024), default=2,
                        help="NUMBA_NUM_THREADS (kernel threads), 1 to 1024")
    parser.add_argument("--blas-threads", type=bounded_int(1, 1024), default=None,
                        help="OpenBLAS threads (default 1: the MNIST GEMMs are too small to gain from "
                             "threads, and on the shared 2-core machine 1 thread was faster for the CNN too)")
    parser.add_argument("--json", default=None, help="write the results here (default: print only)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--examples", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.repeats, args.examples, 64, args.backend, args.dtype)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            parser.error(f"--cases must be among {', '.join(CASES)}; got {case!r}")
    backend = check_backend(parser, args.backend)   # before any case runs: one line, not a worker's traceback
    repeats = 1 if args.quick else args.repeats
    records = []
    for case in cases:
        blas = args.blas_threads or 1
        env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(blas), MKL_NUM_THREADS=str(blas))
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        examples = 40_000 if case == "cnn" else 48_000
        if args.quick:
            examples //= 10
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--repeats", str(repeats),
                   "--examples", str(examples), "--dtype", args.dtype]
        if args.backend:
            command += ["--backend", args.backend]
        out = subprocess.run(command, env=env, capture_output=True, text=True)  # fresh process: own peak RSS
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"case {case} failed (exit {out.returncode})")
        records.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = records[-1]
        print(f"{case:>4} {r['description']:<38} {r['s_per_epoch']:8.3f} s/epoch "
              f"{r['examples_per_s']:10.0f} ex/s {r['peak_rss_mb']:7.0f} MB (warm-up {r['warmup_s']:.2f} s)",
              flush=True)
    print()
    print(table(records))
    if args.json:
        environment = {key: os.environ[key] for key in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY",
                                                       "MEMNP_BACKEND") if key in os.environ}
        write_json(args.json, {"benchmark": "epoch", "machine": machine_info(), "gpu": gpu_name(backend),
                               "versions": versions(),
                               "environment": environment, "quick": args.quick, "results": records})


def table(records):
    lines = ["| case | what | examples | s/epoch (median) | examples/s | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['case']} | {r['description']} | {r['examples']:,} | {r['s_per_epoch']:.3f} | "
                     f"{r['examples_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
