"""Device-resident training epochs on a CUDA GPU (issue 17): memnp.nn.device.DeviceTrainer on
bench/epoch.py's case c (the paper's MLP 784-25-10, double weights, the high-R SiOx PF stage,
float32, batch 64, SGD lr 0.01) or case e (the same on the combined stage: D2D, stuck devices,
drift, read noise, 6-bit DAC and ADC, 128 x 64 tiles), with K members per launch.

The 48,000 training examples are the embedded MNIST digits tiled (uint8, uploaded once); every
member has its own Generator and data order. Per K: one untimed warm-up epoch of 256 examples
(fewer with a smaller --examples) on a separate trainer (JIT compilation), then ``--repeats``
timed epochs; the median is reported, with the time per network-epoch (s / K). Targets (issue
17, an H200): case c K = 32 <= 1.6 s, K = 1 <= 0.6 s; case e K = 32 <= 2.5 s.

Usage: python bench/device_epoch.py [--cases c,e] [--members 1,32] [--repeats 3] [--json out.json]
(NUMBA_ENABLE_CUDASIM=1 with a small --examples runs it under the simulator, slowly: a smoke test.)
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

from common import bounded_int, gpu_name, int_list, machine_info, name_list, versions, write_json  # bench/ on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # memnp from this checkout, installed or not
#: (case, K) -> the s/epoch target.
TARGETS_S = {("c", 1): 0.6, ("c", 32): 1.6, ("e", 32): 2.5}
CASES = ("c", "e")


def build(K, seed, dtype, case="c"):
    """K networks of ``case`` (own initial weights) and their Generators."""
    import numpy as np

    from epoch import stage_for
    from memnp.nn import mnist_mlp
    rngs = [np.random.default_rng(seed + k) for k in range(K)]
    return [mnist_mlp(rng, "double", dtype=dtype, stage=stage_for(case)) for rng in rngs], rngs


def run(K, examples, repeats, dtype, case="c"):
    import numpy as np

    from memnp.nn.device import DeviceTrainer
    with np.load(ROOT / "memnp" / "data" / "mnist-10k.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    take = np.arange(examples) % len(images)
    models, rngs = build(K, 2022, dtype, case)
    start = time.perf_counter()
    warm = DeviceTrainer(build(K, 7, dtype, case)[0])
    w = min(256, examples)
    warm.set_data(images[take[:w]], labels[take[:w]])
    warm.train_epoch(build(K, 7, dtype, case)[1])
    warmup = time.perf_counter() - start
    trainer = DeviceTrainer(models)
    trainer.set_data(images[take], labels[take])
    times, record = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        record = trainer.train_epoch(rngs)
        times.append(time.perf_counter() - start)
    trainer.sync()
    s = statistics.median(times)
    return {"members": K, "case": case, "examples": examples, "batch": 64, "dtype": dtype, "repeats": repeats,
            "times_s": times, "s_per_epoch": s, "s_per_network_epoch": s / K, "warmup_s": warmup,
            "target_s": TARGETS_S.get((case, K)), "last_epoch_mean_loss": float(record.losses[:, -50:].mean()),
            "last_epoch_mean_accuracy": float(record.accuracies[:, -50:].mean())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=name_list(CASES), default=["c"],
                        help="bench/epoch.py cases, comma-separated: c, e (c)")
    parser.add_argument("--members", type=int_list(1, 1024), default=[1, 32], help="K values, comma-separated (1,32)")
    parser.add_argument("--repeats", type=bounded_int(1, 100), default=3, help="timed epochs per K, 1 to 100")
    parser.add_argument("--examples", type=bounded_int(64, 1_000_000), default=48_000,
                        help="examples per epoch (48,000)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    try:
        from memnp.kernels import cuda_step  # noqa: F401
        from memnp.kernels.cuda import _require_device
        _require_device()
    except (ImportError, RuntimeError) as exc:
        raise SystemExit(f"device_epoch: no usable CUDA device: {exc}") from None
    results = []
    for case in args.cases:
        for K in args.members:
            r = run(K, args.examples, args.repeats, args.dtype, case)
            results.append(r)
            print(f"case {case}, K = {K:>4}: {r['s_per_epoch']:.3f} s/epoch ({r['s_per_network_epoch']:.4f} s "
                  f"per network-epoch; target {r['target_s']}) warm-up {r['warmup_s']:.1f} s", flush=True)
    if args.json:
        write_json(args.json, {"benchmark": "device_epoch", "machine": machine_info(), "gpu": gpu_name("cuda"),
                               "versions": versions(), "results": results})


if __name__ == "__main__":
    main()
