"""memnp.kernels.ensemble_chip (through memnp.nn.ensemble_chip_read): the combined stage's crossbar
phases of K members in one call equal, bit for bit, each member's own CrossbarPass -- currents,
gradients, powers and Generator states -- on one and two threads; where a member's pass would take
another path the fused read declines and touches no Generator. Two threads need
NUMBA_NUM_THREADS >= 2.

Caveat (tests/ensemble_cases.py): in the first process after the single-network kernels' sources
changed, a kernel compiled afresh and one loaded from Numba's on-disk cache can differ in the last
bits; with an empty NUMBA_CACHE_DIR (everything compiled in one process) and in any later run
they agree."""
import numba
import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, Stage, tiling
from memnp.kernels import ensemble_chip, get_backend
from memnp.kernels.ensemble_layout import MemberRows
from memnp.nn import ensemble_chip_read

G_OFF, G_ON, K_V = 5.24841e-7, 2.6242e-6, 0.5
THREADS = (1, pytest.param(2, marks=pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                                         reason="needs NUMBA_NUM_THREADS >= 2")))


def _pf(k):
    return dict(type="IVNonlinearityPF", k_V=K_V, slopes=[-1.03023 + 0.01 * k, -0.0901078],
                intercepts=[-0.250595 - 0.02 * k, -37.1186],
                covariance=[[0.03208284, 0.09272695], [0.09272695, 0.32510818 + 0.01 * k]])


def chip_stage(k, full_scale="worst-case", dac=True):
    """The combined stage (D2D, drift, stuck, read noise, DAC, PF, ADC, tiles), member k's numbers."""
    G_off = G_OFF * (1 + 0.05 * k)
    items = [dict(type="D2DLognormal", G_off=G_off, G_on=G_ON, R_on_log_std=0.25 + 0.02 * k, R_off_log_std=0.25),
             dict(type="Drift", nu_mean=0.01 + 0.002 * k, nu_std=0.005, t=86400.0 * (k + 1)),
             dict(type="StuckAtGOff", G_off=G_off, p=0.02 + 0.01 * k),
             dict(type="ReadNoise", sigma_rel=0.05 + 0.01 * k)]
    if dac:
        items.append(dict(type="DAC", bits=6))
    items += [_pf(k), dict(type="ADC", bits=6, full_scale=full_scale), dict(type="Tiles", rows=128, cols=64)]
    return Stage(G_off, G_ON, K_V, tuple(items))


def _problem(stages, m, n, p, seed, dtype=np.float32):
    """(layout, V packed (p R,), G packed (R, n), grad_I (K, p, n)): member k reads some rows
    (the last always), its inputs with its own share of zeros."""
    rng = np.random.default_rng(seed)
    K = len(stages)
    active = rng.random((K, m)) < np.linspace(1.0, 0.3, K)[:, None]
    active[:, -1] = True
    if K > 1:
        active[1] = True           # one member reads every row
    layout = MemberRows.from_active(active)
    blocks, Gs = [], []
    for k, stage in enumerate(stages):
        r = int(active[k].sum())
        x = (0.6 + 0.4 * rng.random((p, r))) * (rng.random((p, r)) > 0.15 * k)   # MNIST-like
        blocks.append((x * K_V).astype(dtype).reshape(-1))
        Gs.append((stage.G_off + (0.5 + 0.5 * rng.random((r, n))) * (stage.G_on - stage.G_off)).astype(dtype))
    grad_I = (rng.standard_normal((K, p, n)) * 1e3).astype(dtype)
    return layout, np.concatenate(blocks), np.ascontiguousarray(np.concatenate(Gs)), grad_I


def _alone(stages, layout, V, G, grad_I, rngs, read_rngs):
    """Each member's own CrossbarPass: [(I, grad_V, grad_G, power)]."""
    p = grad_I.shape[1]
    out = []
    for k, stage in enumerate(stages):
        o0, o1 = layout.offsets[k], layout.offsets[k + 1]
        rows = None if o1 - o0 == layout.n_rows else layout.member_rows(k)
        crossbar = CrossbarPass(stage, "cpu")
        crossbar.inputs_checked = crossbar.gradients_checked = True
        I = crossbar.forward(layout.block(V, k, p), G[o0:o1], rngs[k], None, rows, layout.n_rows, read_rngs[k])
        power = crossbar.power()
        grad_V, grad_G = crossbar.backward(grad_I[k], need_V=True)
        out.append((I, grad_V, grad_G, power))
    return out


