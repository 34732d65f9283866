"""K networks per pass (issue 15): one K-axis kernel call against K single-network calls.

Case ``kernels``: the PF crossbar read of the MNIST network's two layers, float32, batch 64, for
K = 1, 5 and 16 members, each member with its own active rows, inputs and device parameters:

- first layer: 785 x 50 crossbar, inputs with about 45 % zeros, like MNIST batches (15 % of the
  784 input rows are zero for the whole batch, so not read, and 35 % of the other inputs are 0);
  the backward pass without dL/dV (the first trainable layer needs no input gradient);
- second layer: 51 x 10 crossbar, inputs without zeros (hidden activations), dL/dV included.

For each (layer, K, operation: forward = currents, backward = VJP) it times, alternately in the
same run, one call of :mod:`memnp.kernels.ensemble` and the K calls of the ``cpu`` backend
(:mod:`memnp.kernels.cpu_auto`) that one network per member would make, and checks once that the
two give the same numbers bit for bit. Reported: median, min and max wall time of each, the time
per member and the ratio K singles / one K-axis call.

Cases ``c`` and ``e``: training epochs of K members against one network, with peak RSS
(bench/ensemble_epoch.py says how they are measured).

Usage: python bench/ensemble.py [--cases kernels,c,e] [--members 1,5,16] [--repeats 40]
                                [--threads N] [--wait-idle SECONDS] [--markdown]
                                [--out bench/out/ensemble.json]
The default run takes well under a minute once the kernels are compiled (they are cached on disk).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))   # use the repository's memnp without installing it

from common import (format_markdown, format_table, machine_info, summarize,  # noqa: E402
                    thread_info, versions, wait_for_idle, write_json)
from ensemble_epoch import CASES as EPOCH_CASES  # noqa: E402
from ensemble_epoch import COLUMNS as EPOCH_COLUMNS  # noqa: E402
from ensemble_epoch import EXAMPLES, RSS_TARGET, bench_epochs  # noqa: E402
from ensemble_epoch import TARGETS as EPOCH_TARGETS  # noqa: E402

CASES = ("kernels", "c", "e")
MEMBERS = (1, 5, 16)
BATCH = 64
#: (name, crossbar rows m, columns n, rows never driven, zero fraction of the other inputs, need_V)
LAYERS = (("layer 1", 785, 50, 0.15, 0.35, False), ("layer 2", 51, 10, 0.0, 0.0, True))
K_V = 0.5
# High-resistance SiOx (docs/model.md §6): G_off, G_on, slopes (s_c, s_d), intercepts (b_c, b_d), Sigma.
G_OFF, G_ON = 5.24841e-7, 2.6242e-6
SLOPES, INTERCEPTS = (-1.03023, -0.0901078), (-0.250595, -37.1186)
SIGMA = [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]


def make_case(members, m, n, idle_rows, zeros, seed=0):
    """(layout, V packed, c, d_eps, grad_I) float32 for ``members`` members of one layer."""
    from memnp.kernels.ensemble_layout import MemberRows
    rng = np.random.default_rng(seed)
    active = rng.random((members, m)) >= idle_rows
    active[:, -1] = True                                  # the bias row
    layout = MemberRows.from_active(active)
    blocks = []
    for r in layout.counts():
        x = rng.random((BATCH, r))
        x[rng.random(x.shape) < zeros] = 0.0
        x[:, -1] = 1.0
        blocks.append(K_V * x)
    V = layout.pack(blocks)
    ln_R = -np.log(rng.uniform(G_OFF, G_ON, size=(layout.total, n)))
    e = rng.multivariate_normal([0.0, 0.0], SIGMA, size=(layout.total, n))
    c = np.exp(SLOPES[0] * ln_R + INTERCEPTS[0] + e[..., 0])
    d_eps = np.exp(SLOPES[1] * ln_R + INTERCEPTS[1] + e[..., 1])
    grad_I = rng.normal(size=(members, BATCH, n))
    return layout, *(a.astype(np.float32) for a in (V, c, d_eps, grad_I))


def time_interleaved(first, second, repeats, budget_s=4.0):
    """(times of first(), times of second()) in s, called alternately (so that both see the same
    load on a shared machine) after one untimed call each; stops after budget_s (at least 3 each)."""
    first()
    second()
    times = ([], [])
    start = time.perf_counter()
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        if len(times[0]) >= 3 and time.perf_counter() - start > budget_s:
            break
    return times


def bench_kernels(member_counts, repeats):
    from memnp.kernels import cpu_auto, ensemble
    rows = []
    for name, m, n, idle_rows, zeros, need_V in LAYERS:
        for members in member_counts:
            layout, V, c, d_eps, grad_I = make_case(members, m, n, idle_rows, zeros)
            p = BATCH
            blocks = [(layout.block(V, k, p), layout.row_block(c, k), layout.row_block(d_eps, k), grad_I[k])
                      for k in range(members)]
            zero_fraction = 1.0 - (np.count_nonzero(V) / (members * p * m))
            calls = {
                "forward": (lambda: ensemble.pf_currents(V, c, d_eps, layout),
                            lambda: [cpu_auto.pf_currents(Vk, ck, dk) for Vk, ck, dk, _ in blocks]),
                "backward": (lambda: ensemble.pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V),
                             lambda: [cpu_auto.pf_currents_vjp(Vk, ck, dk, gk, need_V) for Vk, ck, dk, gk in blocks]),
            }
            # The same numbers, bit for bit (checked once per case).
            I = calls["forward"][0]()
            assert all(np.array_equal(I[k], Ik) for k, Ik in enumerate(calls["forward"][1]()))
            grads = calls["backward"][0]()
            for k, (gV, gc, gd) in enumerate(calls["backward"][1]()):
                rows_k = slice(layout.offsets[k], layout.offsets[k + 1])
                assert np.array_equal(grads.grad_c[rows_k], gc) and np.array_equal(grads.grad_d_eps[rows_k], gd)
                assert gV is None or np.array_equal(layout.block(grads.grad_V, k, p), gV)
            chosen = ensemble.plan(V, layout, n).is_sparse
            for op, (one, singles) in calls.items():
                t_one, t_singles = time_interleaved(one, singles, repeats)
                s_one, s_singles = summarize(t_one), summarize(t_singles)
                rows.append({"layer": name, "shape": f"{p}x{m}x{n}", "K": members, "op": op,
                             "sparse_members": int(chosen.sum()), "zero_fraction": round(zero_fraction, 3),
                             "rows_read": int(layout.total),
                             "one_ms": 1e3 * s_one["median_s"], "one_min_ms": 1e3 * s_one["min_s"],
                             "one_max_ms": 1e3 * max(t_one), "one_repeats": s_one["repeats"],
                             "singles_ms": 1e3 * s_singles["median_s"], "singles_min_ms": 1e3 * s_singles["min_s"],
                             "singles_max_ms": 1e3 * max(t_singles), "singles_repeats": s_singles["repeats"],
                             "one_per_member_us": 1e6 * s_one["median_s"] / members,
                             "singles_per_member_us": 1e6 * s_singles["median_s"] / members,
                             "speedup": s_singles["median_s"] / s_one["median_s"]})
    return rows


COLUMNS = [("layer", "layer", "{}"), ("shape", "p x m x n", "{}"), ("K", "K", "{}"), ("op", "op", "{}"),
           ("sparse_members", "sparse", "{}"),
           ("one_ms", "K-axis ms", "{:.3f}"), ("one_min_ms", "min", "{:.3f}"), ("one_max_ms", "max", "{:.3f}"),
           ("singles_ms", "K singles ms", "{:.3f}"), ("singles_min_ms", "min", "{:.3f}"),
           ("singles_max_ms", "max", "{:.3f}"),
           ("one_per_member_us", "K-axis us/member", "{:.0f}"),
           ("singles_per_member_us", "single us/member", "{:.0f}"), ("speedup", "speed-up", "{:.2f}")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="kernels", help=f"comma-separated cases ({', '.join(CASES)})")
    parser.add_argument("--members", default=None,
                        help="comma-separated K values (default: 1,5,16; case e: 1,5)")
    parser.add_argument("--epochs", type=int, default=2, help="cases c, e: same-run pairs (one epoch each)")
    parser.add_argument("--examples", type=int, default=EXAMPLES, help="cases c, e: examples per member and epoch")
    parser.add_argument("--repeats", type=int, default=40,
                        help="timed calls of each side per measurement (at most 4 s per measurement)")
    parser.add_argument("--threads", type=int, default=None,
                        help="Numba threads (at most NUMBA_NUM_THREADS; default: all of them)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine to be 90 %% idle")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--out", default=str(HERE / "out" / "ensemble.json"),
                        help="JSON output file (default: bench/out/ensemble.json)")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    try:
        member_counts = [int(k) for k in (args.members or ",".join(map(str, MEMBERS))).split(",")]
    except ValueError:
        parser.error(f"--members must be comma-separated integers >= 1; got {args.members!r}")
    if not member_counts or min(member_counts) < 1:
        parser.error(f"--members must be comma-separated integers >= 1; got {args.members!r}")
    if args.repeats < 3:
        parser.error(f"--repeats must be at least 3; got {args.repeats}")
    import numba
    if args.threads is not None:
        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            parser.error(f"--threads must be in [1, {numba.config.NUMBA_NUM_THREADS}] (NUMBA_NUM_THREADS); "
                         f"got {args.threads}")
        numba.set_num_threads(args.threads)
    idle = wait_for_idle(timeout_s=args.wait_idle) if args.wait_idle > 0 else None
    record = {"machine": machine_info(), "versions": versions(), "idle_before": idle,
              "batch": BATCH, "dtype": "float32",
              "layers": [dict(zip(("name", "m", "n", "idle_rows", "zeros", "need_V"), layer)) for layer in LAYERS],
              "members": member_counts, "repeats": args.repeats}
    if args.epochs < 1 or args.examples < BATCH:
        parser.error(f"--epochs must be >= 1 and --examples >= {BATCH}")
    rows = bench_kernels(member_counts, args.repeats) if "kernels" in cases else []
    epoch_cases = [c for c in cases if c in EPOCH_CASES]
    epochs, epoch_records = bench_epochs(epoch_cases, args.epochs, args.examples, numba.get_num_threads(),
                                         member_counts if args.members else None) if epoch_cases else ([], [])
    record["threads"] = thread_info()
    record["machine_after"] = {"load_average": machine_info().get("load_average")}
    record["kernels"] = rows
    record["epochs"] = {"rows": epochs, "runs": epoch_records, "examples": args.examples, "targets":
                        {f"{case} K={k}": v for (case, k), v in EPOCH_TARGETS.items()}, "rss_target": RSS_TARGET}
    write_json(args.out, record)
    table = format_markdown if args.markdown else format_table
    if rows:
        print(table(rows, COLUMNS))
    if epochs:
        print(table(epochs, EPOCH_COLUMNS))
    print(f"\nthreads: {record['threads']}\nload average before/after: "
          f"{record['machine'].get('load_average')} / {record['machine_after']['load_average']}\n"
          f"written: {args.out}")


if __name__ == "__main__":
    main()
