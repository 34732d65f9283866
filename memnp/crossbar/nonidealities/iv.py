"""I-V nonlinearity of the Poole-Frenkel (PF) model (docs/model.md §2), a linearity-nonpreserving nonideality.

Per device, with R = 1/G:  ln c = s_c ln R + b_c + e_c,  ln d_eps = s_d ln R + b_d + e_d,
(e_c, e_d) ~ N(0, covariance), fresh for every forward pass. The device current is
I_ind = sign(V) c |V| exp(A sqrt(B |V| / d_eps + EPS)) (see memnp.kernels.physics).
"""
import dataclasses
import math

import numpy as np

from ...kernels import fused as fused_records
from ...kernels import get_backend, pf_devices, physics
from ...kernels.normal import Z_MAX
from ..validation import covariance_2x2, draw_args, finite_array, finite_pair, positive, positive_array
from .base import STAGE_SLACK, LinearityNonpreserving, register

#: ln of float32's smallest normal and largest numbers: c, d_eps and the device currents must lie
#: between them (every backend computes in float32 or float64).
_LN_TINY, _LN_MAX = math.log(float(np.finfo(np.float32).tiny)), math.log(float(np.finfo(np.float32).max))


def _checked(G, residuals):
    """G (m, n) as a float array of finite conductances > 0 (S), with residuals (2, m, n) finite
    (the checks of the direct calls currents, currents_vjp and power; a crossbar pass checks G
    itself)."""
    G = positive_array("G", G, ndim=2)
    if np.shape(residuals) != (2,) + G.shape:
        raise ValueError(f"residuals must have shape (2, *G.shape) = {(2,) + G.shape} (IVNonlinearityPF.sample); "
                         f"got {np.shape(residuals)}")
    finite_array("residuals", residuals)
    return G


