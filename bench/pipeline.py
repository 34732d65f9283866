"""Cost of the combined stage (issue 10) against PF alone: its fused loops per call, and whole
training steps.

Per call, on the first layer of the paper's MNIST network as a training batch reads it (about
600 of its 785 rows driven, 50 columns, a batch of 64, float32; bench/epoch.py's case e against
case c), the phase-by-phase form beside the fused one:

- draws:     every phase's ``sample`` in turn / memnp.kernels.stage_draws.sample (one block of
             words, one kernel) / stage_draws.sample_and_apply (also G'' and the PF device
             parameters) / case c's PF residuals and parameters alone;
- words:     ``bit_generator.random_raw`` / memnp.kernels.pcg64.raw_words (the same words);
- chain:     the conductance phases' apply (and VJP) one by one / memnp.kernels.conductance_chain;
- read:      the tiled PF read then periphery.adc_sum / kernels.tiling.pf_currents_tiled_adc /
             case c's untiled kernel (the cpu backend's pf_currents).

Training steps: blocks of 10 steps alternate between case c and case e (two models in one
process, each with its own Generator), wall time per step; the ratio of the medians and the
median of the block ratios are reported (on a shared machine the interleaving, not the absolute
times, makes the ratio fair).

Usage: python bench/pipeline.py [--repeats 300] [--blocks 100] [--threads 1] [--quick] [--json PATH]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per row (median reported)")
    parser.add_argument("--blocks", type=int, default=100, help="blocks of 10 training steps per case")
    parser.add_argument("--threads", type=int, default=1, help="NUMBA_NUM_THREADS (1: CPU time of one core)")
    parser.add_argument("--quick", action="store_true", help="30 calls per row, 10 blocks")
    parser.add_argument("--json", default=None, help="write the results here")
    return parser.parse_args(argv)


ARGS = _args(sys.argv[1:]) if __name__ == "__main__" else None
if ARGS is not None:
    os.environ.setdefault("NUMBA_NUM_THREADS", str(ARGS.threads))
for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from common import format_table, machine_info, summarize, thread_info, time_calls, versions, write_json  # noqa: E402
import epoch  # noqa: E402  (the cases' stages and data)


def per_call(repeats):
    from memnp.crossbar import CrossbarPass
    from memnp.kernels import conductance_chain, cpu_auto, pcg64, periphery, stage_draws, tiling
    stage, plain = epoch.stage_for("e"), epoch.stage_for("c")
    phases = stage.phases
    rng = np.random.default_rng(1)
    m, n, p = 600, 50, 64
    G = rng.uniform(epoch.G_OFF, epoch.G_ON, (m, n)).astype(np.float32)
    pool, _, _ = epoch.data_for("c", 48000, rng)
    x = pool[:p].reshape(p, -1)
    rows = np.flatnonzero(x.any(axis=0))[:m - 1]
    V = np.zeros((p, m), np.float32)
    V[:, :rows.size] = np.round(x[:, rows] / 255 * 63) / 63 * 0.5
    V[:, -1] = 0.5
    pf = phases["currents"]
    draws = CrossbarPass(stage).sample(G.shape, rng, np.float32)
    c, d_eps = pf.device_parameters(G, draws["currents"])
    bounds = [(0, 128, 128), (128, 256, 128), (256, 384, 128), (384, 512, 128), (512, m, m - 512)]
    tile_of_row = np.repeat(np.arange(len(bounds)), [b - a for a, b, _ in bounds])
    fs = np.full(len(bounds), 1e-3)

    def one_by_one():
        out = {}
        for name, item in phases.items():
            if name in ("dac", "adc", "tiles"):
                continue
            out[name] = item.sample(G.shape, rng, np.float32)
        return out

    def chain_one_by_one():
        out = G
        for name, item in stage.conductance_phases:
            out = item.apply(out, draws[name])
        return out

    def chain_vjp_one_by_one():
        inputs, out = [], G
        for name, item in stage.conductance_phases:
            inputs.append(out)
            out = item.apply(out, draws[name])
        grad = G
        for (name, item), G_in in zip(reversed(stage.conductance_phases), reversed(inputs)):
            grad = item.apply_vjp(G_in, draws[name], grad)
        return grad

    def pf_alone():
        residuals = plain.nonpreserving.sample(G.shape, rng, np.float32)
        return plain.nonpreserving.device_parameters(G, residuals)

    words = 5 * m * n // 2
    rows_ = [
        ("draws", "phases one by one", one_by_one),
        ("draws", "stage_draws.sample", lambda: stage_draws.sample(phases, G.shape, rng, None, np.float32,
                                                                   draw_plan=stage.draw_plan)),
        ("draws", "sample_and_apply (+ G'', c, d_eps)",
         lambda: stage_draws.sample_and_apply(phases, stage.draw_plan, G, rng)),
        ("draws", "case c: PF residuals + parameters", pf_alone),
        ("words", f"random_raw ({words})", lambda: rng.bit_generator.random_raw(words)),
        ("words", f"pcg64.raw_words ({words})", lambda: pcg64.raw_words(rng.bit_generator, words)),
        ("chain", "apply, phases one by one", chain_one_by_one),
        ("chain", "conductance_chain.apply", lambda: conductance_chain.apply(phases, G, draws)),
        ("chain", "apply + VJP, phases one by one", chain_vjp_one_by_one),
        ("chain", "conductance_chain.apply_vjp", lambda: conductance_chain.apply_vjp(phases, G, draws, G)),
        ("read", "tiled parts + adc_sum", lambda: periphery.adc_sum(
            tiling.pf_currents_tiled(V, c, d_eps, tile_of_row, len(bounds)), fs.reshape(-1, 1, 1), 63)),
        ("read", "pf_currents_tiled_adc", lambda: tiling.pf_currents_tiled_adc(V, c, d_eps, tile_of_row, len(bounds),
                                                                             fs, 63)),
        ("read", "case c: cpu pf_currents (untiled)", lambda: cpu_auto.pf_currents(V, c, d_eps)),
    ]
    out = []
    for group, name, fn in rows_:
        s = summarize(time_calls(fn, repeats, warmup=3))
        out.append({"group": group, "call": name, "median_us": s["median_s"] * 1e6, "min_us": s["min_s"] * 1e6,
                    "repeats": s["repeats"]})
    return out, {"devices": [m, n], "batch": p, "nonzero_voltages": int(np.count_nonzero(V))}


def training_steps(blocks):
    from memnp.nn import mnist_mlp
    models = {}
    for case in ("c", "e"):
        rng = np.random.default_rng(2022)
        models[case] = (mnist_mlp(rng, "double", dtype="float32", stage=epoch.stage_for(case)), rng)
    pool, labels, _ = epoch.data_for("c", 48000, np.random.default_rng(1))
    order = np.random.default_rng(3).permutation(48000)
    scale = np.float32(1 / 255)
    batches = [(np.multiply(pool[order[i:i + 64] % len(pool)], scale, dtype=np.float32),
                labels[order[i:i + 64] % len(pool)]) for i in range(0, 64 * 750, 64)]
    for model, rng in models.values():
        for x, y in batches[:30]:
            model.train_step(x, y, rng)
    times = {"c": [], "e": []}
    for b in range(blocks):
        seg = batches[(b * 10) % 740:(b * 10) % 740 + 10]
        for case in (("c", "e") if b % 2 == 0 else ("e", "c")):
            model, rng = models[case]
            t0 = time.perf_counter()
            for x, y in seg:
                model.train_step(x, y, rng)
            times[case].append((time.perf_counter() - t0) / len(seg) * 1e3)
    c, e = times["c"], times["e"]
    return {"ms_per_step": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in times.items()},
            "ratio_of_medians": statistics.median(e) / statistics.median(c),
            "median_of_block_ratios": statistics.median([b / a for a, b in zip(c, e)]),
            "blocks": blocks, "steps_per_block": 10}


def main():
    args = ARGS
    repeats, blocks = (30, 10) if args.quick else (args.repeats, args.blocks)
    calls, shapes = per_call(repeats)
    print(format_table(calls, [("group", "what", "{}"), ("call", "call", "{}"), ("median_us", "median us", "{:.1f}"),
                               ("min_us", "min us", "{:.1f}")]))
    steps = training_steps(blocks)
    ms = steps["ms_per_step"]
    print(f"\ntraining steps (ms/step, medians of {blocks} blocks of 10): c {ms['c']['median']:.3f} "
          f"({ms['c']['min']:.3f}-{ms['c']['max']:.3f}), e {ms['e']['median']:.3f} "
          f"({ms['e']['min']:.3f}-{ms['e']['max']:.3f}); e / c: ratio of medians "
          f"{steps['ratio_of_medians']:.3f}, median of block ratios {steps['median_of_block_ratios']:.3f}")
    if args.json:
        write_json(args.json, {"benchmark": "pipeline", "machine": machine_info(), "versions": versions(),
                               "threads": thread_info(), "shapes": shapes, "calls": calls, "training": steps})


if __name__ == "__main__":
    main()
