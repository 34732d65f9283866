"""First compilation of the one-call training steps, against the layered path's.

A new user's first run compiles memnp's Numba kernels before its first step. This measures the
time of the first ``Ensemble.train_step`` of K = 2 members of the paper's MLP, float32, one MNIST
batch of 64 per member, with an empty Numba cache, under

- case c: the PF-only stage (memnp.kernels.ensemble_mlp_step),
- case e: the combined stage (memnp.kernels.ensemble_chip_step),

each on one Numba thread (the serial kernels, as in ``reproduce``'s worker processes) and on two
(the parallel kernels, as ``train`` runs one network). The reference, in the same run: the same
first step with the one-call kernel switched off, so that the layered path (one fused call per
layer and pass, K-axis mapping, loss and SGD stairs) runs and is compiled instead. Every
measurement is a fresh process with a fresh, empty ``NUMBA_CACHE_DIR``; importing memnp is not
counted. The step's numbers are the same either way (tests/test_nn_ensemble_mlp_step.py).

Usage: python bench/compile_time.py [--cases c,e] [--threads 1,2] [--repeats 1] [--json PATH]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from common import bounded_int, format_table, int_list, machine_info, name_list, versions, write_json  # noqa: E402

#: What each measurement runs in its own process: argv = case, path ("one-call" or "layered").
_CHILD = r"""
import json, sys, time
sys.path[:0] = [{root!r}, {here!r}]
import numpy as np
from common import mnist_batches
from epoch import stage_for
from memnp.nn import Ensemble, mnist_mlp
import memnp.nn.ensemble_mlp_step as one_call
case, path = sys.argv[1], sys.argv[2]
if path == "layered":
    one_call.train_step = lambda *args, **kwargs: None   # the caller then runs the layered step
K = 2
models = [mnist_mlp(np.random.default_rng(2022 + k), "double", dtype="float32", stage=stage_for(case))
          for k in range(K)]
ensemble = Ensemble(models)
x, labels = mnist_batches(K)
rngs = [np.random.default_rng(12022 + k) for k in range(K)]
start = time.perf_counter()
losses, _ = ensemble.train_step(x, labels, rngs)
first = time.perf_counter() - start
start = time.perf_counter()
ensemble.train_step(x, labels, rngs)
print(json.dumps({{"first_s": first, "second_s": time.perf_counter() - start,
                   "one_call": bool(ensemble.trains_in_one_call(64)) and path == "one-call",
                   "loss": [float(v) for v in losses]}}))
"""


def _measure(case, path, threads):
    """{first_s, second_s, one_call, loss} of one fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory(prefix="memnp-compile-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
        code = _CHILD.format(root=str(ROOT), here=str(HERE))
        done = subprocess.run([sys.executable, "-c", code, case, path], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {path} measurement of case {case} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=name_list(("c", "e")), default=["c", "e"],
                        help="c (PF stage), e (combined stage)")
    parser.add_argument("--threads", type=int_list(1, 64), default=[1, 2], help="Numba thread counts")
    parser.add_argument("--repeats", type=bounded_int(1, 100), default=1, help="fresh processes per measurement")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    record = {"benchmark": "compile_time", "machine": machine_info(), "versions": versions(),
              "shapes": {"members": 2, "batch": 64, "network": "784-25-10 double weights, float32"},
              "rows": []}
    for case in args.cases:
        for threads in args.threads:
            runs = {"one-call": [], "layered": []}
            for _ in range(args.repeats):
                for path in runs:        # alternated, so load changes hit both
                    runs[path].append(_measure(case, path, threads))
            first = {path: [r["first_s"] for r in rs] for path, rs in runs.items()}
            same = all(a["loss"] == b["loss"] for a, b in zip(runs["one-call"], runs["layered"]))
            row = {"case": case, "threads": threads,
                   "one_call_s": statistics.median(first["one-call"]), "one_call_min_s": min(first["one-call"]),
                   "one_call_max_s": max(first["one-call"]),
                   "layered_s": statistics.median(first["layered"]), "layered_min_s": min(first["layered"]),
                   "layered_max_s": max(first["layered"]),
                   "took_one_call": all(r["one_call"] for r in runs["one-call"]), "same_losses": same,
                   "second_step_ms": 1e3 * statistics.median(r["second_s"] for r in runs["one-call"])}
            row["ratio"] = row["one_call_s"] / row["layered_s"]
            record["rows"].append(row)
            print(f"case {case}, {threads} thread(s): one-call {row['one_call_s']:.1f} s, "
                  f"layered {row['layered_s']:.1f} s", flush=True)
    print()
    print(format_table(record["rows"], [("case", "case", "{}"), ("threads", "threads", "{}"),
                                        ("one_call_s", "one-call first step s", "{:.1f}"),
                                        ("layered_s", "layered first step s", "{:.1f}"),
                                        ("ratio", "one-call / layered", "{:.2f}"),
                                        ("took_one_call", "one call", "{}"),
                                        ("same_losses", "same losses", "{}")]))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
