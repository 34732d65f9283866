"""The final table of bench/gpu_check.sh: what was measured on the GPU against issue 17's targets.

Reads what gpu_check.sh left in its output folder OUT:
  steps.tsv            one line per step: name, exit status (124/137: timed out; "skipped"), seconds
  tests_<part>.log     pytest's output for the CUDA tests on the device (kernels, circuit)
  kernels.json         bench/kernels.py (backend "cuda": device-resident arrays)
  random.json          bench/cuda_random.py
  epoch_<case>.json    bench/epoch.py --backend cuda, one case per file
  device_epoch.json    bench/device_epoch.py (device-resident training, case c, K members per launch)
  device_epoch_e.json  the same for case e (the combined stage)
  ensemble_cpu.json    bench/ensemble.py --cases c on the machine's CPU cores (issue 15)
  (the reproduce step's seconds in steps.tsv: `reproduce --preset default --backend cuda`)
and prints one table (what, measured, target, met) and writes it to OUT/gpu_check.json
(atomically). A missing or broken input gives a row saying so, never a traceback.

Usage: python bench/gpu_table.py OUT
"""
import json
import re
import sys
from pathlib import Path

from common import write_json  # bench/ is on sys.path when run as a script

#: The kernel target of issue 17: PF forward + VJP, float32, device-resident arrays, median (ms).
KERNEL_SHAPE, KERNEL_TARGET_MS = "8192x785x50", 4.0
#: Other kernel shapes reported without a target.
KERNEL_EXTRA_SHAPES = ("8192x26x10",)
EPOCH_CASES = ("a", "b", "c", "d", "e")
#: s/epoch targets of the epoch cases on the GPU (None: no target set; reported only).
EPOCH_TARGETS_S = {case: None for case in EPOCH_CASES}


def read_steps(out):
    """{step: (status text, seconds)} from steps.tsv."""
    steps = {}
    try:
        lines = (out / "steps.tsv").read_text().splitlines()
    except OSError:
        return steps
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3:
            name, rc, seconds = parts
            steps[name] = (rc, seconds)
    return steps


def step_note(steps, name):
    """'' for a step that ran and exited 0; else why its numbers may be missing."""
    if name not in steps:
        return "step did not run"
    rc, seconds = steps[name]
    if rc == "0":
        return ""
    if rc == "skipped":
        return "skipped: no time left"
    if rc in ("124", "137"):
        return f"timed out after {seconds} s"
    return f"exit {rc} after {seconds} s"


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


#: The test steps of gpu_check.sh: step name -> what it tests.
TEST_STEPS = {"tests_kernels": "tests/test_kernels*cuda*.py",
              "tests_circuit": "tests/test_circuit*cuda*.py",
              "tests_device": "tests/test_nn_device.py tests/test_nn_device_stage.py tests/test_nn_device_linear.py"}


def pytest_counts(text):
    """{'passed': n, 'failed': n, ...} from the last summary line of pytest's output ({} if none)."""
    summary = [line for line in text.splitlines()
               if re.search(r"\d+ (passed|failed|errors?|skipped)\b", line)]
    counts = {}
    if summary:
        for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary[-1]):
            counts["error" if word.startswith("error") else word] = int(number)
    return counts


def pytest_rows(out, steps):
    """One row per test step: the pytest summary of the CUDA tests on the device."""
    rows = []
    for name, files in TEST_STEPS.items():
        try:
            text = (out / f"{name}.log").read_text(errors="replace")
        except OSError:
            text = ""
        counts = pytest_counts(text)
        note = step_note(steps, name)
        if counts:
            measured = ", ".join(f"{n} {w}" for w, n in counts.items())
            met = (counts.get("failed", 0) == 0 and counts.get("error", 0) == 0
                   and counts.get("passed", 0) > 0 and not note)
        else:
            measured, met = "no pytest summary", False
        rows.append(dict(what=f"CUDA tests on the device ({files})", measured=measured,
                         target="all pass", met=met, note=note))
    return rows


