"""The one-call training step of an Ensemble of PF-aware MLPs (memnp.nn.ensemble_mlp_step): every
step of the paper's PF MLP runs in one kernel call, on whole members per thread or on the calling
thread, and equals each member trained alone bit for bit (weights, losses, accuracies, Generator
states); a step it cannot finish writes nothing and the layered path takes over (raising the error
that names the member, or settling an input of -0.0)."""
import numpy as np
import pytest
from scipy import special

from memnp.kernels import ensemble_chip_step as chip_kernel
from memnp.kernels import ensemble_mlp_step as kernel
from memnp.nn import Ensemble, ensemble_mlp_step

from test_nn_ensemble import _params, check_bit_equal, mlp_members, stage_c, stage_e


@pytest.fixture(scope="module")
def mnist():
    from test_nn_ensemble import ROOT
    with np.load(ROOT / "memnp" / "data" / "mnist-10k.npz", allow_pickle=False) as data:
        return (data["images"][:512] / np.float32(255)).astype(np.float32), data["labels"][:512].astype(np.int64)


def _statuses(monkeypatch, module):
    """The statuses of every run of ``module``'s one-call kernel, in order."""
    seen = []
    run = module.train_step

    def spy(*args):
        out = run(*args)
        seen.append(out[2].copy())
        return out

    monkeypatch.setattr(module, "train_step", spy)
    return seen


@pytest.fixture
def calls(monkeypatch):
    """The statuses of every one-call kernel run under a PF-only stage."""
    return _statuses(monkeypatch, kernel)


@pytest.mark.parametrize("schedule", [True, False], ids=["members-on-threads", "calling-thread"])
def test_one_call_step_equals_members_alone(mnist, calls, monkeypatch, schedule):
    """50 steps, 3 members with their own devices, PF numbers, learning rates and L1 (member 0
    has none): every step ran in one call, and everything equals the members alone."""
    monkeypatch.setattr(ensemble_mlp_step, "_schedule", lambda K, p, D: schedule)
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_c, K), x, y, K=3, stacked=(1, 3))
    assert len(calls) == 50 and not np.any(calls)


@pytest.fixture
def chip_calls(monkeypatch):
    """The statuses of every one-call kernel run under the combined stage."""
    return _statuses(monkeypatch, chip_kernel)


@pytest.mark.parametrize("schedule", [True, False], ids=["members-on-threads", "calling-thread"])
def test_combined_stage_one_call_step_equals_members_alone(mnist, chip_calls, monkeypatch, schedule):
    """Case e's combined stage (D2D, drift, stuck devices, read noise, DAC, PF, ADCs, tiles; every
    number of each member its own): 50 steps in one call each, equal to the members alone (their
    Generators' states, NumPy's half-word buffer of the stuck draws included)."""
    monkeypatch.setattr(ensemble_mlp_step, "_schedule", lambda K, p, D: schedule)
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_e, K, hidden=12), x, y, K=3, stacked=(1, 3))
    assert len(chip_calls) == 50 and not np.any(chip_calls)


def test_clipping_adc_falls_back_with_the_same_numbers(mnist, chip_calls):
    """Member 1's ADCs have a fixed full scale well under its currents, so they clip: its step's
    status is CLIPPED (its backward pass is its own CrossbarPass's), every step runs the layered
    path, and the numbers are still the members' own."""
    from memnp.crossbar import Stage, tiling
    from test_nn_ensemble import G_ON

    def stage(k):
        base = stage_e(k)
        if k != 1:
            return base
        small = tiling.worst_case_current(128, base.k_V, G_ON, base.phases["currents"]) / 20
        specs = [dict(item.to_dict(), full_scale=small) if name == "adc" else item.to_dict()
                 for name, item in base.phases.items()]
        return Stage(base.G_off, base.G_on, base.k_V, specs)

    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage, K, hidden=12), x, y, K=3, stacked=(1, 3), steps=6)
    assert len(chip_calls) == 6
    assert all(status.tolist() == [chip_kernel.OK, chip_kernel.CLIPPED, chip_kernel.OK] for status in chip_calls)


