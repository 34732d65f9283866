"""Ta/HfO2: stuck-device extraction from pulse arrays (synthetic and hand-made), HDF5 loading."""
import numpy as np
import pytest

from memnp.data.devices import synthetic, tahfo2


def test_scott_bandwidth_rule():
    # std (ddof=1) of 1..5 is 1.5811; IQR / 1.3489795 = 2 / 1.3489795 = 1.4826 is smaller.
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert tahfo2.scott_bandwidth(values) == pytest.approx(2 / 1.3489795 * 5 ** -0.2, rel=1e-12)
    # With an outlier-free two-point set the IQR branch is again the minimum: IQR = 0.5.
    assert tahfo2.scott_bandwidth([0.0, 1.0]) == pytest.approx(0.5 / 1.3489795 * 2 ** -0.2)
    # Heavy tails: std is large, IQR small.
    heavy = [0, 0, 0, 0, 1, 1, 1, 1, 100]
    assert tahfo2.scott_bandwidth(heavy) == pytest.approx(1 / 1.3489795 * 9 ** -0.2)
    with pytest.raises(ValueError, match="at least 2"):
        tahfo2.scott_bandwidth([1.0])


def test_extraction_on_hand_made_array():
    # 1 cycle, 4 pulses, 2 x 2 devices; device (1, 1) barely moves: stuck.
    G = np.zeros((1, 4, 2, 2))
    G[0, :, 0, 0] = [1.0, 5.0, 9.0, 2.0]
    G[0, :, 0, 1] = [2.0, 6.0, 10.0, 3.0]
    G[0, :, 1, 0] = [1.0, 4.0, 11.0, 1.5]
    G[0, :, 1, 1] = [6.0, 7.0, 6.5, 6.5]
    fit = tahfo2.extract_tahfo2(G * 1e-5)
    # per-device minima 1, 2, 1, 6 -> median 1.5; maxima 9, 10, 11, 7 -> median 9.5; threshold 4.
    assert fit.G_off == pytest.approx(1.5e-5) and fit.G_on == pytest.approx(9.5e-5)
    assert fit.stuck_mask.tolist() == [[False, False], [False, True]]
    assert fit.p == 0.25
    np.testing.assert_allclose(fit.stuck_values, [6.5e-5])
    assert np.isnan(fit.bandwidth)
    with pytest.raises(ValueError, match="at least 2 stuck"):
        fit.stage_dict()


def test_synthetic_array_is_recovered():
    data = synthetic.synthetic_tahfo2_reads(rng=11, shape=(3, 20, 20, 25), stuck_fraction=0.101)
    assert data.synthetic and "synthetic" in data.description
    assert data.G_reads.shape == (3, 20, 20, 25)
    fit = tahfo2.extract_tahfo2(data.G_reads)
    np.testing.assert_array_equal(fit.stuck_mask, data.stuck_mask)
    assert fit.p == data.stuck_mask.mean() == round(0.101 * 500) / 500
    np.testing.assert_allclose(np.sort(fit.stuck_values), np.sort(data.stuck_values), rtol=0.02)
    # Per-device bounds are G_off / G_on times lognormal(0.1) spread and 1 % read noise.
    assert fit.G_off == pytest.approx(4.36e-5, rel=0.05) and fit.G_on == pytest.approx(9.78e-4, rel=0.05)
    assert fit.bandwidth == pytest.approx(tahfo2.scott_bandwidth(fit.stuck_values))
    stage = fit.stage_dict()
    (item,) = stage["nonidealities"]
    assert item["type"] == "StuckDistribution" and item["p"] == fit.p and len(item["means"]) == 50


def test_extraction_input_errors():
    with pytest.raises(ValueError, match="shape"):
        tahfo2.extract_tahfo2(np.ones((3, 4, 5)))
    bad = np.ones((1, 2, 2, 2))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        tahfo2.extract_tahfo2(bad)
    with pytest.raises(ValueError, match="stuck_fraction"):
        synthetic.synthetic_tahfo2_reads(rng=0, stuck_fraction=1.5)


def test_hdf5_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    data = synthetic.synthetic_tahfo2_reads(rng=2, shape=(1, 6, 4, 5))
    path = tmp_path / "Ta_HfO2-data.mat"
    with h5py.File(path, "w") as f:
        f["G_reads"] = data.G_reads
    loaded = tahfo2.load_tahfo2(path)
    np.testing.assert_array_equal(loaded, data.G_reads)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="no data set 'G_reads'"):
        tahfo2.load_tahfo2(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="junk.h5"):
        tahfo2.load_tahfo2(tmp_path / "junk.h5")
