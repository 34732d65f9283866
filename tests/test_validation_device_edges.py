"""Edges of memnp.data.devices' inputs found by an audit (issue 16, item 4): the synthetic
generators and the device fits. Each is a ValueError naming the parameter and the allowed range
(no ZeroDivisionError, IndexError or TypeError, no silent NaN)."""
import math

import numpy as np
import pytest


@pytest.mark.parametrize("kwargs, message", [
    (dict(voltage_step=0.0), r"voltage_step \(V\) must be a finite number > 0; got 0.0"),   # was ZeroDivisionError
    (dict(voltage_step=-0.1), r"voltage_step \(V\) must be a finite number > 0"),
    (dict(voltage_step=1e-30), r"voltage_step \(V\) must be in \[max_voltage / 999999, max_voltage\]"),
    (dict(voltage_step=0.6), r"voltage_step \(V\) must be in \[max_voltage / 999999, max_voltage\]"),
    (dict(max_voltage=0.0), r"max_voltage \(V\) must be a finite number > 0"),
    (dict(max_voltage=math.nan), r"max_voltage \(V\) must be a finite number > 0"),
    (dict(noise=math.nan), r"noise \(relative current noise\) must be a finite number >= 0"),
    (dict(noise=-0.1), r"noise \(relative current noise\) must be a finite number >= 0"),
    (dict(n_curves=0), r"n_curves must be an integer in \[1, 1000000\]; got 0"),
    (dict(n_curves=10 ** 12), r"n_curves must be an integer in \[1, 1000000\]"),
    (dict(n_curves=2.5), r"n_curves must be an integer in \[1, 1000000\]"),
    (dict(n_curves=math.nan), r"n_curves must be an integer in \[1, 1000000\]"),
    (dict(rng=-1), r"rng must be a numpy.random.Generator or an integer seed >= 0; got -1"),
    (dict(rng=0.5), r"rng must be a numpy.random.Generator or an integer seed >= 0"),
    (dict(R_range=(1.0, math.inf)), r"R_range \(R_min, R_max in ohms\) must be a pair of finite numbers"),
    (dict(R_range=(1.0,)), r"R_range \(R_min, R_max in ohms\) must be a pair of finite numbers"),
    (dict(R_range=(2.0, 1.0)), r"R_range must be \(R_min, R_max\) with 0 < R_min <= R_max"),
    (dict(slopes=(1.0,)), r"slopes must be a pair of finite numbers"),                   # was IndexError
    (dict(intercepts=(math.nan, 1.0)), r"intercepts must be a pair of finite numbers"),
    (dict(covariance=[[1, 2], [3, 4]]), r"covariance must be symmetric"),
    (dict(covariance=[[math.nan, 0], [0, 1]]), r"covariance must contain only finite values"),
    (dict(intercepts=(800.0, -37.0)), r"slopes, intercepts and covariance must give finite c > 0"),
])
def test_synthetic_siox_curves_refuse_bad_parameters(kwargs, message):
    from memnp.data.devices import synthetic_siox_curves
    args = {"n_curves": 3, "rng": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic_siox_curves(args.pop("n_curves"), args.pop("rng"), **args)


def test_synthetic_siox_curves_keep_their_numbers():
    from memnp.data.devices import synthetic_siox_curves
    data = synthetic_siox_curves(np.int64(4), 7, voltage_step=0.5, noise=0.01)
    assert data.V.shape == (4, 2) and np.array_equal(data.V[0], [0.0, 0.5])
    rng = np.random.default_rng(7)      # the draws, in the order the generator makes them
    R = np.exp(rng.uniform(np.log(1 / 2.6242e-6), np.log(1 / 5.24841e-7), 4))
    np.testing.assert_array_equal(data.R, R)


@pytest.mark.parametrize("kwargs, message", [
    (dict(G_off=math.nan), r"G_off must be a finite number > 0; got nan"),
    (dict(G_off=1e-3, G_on=1e-4), r"G_off must be smaller than G_on"),
    (dict(device_spread=math.nan), r"device_spread must be a finite number >= 0; got nan"),  # was NaN reads
    (dict(read_noise=-1.0), r"read_noise must be a finite number >= 0"),
    (dict(stuck_fraction=math.nan), r"stuck_fraction must be a probability in \[0, 1\]"),
    (dict(shape=(2, 3.5, 4, 4)), r"shape\[1\] \(pulses\) must be an integer in \[2, 100000000\]; got 3.5"),
    (dict(shape=(2, 1, 4, 4)), r"shape\[1\] \(pulses\) must be an integer in \[2, 100000000\]; got 1"),
    (dict(shape="abcd"), r"shape must be \(cycles, pulses >= 2, bit lines, word lines\)"),
    (dict(shape=(2, 3, 4)), r"shape must be \(cycles, pulses >= 2, bit lines, word lines\)"),
    (dict(shape=(10 ** 4, 10 ** 4, 10, 10)), r"shape must hold at most 100000000 reads"),
    (dict(rng=None), r"rng must be a numpy.random.Generator or an integer seed >= 0; got None"),
])
def test_synthetic_tahfo2_reads_refuse_bad_parameters(kwargs, message):
    from memnp.data.devices import synthetic_tahfo2_reads
    args = {"rng": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic_tahfo2_reads(args.pop("rng"), **args)


def test_device_fits_refuse_bad_data():
    from memnp.data.devices import extract_tahfo2, fit_curve, scott_bandwidth, spike_free
    with pytest.raises(ValueError, match=r"G_reads must show the devices switching: the median of the per-device "
                                         r"maxima \(G_on = 1.0 S\) must exceed the median of the minima"):
        extract_tahfo2(np.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="values must contain only finite numbers"):
        scott_bandwidth([np.nan, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"I must have shape \(n_curves, n_points\) with n_points >= 3; "
                                         r"got \(3,\)"):
        spike_free(np.array([1.0, 2.0, 3.0]))
    V = np.linspace(0, 0.5, 20)
    with pytest.raises(ValueError, match=r"V and I must be 1-D of equal length >= 3 .* shapes \(1,\) and \(1,\)"):
        fit_curve(np.array([0.1]), np.array([1e-6]))                 # was a TypeError from curve_fit
    with pytest.raises(ValueError, match=r"V and I must be 1-D of equal length >= 3 .* shapes \(20,\) and "
                                         r"\(10,\)"):
        fit_curve(V, V[:10] * 1e-6)
    with pytest.raises(ValueError, match=r"V and I must contain only finite values"):
        fit_curve(V, np.where(V > 0.2, np.nan, V * 1e-6))


def test_siox_regime_fit_and_file_errors(tmp_path):
    from memnp.data.devices import fit_regime, load_siox_mat
    R, c, d = np.array([1e5, 2e5, 3e5, 4e5]), np.array([1e-5, 2e-5, 3e-5, 5e-5]), np.full(4, 1e-16)
    assert fit_regime(R, c, d, 1e-6, 2e-6).n_curves == 4
    with pytest.raises(ValueError, match=r"G_off must be smaller than G_on"):             # was silent
        fit_regime(R, c, d, 2e-6, 1e-6)
    with pytest.raises(ValueError, match=r"G_off must be a finite number > 0; got nan"):
        fit_regime(R, c, d, math.nan, 2e-6)
    with pytest.raises(ValueError, match=r"R, c and d_eps must be finite and > 0"):       # was NaN slopes
        fit_regime(np.array([math.nan, 2e5, 3e5, 4e5]), c, d, 1e-6, 2e-6)
    with pytest.raises(ValueError, match=r"missing.mat: no such file"):
        load_siox_mat(tmp_path / "missing.mat")
    with pytest.raises(ValueError, match=r"no such file"):
        load_siox_mat(tmp_path)
