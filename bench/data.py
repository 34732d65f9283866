"""Data benchmark (issue 4): loading full Fashion-MNIST from gzipped IDX, fitting the 53 SiOx curves.

Cases:
  fashion-idx      read the four gzipped IDX files (70,000 images, uint8)          target <= 1.5 s
  fashion-splits   load_splits("fashion-mnist", dtype="float32"): the paper's splits, pixels / 255
  siox-fit         fit_siox_file on the measured 53 curves (load .mat, filter, 49 curve fits,
                   regressions)                                                     target <= 5 s

Each case runs once untimed (warm-up: imports, page cache), then ``--repeats`` timed runs; the
median is reported (the first, cold run is also recorded). Data comes from ``--data-dir``, else
``$MEMNP_DATA``, else the developers' ../shared/data.

Usage: python bench/data.py [--repeats 5] [--data-dir DIR] [--json bench/out/data.json]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"fashion-idx": 1.5, "fashion-splits": None, "siox-fit": 5.0}


def machine_info():
    import numpy
    import scipy
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__}


def default_data_dir():
    if os.environ.get("MEMNP_DATA"):
        return Path(os.environ["MEMNP_DATA"])
    return ROOT.parent / "shared" / "data"


def cases(data_dir):
    from memnp.data import datasets, idx
    from memnp.data.devices import fit_siox_file

    fashion = data_dir / "fashion-mnist"
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    def fashion_idx():
        arrays = [idx.read_idx(fashion / n) for n in names]
        assert arrays[0].shape == (60000, 28, 28) and arrays[2].shape == (10000, 28, 28)

    def fashion_splits():
        s = datasets.load_splits("fashion-mnist", data_dir, dtype="float32", download=False)
        assert len(s["train"][1]) == 48000

    def siox_fit():
        fit = fit_siox_file(data_dir / "SiO_x-multistate-data.mat")
        assert len(fit.kept) == 49

    out = {}
    if all((fashion / n).is_file() for n in names):
        out["fashion-idx"] = fashion_idx
        out["fashion-splits"] = fashion_splits
    if (data_dir / "SiO_x-multistate-data.mat").is_file():
        out["siox-fit"] = siox_fit
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "data.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    data_dir = args.data_dir or default_data_dir()
    todo = cases(data_dir)
    if not todo:
        sys.exit(f"no benchmark data in {data_dir} "
                 "(needs fashion-mnist/*.gz and/or SiO_x-multistate-data.mat)")
    results = {}
    for name, fn in todo.items():
        times = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        results[name] = {"cold_s": times[0], "median_s": statistics.median(times[1:]),
                         "min_s": min(times[1:]), "repeats": args.repeats, "target_s": TARGETS[name]}
    record = {"benchmark": "data", "machine": machine_info(), "data_dir": str(data_dir),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}
    print(f"{'case':16s} {'median (s)':>11s} {'min (s)':>9s} {'cold (s)':>9s} {'target (s)':>11s}")
    for name, r in results.items():
        target = "-" if r["target_s"] is None else f"<= {r['target_s']:g}"
        ok = "" if r["target_s"] is None else ("  ok" if r["median_s"] <= r["target_s"] else "  MISSED")
        print(f"{name:16s} {r['median_s']:11.3f} {r['min_s']:9.3f} {r['cold_s']:9.3f} {target:>11s}{ok}")
    info = record["machine"]
    print(f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
          f"NumPy {info['numpy']}, SciPy {info['scipy']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(args.json.suffix + ".part")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
