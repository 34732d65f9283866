"""SiOx: fitting the measured multistate curves gives docs/model.md §6's table; synthetic curves are recovered."""
import math

import numpy as np
import pytest

from memnp.data.devices import siox, synthetic
from memnp.data.presets import SIOX_HIGH, SIOX_LOW, preset_from_fit
from memnp.kernels.physics import A, B


def _sig4(x):
    return float(f"{x:.4g}")


def _assert_published(fitted, published):
    """Equal to 4 significant digits (and within 1e-5 relative of the published value)."""
    assert _sig4(fitted) == _sig4(published), (fitted, published)
    assert math.isclose(fitted, published, rel_tol=1e-5), (fitted, published)


@pytest.fixture(scope="module")
def measured_fit():
    from conftest import SHARED_DATA
    path = SHARED_DATA / "SiO_x-multistate-data.mat"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return siox.fit_siox_file(path)


@pytest.mark.parametrize("regime, published", [("low", SIOX_LOW), ("high", SIOX_HIGH)])
def test_measured_fit_gives_published_table(measured_fit, regime, published):
    fit = measured_fit.regime(regime)
    _assert_published(fit.G_off, published["G_off"])
    _assert_published(fit.G_on, published["G_on"])
    for got, want in zip(fit.slopes + fit.intercepts, published["slopes"] + published["intercepts"]):
        _assert_published(got, want)
    for got_row, want_row in zip(fit.covariance, published["covariance"]):
        for got, want in zip(got_row, want_row):
            _assert_published(got, want)
    assert fit.G_on / fit.G_off == pytest.approx(5.0)


def test_measured_fit_keeps_49_of_53(measured_fit):
    assert len(measured_fit.kept) == 49
    assert sorted(measured_fit.dropped) == [27, 28, 42, 45]
    assert set(measured_fit.dropped.values()) == {"spike filter"}
    assert measured_fit.low.n_curves == 20 and measured_fit.high.n_curves == 29
    assert np.all(np.diff(measured_fit.R) > 0)
    # The regimes meet at the conductance quantum.
    assert measured_fit.R[19] < siox.INVERSE_CONDUCTANCE_QUANTUM <= measured_fit.R[20]
    assert siox.INVERSE_CONDUCTANCE_QUANTUM == pytest.approx(12906.4037, rel=1e-8)


def test_loader_layout(shared_data):
    path = shared_data / "SiO_x-multistate-data.mat"
    if not path.is_file():
        pytest.skip("SiOx data absent")
    V, I = siox.load_siox_mat(path)
    assert V.shape == I.shape == (53, 799)
    # After the flip, state 0 is the lowest-resistance curve: 101 points from 0 to 0.5 V.
    assert np.count_nonzero(~np.isnan(V[0])) == 101 and V[0, 100] == pytest.approx(0.5)
    assert V[0, 20] == pytest.approx(0.1) and I[0, 20] == pytest.approx(3.45064967e-4)
    # 0.1 / I at 0.1 V of state 0 is the low regime's minimum resistance, 1 / G_on.
    assert I[0, 20] / V[0, 20] == pytest.approx(SIOX_LOW["G_on"], rel=1e-5)


def test_fit_to_preset_dict(measured_fit):
    record = preset_from_fit(measured_fit, "high")
    stage = record.stage
    assert stage["k_V"] == 0.5 and stage["mapping_rule"] == "default"
    pf = stage["nonidealities"][0]
    assert pf["type"] == "IVNonlinearityPF" and len(pf["covariance"]) == 2
    assert pf["slopes"][1] == pytest.approx(-0.0901078, rel=1e-5)


def test_pf_current_formula():
    V = np.array([-0.3, 0.0, 0.2])
    I = siox.pf_current(V, 2e-6, 3e-17)
    expected = 2e-6 * 0.2 * np.exp(A * np.sqrt(B * 0.2 / 3e-17 + 1e-18))
    assert I[2] == pytest.approx(expected, rel=1e-14)
    assert I[1] == 0.0 and I[0] < 0


