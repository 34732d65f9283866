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
    assert get_backend().kernels is reference and get_backend() is get_backend("numpy")
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
    from memnp.kernels import cpu_auto
    assert (cpu_auto.plan(V, n)[0] is sparse) == (zeros > 0)
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

    monkeypatch.setattr(cpu_auto, "plan", lambda V, n: (Kernels, V.shape[0]))
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
    from memnp.kernels import cpu, cpu_auto, sparse
    V = np.zeros((8, 100), np.float32)
    V[:, :10] = 0.5                                   # 90 % zeros: the sparse kernels
    assert cpu_auto.plan(V, 40) == (sparse, 80 * 40)
    V[:, :80] = 0.5                                   # 20 % zeros: the dense ones, every pair
    assert cpu_auto.plan(V, 40) == (cpu, 8 * 100 * 40)
    assert cpu_auto.plan(np.zeros((8, 3)), 4) == (cpu, 8 * 3 * 4)  # too few devices to bother
    assert not hasattr(sparse, "plan") and not hasattr(sparse, "choose")   # one dispatcher


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


def test_backends_are_objects_chosen_once(monkeypatch):
    from memnp.kernels import backend as backends
    monkeypatch.delenv("MEMNP_BACKEND", raising=False)
    cpu = get_backend("cpu")
    assert isinstance(cpu, backends.CpuBackend) and cpu is get_backend() and get_backend(cpu) is cpu
    assert cpu.name == "cpu" and get_backend("numpy").name == "numpy"
    rebuild, args = cpu.__reduce__()                     # how pickle (the process pool) sends it
    assert rebuild(*args) is cpu                          # by name: the same cached object
    assert backend_name(cpu) == "cpu" and backend_name(get_backend("numpy")) == "numpy"
    for bad in ("gpu", 3, object()):
        with pytest.raises(ValueError, match="backend must be one of cpu, cuda, numpy"):
            get_backend(bad)


def test_every_backend_has_the_same_partial_currents(rng):
    """The cpu backend's one-pass tiled loop and the generic stacked read give the same arrays'
    partial currents (and the one-pass ADC loop exists only on the cpu)."""
    from memnp.kernels import tiling
    p, m, n, T = 5, 30, 7, 3
    V = (0.5 * rng.random((p, m)) * (rng.random((p, m)) > 0.3)).astype(np.float64)
    G = rng.uniform(5.24841e-7, 2.6242e-6, (m, n))
    c = np.exp(-1.03023 * np.log(1 / G) - 0.250595)
    d_eps = np.exp(-0.0901078 * np.log(1 / G) - 37.1186)
    tile_of_row = np.repeat(np.arange(T), [10, 12, 8]).astype(np.int64)
    expected = tiling.pf_currents_tiled_numpy(V, c, d_eps, tile_of_row, T)
    for name in ("cpu", "numpy"):
        got = get_backend(name).pf_partial_currents(V, c, d_eps, tile_of_row, T)
        assert got.shape == (T, p, n) and relative_error(got, expected) < 1e-12, name
    fs = np.full(T, 1e-5)
    assert get_backend("numpy").pf_tiled_adc(V, c, d_eps, tile_of_row, T, fs, 63, None) is None
    assert get_backend("cpu").pf_tiled_adc(V, c, d_eps, tile_of_row, T, fs, 63,
                                           tiling.adc_constants(fs.reshape(-1, 1, 1), 63, V.dtype)) is not None


def test_an_unknown_backend_is_a_value_error_everywhere(rng):
    """No silent fallback to the cpu: the pass, the wires' solver and the model all refuse it."""
    from memnp.crossbar import CrossbarPass, Stage
    from memnp.kernels import backend as backends
    from memnp.nn import MemristiveDense, Sequential, Softmax
    from memnp.nonidealities import LineResistance
    stage = Stage(5.24841e-7, 2.6242e-6, 0.5, (LineResistance(1.0, 1.0),))
    V, G = 0.5 * rng.random((2, 4)), rng.uniform(5.24841e-7, 2.6242e-6, (4, 3))
    for bad in ("gpu", "numba"):
        with pytest.raises(ValueError, match="backend must be one of"):
            CrossbarPass(stage, bad)
        with pytest.raises(ValueError, match="backend must be one of"):
            LineResistance(1.0, 1.0).currents(V, G, backend=bad)
        model = Sequential([MemristiveDense(3, 2, dtype="float64"), Softmax(dtype="float64")], stage=stage,
                           backend=bad)
        model.initialize(np.random.default_rng(0))
        with pytest.raises(ValueError, match="backend must be one of"):
            model.predict(rng.random((2, 3)))

    class Bare(backends.Backend):      # a device without a circuit solver: an error, not the cpu's
        name = "bare"

    with pytest.raises(ValueError, match="LineResistance needs a backend with a circuit solver"):
        LineResistance(1.0, 1.0).currents(V, G, backend=Bare(reference))
    I, _ = LineResistance(0.0, 0.0).currents(V, G, backend=Bare(reference))   # no wires: its kernels
    np.testing.assert_array_equal(I, reference.ideal_currents(V, G))
