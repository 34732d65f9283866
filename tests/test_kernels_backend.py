"""The backend switch, and the default cpu backend (dense or zero-skipping kernels per call)."""
import numpy as np
import pytest

from gradcheck import relative_error
from memnp.kernels import backend_name, get_backend, reference


def test_backend_name_from_argument_and_environment(monkeypatch):
    monkeypatch.delenv("MEMNP_BACKEND", raising=False)
    assert backend_name() == "cpu"
    monkeypatch.setenv("MEMNP_BACKEND", "numpy")
    assert backend_name() == "numpy"
    assert get_backend() is reference
    assert backend_name("CPU") == "cpu"
    with pytest.raises(ValueError, match="backend must be one of cpu, cuda, numpy"):
        backend_name("gpu")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("zeros", [0.0, 0.8])
def test_cpu_backend_matches_reference_dense_and_sparse(rng, dtype, tol, zeros):
    from memnp.kernels import sparse
    p, m, n = 16, 200, 50
    V = (0.5 * rng.random((p, m)) * (rng.random((p, m)) >= zeros)).astype(dtype)
    G = rng.uniform(5.24841e-7, 2.6242e-6, (m, n))
    c = np.exp(-1.03023 * np.log(1 / G) - 0.250595).astype(dtype)
    d_eps = np.exp(-0.0901078 * np.log(1 / G) - 37.1186).astype(dtype)
    grad_I = rng.normal(size=(p, n)).astype(dtype)
    assert (sparse.choose(V, n) is sparse) == (zeros > 0)
    cpu = get_backend("cpu")
    assert relative_error(cpu.pf_currents(V, c, d_eps), reference.pf_currents(V, c, d_eps)) < tol
    for fast, slow in zip(cpu.pf_currents_vjp(V, c, d_eps, grad_I),
                          reference.pf_currents_vjp(V, c, d_eps, grad_I)):
        assert fast.dtype == dtype and relative_error(fast, slow) < tol
    assert cpu.pf_power(V, c, d_eps) == pytest.approx(reference.pf_power(V, c, d_eps), rel=tol)


def test_small_problems_run_on_one_thread_and_restore_the_count(monkeypatch):
    import numba

    from memnp.kernels import cpu_auto
    seen = []

    class Kernels:  # stands in for the module plan() picks; evaluations = the number of examples
        @staticmethod
        def pf_currents(V, c, d_eps):
            seen.append(numba.get_num_threads())
            return V @ c

    monkeypatch.setattr(cpu_auto.sparse, "plan", lambda V, n: (Kernels, V.shape[0]))
    before = numba.get_num_threads()
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert cpu_auto.serial_below() == cpu_auto.SERIAL_BELOW
    cpu_auto.pf_currents(np.ones((4, 3)), np.ones((3, 2)), np.ones((3, 2)))
    big = np.ones((cpu_auto.SERIAL_BELOW, 1))
    cpu_auto.pf_currents(big, np.ones((1, 1)), np.ones((1, 1)))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # sleeping threads: a higher threshold
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert cpu_auto.serial_below() == cpu_auto.SERIAL_BELOW_PASSIVE > cpu_auto.SERIAL_BELOW
    cpu_auto.pf_currents(big, np.ones((1, 1)), np.ones((1, 1)))
    monkeypatch.setenv("GOMP_SPINCOUNT", "100000")    # libgomp spins first whatever the policy
    assert cpu_auto.serial_below() == cpu_auto.SERIAL_BELOW
    assert seen == [1, before, 1] and numba.get_num_threads() == before


def test_plan_counts_the_evaluations_of_the_kernels_it_picks():
    from memnp.kernels import cpu, sparse
    V = np.zeros((8, 100), np.float32)
    V[:, :10] = 0.5                                   # 90 % zeros: the sparse kernels
    assert sparse.plan(V, 40) == (sparse, 80 * 40)
    V[:, :80] = 0.5                                   # 20 % zeros: the dense ones, every pair
    assert sparse.plan(V, 40) == (cpu, 8 * 100 * 40)
    assert sparse.plan(np.zeros((8, 3)), 4) == (cpu, 8 * 3 * 4)  # too few devices to bother


def test_import_sets_passive_omp_waiting_unless_given():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, memnp; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "passive"
    env["OMP_WAIT_POLICY"] = "active"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "active"


@pytest.mark.parametrize("module", ["cpu", "sparse", "cuda", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vjp_without_the_voltage_gradient(rng, module, dtype):
    """need_V=False returns None for dL/dV and the same dL/dc and dL/d(d_eps), bit for bit."""
    import importlib
    kernels = get_backend(module) if module in ("cuda", "numpy") else importlib.import_module(
        f"memnp.kernels.{module}")
    p, m, n = 8, 70, 40
    V = (0.5 * rng.random((p, m)) * (rng.random((p, m)) >= 0.7)).astype(dtype)
    c = rng.uniform(1e-6, 1e-5, (m, n)).astype(dtype)
    d_eps = rng.uniform(1e-17, 3e-17, (m, n)).astype(dtype)
    grad_I = rng.normal(size=(p, n)).astype(dtype)
    full = kernels.pf_currents_vjp(V, c, d_eps, grad_I)
    lean = kernels.pf_currents_vjp(V, c, d_eps, grad_I, need_V=False)
    assert lean[0] is None and full[0] is not None
    for a, b in zip(full[1:], lean[1:]):
        assert np.array_equal(np.asarray(a), np.asarray(b))
