"""Installing and running memnp as users expect: ``python -m memnp`` and the ``memnp`` console
script, the kernel backend named by MEMNP_BACKEND (one error line where it cannot run), the
numba-cuda / numpy 2.5 guard, the GPU name in run records, and the benchmarks' option checks."""
import configparser
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(*args, env=None, cwd=None):
    """Run this interpreter on this checkout's memnp (PYTHONPATH first), in ``cwd`` (default: a
    directory that is not the checkout, so nothing but PYTHONPATH finds memnp)."""
    full = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    full.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full,
                          cwd=cwd or Path(os.sep), timeout=300)


def test_python_dash_m_memnp_runs_the_cli(tmp_path):
    result = _python("-m", "memnp", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: python -m memnp [OPTIONS] COMMAND")
    for command in ("reproduce", "train", "infer", "fit-device", "bench"):
        assert command in result.stdout
    bad = _python("-m", "memnp", "train", "--out", "", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "Error: Invalid value for '--out': must not be empty"
    assert list(tmp_path.iterdir()) == []


def test_the_memnp_console_script_is_declared_and_resolves():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = [line.strip() for line in config["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert scripts == ["memnp = memnp.__main__:main"]
    module, _, function = scripts[0].split(" = ")[1].partition(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


def test_the_cuda_extra_bounds_numpy_below_2_5():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    cuda = [line.strip() for line in config["options.extras_require"]["cuda"].splitlines() if line.strip()]
    assert "numpy<2.5" in cuda and any(line.startswith("numba-cuda") for line in cuda)


def test_the_numba_cuda_numpy_mismatch_is_one_line_naming_the_fix():
    from memnp.kernels.backend import BackendUnavailable, check_cuda_numpy
    numpy_25 = types.SimpleNamespace(__version__="2.5.0")   # no row_stack

    def broken(name):
        assert name == "numba.cuda.np.arrayobj"
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    with pytest.raises(BackendUnavailable) as info:
        check_cuda_numpy(numpy_25, broken)
    message = str(info.value)
    assert "\n" not in message and "numpy 2.5.0" in message and "pip install 'numpy<2.5'" in message
    assert isinstance(info.value, RuntimeError) and not isinstance(info.value, ImportError)
    imported = []
    check_cuda_numpy(numpy_25, imported.append)            # a numba-cuda that copes: no error
    assert imported == ["numba.cuda.np.arrayobj"]
    check_cuda_numpy(types.SimpleNamespace(row_stack=None), broken)   # numpy < 2.5: not even looked at

    def other(name):
        raise AttributeError("something else")
    with pytest.raises(AttributeError, match="something else"):   # other faults are not hidden
        check_cuda_numpy(numpy_25, other)


def test_backend_checks_and_device_description(monkeypatch):
    pytest.importorskip("numba_cuda")
    from memnp.kernels import backend
    assert backend.require_backend("cpu") == "cpu" and backend.device_description("cpu") is None
    assert backend.device_description("numpy") is None
    with pytest.raises(ValueError, match="backend must be one of cpu, cuda, numpy; got 'tpu'"):
        backend.require_backend("tpu")
    assert backend.device_description("tpu") is None
    # the tests run CUDA under the simulator (conftest): it counts as a device and says so
    assert backend.require_backend("cuda") == "cuda"
    assert backend.device_description("cuda") == "CUDA simulator"


def test_a_cuda_backend_without_a_gpu_is_one_error_line(tmp_path):
    env = {"MEMNP_BACKEND": "cuda", "NUMBA_ENABLE_CUDASIM": "0"}
    probe = _python("-c", "from numba import cuda; print(cuda.is_available())", env=env)
    if probe.stdout.strip() == "True":
        pytest.skip("a CUDA GPU is present")
    for command in (["train"], ["reproduce", "--preset", "tiny"], ["infer", "--weights", str(tmp_path / "w.npz")]):
        if command[0] == "infer":
            (tmp_path / "w.npz").write_bytes(b"")
        result = _python("-m", "memnp", *command, "--out", str(tmp_path / "out"), env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("Error: the cuda backend found no usable CUDA GPU")
    assert not (tmp_path / "out").exists()


def test_an_unknown_memnp_backend_is_one_error_line(tmp_path):
    from click.testing import CliRunner
    from memnp.cli import cli
    result = CliRunner(env={"MEMNP_BACKEND": "tpu"}).invoke(cli, ["train", "--out", str(tmp_path / "n")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Error: backend must be one of cpu, cuda, numpy; got 'tpu'" in result.output
    assert not (tmp_path / "n").exists()


def test_the_manifest_names_the_gpu_of_a_cuda_run(monkeypatch, tmp_path):
    from memnp.experiments import presets, runner
    from memnp.experiments.store import ResultsStore
    tiny = presets.get("tiny")
    plan, sources, _ = runner.plan_run(["stuck_off"], tiny, 0)
    manifest = runner.build_manifest(ResultsStore(tmp_path), plan, tiny, 0, sources, "tiny", ["stuck_off"])
    assert manifest["gpu"] is None                         # the cpu backend
    from memnp.kernels import backend
    monkeypatch.setattr(backend, "device_description", lambda: "NVIDIA H200 (compute capability 9.0)")
    manifest = runner.build_manifest(ResultsStore(tmp_path), plan, tiny, 0, sources, "tiny", ["stuck_off"])
    assert manifest["gpu"] == "NVIDIA H200 (compute capability 9.0)"


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "argument --threads: must be an integer from 1 to 1024; got '0'"),
    (["--threads", "many"], "argument --threads: must be an integer from 1 to 1024; got 'many'"),
    (["--blas-threads", "-1"], "argument --blas-threads: must be an integer from 1 to 1024; got '-1'"),
    (["--repeats", "0"], "argument --repeats: must be an integer from 1 to 1000; got '0'"),
    (["--backend", "tpu"], "argument --backend: backend must be one of cpu, cuda, numpy; got 'tpu'"),
])
def test_bench_epoch_options_are_checked_before_any_case_runs(args, message):
    result = _python(str(ROOT / "bench" / "epoch.py"), "--cases", "a", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert result.stdout == ""


def test_bench_gpu_name_follows_the_backend():
    pytest.importorskip("numba_cuda")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert common.gpu_name("cpu") is None and common.gpu_name("cuda") == "CUDA simulator"
