"""Benchmark of training groups (issue 15): ``python run.py reproduce`` with ``--group 1`` (one
network per pass) against ``--group auto`` (the networks that can share a pass train together),
alternating in one session, each into a fresh results directory.

For each run: wall time, the CPU time of the run and its worker processes (user + system, from
the children's rusage), the machine's idle fraction over the run (/proc/stat: how loaded the
shared machine was), the groups the run formed (its "training N networks in one pass" lines),
and whether the two runs wrote the same numbers (every record without timings, every weights
array). The ratio is auto / 1 of same-run pairs (median and range).

Usage: python bench/group.py [--preset default] [--pairs 2] [--jobs auto] [--figures]
       [--json bench/out/group.json] [--extra "--epochs 20"]
"""
import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import _cpu_times, format_table, machine_info, thread_info, versions, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(group, out_dir, preset, jobs, figures, extra):
    """One reproduce run: {"wall_s", "cpu_s", "idle", "groups", "output_tail"}."""
    args = [sys.executable, str(ROOT / "run.py"), "reproduce", "--preset", preset, "--out", str(out_dir),
            "--group", str(group), "--jobs", str(jobs)] + ([] if figures else ["--no-figures"]) + extra
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, idle0 = _cpu_times()
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - start
    busy1, idle1 = _cpu_times()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"reproduce --group {group} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.splitlines()
    total = (busy1 - busy0) + (idle1 - idle0)
    return {"wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "idle": (idle1 - idle0) / total if total else None,
            "groups": [line.split(": ", 1)[1] for line in lines if line.startswith("training ")],
            "output_tail": [line for line in lines if not line.startswith("job ")][-4:]}


def numbers(root):
    """Every job record without timings, and every weights array (as lists)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_experiments_run import _numbers
    return _numbers(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--jobs", default="auto")
    parser.add_argument("--figures", action="store_true", help="Draw the figures too (the same cost in both).")
    parser.add_argument("--extra", default="", help="More reproduce options, e.g. '--epochs 20'.")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    extra = shlex.split(opts.extra)
    runs = {"1": [], "auto": []}
    same = []
    with tempfile.TemporaryDirectory(prefix="memnp-group-bench-") as tmp:
        for pair in range(opts.pairs):
            order = ("1", "auto") if pair % 2 == 0 else ("auto", "1")
            dirs = {}
            for group in order:
                dirs[group] = Path(tmp) / f"pair{pair}-group{group}"
                runs[group].append(run(group, dirs[group], opts.preset, opts.jobs, opts.figures, extra))
                r = runs[group][-1]
                print(f"pair {pair + 1}, --group {group}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                      f"machine idle {100 * (r['idle'] or 0):.0f} %", flush=True)
            same.append(numbers(dirs["1"]) == numbers(dirs["auto"]))
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(runs["auto"], runs["1"])]
    cpu_ratios = [a["cpu_s"] / b["cpu_s"] for a, b in zip(runs["auto"], runs["1"])]
    rows = []
    for group in ("1", "auto"):
        walls = [r["wall_s"] for r in runs[group]]
        cpus = [r["cpu_s"] for r in runs[group]]
        idles = [100 * (r["idle"] or 0) for r in runs[group]]
        rows.append({"run": f"--group {group}",
                     "wall": f"{statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f})",
                     "cpu": f"{statistics.median(cpus):.1f} ({min(cpus):.1f}-{max(cpus):.1f})",
                     "idle": f"{min(idles):.0f}-{max(idles):.0f}"})
    print(format_table(rows, [("run", "run", "{}"), ("wall", "wall s: median (range)", "{}"),
                              ("cpu", "CPU s: median (range)", "{}"), ("idle", "machine idle %", "{}")]))
    print(f"wall auto / 1, same-run pairs: median {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); CPU: median {statistics.median(cpu_ratios):.2f}; "
          f"same numbers in every pair: {all(same)}")
    print("groups formed (--group auto):")
    for line in runs["auto"][0]["groups"]:
        print(f"  {line}")
    if opts.json:
        write_json(opts.json, {"machine": machine_info(), "versions": versions(), "threads": thread_info(),
                               "options": vars(opts), "runs": runs, "wall_ratio": ratios, "cpu_ratio": cpu_ratios,
                               "same_numbers": same})


if __name__ == "__main__":
    main()
