"""The ``cpu`` backend: for every call, the dense kernels of :mod:`memnp.kernels.cpu` or the
zero-skipping kernels of :mod:`memnp.kernels.sparse`, whichever the fraction of exactly-zero
voltages in V favours (:func:`plan`: the cpu backend's one dispatcher), on one thread or on all
of Numba's.
Both kernel families compute the same sums, so the choices change speed only (and the last bits
of float32 sums). Same interface as :mod:`memnp.kernels.reference`.

Threads. A call whose device evaluations (nonzero voltages times columns for the sparse kernels,
p m n for the dense ones) are fewer than :func:`serial_below` runs on one thread: waking the
other threads costs more than they save. How much waking costs depends on how OpenMP's threads
wait between calls. Spinning threads (``OMP_WAIT_POLICY=active``, or the libgomp default) answer
in 2-4 us; sleeping ones (``passive``, which ``import memnp`` sets unless the user chose) take
40-90 us on the development machine, so the break-even is far larger there. A libgomp spin count
(``GOMP_SPINCOUNT=100000`` with passive: spin about a millisecond, then sleep) keeps threads
awake through a training step and counts as spinning. Measured with 2
threads, float32, 2026-11-28 (us, 1 thread / 2 threads):

=========================  ===========  =====================  =====================
call                       evaluations  passive fwd / bwd      active fwd / bwd
=========================  ===========  =====================  =====================
sparse 64 x 412 x 50        0.40 M      121/179, 251/400       172/112, 258/230
sparse 128 x 412 x 50       0.79 M      248/272, 460/608       241/167, 474/393
sparse 256 x 412 x 50       1.58 M      472/414, 926/925       528/297, 951/711
dense 64 x 785 x 50         2.51 M      511/389, 965/651       540/298, 1089/566
dense 64 x 26 x 20          0.03 M      19/88, 23/206          22/17, 28/37
=========================  ===========  =====================  =====================
"""
import os

import numba
import numpy as np

from . import cpu, sparse
from .cpu import ideal_currents, ideal_power

__all__ = ["pf_currents", "pf_currents_vjp", "pf_power", "ideal_currents", "ideal_power",
           "SERIAL_BELOW", "SERIAL_BELOW_PASSIVE", "serial_below", "plan"]

#: Device evaluations below which a call runs on one thread when OpenMP threads spin ...
SERIAL_BELOW = 1 << 17
#: ... and when they sleep between calls (OMP_WAIT_POLICY=passive).
SERIAL_BELOW_PASSIVE = 1_500_000


def serial_below():
    """The one-thread threshold in device evaluations for the current OpenMP waiting: threads
    sleep between calls when OMP_WAIT_POLICY is passive and GOMP_SPINCOUNT (libgomp's spin
    count, which takes precedence) is unset or 0."""
    passive = os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"
    spins = os.environ.get("GOMP_SPINCOUNT", "").strip() not in ("", "0")
    return SERIAL_BELOW_PASSIVE if passive and not spins else SERIAL_BELOW


def plan(V, n):
    """(kernel module, device evaluations) for voltages V (p, m) on a crossbar with n columns.

    The module is :mod:`memnp.kernels.sparse` when at least :func:`memnp.kernels.sparse.min_zeros`
    (n) of V's entries are exactly 0 and the crossbar has at least
    :data:`memnp.kernels.sparse.MIN_DEVICES` devices, else :mod:`memnp.kernels.cpu`; the
    evaluations are the (example, device) pairs that module computes: nonzero voltages times n
    for the sparse one, p m n for the dense one (the zeros are counted once, for both answers)."""
    V = np.asarray(V)
    if V.ndim != 2:
        return cpu, V.size * n
    p, m = V.shape
    if m * n < sparse.MIN_DEVICES or p * m == 0:
        return cpu, p * m * n
    zeros = sparse._count_zeros(V) if V.dtype in (np.float32, np.float64) else V.size - np.count_nonzero(V)
    if zeros >= sparse.min_zeros(n) * V.size:
        return sparse, (V.size - zeros) * n
    return cpu, p * m * n


def _call(name, V, c, *args):
    """Run ``name`` of the kernel module :func:`plan` picks, on one thread if small."""
    module, evaluations = plan(V, np.shape(c)[-1])
    function = getattr(module, name)
    if evaluations >= serial_below():
        return function(V, c, *args)
    threads = numba.get_num_threads()
    if threads == 1:
        return function(V, c, *args)
    numba.set_num_threads(1)
    try:
        return function(V, c, *args)
    finally:
        numba.set_num_threads(threads)


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in A; see :func:`memnp.kernels.reference.pf_currents`."""
    return _call("pf_currents", V, c, d_eps)


def pf_currents_vjp(V, c, d_eps, grad_I, need_V=True):
    """(dL/dV or None, dL/dc, dL/d(d_eps)); see :func:`memnp.kernels.reference.pf_currents_vjp`."""
    return _call("pf_currents_vjp", V, c, d_eps, grad_I, need_V)


def pf_power(V, c, d_eps):
    """Average crossbar power (W); see :func:`memnp.kernels.reference.pf_power`."""
    return _call("pf_power", V, c, d_eps)
