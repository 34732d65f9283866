"""bench/gpu_check.sh and its table step (bench/gpu_table.py), on fake logs: the GPU run itself
can only happen on a GPU machine."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def test_script_is_valid_bash():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _kernel_row(shape, op, median_s, backend="cuda", dtype="float32"):
    return dict(shape=shape, op=op, median_s=median_s, backend=backend, dtype=dtype)


def fake_out(tmp_path, forward_s=0.0011, vjp_s=0.0024):
    out = tmp_path / "out"
    out.mkdir()
    (out / "steps.tsv").write_text("env\t0\t3\nkernels\t0\t40\ntests_kernels\t1\t110\n"
                                   "tests_circuit\t124\t120\nrandom\t0\t12\n"
                                   "epoch_a\t0\t30\nepoch_b\t124\t90\nepoch_c\t0\t60\n"
                                   "epoch_d\tskipped\t0\nreproduce\t0\t52\n")
    (out / "tests_kernels.log").write_text("....F.s\nFAILED tests/test_x.py::test_y\n"
                                           "1 failed, 57 passed, 2 skipped in 99.1s\n")
    (out / "tests_circuit.log").write_text("....\n")  # killed before its summary
    rows = [_kernel_row("8192x785x50", "forward", forward_s), _kernel_row("8192x785x50", "backward", vjp_s),
            _kernel_row("8192x785x50", "backward", 0.5, backend="cuda+copy"),
            _kernel_row("8192x26x10", "forward", 0.0001), _kernel_row("8192x26x10", "backward", 0.0002)]
    (out / "kernels.json").write_text(json.dumps({"timings": rows}))
    (out / "random.json").write_text(json.dumps({"results": [
        dict(what="words", count=16, median_ms=0.5, cpu_median_ms=20.0, same_as_cpu=True)]}))
    for case, s in (("a", 1.5), ("c", 6.25)):
        (out / f"epoch_{case}.json").write_text(json.dumps({"results": [
            dict(case=case, description=f"case {case}", s_per_epoch=s, examples_per_s=48000 / s,
                 warmup_s=3.0)]}))
    (out / "epoch_e.json").write_text("{not json")
    (out / "device_epoch.json").write_text(json.dumps({"results": [
        dict(members=1, s_per_epoch=0.75, warmup_s=20.0), dict(members=32, s_per_epoch=1.2, warmup_s=21.0)]}))
    (out / "device_epoch_e.json").write_text(json.dumps({"results": [
        dict(members=32, case="e", s_per_epoch=2.25, warmup_s=30.0)]}))
    (out / "ensemble_cpu.json").write_text(json.dumps({"threads": {"numba_threads": 16}, "epochs": {"rows": [
        dict(case="c", K="single", epoch_s=0.5), dict(case="c", K=1, ratio=0.7, per_member_s=0.35, step="one call"),
        dict(case="c", K=16, ratio=0.2, per_member_s=0.1, step="one call")]}}))
    return out


def run_table(out):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_table.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads((out / "gpu_check.json").read_text())


def test_table_from_fake_logs(tmp_path):
    stdout, record = run_table(fake_out(tmp_path))
    rows = {r["what"].split(" (")[0]: r for r in record["rows"]}
    tests, circuit = record["rows"][:2]
    assert "test_kernels*cuda*" in tests["what"] and "test_circuit*cuda*" in circuit["what"]
    assert tests["measured"] == "1 failed, 57 passed, 2 skipped" and tests["met"] is False
    assert tests["note"] == "exit 1 after 110 s"
    assert circuit["measured"] == "no pytest summary" and circuit["note"] == "timed out after 120 s"
    kernel = rows["PF forward + VJP 8192x785x50 float32"]
    assert kernel["measured"] == "3.500" and kernel["target"] == "<= 4.0 ms" and kernel["met"] is True
    assert kernel["note"] == "forward 1.100, VJP 2.400"      # cuda+copy rows are not mixed in
    narrow = rows["PF forward + VJP 8192x26x10 float32"]
    assert narrow["measured"] == "0.300" and narrow["target"] is None and narrow["met"] is None
    assert rows["GPU words"]["measured"] == "0.500"
    epochs = [r for r in record["rows"] if r["what"].startswith("epoch case")]
    assert [r["measured"] for r in epochs] == ["1.50", "not measured", "6.25", "not measured",
                                               "not measured"]
    assert "timed out after 90 s" in epochs[1]["note"]
    assert epochs[3]["note"] == "skipped: no time left"
    assert epochs[4]["note"] == "step did not run"          # broken JSON: a row, no traceback
    assert record["steps"]["epoch_b"] == {"status": "124", "seconds": "90"}
    assert "| PF forward + VJP 8192x785x50 float32 (ms, median) | 3.500 | <= 4.0 ms | yes |" in stdout
    one, many = rows["device-resident epoch case c, K = 1"], rows["device-resident epoch case c, K = 32"]
    assert (one["measured"], one["target"], one["met"]) == ("0.750", "<= 0.6 s", False)
    assert (many["measured"], many["target"], many["met"]) == ("1.200", "<= 1.6 s", True)
    assert many["note"].startswith("0.0375 s per network-epoch") and one["note"].endswith("step did not run")
    cpu = {r["what"]: r for r in record["rows"] if r["what"].startswith("CPU epoch")}
    assert [(r["measured"], r["target"], r["met"]) for r in cpu.values()] == [
        ("0.700", None, None), ("not measured", "<= 0.45", False), ("0.200", "<= 0.35", True)]
    assert "(16 threads)" in next(iter(cpu)) and cpu[next(iter(cpu))]["note"].startswith("one call step")
    combined = rows["device-resident epoch case e, K = 32"]
    assert (combined["measured"], combined["target"], combined["met"]) == ("2.250", "<= 2.5 s", True)
    again = rows["reproduce --preset default --backend cuda, no figures"]
    assert (again["measured"], again["target"], again["met"]) == ("52", "<= 45 s", False)
    device_tests = next(r for r in record["rows"] if "test_nn_device" in r["what"])
    assert device_tests["measured"] == "no pytest summary" and device_tests["note"] == "step did not run"


def test_pytest_counts():
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_table
    finally:
        sys.path.remove(str(BENCH))
    assert gpu_table.pytest_counts("x\n12 passed, 3 skipped in 4.0s\n") == {"passed": 12, "skipped": 3}
    assert gpu_table.pytest_counts("== 1 failed, 2 passed, 1 error in 9s ==") == {
        "failed": 1, "passed": 2, "error": 1}
    assert gpu_table.pytest_counts("no summary") == {}


def test_table_kernel_target_missed_and_empty_folder(tmp_path):
    _, record = run_table(fake_out(tmp_path, forward_s=0.0011, vjp_s=0.0069))
    kernel = next(r for r in record["rows"] if "8192x785x50" in r["what"])
    assert kernel["measured"] == "8.000" and kernel["met"] is False
    empty = tmp_path / "empty"
    empty.mkdir()
    stdout, record = run_table(empty)
    assert all(r["measured"] in ("no pytest summary", "not measured") for r in record["rows"])
    assert record["rows"][0]["note"] == "step did not run"
