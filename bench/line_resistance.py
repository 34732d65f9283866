"""Line-resistance benchmark (issue 11): the circuit solver of LineResistance, forward and VJP.

Cases
  mnist   the MNIST first layer: 785 x 50 crossbar (784 pixels + bias row, 25 differential pairs),
          batch 64 of the embedded MNIST digits (V = k_V [x, 1], k_V = 0.5 V), G uniform in the
          high-resistance SiOx range, r_word = r_bit = 1 ohm. PF devices (siox-high, one draw of
          the residuals) and linear devices; float32 and float64; the whole crossbar as one
          circuit and in 128-row tiles (each tile its own circuit: rows sliced, partial column
          currents added). Forward = LineResistance.currents, backward = currents_vjp.
          Baselines: the plain kernels without wires (pf_currents / V G), and badcrossbar on the
          linear float64 case (same circuit, its sparse direct solve) when it is installed.
  big     one 1024 x 1024 array at batch 1 (random inputs in [0, k_V], high-R G, r = 1 ohm),
          linear and PF, float64: memnp's time and the peak RSS of a fresh process doing it;
          badcrossbar on the linear case in a subprocess with a time limit (--bc-limit s).
  epoch   PF-aware training of the paper's 784-25-10 MLP with LineResistance(1, 1) on both layers,
          whole crossbars and 128 x 64 tiles, --epoch-examples digits: time per batch and peak RSS.

Reported: median and min wall time, median CPU time (process time of all threads: on a loaded
machine the wall time stretches, the CPU time much less), Newton iterations, the kind of Newton step
(line steps or CG steps, see memnp.circuit.solve) and its inner iterations (line corrections or CG
iterations, summed over the steps), largest relative
residual, the IR drop (1 - sum I / sum I_without_wires) and the speed-up over badcrossbar (ratio of
medians). Threads: NUMBA_NUM_THREADS (or --threads). The machine's load average is recorded: other
processes slow the timings down.

Usage: python bench/line_resistance.py [--cases mnist,big,epoch] [--repeats 7] [--threads 2]
                                       [--bc-limit 300] [--bc-memory-gb 16] [--quick]
                                       [--out bench/out/line_resistance.json]
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
# One BLAS thread (the V @ G baseline is a small GEMM; extra threads only contend), as bench/epoch.py.
for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from common import (format_table, machine_info, summarize, thread_info, time_calls,  # noqa: E402
                    versions, write_json)

K_V = 0.5
R = 1.0
TILE = 128


def stage():
    from memnp.data.presets import preset_stage
    return preset_stage("siox-high")


def mnist_case(p=64, n=50, seed=0):
    """V (p, 785) from the embedded MNIST digits, G (785, n) and PF devices (float64)."""
    from memnp.data.datasets import EMBEDDED_PATH
    with np.load(EMBEDDED_PATH, allow_pickle=False) as data:
        images = data["images"][:p].reshape(p, -1) / 255.0
    V = K_V * np.concatenate([images, np.ones((p, 1))], axis=1)
    return V, *devices_for(V.shape[1], n, seed)


def devices_for(m, n, seed):
    st = stage()
    rng = np.random.default_rng(seed)
    G = rng.uniform(st.G_off, st.G_on, (m, n))
    pf = st.nonpreserving
    return G, pf.device_parameters(G, pf.sample(G.shape, rng, np.float64))


def tiles(m, rows):
    return [slice(a, min(a + rows, m)) for a in range(0, m, rows)]


def run_mnist(args):
    from memnp.kernels import get_backend
    from memnp.nonidealities import LineResistance
    lr = LineResistance(R, R)
    kernels = get_backend("cpu")
    V64, G64, dev64 = mnist_case(args.batch)
    rng = np.random.default_rng(1)
    grad64 = rng.normal(size=(V64.shape[0], G64.shape[1]))
    rows = []
    for dtype in ("float32", "float64"):
        V, G, grad = (a.astype(dtype) for a in (V64, G64, grad64))
        dev = tuple(d.astype(dtype) for d in dev64)
        for kind in ("PF", "linear"):
            devices = dev if kind == "PF" else None
            plain = (lambda: kernels.pf_currents(V, *dev)) if kind == "PF" else (lambda: V @ G)
            I_plain = plain()
            t_plain = summarize(time_calls(plain, args.repeats))
            for layout in ("whole", f"tiles{TILE}"):
                parts = [slice(0, V.shape[1])] if layout == "whole" else tiles(V.shape[1], TILE)
                pieces = [(np.ascontiguousarray(V[:, s]), np.ascontiguousarray(G[s]),
                           None if devices is None else tuple(np.ascontiguousarray(d[s]) for d in devices))
                          for s in parts]
                states = []

                def forward():
                    states.clear()
                    total = 0
                    for Vt, Gt, dt in pieces:
                        I, state = lr.currents(Vt, Gt, dt, "cpu")
                        states.append(state)
                        total = total + I
                    return total

                def backward():
                    return [lr.currents_vjp(state, grad) for state in states]

                I = forward()
                t_fwd = summarize(time_calls(forward, args.repeats))
                cpu_fwd = cpu_time(forward, args.repeats)
                forward()
                t_bwd = summarize(time_calls(backward, args.repeats))
                cpu_bwd = cpu_time(backward, args.repeats)
                reports = [lr.report(s) for s in states]
                rows.append({
                    "case": f"mnist {kind}", "dtype": dtype, "layout": layout,
                    "forward_ms": 1e3 * t_fwd["median_s"], "forward_min_ms": 1e3 * t_fwd["min_s"],
                    "backward_ms": 1e3 * t_bwd["median_s"], "backward_min_ms": 1e3 * t_bwd["min_s"],
                    "cpu_forward_ms": 1e3 * cpu_fwd, "cpu_backward_ms": 1e3 * cpu_bwd,
                    "no_wires_ms": 1e3 * t_plain["median_s"],
                    "newton": int(max(r.iterations.max() for r in reports)),
                    "cg": int(max(r.inner_iterations.max() for r in reports)),
                    "steps": step_kind(reports),
                    "residual": float(max(r.max_residual for r in reports)),
                    "ir_drop": float(1 - I.sum(dtype=np.float64) / I_plain.sum(dtype=np.float64)),
                    "repeats": t_fwd["repeats"]})
                print(format_table(rows[-1:], COLUMNS), flush=True)
    bc = badcrossbar_time(V64, G64, args.repeats_bc)
    if bc is not None:
        memnp_linear = next(r for r in rows if r["case"] == "mnist linear" and r["dtype"] == "float64"
                            and r["layout"] == "whole")
        I_ours, _ = lr.currents(V64, G64, None, "cpu")
        rows.append({"case": "mnist linear (badcrossbar)", "dtype": "float64", "layout": "whole",
                     "forward_ms": 1e3 * bc["median_s"], "forward_min_ms": 1e3 * bc["min_s"],
                     "cpu_forward_ms": 1e3 * bc["cpu_s"],
                     "repeats": bc["repeats"],
                     "agreement": float(np.abs(bc["I"] - I_ours).max() / np.abs(bc["I"]).max())})
        memnp_linear["speedup_vs_badcrossbar"] = bc["median_s"] / (memnp_linear["forward_ms"] / 1e3)
        memnp_linear["cpu_speedup_vs_badcrossbar"] = bc["cpu_s"] / (memnp_linear["cpu_forward_ms"] / 1e3)
        print(format_table(rows[-1:], COLUMNS), flush=True)
    return rows


def step_kind(reports):
    """'line', 'CG' or 'line+CG': the kinds of Newton step the solves took."""
    kinds = {"line" if "line steps (" in r.method else "CG" if "Newton-CG" in r.method else "line+CG"
             for r in reports}
    return "+".join(sorted(kinds)) if len(kinds) > 1 else kinds.pop()


def cpu_time(fn, repeats):
    """Median CPU time (s, all threads of the process) of fn(): less sensitive than wall time to
    other processes on a shared machine (wall time ~ CPU time / threads when they run unhindered)."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def badcrossbar_time(V, G, repeats):
    try:
        import logging

        import badcrossbar
        logging.getLogger("badcrossbar").setLevel(logging.WARNING)
    except ImportError:
        print("badcrossbar is not installed: no side-by-side timing", flush=True)
        return None
    out = {}

    def call():
        out["I"] = badcrossbar.compute(V.T, 1.0 / G, r_i_word_line=R, r_i_bit_line=R,
                                       node_voltages=False, all_currents=False).currents.output

    times = time_calls(call, repeats, warmup=0)
    return {**summarize(times), "I": out["I"], "cpu_s": cpu_time(call, 1)}


