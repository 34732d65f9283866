"""Strongly coupled line-resistance adjoint (issue 16): time and accuracy of the VJP.

One m x m array of linear low-resistance SiOx devices (G uniform in the siox-low range), r_word =
r_bit = r, inputs uniform in [0, 0.5] V, batch p, dL/dI standard normal (fixed seeds).
Times LineResistance.currents and currents_vjp (cpu backend, float64) and badcrossbar's forward
on the same circuit, and checks the gradients against an independent sparse direct solve of the
transposed nodal equations (scipy.sparse.linalg.spsolve on memnp.circuit.assemble's Jacobian).

Usage: python bench/line_resistance_adjoint.py [--size 448] [--r 1e4] [--batch 1] [--no-bc]
"""
import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402


def direct_gradients(V, G, r, v, grad_I):
    """(dL/dV (p, m), dL/dG (m, n)) from the transposed nodal equations (sparse direct)."""
    from memnp.circuit import assemble
    from memnp.circuit.network import Network
    p, m = V.shape
    n = G.shape[1]
    net = Network(m, n, r, r)
    J = assemble.jacobian(net, G).tocsc()
    k = net.size
    rhs = np.zeros((net.n_unknowns, p))
    rhs[net.bit_index(m - 1, 0):net.bit_index(m - 1, 0) + n] = grad_I.T / r
    mu = spla.spsolve(J, rhs).reshape(net.n_unknowns, p)
    lam = (mu[k:] - mu[:k]).T.reshape(p, m, n)           # dL/dI_d = lam_b - lam_w
    return (lam * G).sum(axis=2), (lam * v).sum(axis=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--r", type=float, default=1e4)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--no-bc", action="store_true")
    args = ap.parse_args()
    from memnp.data.presets import preset_stage
    from memnp.nonidealities import LineResistance
    st = preset_stage("siox-low")
    m = n = args.size
    rng = np.random.default_rng(16)
    G = rng.uniform(st.G_off, st.G_on, (m, n))
    V = rng.uniform(0.0, 0.5, (args.batch, m))
    grad_I = rng.standard_normal((args.batch, n))
    lr = LineResistance(args.r, args.r)
    _, warm = lr.currents(V[:, :4], G[:4, :4])             # compile outside the timing
    lr.currents_vjp(warm, grad_I[:, :4])
    t0 = time.perf_counter()
    I, state = lr.currents(V, G)
    t1 = time.perf_counter()
    try:
        grad_V, grad_G = lr.currents_vjp(state, grad_I)
        err = None
    except Exception as exc:                               # noqa: BLE001 (reported)
        grad_V = grad_G = None
        err = f"{type(exc).__name__}: {exc}"
    t2 = time.perf_counter()
    print(f"{m} x {n}, r = {args.r:g} ohm, linear low-R, batch {args.batch}")
    print(f"forward {t1 - t0:.2f} s ({state.report.summary()})")
    print(f"vjp     {t2 - t1:.2f} s" + (f"  raised {err}" if err else ""))
    extra = getattr(state, "vjp_report", None)
    if extra is not None:
        print(f"vjp report: {extra.summary('refinement solves')}")
    t3 = time.perf_counter()
    dV, dG = direct_gradients(V, G, args.r, state.v, grad_I)
    t4 = time.perf_counter()
    print(f"direct sparse adjoint (check) {t4 - t3:.2f} s")
    if grad_V is not None:
        print(f"dL/dV max rel error {np.abs(grad_V - dV).max() / np.abs(dV).max():.3g}, "
              f"dL/dG {np.abs(grad_G - dG).max() / np.abs(dG).max():.3g}")
    if not args.no_bc:
        import badcrossbar
        logging.getLogger("badcrossbar").setLevel(logging.WARNING)
        t5 = time.perf_counter()
        out = badcrossbar.compute(V.T, 1.0 / G, r_i_word_line=args.r, r_i_bit_line=args.r,
                                  node_voltages=False, all_currents=False).currents.output
        t6 = time.perf_counter()
        print(f"badcrossbar forward {t6 - t5:.2f} s; |I - I_bc| / |I| = "
              f"{np.abs(I - np.asarray(out).reshape(I.shape)).max() / np.abs(I).max():.3g}")


if __name__ == "__main__":
    main()