def kernel_rows(out, steps):
    """Forward, VJP and their sum at the target shape (float32, device arrays); other shapes."""
    data = read_json(out / "kernels.json")
    note = step_note(steps, "kernels")
    medians = {}
    for row in (data or {}).get("timings", []):
        if row.get("backend") == "cuda" and row.get("dtype") == "float32":
            medians[(row.get("shape"), row.get("op"))] = row.get("median_s")
    rows = []
    for shape in (KERNEL_SHAPE,) + KERNEL_EXTRA_SHAPES:
        fwd, vjp = medians.get((shape, "forward")), medians.get((shape, "backward"))
        target = f"<= {KERNEL_TARGET_MS} ms" if shape == KERNEL_SHAPE else None
        what = f"PF forward + VJP {shape} float32 (ms, median)"
        if fwd is None or vjp is None:
            rows.append(dict(what=what, measured="not measured", target=target,
                             met=False if target else None, note=note or "no cuda rows"))
            continue
        total_ms = (fwd + vjp) * 1e3
        rows.append(dict(what=what, measured=f"{total_ms:.3f}", target=target,
                         met=(total_ms <= KERNEL_TARGET_MS) if target else None,
                         note=f"forward {fwd * 1e3:.3f}, VJP {vjp * 1e3:.3f}"))
    return rows


def random_rows(out, steps):
    """GPU words and normals: time and agreement with the CPU (no target)."""
    data = read_json(out / "random.json")
    note = step_note(steps, "random")
    if not data or not data.get("results"):
        return [dict(what="GPU PCG64 words / normals", measured="not measured", target=None,
                     met=None, note=note or "no random.json")]
    rows = []
    for r in data["results"]:
        rows.append(dict(what=f"GPU {r['what']} ({r['count']:,}; ms, median)",
                         measured=f"{r['median_ms']:.3f}", target=None,
                         met=None if r.get("same_as_cpu") is not False else False,
                         note=f"cpu {r['cpu_median_ms']:.1f} ms; same as cpu: {r.get('same_as_cpu')}"))
    return rows


def epoch_rows(out, steps):
    """s/epoch of each epoch case with the cuda backend."""
    rows = []
    for case in EPOCH_CASES:
        data = read_json(out / f"epoch_{case}.json")
        note = step_note(steps, f"epoch_{case}")
        target = EPOCH_TARGETS_S.get(case)
        results = (data or {}).get("results") or []
        if not results:
            rows.append(dict(what=f"epoch case {case}, cuda (s/epoch)", measured="not measured",
                             target=None if target is None else f"<= {target} s",
                             met=None if target is None else False, note=note or "no results"))
            continue
        r = results[0]
        s = r["s_per_epoch"]
        rows.append(dict(what=f"epoch case {case}: {r.get('description', '')} (s/epoch)",
                         measured=f"{s:.2f}", target=None if target is None else f"<= {target} s",
                         met=None if target is None else s <= target,
                         note=(f"{r.get('examples_per_s', 0):,.0f} ex/s, warm-up "
                               f"{r.get('warmup_s', 0):.1f} s" + (f"; {note}" if note else ""))))
    return rows


#: Device-resident epochs (bench/device_epoch.py, float32): (case, K members) -> s/epoch target.
DEVICE_TARGETS_S = {("c", 1): 0.6, ("c", 32): 1.6, ("e", 32): 2.5}
#: The steps of gpu_check.sh that run bench/device_epoch.py, and their JSON files.
DEVICE_STEPS = {"device_epoch": "device_epoch.json", "device_epoch_e": "device_epoch_e.json"}


