"""Standard weights in the device-resident training step (memnp.kernels.cuda_step; issue 17).

A layer with standard weights keeps W (K, m, n_out) (m = n_in + 1 rows, bias last), signed; its
crossbar holds c = 2 n_out devices per row, mapped by the member's rule (memnp.crossbar.mapping's
``w_to_G``; the devices kernel of memnp.kernels.cuda_phases maps them): under the default rule
G+ = max(z, 0) + G_off and G- = -min(z, 0) + G_off, under "avg" G+- = G_avg +- z / 2, where
z = k_G W, k_G = (G_on - G_off) / max |W| and G_avg = (G_off + G_on) / 2. The step's statistics
(stats_scan) hold max |W|, its ties and sum |W| for them.

One kernel closes the backward pass (the CPU's ``w_to_G_vjp``), indexed by (member, row, output);
cuda_step's ``update`` then adds the tie share, L1 and SGD (without the non-negative projection):

- ``standard_vjp``: from gG (K, m, c), dL/d(programmed G) of the devices (memnp.kernels.cuda_read's
  devices_vjp with MAPPING != DOUBLE), dL/dz = [z >= 0] dL/dG+ - [z <= 0] dL/dG- (default) or
  (dL/dG+ - dL/dG-) / 2 (avg; and digital, where dL/dG- = -dL/dG+ and so k_G dL/dz = dL/dW of
  y = x W + b, at W = 0 too, where the default rule's two selections double it); gW = k_G dL/dz
  (T) and prod = dL/dz W (float64, for
  cuda_step's tie_share: dL/d(max |W|) = upstream - sum(prod) k_G / max |W|, shared by the ties,
  which ``update`` adds times sign(W) where |W| = max |W|).

Arrays as memnp.kernels.cuda_step describes them (P (K, N_PARAMS) float64 with the columns of
memnp.kernels.cuda_phases, st (K, N_STATS) float64). Their NumPy reference is
memnp.crossbar.mapping (``w_to_G_vjp``); tests/test_nn_device_standard.py compares whole steps
with ``Sequential.train_step``.
"""
import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from .cuda_phases import K_G, MAPPING, STANDARD_DEFAULT


def _build(T):
    """{"standard_vjp": kernel} for float dtype T."""
    F = np.float64
    zero, half = T(0.0), T(0.5)

    @cuda.jit
    def standard_vjp(W, gG, st, P, gW, prod):
        """Per (member, row, output): gW = k_G dL/dz and prod = dL/dz W from the devices' gG."""
        members, m, n_out = W.shape
        for t in range(cuda.grid(1), members * m * n_out, cuda.gridsize(1)):
            k = t // (m * n_out)
            r = t - k * (m * n_out)
            i = r // n_out
            jo = r - i * n_out
            kg = T(st[k, K_G])
            w = W[k, i, jo]
            g_pos = gG[k, i, 2 * jo]
            g_neg = gG[k, i, 2 * jo + 1]
            if P[k, MAPPING] == STANDARD_DEFAULT:
                z = kg * w
                g_z = (g_pos if z >= zero else zero) - (g_neg if z <= zero else zero)
            else:
                g_z = half * (g_pos - g_neg)
            gW[k, i, jo] = kg * g_z
            prod[k, i, jo] = F(g_z * w)

    return {"standard_vjp": standard_vjp}
