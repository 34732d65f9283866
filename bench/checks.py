"""Cost of the input checks (issue 9): per call, and on whole training steps.

Per call, on the MNIST shapes of the paper's first layer (a batch of 64, 784 inputs, float32):

- previous scan:     the input scan before issue 9 (active rows + a finiteness probe), copied here;
- scan:              memnp.kernels.mapping.scan_inputs (active rows + x in [0, 1], on x's bits);
- scan reference:    memnp.kernels.mapping.scan_inputs_reference (NumPy);
- unit interval:     memnp.kernels.mapping.in_unit_interval (the digital shortcut's check);
- crossbar inputs:   memnp.crossbar.validation.crossbar_inputs on V (64, 785), G (785, 50) as a
                     direct CrossbarPass.forward call checks them, and "flagged" as a memristive
                     layer's pass skips them;
- crossbar gradient: crossbar_gradient on dL/dI (64, 50).

Training steps (mnist_mlp, one batch of 64 per step, bench/epoch.py's cases a and c): blocks of
100 steps alternate between "previous" (the copied scan, no range check on the digital shortcut)
and "new" (this tree) in one process, timed by CPU time (process_time; run with one Numba thread
so that it counts one core), and the ratio of the medians is reported. On a shared machine the
block times vary, so the interleaving (not the absolute numbers) is what makes the ratio fair.

Usage: python bench/checks.py [--repeats 2000] [--blocks 20] [--quick] [--json PATH]
"""
import argparse
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
PF = dict(k_V=0.5, slopes=(-1.03023, -0.0901078), intercepts=(-0.250595, -37.1186),
          covariance=[[0.03208284, 0.09272695], [0.09272695, 0.32510818]])


def _previous_scan():
    """The input scan as it was before issue 9 (a copy, as the baseline)."""
    from numba import njit

    @njit(fastmath={"reassoc", "nsz", "contract"}, error_model="numpy", cache=False)
    def scan(x, active):
        p, n_in = x.shape
        zero = x.dtype.type(0.0)
        probe = zero
        for ex in range(p):
            for i in range(n_in):
                v = x[ex, i]
                active[i] |= v != zero
                probe += v * zero
        active[n_in] = True
        return probe == zero

    def scan_inputs(x):
        active = np.zeros(x.shape[1] + 1, dtype=np.bool_)
        return active, bool(scan(x, active))
    return scan_inputs


def per_call(repeats, budget_s):
    from memnp.crossbar import CrossbarPass, Stage, validation
    from memnp.crossbar.simulate import ReadState
    from memnp.kernels import mapping
    from memnp.nonidealities import IVNonlinearityPF
    stage = Stage(G_OFF, G_ON, 0.5, (IVNonlinearityPF(**PF),))
    x = mnist_batches(1)[0][0].reshape(64, 784)
    rng = np.random.default_rng(0)
    V = mapping.voltages(x, 0.5, np.arange(785))
    G = rng.uniform(G_OFF, G_ON, (785, 50)).astype(np.float32)
    grad = rng.normal(size=(64, 50)).astype(np.float32)
    plain, flagged = CrossbarPass(stage, "numpy"), CrossbarPass(stage, "numpy")
    plain._cache = flagged._cache = ReadState(V, G)
    flagged.inputs_checked = True
    previous = _previous_scan()
    cases = {"previous scan": lambda: previous(x), "scan": lambda: mapping.scan_inputs(x),
             "scan reference": lambda: mapping.scan_inputs_reference(x),
             "unit interval": lambda: mapping.in_unit_interval(x),
             "crossbar inputs": lambda: validation.crossbar_inputs(plain, V, G, rng, None),
             "crossbar inputs flagged": lambda: validation.crossbar_inputs(flagged, V, G, rng, None),
             "crossbar gradient": lambda: validation.crossbar_gradient(plain, grad)}
    assert np.array_equal(previous(x)[0], mapping.scan_inputs(x)[0])
    rows = []
    for label, fn in cases.items():
        times = time_calls(fn, repeats, budget_s=budget_s, warmup=3)
        row = dict(check=label, **summarize(times))
        row.update(median_us=row["median_s"] * 1e6, min_us=row["min_s"] * 1e6)
        rows.append(row)
        print(f"  {label:24} median {row['median_us']:7.2f} us, min {row['min_us']:7.2f} us", flush=True)
    return rows