@register
@dataclasses.dataclass(frozen=True)
class IVNonlinearityPF(LinearityNonpreserving):
    """PF I-V nonlinearity.

    k_V: voltage scaling factor (V); slopes: (s_c, s_d); intercepts: (b_c, b_d);
    covariance: 2 x 2 covariance of the residuals (e_c, e_d), positive semi-definite (zero or
    singular is allowed: deterministic or degenerate residuals).
    """

    k_V: float
    slopes: tuple
    intercepts: tuple
    covariance: tuple

    draws = "chip"
    paper = True

    def __post_init__(self):
        object.__setattr__(self, "k_V", positive("k_V", self.k_V))
        object.__setattr__(self, "slopes", finite_pair("slopes", self.slopes))
        object.__setattr__(self, "intercepts", finite_pair("intercepts", self.intercepts))
        object.__setattr__(self, "covariance", covariance_2x2(self.covariance))
        object.__setattr__(self, "_factor", self._residual_factor())

    @property
    def label(self):
        (s_c, s_d), (b_c, b_d) = self.slopes, self.intercepts
        return f"IVNonlinearityPF(s_c={s_c:.4g},b_c={b_c:.4g},s_d={s_d:.4g},b_d={b_d:.4g})"

    def fused(self):
        """The one-block draws' PF record (memnp.kernels.fused.PF): the residuals' factor L and the
        fit's slopes and intercepts."""
        return fused_records.PF(tuple(tuple(float(v) for v in row) for row in self._factor),
                                self.slopes, self.intercepts)

    def check_stage(self, stage):
        """The PF model's k_V must be the stage's, and every device the stage can hold (G in
        [G_off, G_on], residuals within Z_MAX = 6.66 standard deviations, the largest memnp's
        normals draw) must have c (A/V) and d_eps (F/m) and a current at k_V that are finite and
        > 0 in float32."""
        if abs(self.k_V - stage.k_V) > STAGE_SLACK * stage.k_V:
            raise ValueError(f"IVNonlinearityPF k_V must equal the stage's k_V ({stage.k_V!r} V); "
                             f"got {self.k_V!r} V")
        (s_c, s_d), (b_c, b_d) = self.slopes, self.intercepts
        e_c, e_d = Z_MAX * np.abs(self._factor).sum(axis=1)
        for G in (stage.G_off, stage.G_on):
            ln_R = -math.log(G)
            for sign_c in (-1, 1):
                ln_c = s_c * ln_R + b_c + sign_c * e_c
                for sign_d in (-1, 1):
                    ln_d = s_d * ln_R + b_d + sign_d * e_d
                    root = physics.B * self.k_V * math.exp(-ln_d) + physics.EPS if ln_d > _LN_TINY else math.inf
                    ln_I = ln_c + math.log(self.k_V) + physics.A * math.sqrt(root)
                    if not (_LN_TINY <= ln_c <= _LN_MAX and _LN_TINY <= ln_d <= _LN_MAX
                            and _LN_TINY <= ln_I <= _LN_MAX):
                        raise ValueError(
                            f"IVNonlinearityPF slopes, intercepts and covariance must give devices with c, "
                            f"d_eps and a current at k_V = {self.k_V!r} V in float32's range "
                            f"[{math.exp(_LN_TINY):.3g}, {math.exp(_LN_MAX):.3g}] over the stage's G range "
                            f"[{stage.G_off!r}, {stage.G_on!r}] S; at G = {G!r} S with residuals of "
                            f"{Z_MAX:.3g} standard deviations: ln c = {ln_c:.4g}, ln d_eps = {ln_d:.4g}, "
                            f"ln I = {ln_I:.4g}")

    def _residual_factor(self):
        """L (2, 2) with L L^T = covariance, from the eigendecomposition (works when singular)."""
        eigenvalues, eigenvectors = np.linalg.eigh(np.array(self.covariance))
        return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))

    def sample(self, shape, rng, dtype=np.float64):
        """Residuals (2, *shape) of ``dtype``: e_c and e_d for every device, drawn from ``rng``:
        device k's pair is L (z_cos, z_sin), the Box-Muller pair of the k-th raw word of the
        Generator (see :func:`memnp.kernels.pf_devices.residuals`; one word per device)."""
        return pf_devices.residuals(rng, self._factor, shape, draw_args(rng, dtype))

    def device_parameters(self, G, residuals):
        """(c (A/V), d_eps (F/m)) of every device, each the shape and dtype of G (S).

        float32 NumPy arrays go through the one-pass loop of :mod:`memnp.kernels.pf_devices`;
        anything else through :meth:`device_parameters_numpy` (the reference that loop is tested
        against; for float64 NumPy's own SIMD exp and log are faster)."""
        if isinstance(residuals, np.ndarray) and residuals.ndim == np.ndim(G) + 1 and len(residuals) == 2 \
                and pf_devices.supported(G, residuals[0], residuals[1],
                                         dtypes=pf_devices.FASTER["parameters"]):
            return pf_devices.device_parameters(G, residuals, self.slopes, self.intercepts)
        return self.device_parameters_numpy(G, residuals)

    def device_parameters_numpy(self, G, residuals):
        """:meth:`device_parameters` in NumPy passes (any array-likes)."""
        (s_c, s_d), (b_c, b_d) = self.slopes, self.intercepts
        dtype = G.dtype.type
        # s ln R = (-s) ln G exactly (negation is exact), so ln R is never formed; d_eps reuses
        # the buffer of ln G.
        ln_G = np.log(G)
        c = np.multiply(ln_G, dtype(-s_c))
        c += dtype(b_c)
        c += residuals[0]
        d_eps = np.multiply(ln_G, dtype(-s_d), out=ln_G)
        d_eps += dtype(b_d)
        d_eps += residuals[1]
        np.exp(c, out=c)
        np.exp(d_eps, out=d_eps)
        return c, d_eps

    def device_parameters_vjp(self, G, c, d_eps, grad_c, grad_d_eps):
        """dL/dG from dL/dc and dL/d(d_eps): dc/dG = -s_c c / G, d(d_eps)/dG = -s_d d_eps / G.
        One loop of :mod:`memnp.kernels.pf_devices` where it applies, else
        :meth:`device_parameters_vjp_numpy`."""
        if pf_devices.supported(G, c, d_eps, grad_c, grad_d_eps, dtypes=pf_devices.FASTER["vjp"]):
            return pf_devices.device_parameters_vjp(G, c, d_eps, grad_c, grad_d_eps, self.slopes)
        return self.device_parameters_vjp_numpy(G, c, d_eps, grad_c, grad_d_eps)

    def device_parameters_vjp_numpy(self, G, c, d_eps, grad_c, grad_d_eps):
        """:meth:`device_parameters_vjp` in NumPy passes (any array-likes)."""
        s_c, s_d = self.slopes
        arrays = (G, c, d_eps, grad_c, grad_d_eps)
        if not all(isinstance(a, np.ndarray) and a.dtype == G.dtype and a.shape == G.shape for a in arrays):
            return -(s_c * grad_c * c + s_d * grad_d_eps * d_eps) / G
        # One dtype: the same operations in place, the sign moved into the slopes
        # (-(a + b) = (-a) + (-b) exactly), one pass fewer.
        grad_G = np.multiply(grad_c, -s_c)
        grad_G *= c
        term = np.multiply(grad_d_eps, -s_d)
        term *= d_eps
        grad_G += term
        grad_G /= G
        return grad_G

    def currents(self, V, G, residuals, backend=None):
        """Column currents I (p, n) in A from V (p, m) in V and G (m, n) in S."""
        G = _checked(G, residuals)
        c, d_eps = self.device_parameters(G, residuals)
        return get_backend(backend).pf_currents(V, c, d_eps)

    def currents_vjp(self, V, G, residuals, grad_I, backend=None, need_V=True):
        """(dL/dV (p, m) or None unless need_V, dL/dG (m, n)) from dL/dI (p, n), with the same
        residuals as the forward pass."""
        G = _checked(G, residuals)
        c, d_eps = self.device_parameters(G, residuals)
        grad_V, grad_c, grad_d_eps = get_backend(backend).pf_currents_vjp(V, c, d_eps, grad_I, need_V)
        return grad_V, self.device_parameters_vjp(G, c, d_eps, grad_c, grad_d_eps)

    def power(self, V, G, residuals, backend=None):
        """Average crossbar power over the batch (W)."""
        G = _checked(G, residuals)
        c, d_eps = self.device_parameters(G, residuals)
        return get_backend(backend).pf_power(V, c, d_eps)
