"""memnp.kernels.native_call: calls into a Numba function through its address give what a
direct call gives, check their argument types when compiled, and pass errors on."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from memnp.kernels.native_call import Callee, addresses, call


@njit(fastmath=True, error_model="numpy")
def _weighted_rows(a, w, scale, out):
    """out[i] = scale * sum_j a[i, j] w[j] (a sum LLVM vectorizes with reassociation)."""
    total = 0.0
    for i in range(a.shape[0]):
        s = np.float32(0.0)
        for j in range(a.shape[1]):
            s += a[i, j] * w[j]
        out[i] = scale * s
        total += out[i]
    return total


@njit(error_model="numpy")
def _refuse(x):
    """x[0] = 1, or a ValueError where x[0] < 0."""
    if x[0] < 0:
        raise ValueError("x[0] must be >= 0")
    x[0] = 1.0


WEIGHTED = Callee(_weighted_rows, "f8(f4[:, ::1], f4[::1], f4, f4[::1])")
REFUSE = Callee(_refuse, "void(f8[::1])")


@njit
def _through_address(address, a, w, scale, out):
    return call(_weighted_rows, address, (a, w, scale, out))


def test_call_through_the_address_equals_the_direct_call_bit_for_bit():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((37, 301)).astype(np.float32)
    w = rng.standard_normal(301).astype(np.float32)
    direct, indirect = np.empty(37, np.float32), np.empty(37, np.float32)
    total = _weighted_rows(a, w, np.float32(0.37), direct)
    got = _through_address(WEIGHTED.address(), a, w, np.float32(0.37), indirect)
    assert indirect.view(np.uint32).tolist() == direct.view(np.uint32).tolist()
    assert np.float64(got).view(np.uint64) == np.float64(total).view(np.uint64)
    assert abs(got - float(np.sum(direct, dtype=np.float64))) < 1e-9
    assert WEIGHTED.address() == WEIGHTED.address() != 0


def test_a_call_with_other_argument_types_does_not_compile():
    a = np.ones((3, 4), np.float32)
    out = np.empty(3, np.float32)
    with pytest.raises(TypingError, match=r"argument 1 of _weighted_rows is array\(float64.*declared type is "
                                          r"array\(float32"):
        _through_address(WEIGHTED.address(), a, np.ones(4), np.float32(1), out)
    with pytest.raises(TypingError, match=r"argument 0 of _weighted_rows is array\(float32, 2d, F\)"):
        _through_address(WEIGHTED.address(), np.asfortranarray(a), np.ones(4, np.float32), np.float32(1), out)

    @njit
    def too_few(address, a):
        return call(_weighted_rows, address, (a,))

    with pytest.raises(TypingError, match="declared with 4 arguments; got 1"):
        too_few(WEIGHTED.address(), a)


def test_a_function_without_a_callee_or_a_bad_address_does_not_compile():
    @njit
    def undeclared(address, x):
        return call(_not_declared, address, (x,))

    with pytest.raises(TypingError, match="_not_declared has no Callee"):
        undeclared(0, np.ones(2))

    @njit
    def float_address(address, x):
        call(_refuse, address, (x,))

    with pytest.raises(TypingError, match="address of _refuse must be an int64; got float64"):
        float_address(1.5, np.ones(2))


@njit
def _not_declared(x):
    return x


def test_the_callees_exception_reaches_the_caller():
    @njit
    def refuse(address, x):
        call(_refuse, address, (x,))
        return x[0] + 1.0

    ok = np.zeros(3)
    assert refuse(REFUSE.address(), ok) == 2.0 and ok.tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"x\[0\] must be >= 0"):
        refuse(REFUSE.address(), -np.ones(2))


def test_callee_declarations_are_checked():
    with pytest.raises(TypeError, match="must be a numba.njit function"):
        Callee(np.sum, "f8(f8[::1])")
    with pytest.raises(ValueError, match="must name the return type"):
        Callee(_not_declared, "(f8[::1],)")


def test_memnp_imports_with_numbas_jit_disabled():
    """Under NUMBA_DISABLE_JIT (a debugging switch) njit gives plain functions: the Callees of the
    one-call steps are still made, so memnp imports; an address is refused with the reason."""
    code = ("import memnp.nn, memnp.experiments\n"
            "from memnp.kernels import ensemble_mlp_step as m\n"
            "try:\n    m._FORWARD.address()\nexcept RuntimeError as e:\n    print(e)\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "NUMBA_DISABLE_JIT" in done.stdout


def test_addresses_are_made_once_per_tuple_of_callees():
    first = addresses((WEIGHTED, REFUSE))
    assert first.dtype == np.int64 and first.tolist() == [WEIGHTED.address(), REFUSE.address()]
    assert addresses((WEIGHTED, REFUSE)) is first