def steps(blocks, steps_per_block=100):
    from memnp.crossbar import Stage
    from memnp.kernels import mapping
    from memnp.nn import mnist_mlp
    from memnp.nonidealities import IVNonlinearityPF
    new = (mapping.scan_inputs, mapping.in_unit_interval)
    previous = (_previous_scan(), lambda x: True)

    def use(pair):
        mapping.scan_inputs, mapping.in_unit_interval = pair
    X, Y = mnist_batches(steps_per_block)
    rows = []
    try:
        for case, stage, weights in (("a", Stage(G_OFF, G_ON, 0.5), "standard"),
                                     ("c", Stage(G_OFF, G_ON, 0.5, (IVNonlinearityPF(**PF),)), "double")):
            rng = np.random.default_rng(0)
            model = mnist_mlp(rng, weights, stage=stage)
            for pair in (previous, new):
                use(pair)
                for b in range(10):
                    model.train_step(X[b], Y[b], rng)
            times = {"previous": [], "new": []}
            for r in range(blocks):
                for mode in (("previous", "new") if r % 2 else ("new", "previous")):
                    use(previous if mode == "previous" else new)
                    t0 = time.process_time()
                    for b in range(steps_per_block):
                        model.train_step(X[b], Y[b], rng)
                    times[mode].append((time.process_time() - t0) / steps_per_block)
            row = {"case": case, "blocks": blocks, "steps_per_block": steps_per_block}
            for mode, values in times.items():
                row[f"{mode}_median_us"] = float(np.median(values)) * 1e6
                row[f"{mode}_quartiles_us"] = [float(q) * 1e6 for q in np.percentile(values, [25, 75])]
            row["ratio_new_to_previous"] = row["new_median_us"] / row["previous_median_us"]
            rows.append(row)
            print(f"  case {case}: previous {row['previous_median_us']:.0f} us/step "
                  f"(quartiles {row['previous_quartiles_us'][0]:.0f}-{row['previous_quartiles_us'][1]:.0f}), "
                  f"new {row['new_median_us']:.0f} "
                  f"({row['new_quartiles_us'][0]:.0f}-{row['new_quartiles_us'][1]:.0f}); "
                  f"new / previous {row['ratio_new_to_previous']:.3f}", flush=True)
    finally:
        use(new)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000, help="timed calls per check")
    parser.add_argument("--blocks", type=int, default=20, help="blocks of 100 training steps per variant")
    parser.add_argument("--quick", action="store_true", help="200 calls per check, 4 blocks")
    parser.add_argument("--json", default=None, help="write the record here (default: print only)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.blocks < 1:
        parser.error("--repeats and --blocks must be >= 1")
    repeats, blocks = (200, 4) if args.quick else (args.repeats, args.blocks)
    record = {"benchmark": "checks", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": machine_info(), "versions": versions(), "threads": thread_info(),
              "shapes": {"x": [64, 784], "V": [64, 785], "G": [785, 50], "grad_I": [64, 50]},
              "dtype": "float32"}
    print("per call:", flush=True)
    record["per_call"] = per_call(repeats, budget_s=1.0 if args.quick else 5.0)
    print("training steps:", flush=True)
    record["steps"] = steps(blocks)
    print()
    print(format_table(record["per_call"], [("check", "check", "{}"), ("median_us", "median us", "{:.2f}"),
                                            ("min_us", "min us", "{:.2f}")]))
    print()
    print(format_table(record["steps"], [("case", "case", "{}"),
                                         ("previous_median_us", "previous us/step", "{:.0f}"),
                                         ("new_median_us", "new us/step", "{:.0f}"),
                                         ("ratio_new_to_previous", "new / previous", "{:.3f}")]))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