def child_big(kind):
    """In a fresh process: solve the 1024 x 1024 case once (after a warm-up on a tiny array, so
    compilation is not timed) and print time, iterations and peak RSS."""
    from memnp.nonidealities import LineResistance
    m = n = 1024
    rng = np.random.default_rng(2)
    V = K_V * rng.uniform(0, 1, (1, m))
    G, dev = devices_for(m, n, 3)
    lr = LineResistance(R, R)
    devices = dev if kind == "PF" else None
    warm_I, warm_state = lr.currents(V[:, :8], G[:8, :8],
                                     None if devices is None else tuple(d[:8, :8] for d in devices), "cpu")
    lr.currents_vjp(warm_state, np.ones_like(warm_I))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    I, state = lr.currents(V, G, devices, "cpu")
    t_fwd = time.perf_counter() - t0
    t0 = time.perf_counter()
    lr.currents_vjp(state, np.ones_like(I))
    t_bwd = time.perf_counter() - t0
    report = lr.report(state)
    I0 = V @ G if devices is None else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {t_fwd} {t_bwd} {int(report.iterations.max())} {int(report.inner_iterations.max())} "
          f"{report.max_residual} {rss} {float(1 - I.sum() / I0.sum()) if I0 is not None else float('nan')} "
          f"{rss - rss_before}")


