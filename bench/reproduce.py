"""Benchmark of ``python run.py reproduce`` (issue 5).

Part 1, default preset: runs ``python run.py reproduce --preset default`` end to end in a fresh
results directory (a subprocess, as a user would), figures included, and reports its wall time.

Part 2, paper preset: the time per job, measured and extrapolated. On MNIST-shaped data of the
paper's sizes (48,000 training, 12,000 validation and 10,000 test examples: the embedded digits
tiled when full MNIST is absent; the timing does not depend on which digits), it measures for
every MNIST training setup of the registry one training epoch (``--epochs`` of them, median), one
validation pass under the training stage, and one test pass under every inference setup. A
paper-scale training job then takes

    1000 epochs + validation passes (memristive validation: 51 evaluations x 20 repeats;
    standard checkpoint: one pass per epoch) + 51 x 20 test passes per monitored setup,

and an inference job 25 test passes. The totals over the paper preset's jobs (5 networks per
setup) are reported for this machine, one job at a time (CIFAR-10 is not included).

Usage: python bench/reproduce.py [--skip-default] [--skip-paper] [--epochs 1] [--json out.json]
       [--setups ideal,high_pf,...]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, machine_info, thread_info, versions, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"train": 48_000, "validation": 12_000, "test": 10_000}


def default_preset(out_dir):
    """Wall time (s) of ``python run.py reproduce --preset default`` and its last output lines."""
    env = dict(os.environ)
    env.setdefault("NUMBA_NUM_THREADS", "2")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "reproduce", "--preset", "default",
                           "--out", str(out_dir)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"reproduce failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    report = Path(out_dir) / "report"
    summary = (report / "summary.md").read_text()
    diagonal = summary[summary.index("## Diagonal"):summary.index("\n## ", summary.index("## The paper's orderings"))]
    return {"seconds": seconds, "output_tail": lines[-8:], "diagonal_and_orderings": diagonal.strip(),
            "diagonal_csv": (report / "diagonal.csv").read_text()}


def _paper_data():
    """{split: (images uint8, labels)} of the paper's sizes (full MNIST if present, else tiled)."""
    import numpy as np
    from memnp.experiments import datasource
    from memnp.experiments.configs import DataSpec
    name = datasource.resolve("mnist")
    data = datasource.load(DataSpec(name=name))
    out = {}
    for split, n in SIZES.items():
        images, labels = data[split]
        reps = -(-n // len(labels))
        out[split] = (np.concatenate([images] * reps)[:n], np.concatenate([labels] * reps)[:n])
    return name, out


def paper_per_job(epochs, setups):
    import numpy as np
    from memnp.experiments import plan as planning, presets, protocol, registry
    from memnp.experiments.datasource import to_float
    name, data = _paper_data()
    x = {s: to_float(data[s][0]) for s in data}
    y = {s: data[s][1] for s in data}
    scale = presets.get("paper")
    plan = planning.expand(list(registry.SIMULATIONS), scale, 0, {"mnist": name, "cifar10": None})
    rows, test_pass = [], {}
    for setup_name, entry in plan.trainings.items():
        if setups and setup_name not in setups:
            continue
        training = planning.training_config(plan.job(entry["networks"][0]))
        rng = np.random.default_rng(0)
        model = protocol.build_model("mnist", training.weights, training.stage, rng, training.learning_rate,
                                     training.l1 if training.regularised else 0.0)
        times = []
        for _ in range(epochs):
            order = rng.permutation(SIZES["train"])
            start = time.perf_counter()
            for begin in range(0, SIZES["train"], training.batch_size):
                idx = order[begin:begin + training.batch_size]
                model.train_step(x["train"][idx], y["train"][idx], rng=rng)
            times.append(time.perf_counter() - start)
        epoch = statistics.median(times)
        start = time.perf_counter()
        protocol.evaluate(model, x["validation"], y["validation"], training.stage, rng, training.batch_size,
                          power=False)
        validation = time.perf_counter() - start
        for inf_name in set(entry["monitor"]) | {i for t, i in _pairs(plan) if t == setup_name}:
            key = (training.weights, inf_name)
            if key not in test_pass:
                stage = registry.device_stage(registry.INFERENCES[inf_name].device,
                                              registry.INFERENCES[inf_name].mapping_rule)
                start = time.perf_counter()
                protocol.evaluate(model, x["test"], y["test"], stage, rng, 100)
                test_pass[key] = time.perf_counter() - start
        n_evals = len(range(1, 1001)) if not training.memristive_checkpoint else 51 * scale.validation_repeats
        monitor = sum(test_pass[training.weights, i] for i in entry["monitor"])
        job = 1000 * epoch + n_evals * validation + 51 * scale.test_repeats * monitor
        rows.append({"setup": setup_name, "weights": training.weights, "epoch_s": epoch,
                     "validation_pass_s": validation, "monitored": len(entry["monitor"]),
                     "test_passes_s": monitor, "job_h": job / 3600})
        print(f"  {setup_name}: epoch {epoch:.2f} s, job {job / 3600:.2f} h", flush=True)
    infer_jobs = [j for j in plan.jobs if j.kind == "infer" and (not setups or j.training in setups)]
    weights_of = {name: planning.training_config(plan.job(e["networks"][0])).weights
                  for name, e in plan.trainings.items()}
    infer_s = sum(scale.inference_repeats * test_pass[weights_of[j.training], j.inference] for j in infer_jobs
                  if (weights_of[j.training], j.inference) in test_pass)
    train_s = scale.networks * sum(r["job_h"] for r in rows) * 3600
    return {"data": name, "rows": rows, "inference_jobs": len(infer_jobs), "inference_total_h": infer_s / 3600,
            "training_total_h": train_s / 3600, "total_h": (train_s + infer_s) / 3600,
            "test_pass_s": {f"{w}/{i}": t for (w, i), t in sorted(test_pass.items())}}


def _pairs(plan):
    return [tuple(p) for sim in plan.simulations.values() for p in sim["pairs"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--epochs", type=int, default=1, help="paper-scale epochs timed per setup (median)")
    parser.add_argument("--setups", default="", help="comma-separated training setups (default: all MNIST)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "reproduce.json"))
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    record = {"machine": machine_info(), "versions": versions()}
    if not args.skip_default:
        with tempfile.TemporaryDirectory() as tmp:
            print("default preset, end to end ...", flush=True)
            record["default"] = default_preset(Path(tmp) / "results")
        print(f"default preset: {record['default']['seconds']:.1f} s")
        print(record["default"]["diagonal_and_orderings"])
        print("\n".join("  " + line for line in record["default"]["output_tail"]))
    if not args.skip_paper:
        print(f"paper preset: timing {args.epochs} epoch(s) per MNIST training setup ...", flush=True)
        setups = [s for s in args.setups.split(",") if s]
        record["paper"] = paper_per_job(args.epochs, setups)
        record["threads"] = thread_info()
        paper = record["paper"]
        print(format_table(paper["rows"], [("setup", "setup", "{}"), ("weights", "weights", "{}"),
                                           ("epoch_s", "epoch (s)", "{:.2f}"),
                                           ("validation_pass_s", "val pass (s)", "{:.2f}"),
                                           ("monitored", "monitored", "{}"),
                                           ("test_passes_s", "test passes (s)", "{:.2f}"),
                                           ("job_h", "job (h)", "{:.2f}")]))
        print(f"paper preset on {paper['data']}-shaped data, one job at a time: training "
              f"{paper['training_total_h']:.1f} h (5 networks per setup), {paper['inference_jobs']} "
              f"inference jobs {paper['inference_total_h']:.1f} h, total {paper['total_h']:.1f} h")
    write_json(args.json, record)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