def _check(stages, m, n, p, threads, read=False, seed=0):
    """Compare; on two threads every call runs parallel (the one-thread threshold lowered to 0)."""
    K = len(stages)
    layout, V, G, grad_I = _problem(stages, m, n, p, seed)
    rngs_a = [np.random.default_rng(100 + k) for k in range(K)]
    rngs_b = [np.random.default_rng(100 + k) for k in range(K)]
    for rng in rngs_a + rngs_b:      # an odd float32 draw: NumPy holds half a word
        rng.random(3, dtype=np.float32)
    reads_a = [np.random.default_rng(200 + k) if read else None for k in range(K)]
    reads_b = [np.random.default_rng(200 + k) if read else None for k in range(K)]
    before, below = numba.get_num_threads(), ensemble_chip.serial_below
    numba.set_num_threads(threads)
    if threads > 1:
        ensemble_chip.serial_below = lambda: 0
    try:
        assert ensemble_chip.parallel((p + 1) * G.size, K) == (threads > 1 and K > 1)
        chip = ensemble_chip_read.forward(stages, get_backend("cpu"), layout, V, G, p, rngs_b, reads_b)
        assert chip is not None
        grad_V, grad_G = chip.backward(grad_I, True)
        powers = [chip.member_pass(k).power() for k in range(K)]
    finally:
        numba.set_num_threads(before)
        ensemble_chip.serial_below = below
    expected = _alone(stages, layout, V, G, grad_I, rngs_a, reads_a)
    for k, (I_k, grad_V_k, grad_G_k, power_k) in enumerate(expected):
        o0, o1 = layout.offsets[k], layout.offsets[k + 1]
        assert chip.read.I[k].dtype == I_k.dtype == np.float32
        assert np.array_equal(chip.read.I[k], I_k), k
        assert np.any(I_k != 0)
        assert np.array_equal(layout.block(grad_V, k, p), grad_V_k), k
        assert np.array_equal(grad_G[o0:o1], grad_G_k), k
        assert np.any(grad_G_k != 0)
        assert powers[k] == power_k
        assert rngs_a[k].bit_generator.state == rngs_b[k].bit_generator.state
        if read:
            assert reads_a[k].bit_generator.state == reads_b[k].bit_generator.state
    return chip


@pytest.mark.parametrize("K", [1, 3, 4, 5])
@pytest.mark.parametrize("threads", THREADS)
def test_fused_chip_read_equals_members_alone(K, threads):
    """First layer of the MNIST MLP (785 rows: several rows of arrays, the one-pass tiled ADC
    loop) and a hidden layer (51 rows: one row of arrays, dense or zero-skipping PF kernels)."""
    stages = [chip_stage(k) for k in range(K)]
    chip = _check(stages, 785, 50, 24, threads, seed=K)
    assert chip.read.mask.any() and not chip.read.clipped.any()
    chip = _check(stages, 51, 50, 24, threads, seed=10 + K)
    if K == 5:
        assert chip.read.is_sparse.any() and not chip.read.is_sparse.all()   # both PF kernels ran


@pytest.mark.parametrize("threads", THREADS)
def test_fused_chip_read_separate_read_streams_and_no_dac(threads):
    _check([chip_stage(k) for k in range(3)], 300, 20, 16, threads, read=True, seed=3)
    _check([chip_stage(k, dac=False) for k in range(2)], 300, 20, 16, threads, seed=4)


def test_fused_chip_read_clipped_member_goes_through_its_own_pass():
    """A member whose ADC clips (a fixed full scale well under its currents) takes its own
    CrossbarPass.backward (the straight-through gradient stops where it clipped)."""
    pf = chip_stage(1).phases["currents"]
    small = tiling.worst_case_current(128, K_V, G_ON, pf) / 20
    stages = [chip_stage(0), chip_stage(1, full_scale=small), chip_stage(2)]
    chip = _check(stages, 785, 50, 16, min(2, numba.config.NUMBA_NUM_THREADS), seed=7)
    assert chip.read.clipped.tolist() == [False, True, False]


def test_fused_chip_read_declines_other_paths():
    """float64, a Generator shared by two members, a non-PCG64 Generator or a stage with another
    path: None, and no Generator moved."""
    stages = [chip_stage(k) for k in range(2)]
    layout, V, G, grad_I = _problem(stages, 200, 10, 8, 0)
    backend = get_backend("cpu")
    shared = np.random.default_rng(1)
    cases = [
        (stages, V.astype(np.float64), G.astype(np.float64), [np.random.default_rng(k) for k in range(2)]),
        (stages, V, G, [shared, shared]),
        (stages, V, G, [np.random.default_rng(0), np.random.Generator(np.random.MT19937(1))]),
        ([stages[0], Stage(G_OFF, G_ON, K_V, (_pf(1),))], V, G, [np.random.default_rng(k) for k in range(2)]),
    ]
    for members, V_c, G_c, rngs in cases:
        states = [rng.bit_generator.state for rng in rngs]
        assert ensemble_chip_read.forward(members, backend, layout, V_c, G_c, 8, rngs, [None, None]) is None
        assert all(_same(rng.bit_generator.state, state) for rng, state in zip(rngs, states))


def _same(a, b):
    """Whether two Generator states (dicts that may hold arrays) are equal."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return np.array_equal(a, b)
