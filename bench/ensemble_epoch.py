"""Training epochs of K ensemble members against one network (issue 15): ``bench/ensemble.py
--cases c,e`` runs this module's cases.

Cases (bench/epoch.py's network and stages: MNIST-shaped, 48,000 examples per member and epoch,
batch 64, float32, the paper's 784-25-10 network with double weights):
  c  PF-aware training on the high-resistance SiOx stage (members K = 1, 5, 16 by default)
  e  the combined stage, siox-high-chip (K = 1, 5)

Each member has its own initial weights, Generator and data order (a permutation of the
examples per member and epoch). Every measurement is one epoch in a fresh subprocess (one
untimed warm-up step first: JIT compilation, cache loads), so its peak RSS is its own. For each
repeat the parent runs, back to back, one epoch of the single network (``Sequential.train_step``,
what ``train`` runs today) and one epoch of each K (``Ensemble.train_step``); the ratio of a K
epoch's time per member to that repeat's single epoch is one same-run pair. Reported: the
median epoch times, and the median and range (min to max) of the pairs' ratios; the same ratio
in CPU time (the process's, all threads: what the members' work costs, whatever the load) and
CPU time over wall time (about 2 when both cores were the process's); the peak RSS of each K
against the single network's.

Inputs are the embedded MNIST digits (10,000, indexed modulo their count: full MNIST is not
needed), kept as uint8 and scaled per batch, as bench/epoch.py does.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CASES = {"c": "MNIST PF-aware (high-R SiOx), double", "e": "MNIST combined stage (siox-high-chip), double"}
MEMBERS = {"c": (1, 5, 16), "e": (1, 5)}
EXAMPLES, BATCH = 48_000, 64
#: Targets of issue 15: time per member / single-network epoch, per (case, K).
TARGETS = {("c", 5): 0.45, ("c", 16): 0.35, ("e", 5): 0.5}
RSS_TARGET = 2.0


def worker(case, members, examples, seed=2022):
    """One epoch of ``members`` networks (0: the single network alone); prints a JSON record."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    from epoch import stage_for

    from memnp.nn import Ensemble, mnist_mlp
    K = max(members, 1)
    models = [mnist_mlp(np.random.default_rng(seed + k), "double", dtype="float32", stage=stage_for(case))
              for k in range(K)]
    rngs = [np.random.default_rng(10_000 + seed + k) for k in range(K)]
    orders = [np.random.default_rng(20_000 + seed + k) for k in range(K)]
    with np.load(ROOT / "memnp" / "data" / "mnist-10k.npz", allow_pickle=False) as data:
        pool, labels = data["images"], data["labels"].astype(np.int64)
    scale = np.float32(1 / 255)
    ensemble = Ensemble(models) if members else None

    def step(idx):
        idx = idx % len(pool)
        x = np.multiply(pool[idx], scale, dtype=np.float32)
        if ensemble is None:
            return models[0].train_step(x[0], labels[idx[0]], rngs[0])
        return ensemble.train_step(x, labels[idx], rngs)

    start = time.perf_counter()
    step(np.arange(BATCH)[None].repeat(K, axis=0))
    warmup = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    perms = np.stack([order.permutation(examples) for order in orders])
    for i in range(0, examples, BATCH):
        step(perms[:, i:i + BATCH])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"case": case, "members": members, "examples": examples, "seconds": seconds, "cpu_s": cpu,
                      "warmup_s": warmup, "stacked_layers": list(ensemble.stacked_layers) if ensemble else [],
                      "one_call": bool(ensemble.trains_in_one_call(BATCH)) if ensemble else False,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(case, members, examples, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    command = [sys.executable, str(Path(__file__).resolve()), case, str(members), str(examples)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"epoch worker {case} K={members} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_epochs(cases, repeats, examples, threads, members=None, log=print):
    """(rows, records): one row per (case, K) with the epoch times and the same-run pair ratios."""
    rows, records = [], []
    for case in cases:
        counts = list(members) if members else list(MEMBERS[case])
        runs = {0: []} | {k: [] for k in counts}
        for r in range(repeats):
            for k in runs:
                record = _run(case, k, examples, threads)
                records.append(record)
                runs[k].append(record)
                log(f"  case {case} repeat {r + 1}/{repeats} {'single' if k == 0 else f'K={k}'}: "
                    f"{record['seconds']:.2f} s, peak RSS {record['peak_rss_mb']:.0f} MB")
        single = runs[0]
        for k, recs in runs.items():
            times = [rec["seconds"] for rec in recs]
            row = {"case": case, "K": "single" if k == 0 else k, "epoch_s": statistics.median(times),
                   "epoch_min_s": min(times), "epoch_max_s": max(times),
                   "peak_rss_mb": statistics.median(rec["peak_rss_mb"] for rec in recs)}
            if k:
                ratios = [rec["seconds"] / k / base["seconds"] for rec, base in zip(recs, single)]
                cpu = [rec["cpu_s"] / k / base["cpu_s"] for rec, base in zip(recs, single)]
                rss = [rec["peak_rss_mb"] / base["peak_rss_mb"] for rec, base in zip(recs, single)]
                target = TARGETS.get((case, k))
                row.update(per_member_s=statistics.median(times) / k, ratio=statistics.median(ratios),
                           ratio_min=min(ratios), ratio_max=max(ratios), cpu_ratio=statistics.median(cpu),
                           cpu_wall=statistics.median(rec["cpu_s"] / rec["seconds"] for rec in recs), rss_ratio=statistics.median(rss),
                           target=target, met=None if target is None else statistics.median(ratios) <= target,
                           stacked_layers=",".join(map(str, recs[0]["stacked_layers"])) or "none",
                           step="one call" if recs[0].get("one_call") else "layered")
            rows.append(row)
    return rows, records


COLUMNS = [("case", "case", "{}"), ("K", "K", "{}"), ("epoch_s", "epoch s", "{:.2f}"),
           ("epoch_min_s", "min", "{:.2f}"), ("epoch_max_s", "max", "{:.2f}"),
           ("per_member_s", "s/member", "{:.3f}"), ("ratio", "per member / single", "{:.3f}"),
           ("ratio_min", "min", "{:.3f}"), ("ratio_max", "max", "{:.3f}"), ("target", "target", "{:.2f}"),
           ("met", "met", "{}"), ("cpu_ratio", "CPU per member / single", "{:.3f}"),
           ("cpu_wall", "CPU / wall", "{:.2f}"), ("peak_rss_mb", "peak RSS MB", "{:.0f}"), ("rss_ratio", "RSS / single", "{:.2f}"),
           ("stacked_layers", "stacked layers", "{}"), ("step", "step", "{}")]


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
