"""Gaussian draws benchmark: memnp.kernels.normal.standard_normal against NumPy's Generator.

For n = 41,200 (about the number of PF residuals the PF-aware MNIST training draws per batch)
and n = 2**20 numbers, float32 and float64, it times

- numpy:      rng.standard_normal(n, dtype=dtype) (NumPy's ziggurat),
- memnp:      memnp.kernels.normal.standard_normal(rng, n, dtype) (raw words + Box-Muller kernel),
- reference:  memnp.kernels.reference.box_muller(rng.bit_generator.random_raw(ceil(n / 2))),

and, to show where memnp's time goes, its two parts alone: "raw words" (random_raw(ceil(n / 2)))
and "kernel" (standard_normal_into on prepared words; the parallel kernel from
memnp.kernels.normal.PARALLEL_MIN numbers on, also "kernel serial" there).
Reported per case: median and minimum wall time, ns per number (median), and the speed-up of
memnp over numpy and over the reference (ratios of medians).

Usage: python bench/normal.py [--repeats 200] [--quick] [--threads N] [--sizes 41200,1048576]
                              [--wait-idle SECONDS] [--markdown] [--json PATH]
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # use the repository's memnp without installing it

from common import (format_markdown, format_table, machine_info, summarize,  # noqa: E402
                    thread_info, time_calls, versions, wait_for_idle, write_json)

SIZES = (41_200, 2 ** 20)
DTYPES = ("float32", "float64")


def cases(n, dtype, rng):
    """{label: zero-argument callable} for one size and dtype."""
    from memnp.kernels import normal
    from memnp.kernels.reference import box_muller
    words = rng.bit_generator.random_raw((n + 1) // 2)
    out = np.empty(n, dtype=dtype)
    k = (n + 1) // 2
    timed = {
        "numpy": lambda: rng.standard_normal(n, dtype=dtype),
        "memnp": lambda: normal.standard_normal(rng, n, dtype),
        "reference": lambda: box_muller(rng.bit_generator.random_raw(k), dtype, n),
        "raw words": lambda: rng.bit_generator.random_raw(k),
        "kernel": lambda: normal.standard_normal_into(words, out),
    }
    if n >= normal.PARALLEL_MIN:
        timed["kernel serial"] = lambda: normal._serial(words, out)
    return timed


def run(sizes, dtypes, repeats, budget_s, wait_idle_s):
    rows = []
    rng = np.random.default_rng(20261128)
    for n in sizes:
        for dtype in dtypes:
            idle = wait_for_idle(0.95, wait_idle_s) if wait_idle_s > 0 else None
            case_rows = []
            for label, fn in cases(n, np.dtype(dtype), rng).items():
                slow = label == "reference"
                times = time_calls(fn, repeats, budget_s=budget_s / (4 if slow else 1))
                row = dict(n=n, dtype=dtype, method=label, idle_before=idle, **summarize(times))
                row.update(median_us=row["median_s"] * 1e6, min_us=row["min_s"] * 1e6,
                           ns_per_number=row["median_s"] / n * 1e9)
                case_rows.append(row)
                print(f"  n={n:>8} {dtype} {label:13} {row['median_us']:9.1f} us "
                      f"({row['ns_per_number']:.2f} ns/number)", flush=True)
            median = {row["method"]: row["median_s"] for row in case_rows}
            for row in case_rows:
                if row["method"] == "memnp":
                    row["speedup_vs_numpy"] = median["numpy"] / row["median_s"]
                    row["speedup_vs_reference"] = median["reference"] / row["median_s"]
            rows.extend(case_rows)
    return rows


def check(sizes):
    """Largest |memnp - reference| per size (float64), from one seed: the bench's sanity check."""
    from memnp.kernels import normal
    from memnp.kernels.reference import box_muller
    out = {}
    for n in sizes:
        words = np.random.default_rng(n).bit_generator.random_raw((n + 1) // 2)
        z = normal.standard_normal_into(words, np.empty(n))
        out[str(n)] = float(np.max(np.abs(z - box_muller(words, np.float64, n))))
    return out


COLUMNS = [("n", "n", "{}"), ("dtype", "dtype", "{}"), ("method", "method", "{}"),
           ("median_us", "median us", "{:.1f}"), ("min_us", "min us", "{:.1f}"),
           ("ns_per_number", "ns/number", "{:.2f}"), ("speedup_vs_numpy", "x numpy", "{:.1f}"),
           ("speedup_vs_reference", "x reference", "{:.1f}")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200,
                        help="timed calls per case (each case stops at its time budget)")
    parser.add_argument("--quick", action="store_true", help="20 repeats, short budgets")
    parser.add_argument("--threads", type=int, default=None,
                        help="Numba threads (at most NUMBA_NUM_THREADS; default: all of them)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated numbers of draws")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each size and dtype, wait up to SECONDS for the machine to "
                             "be 95%% idle (Linux; other processes distort the timings)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the table as Markdown (for bench/RESULTS.md)")
    parser.add_argument("--json", default=None, help="write the record here (default: print only)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        sizes = [0]
    if not sizes or min(sizes) < 1:
        parser.error(f"--sizes: expected comma-separated positive ints; got {args.sizes!r}")
    dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    for d in dtypes:
        if d not in DTYPES:
            parser.error(f"--dtypes: {d!r} is not one of {', '.join(DTYPES)}")
    if args.threads is not None:
        import numba
        numba.set_num_threads(args.threads)
    repeats = 20 if args.quick else args.repeats
    budget_s = 0.5 if args.quick else 3.0

    record = {"benchmark": "normal", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": machine_info(), "versions": versions(), "repeats": repeats,
              "sizes": sizes, "words_per_call": {str(n): math.ceil(n / 2) for n in sizes}}
    print(f"machine: {record['machine']}\nversions: {record['versions']}", flush=True)
    t0 = time.perf_counter()
    record["max_abs_diff_vs_reference"] = check(sizes)        # also compiles the kernels
    record["first_calls_s"] = time.perf_counter() - t0
    record["timings"] = run(sizes, dtypes, repeats, budget_s, args.wait_idle)
    record["threads"] = thread_info()
    record["load_average_after"] = machine_info().get("load_average")
    print("\n" + format_table(record["timings"], COLUMNS))
    print(f"\nmax |memnp - reference| (float64): {record['max_abs_diff_vs_reference']}")
    if args.markdown:
        print("\n" + format_markdown(record["timings"], COLUMNS))
    print(f"\nthreads: {record['threads']}")
    if args.json:
        write_json(args.json, record)
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