def device_rows(out, steps):
    """s/epoch of device-resident training (memnp.nn.device) for each (case, K) measured (the
    targets' reported even when missing)."""
    results, notes = {}, {}
    for name, file in DEVICE_STEPS.items():
        data = read_json(out / file)
        for r in (data or {}).get("results") or []:
            if isinstance(r, dict) and isinstance(r.get("members"), int):
                results[(str(r.get("case", "c")), r["members"])] = r
        notes[name] = step_note(steps, name)
    rows = []
    for case, K in sorted(set(DEVICE_TARGETS_S) | set(results)):
        target = DEVICE_TARGETS_S.get((case, K))
        shown = None if target is None else f"<= {target} s"
        what = f"device-resident epoch case {case}, K = {K} (s/epoch)"
        note = notes["device_epoch_e" if case == "e" else "device_epoch"]
        r = results.get((case, K))
        if r is None or not isinstance(r.get("s_per_epoch"), (int, float)):
            rows.append(dict(what=what, measured="not measured", target=shown,
                             met=None if target is None else False, note=note or "no device_epoch result"))
            continue
        s = r["s_per_epoch"]
        rows.append(dict(what=what, measured=f"{s:.3f}", target=shown,
                         met=None if target is None else s <= target,
                         note=(f"{s / K:.4f} s per network-epoch, warm-up {r.get('warmup_s', 0):.1f} s"
                               + (f"; {note}" if note else ""))))
    return rows


#: `reproduce --preset default --backend cuda` (figures not drawn): wall-time target in s.
REPRODUCE_TARGET_S = 45


def reproduce_rows(out, steps):
    """The default reproduction's wall time on the GPU (the step's seconds, whole seconds)."""
    what = "reproduce --preset default --backend cuda, no figures (s wall)"
    target = f"<= {REPRODUCE_TARGET_S} s"
    note = step_note(steps, "reproduce")
    if "reproduce" not in steps or note:
        return [dict(what=what, measured="not measured", target=target, met=False, note=note)]
    seconds = int(steps["reproduce"][1])
    return [dict(what=what, measured=str(seconds), target=target, met=seconds <= REPRODUCE_TARGET_S,
                 note="the step's wall time, Python start-up and the results' writing included")]


#: Issue 15 on the GPU box's CPU cores (bench/ensemble.py, case c): K -> per member / single target.
ENSEMBLE_CPU_TARGETS = {5: 0.45, 16: 0.35}


def ensemble_cpu_rows(out, steps):
    """Case c's K-member epochs on this machine's CPU cores: per member against the single network
    (same-run pairs), for each K measured (the targets' reported even when missing)."""
    data = read_json(out / "ensemble_cpu.json")
    note = step_note(steps, "ensemble_cpu")
    found = {r["K"]: r for r in ((data or {}).get("epochs") or {}).get("rows") or []
             if isinstance(r, dict) and isinstance(r.get("K"), int) and r.get("case") == "c"}
    threads = ((data or {}).get("threads") or {}).get("numba_threads")
    rows = []
    for K in sorted(set(ENSEMBLE_CPU_TARGETS) | set(found)):
        target = ENSEMBLE_CPU_TARGETS.get(K)
        shown = None if target is None else f"<= {target}"
        what = f"CPU epoch case c, K = {K}: per member / single network ({threads or '?'} threads)"
        r = found.get(K)
        if r is None or not isinstance(r.get("ratio"), (int, float)):
            rows.append(dict(what=what, measured="not measured", target=shown,
                             met=None if target is None else False, note=note or "no ensemble_cpu result"))
            continue
        rows.append(dict(what=what, measured=f"{r['ratio']:.3f}", target=shown,
                         met=None if target is None else r["ratio"] <= target,
                         note=f"{r.get('step', '')} step, {r['per_member_s']:.3f} s per member-epoch"
                              + (f"; {note}" if note else "")))
    return rows


def build(out):
    out = Path(out)
    steps = read_steps(out)
    rows = pytest_rows(out, steps) + kernel_rows(out, steps) + device_rows(out, steps) \
        + reproduce_rows(out, steps) + random_rows(out, steps) + ensemble_cpu_rows(out, steps) \
        + epoch_rows(out, steps)
    return {"benchmark": "gpu_check", "steps": {k: {"status": v[0], "seconds": v[1]}
                                                for k, v in steps.items()},
            "rows": rows}


def format_rows(rows):
    """Markdown table: what | measured | target | met | note."""
    lines = ["| what | measured | target | met | note |", "|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lines.append(f"| {r['what']} | {r['measured']} | {r['target'] or '-'} | {met} | "
                     f"{r['note'] or ''} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python bench/gpu_table.py OUT")
    out = Path(argv[0])
    record = build(out)
    print(format_rows(record["rows"]))
    write_json(out / "gpu_check.json", record)
    print(f"written: {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