def test_noiseless_synthetic_curves_are_recovered_exactly():
    data = synthetic.synthetic_siox_curves(12, rng=3)
    assert data.synthetic and data.description.startswith("synthetic")
    fit = siox.fit_siox(data.V, data.I)
    assert fit.dropped == {}
    np.testing.assert_allclose(fit.c, data.c[fit.kept], rtol=1e-6)
    np.testing.assert_allclose(fit.d_eps, data.d_eps[fit.kept], rtol=1e-6)
    R_ref = data.V[:, 20] / data.I[:, 20]
    np.testing.assert_allclose(fit.R, R_ref[fit.kept], rtol=1e-12)
    assert fit.high.G_off == pytest.approx(1 / R_ref.max())
    assert fit.high.G_on == pytest.approx(5 / R_ref.max())
    assert fit.low is None
    with pytest.raises(ValueError, match="fewer than 3"):
        fit.regime("low")


def test_noisy_synthetic_curves_are_recovered_closely():
    data = synthetic.synthetic_siox_curves(10, rng=4, noise=1e-3)
    fit = siox.fit_siox(data.V, data.I)
    assert len(fit.kept) == 10
    np.testing.assert_allclose(fit.c, data.c[fit.kept], rtol=2e-2)
    np.testing.assert_allclose(fit.d_eps, data.d_eps[fit.kept], rtol=5e-2)


def test_regressions_recover_generating_parameters():
    rng = np.random.default_rng(7)
    n = 40_000
    data = synthetic.synthetic_siox_curves(n, rng, max_voltage=0.01)  # only (R, c, dε) are used here
    fit = siox.fit_regime(data.R, data.c, data.d_eps, 1e-7, 5e-7)
    cov = np.array(SIOX_HIGH["covariance"])
    spread = np.std(np.log(data.R))
    for k in range(2):
        se = math.sqrt(cov[k, k] / n) / spread
        assert abs(fit.slopes[k] - SIOX_HIGH["slopes"][k]) < 5 * se
    np.testing.assert_allclose(np.array(fit.covariance), cov, rtol=0.05)


def test_spike_filter_drops_a_spiky_curve():
    data = synthetic.synthetic_siox_curves(4, rng=5)
    I = data.I.copy()
    I[2, 50] *= 1.5
    fit = siox.fit_siox(data.V, I)
    assert fit.dropped == {2: "spike filter"} and sorted(fit.kept) == [0, 1, 3]


def test_one_voltage_row_and_nan_padding():
    data = synthetic.synthetic_siox_curves(3, rng=6)
    V = np.concatenate([data.V[0], [0.505, np.nan]])
    I = np.concatenate([data.I, np.full((3, 2), np.nan)], axis=1)
    fit = siox.fit_siox(V, I)
    np.testing.assert_allclose(np.sort(fit.c), np.sort(data.c), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_voltage": -1}, "max_voltage"),
    ({"ratio": 1.0}, "ratio"),
    ({"ref_voltage": 0.6}, "ref_voltage"),
    ({"voltage_step": 0.01}, "steps of voltage_step"),
])
def test_bad_fit_arguments(kwargs, message):
    data = synthetic.synthetic_siox_curves(3, rng=1)
    with pytest.raises(ValueError, match=message):
        siox.fit_siox(data.V, data.I, **kwargs)


def test_bad_fit_inputs():
    data = synthetic.synthetic_siox_curves(3, rng=1)
    with pytest.raises(ValueError, match="same shape"):
        siox.fit_siox(data.V[:2], data.I)
    with pytest.raises(ValueError, match="fewer than the 101"):
        siox.fit_siox(data.V[:, :50], data.I[:, :50])
    I = data.I.copy()
    I[0, 10] = np.nan
    with pytest.raises(ValueError, match="finite"):
        siox.fit_siox(data.V, I)
    with pytest.raises(ValueError, match="rng"):
        synthetic.synthetic_siox_curves(3, rng=None)


def test_corrupt_mat_file(tmp_path):
    path = tmp_path / "bad.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(ValueError, match="bad.mat"):
        siox.load_siox_mat(path)


def test_fitted_stage_dict_builds_a_stage():
    crossbar = pytest.importorskip("memnp.crossbar")
    data = synthetic.synthetic_siox_curves(6, rng=9)
    fit = siox.fit_siox(data.V, data.I)
    stage = crossbar.Stage.from_dict(fit.stage_dict("high"))
    assert stage.G_off == pytest.approx(fit.high.G_off) and stage.k_V == 0.5
    assert stage.to_dict()["nonidealities"][0]["type"] == "IVNonlinearityPF"
