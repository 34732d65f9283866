"""The standard-weight mapping: Numba loops (memnp.kernels.standard_mapping) against the NumPy
reference (memnp.crossbar.mapping.w_to_G, w_to_G_vjp), per call and on whole training steps.

Per call, on the paper's first layer (W (785, 25) float32, G (785, 50); a batch of MNIST digits
drives about 600 of the 785 rows), for each mapping rule:

- forward:  max |W| and the conductances of the rows read; the reference: ``w_to_G`` then
            ``G[rows]``;
- backward: dL/dW from dL/dG of the rows read; the reference: ``w_to_G_vjp_rows`` (dL/dG
            scattered into a full array, then ``w_to_G_vjp``).

Training steps: the paper's MLP with standard weights under the more uniform D2D stage (the
weight-implementation setups), one batch of 64 per step. Blocks of 100 steps alternate between
the NumPy mapping (patched in as the tests do) and the loops in one process, timed by CPU time on
one Numba thread, and the ratio of the medians is reported; both give the same numbers.

Usage: python bench/standard_mapping.py [--repeats 2000] [--blocks 10] [--quick] [--json PATH]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import (format_table, machine_info, mnist_batches, one_thread_defaults, summarize,  # bench/ on sys.path
                    thread_info, time_calls, versions, write_json)

one_thread_defaults()

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # use the repository's memnp without installing it

G_OFF, G_ON = 5.24841e-7, 2.6242e-6


class NumPyMapping:
    """The reference mapping in the layer's place (memnp.nn.crossbar_layer.standard_loops)."""

    @staticmethod
    def max_weight(W):
        return None          # the layer then maps with w_to_G

    @staticmethod
    def w_to_G_vjp_rows(W, grad_G, rows, upstream, G_off, G_on, rule, max_weight):
        from memnp.crossbar.mapping import w_to_G_vjp_rows
        return w_to_G_vjp_rows(W, grad_G, rows, upstream, G_off, G_on, rule)


def per_call(repeats, budget_s):
    from memnp.crossbar.mapping import w_to_G
    from memnp.kernels import standard_mapping
    rng = np.random.default_rng(0)
    W = (rng.normal(size=(785, 25)) * 0.1).astype(np.float32)
    x, _ = mnist_batches(1)
    rows = np.flatnonzero(np.concatenate([(x[0].reshape(64, -1) != 0).any(axis=0), [True]]))
    grad_G = (rng.normal(size=(rows.size, 50)) * 1e5).astype(np.float32)
    max_weight = float(np.abs(W).max())
    rows_out = []
    for rule in ("default", "avg"):
        cases = {
            "forward": (lambda: w_to_G(W, G_OFF, G_ON, rule)[0][rows],
                        lambda: standard_mapping.G_rows(W, rows, standard_mapping.max_weight(W), G_OFF, G_ON, rule)),
            "backward": (lambda: NumPyMapping.w_to_G_vjp_rows(W, grad_G, rows, 0.3, G_OFF, G_ON, rule, max_weight),
                         lambda: standard_mapping.w_to_G_vjp_rows(W, grad_G, rows, 0.3, G_OFF, G_ON, rule,
                                                                  max_weight)),
        }
        for op, (reference, loops) in cases.items():
            assert np.array_equal(reference(), loops())
            ref = summarize(time_calls(reference, repeats, budget_s=budget_s, warmup=3))
            new = summarize(time_calls(loops, repeats, budget_s=budget_s, warmup=3))
            rows_out.append({"rule": rule, "op": op, "rows_read": int(rows.size),
                             "numpy_us": ref["median_s"] * 1e6, "numpy_min_us": ref["min_s"] * 1e6,
                             "loops_us": new["median_s"] * 1e6, "loops_min_us": new["min_s"] * 1e6,
                             "ratio": new["median_s"] / ref["median_s"], "repeats": new["repeats"]})
    return rows_out


def steps(blocks, block_steps):
    from memnp.experiments.registry import device_stage
    from memnp.nn import crossbar_layer, mnist_mlp
    x, y = mnist_batches(block_steps)
    loops = crossbar_layer.standard_loops
    out = []
    for rule in ("default", "avg"):
        stage = device_stage("d2d-more-uniform", rule)
        models = {name: mnist_mlp(np.random.default_rng(1), "standard", dtype="float32", stage=stage)
                  for name in ("numpy", "loops")}
        rngs = {name: np.random.default_rng(2) for name in models}
        times = {name: [] for name in models}
        for block in range(blocks + 1):                  # block 0: warm-up (compilation)
            for name in ("numpy", "loops") if block % 2 else ("loops", "numpy"):
                crossbar_layer.standard_loops = NumPyMapping if name == "numpy" else loops
                try:
                    start = time.process_time()
                    for q in range(block_steps):
                        models[name].train_step(x[q], y[q], rngs[name])
                    spent = time.process_time() - start
                finally:
                    crossbar_layer.standard_loops = loops
                if block:
                    times[name].append(spent / block_steps)
        same = all(np.array_equal(a.params[k], b.params[k]) for a, b in zip(models["numpy"].layers,
                                                                         models["loops"].layers) for k in a.params)
        med = {name: statistics.median(t) for name, t in times.items()}
        out.append({"rule": rule, "numpy_ms": med["numpy"] * 1e3, "numpy_range_ms": [min(times["numpy"]) * 1e3,
                                                                                     max(times["numpy"]) * 1e3],
                    "loops_ms": med["loops"] * 1e3, "loops_range_ms": [min(times["loops"]) * 1e3,
                                                                       max(times["loops"]) * 1e3],
                    "ratio": med["loops"] / med["numpy"], "blocks": blocks, "same_weights": bool(same)})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000, help="calls per timing (per call)")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks of 100 steps per side")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and blocks (a smoke run)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    repeats, blocks, budget = (200, 2, 0.5) if args.quick else (args.repeats, args.blocks, 5.0)
    record = {"benchmark": "standard_mapping", "machine": machine_info(), "versions": versions(),
              "threads": thread_info(), "load_average": os.getloadavg(),
              "per_call": per_call(repeats, budget), "steps": steps(blocks, 100)}
    print(format_table(record["per_call"], [("rule", "rule", "{}"), ("op", "op", "{}"),
                                            ("rows_read", "rows read", "{}"),
                                            ("numpy_us", "NumPy us", "{:.1f}"), ("loops_us", "loops us", "{:.1f}"),
                                            ("ratio", "loops / NumPy", "{:.2f}")]))
    print()
    print(format_table(record["steps"], [("rule", "rule", "{}"), ("numpy_ms", "NumPy mapping ms/step", "{:.3f}"),
                                         ("loops_ms", "loops ms/step", "{:.3f}"), ("ratio", "ratio", "{:.2f}"),
                                         ("same_weights", "same weights", "{}")]))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
