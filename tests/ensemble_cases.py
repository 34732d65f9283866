"""Cases for the K-axis kernel tests (tests/test_kernels_ensemble.py), and the bit-for-bit check
that test runs in a fresh process.

Why a fresh process. A Numba kernel that calls another compiled function without inlining it
calls it by its symbol, and Numba's JIT binds that symbol to whichever definition of it is loaded:
the callee's own compiled library when this process compiled the callee (freshly, or as a
dependency of a fresh compile), else the caller's private copy. The two are optimized separately
and can round horizontal sums differently in the last bit. Measured (2026-12-04, float32, one
member, p x r x n = 16 x 53 x 20, 848 entries of dL/dV): cpu_auto's sparse VJP gives 169 entries
different in a process that compiled its kernel from one that loaded it from the cache; a
cached K-axis kernel gives the same 169 differences when ``memnp.kernels.sparse._backward_rows``
was compiled earlier in the process, and not otherwise. So the single-network
kernels and the K-axis kernels that call the same task functions agree bit for bit when both bind
the same way; comparing a cached kernel against a freshly compiled one can differ. With an empty
NUMBA_CACHE_DIR every kernel compiles in the process and binds to the callees' own libraries:
the comparison is then deterministic. Run ``python tests/ensemble_cases.py`` (with an empty
NUMBA_CACHE_DIR and NUMBA_NUM_THREADS=2) to see every mismatch.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memnp.kernels.ensemble_layout import MemberRows  # noqa: E402

#: High-resistance SiOx regime (docs/model.md §6): G_off, G_on, slopes, intercepts, Sigma.
G_OFF, G_ON = 5.24841e-7, 2.6242e-6
SLOPES, INTERCEPTS = (-1.03023, -0.0901078), (-0.250595, -37.1186)
SIGMA = [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]


def crossbar_case(K, dtype, seed, n=None):
    """(layout, V packed, c, d_eps, G (R, n), grad_I (K, p, n)) with different rows, zero
    fractions, k_V and device parameters per member (at K = 5, dense and sparse members both)."""
    rng = np.random.default_rng(seed)
    p = int(rng.integers(6, 40))
    m = int(rng.integers(70, 130))
    n = int(rng.choice([20, 40])) if n is None else n
    active = rng.random((K, m)) < rng.uniform(0.4, 1.0, size=(K, 1))
    active[:, -1] = True
    layout = MemberRows.from_active(active)
    zeros = rng.permutation([0.0, 0.95, 0.35, 0.7, 0.1])[:K]
    k_V = rng.uniform(0.2, 0.6, K)
    blocks = []
    for k in range(K):
        x = rng.random((p, layout.counts()[k]))
        x[rng.random(x.shape) < zeros[k]] = 0.0
        x[:, -1] = 1.0
        blocks.append(k_V[k] * x)
    V = layout.pack(blocks)
    R = layout.total
    G = rng.uniform(G_OFF, G_ON, size=(R, n)) * np.repeat(rng.uniform(0.8, 1.2, K), layout.counts())[:, None]
    e = rng.multivariate_normal([0.0, 0.0], SIGMA, size=(R, n))
    c = np.exp(-SLOPES[0] * np.log(G) + INTERCEPTS[0] + e[..., 0])
    d_eps = np.exp(-SLOPES[1] * np.log(G) + INTERCEPTS[1] + e[..., 1])
    grad_I = rng.normal(size=(K, p, n))
    return layout, *(a.astype(dtype) for a in (V, c, d_eps, G, grad_I))


def crossbar_mismatches(members=(1, 2, 5), dtypes=(np.float32, np.float64), threads=(1, 2)):
    """[description] of every K-axis PF / ideal result that differs (np.array_equal) from the
    cpu backend's result for that member alone; [] when all agree bit for bit. With more than one
    thread the one-thread threshold is lowered to 0, so that the parallel kernels run."""
    import numba

    from memnp.kernels import cpu_auto, ensemble
    from memnp.kernels import ensemble_reference as eref
    bad = []
    before = numba.get_num_threads()
    serial_below = ensemble.serial_below
    try:
        for count in threads:
            if count > numba.config.NUMBA_NUM_THREADS:
                bad.append(f"{count} threads asked for, NUMBA_NUM_THREADS is {numba.config.NUMBA_NUM_THREADS}")
                continue
            numba.set_num_threads(count)
            ensemble.serial_below = (lambda: 0) if count > 1 else serial_below
            for dtype in dtypes:
                for K in members:
                    for seed in (10 + K, 20 + K):
                        layout, V, c, d_eps, G, grad_I = crossbar_case(K, dtype, seed)
                        where = f"{count} threads, {np.dtype(dtype).name}, K={K}, seed {seed}"
                        pairs = [("pf_currents", ensemble.pf_currents(V, c, d_eps, layout),
                                  eref.pf_currents(V, c, d_eps, layout, single=cpu_auto)),
                                 ("pf_powers", ensemble.pf_powers(V, c, d_eps, layout),
                                  eref.pf_powers(V, c, d_eps, layout, single=cpu_auto)),
                                 ("ideal_currents", ensemble.ideal_currents(V, G, layout),
                                  eref.ideal_currents(V, G, layout, single=cpu_auto))]
                        for need_V in (True, False):
                            got = ensemble.pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V)
                            want = eref.pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V, single=cpu_auto)
                            pairs += [(f"pf_currents_vjp[{name}, need_V={need_V}]", a, b)
                                      for name, a, b in zip(("grad_V", "grad_c", "grad_d_eps"),
                                                            (got.grad_V, got.grad_c, got.grad_d_eps), want)]
                        for name, a, b in pairs:
                            if (a is None) != (b is None) or (a is not None and not (
                                    a.dtype == b.dtype and np.array_equal(a, b))):
                                differ = "None" if a is None or b is None else \
                                    f"{np.count_nonzero(a != b)} of {np.size(a)} entries"
                                bad.append(f"{name} ({where}): {differ} differ")
    finally:
        numba.set_num_threads(before)
        ensemble.serial_below = serial_below
    return bad


if __name__ == "__main__":
    mismatches = crossbar_mismatches()
    print("\n".join(mismatches) if mismatches else "all equal")
    sys.exit(1 if mismatches else 0)