def child_epoch(examples, layout):
    """In a fresh process: PF-aware training (the paper's 784-25-10 MLP, double weights, float32)
    on the high-R SiOx stage with LineResistance(1, 1) on every crossbar, ``examples`` embedded
    MNIST digits in batches of 64; layout "whole" (each layer's crossbar one circuit) or
    "tiles128" (Tiles(128, 64): every array its own circuit). Prints the time per batch and the
    peak RSS."""
    from memnp.crossbar import Stage
    from memnp.nn import mnist_mlp
    from memnp.nonidealities import LineResistance, Tiles
    st = stage()
    parts = (st.nonpreserving, LineResistance(R, R))
    if layout != "whole":
        parts = parts + (Tiles(TILE, 64),)
    lr_stage = Stage(st.G_off, st.G_on, st.k_V, parts)
    rng = np.random.default_rng(2022)
    model = mnist_mlp(rng, "double", dtype="float32", stage=lr_stage)
    from memnp.data.datasets import EMBEDDED_PATH
    with np.load(EMBEDDED_PATH, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    scale = np.float32(1 / 255)
    model.train_step(np.multiply(images[:64], scale, dtype=np.float32), labels[:64], rng)
    t0 = time.perf_counter()
    batches = 0
    for i in range(0, examples, 64):
        idx = np.arange(i, i + 64) % len(images)
        model.train_step(np.multiply(images[idx], scale, dtype=np.float32), labels[idx], rng)
        batches += 1
    per_batch = (time.perf_counter() - t0) / batches
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {per_batch} {rss}")


def run_epoch(args):
    rows = []
    for layout in ("whole", f"tiles{TILE}"):
        per_batch, rss = run_child(["--child-epoch", str(args.epoch_examples), layout], 3600)
        rows.append({"case": "MNIST PF-aware training + wires", "dtype": "float32", "layout": layout,
                     "forward_ms": None, "rss_mb": rss, "repeats": 1,
                     "note": f"{1e3 * per_batch:.0f} ms per batch of 64 (train step: both layers, "
                             f"forward + backward); {750 * per_batch:.0f} s per 48,000-example epoch"})
        print(format_table(rows[-1:], COLUMNS), flush=True)
    return rows


def child_badcrossbar_big():
    # Cap its address space (--bc-memory-gb): a shared machine must not be pushed into swapping.
    limit = int(float(os.environ.get("MEMNP_BENCH_BC_MEMORY_GB", "6")) * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import logging

    import badcrossbar
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)
    m = n = 1024
    rng = np.random.default_rng(2)
    V = K_V * rng.uniform(0, 1, (1, m))
    G, _ = devices_for(m, n, 3)
    t0 = time.perf_counter()
    badcrossbar.compute(V.T, 1.0 / G, r_i_word_line=R, r_i_bit_line=R, node_voltages=False,
                        all_currents=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {time.perf_counter() - t0} {rss}")


def run_child(flag, limit):
    cmd = [sys.executable, str(Path(__file__).resolve()), *flag]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    if "MemoryError" in done.stderr or "Can't expand MemType" in done.stderr:
        return ("memory", time.perf_counter() - start)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT"):
            return [float(x) for x in line.split()[1:]]
    raise RuntimeError(f"{' '.join(flag)} failed:\n{done.stderr[-3000:]}")


def run_big(args):
    rows = []
    for kind in ("linear", "PF"):
        t_fwd, t_bwd, newton, cg, residual, rss, drop, grown = run_child(["--child-big", kind], 1800)
        rows.append({"case": f"1024x1024 {kind}", "dtype": "float64", "layout": "batch 1",
                     "forward_ms": 1e3 * t_fwd, "backward_ms": 1e3 * t_bwd, "newton": int(newton),
                     "cg": int(cg), "residual": residual, "rss_mb": rss,
                     "note": f"peak RSS grew by {grown:.0f} MB in the solve and its VJP (the rest: "
                             "imports and Numba compilation)",
                     "ir_drop": None if np.isnan(drop) else drop, "repeats": 1})
        print(format_table(rows[-1:], COLUMNS), flush=True)
    try:
        import badcrossbar  # noqa: F401
    except ImportError:
        return rows
    os.environ["MEMNP_BENCH_BC_MEMORY_GB"] = str(args.bc_memory_gb)
    result = run_child(["--child-badcrossbar-big"], args.bc_limit)
    row = {"case": "1024x1024 linear (badcrossbar)", "dtype": "float64", "layout": "batch 1",
           "repeats": 1}
    if result is None:
        row["note"] = f"did not finish in {args.bc_limit:g} s"
    elif result[0] == "memory":
        row["note"] = (f"out of memory after {result[1]:.0f} s (SuperLU could not expand its "
                       f"storage within a {args.bc_memory_gb:g} GB address-space cap)")
    else:
        row["forward_ms"], row["rss_mb"] = 1e3 * result[0], result[1]
        rows[0]["speedup_vs_badcrossbar"] = result[0] / (rows[0]["forward_ms"] / 1e3)
    rows.append(row)
    print(format_table(rows[-1:], COLUMNS), flush=True)
    return rows


COLUMNS = [("case", "case", "{}"), ("dtype", "dtype", "{}"), ("layout", "layout", "{}"),
           ("forward_ms", "forward ms", "{:.1f}"), ("forward_min_ms", "min", "{:.1f}"),
           ("backward_ms", "backward ms", "{:.1f}"), ("backward_min_ms", "min", "{:.1f}"),
           ("cpu_forward_ms", "fwd CPU ms", "{:.1f}"), ("cpu_backward_ms", "bwd CPU ms", "{:.1f}"),
           ("no_wires_ms", "no wires ms", "{:.2f}"), ("newton", "Newton", "{}"), ("steps", "steps", "{}"),
           ("cg", "inner", "{}"),
           ("residual", "residual", "{:.1e}"), ("ir_drop", "IR drop", "{:.3f}"),
           ("speedup_vs_badcrossbar", "x badcrossbar", "{:.1f}"),
           ("cpu_speedup_vs_badcrossbar", "x badcrossbar (CPU)", "{:.1f}"), ("rss_mb", "peak RSS MB", "{:.0f}"),
           ("agreement", "agreement", "{:.1e}"), ("note", "note", "{}")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="mnist,big,epoch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--repeats-bc", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bc-limit", type=float, default=300.0, help="badcrossbar 1024^2 time limit (s)")
    parser.add_argument("--bc-memory-gb", type=float, default=6.0,
                        help="badcrossbar 1024^2 address-space cap (GB)")
    parser.add_argument("--quick", action="store_true", help="3 repeats, batch 16, badcrossbar limit 60 s")
    parser.add_argument("--out", default=str(HERE / "out" / "line_resistance.json"))
    parser.add_argument("--child-big", choices=("linear", "PF"), help=argparse.SUPPRESS)
    parser.add_argument("--child-badcrossbar-big", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-epoch", nargs=2, metavar=("EXAMPLES", "LAYOUT"), help=argparse.SUPPRESS)
    parser.add_argument("--epoch-examples", type=int, default=1280,
                        help="examples the epoch case trains on (its time is extrapolated to 48,000)")
    args = parser.parse_args()
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    if args.child_big:
        return child_big(args.child_big)
    if args.child_badcrossbar_big:
        return child_badcrossbar_big()
    if args.child_epoch:
        return child_epoch(int(args.child_epoch[0]), args.child_epoch[1])
    if args.quick:
        args.repeats, args.batch, args.bc_limit, args.repeats_bc = 3, 16, 60.0, 1
    rows = []
    cases = args.cases.split(",")
    if "mnist" in cases:
        rows += run_mnist(args)
    if "big" in cases:
        rows += run_big(args)
    if "epoch" in cases:
        rows += run_epoch(args)
    print()
    print(format_table(rows, COLUMNS))
    write_json(args.out, {"benchmark": "line_resistance", "machine": machine_info(),
                          "versions": versions(), "threads": thread_info(), "r_ohm": R,
                          "tile_rows": TILE, "batch": args.batch, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