def test_one_member_takes_the_one_call_step(mnist, calls):
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_c, K, hidden=10), x, y, K=1, stacked=(1, 3), steps=20)
    assert len(calls) == 20


def _pair(K=3):
    alone, together = mlp_members(stage_c, K), mlp_members(stage_c, K)
    return alone, together, Ensemble(together)


def test_negative_zero_input_falls_back_with_the_same_numbers(mnist, calls):
    """-0.0 is in [0, 1], but fails the kernel's bit test: the step writes nothing, the layered
    path runs it, and the numbers are still the members' own."""
    x, y = mnist
    alone, together, ensemble = _pair()
    xs = np.stack([x[:16], x[16:32], x[32:48]])
    xs[1, 0, 0, 0] = -0.0
    ys = np.stack([y[:16], y[16:32], y[32:48]])
    rngs_a = [np.random.default_rng(5 + k) for k in range(3)]
    rngs_t = [np.random.default_rng(5 + k) for k in range(3)]
    losses, accuracies = ensemble.train_step(xs, ys, rngs_t)
    assert calls[0].tolist() == [kernel.OK, kernel.BAD_INPUTS_1, kernel.OK]
    for k in range(3):
        assert (losses[k], accuracies[k]) == alone[k].train_step(xs[k], ys[k], rngs_a[k])
        for a, b in zip(_params(alone[k]), _params(together[k])):
            assert np.array_equal(a, b)
        assert rngs_a[k].bit_generator.state == rngs_t[k].bit_generator.state


def test_bad_input_or_weights_raise_naming_the_member_and_change_nothing(mnist, calls):
    """The layered path raises; no weights changed (its layer-1 draws before a layer-2 error
    advance the Generators, as each member alone would)."""
    x, y = mnist
    _, together, ensemble = _pair()
    xs = np.stack([x[:16]] * 3)
    ys = np.stack([y[:16]] * 3)
    rngs = [np.random.default_rng(5 + k) for k in range(3)]
    states = [r.bit_generator.state for r in rngs]
    before = [_params(m) for m in together]
    bad = xs.copy()
    bad[2, 3, 10, 10] = 1.5
    with pytest.raises(ValueError, match="member 2, layer 1: .*1.5"):
        ensemble.train_step(bad, ys, rngs)
    assert calls[-1].tolist() == [kernel.OK, kernel.OK, kernel.BAD_INPUTS_1]
    assert [r.bit_generator.state for r in rngs] == states     # raised before any draw, as alone
    together[1].layers[3].params["w_pos"][0, 0] = np.nan
    with pytest.raises(ValueError, match="member 1, layer 3"):
        ensemble.train_step(xs, ys, rngs)
    assert calls[-1].tolist() == [kernel.OK, kernel.BAD_WEIGHTS_2, kernel.OK]
    together[1].layers[3].params["w_pos"][0, 0] = before[1][4][0, 0]
    for k in range(3):
        for a, b in zip(before[k], _params(together[k])):
            assert np.array_equal(a, b)


def test_other_bit_generators_take_the_layered_path(mnist, calls):
    """A member drawing from Philox: the kernel draws PCG64 words only, so the step is layered."""
    x, y = mnist
    alone, together, ensemble = _pair(2)
    xs, ys = np.stack([x[:16], x[16:32]]), np.stack([y[:16], y[16:32]])
    make = [lambda: np.random.default_rng(1), lambda: np.random.Generator(np.random.Philox(2))]
    rngs_a, rngs_t = [m() for m in make], [m() for m in make]
    losses, _ = ensemble.train_step(xs, ys, rngs_t)
    assert calls == []
    for k in range(2):
        assert losses[k] == alone[k].train_step(xs[k], ys[k], rngs_a[k])[0]


def test_sigmoid_is_scipy_expit_for_float32():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(0, 8, 200_000), rng.normal(0, 60, 50_000),
                        [0.0, -0.0, 88.7, -88.7, -103.9, -104.0, 1e-30, -1e-30, np.inf, -np.inf]]).astype(np.float32)
    a = np.empty_like(y)
    kernel._sigmoid(y, a)
    assert np.array_equal(a.view(np.uint32), special.expit(y).view(np.uint32))
