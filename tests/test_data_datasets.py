"""load_dataset: the paper's splits, dtypes, layouts, the embedded subset and its fallback."""
import warnings

import numpy as np
import pytest

from memnp.data import cifar, datasets, idx, paths
from memnp.data.download import DataUnavailableError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test here touches the network; the subset warning is re-armed for every test."""
    monkeypatch.setenv("MEMNP_OFFLINE", "1")
    monkeypatch.setattr(datasets, "_warned_subset", False)


def _write_mnist_like(directory, rng, n_train=50, n_test=20, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    data = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        idx.write_idx(directory / f"{stem}-images-idx3-ubyte{suffix}", images)
        idx.write_idx(directory / f"{stem}-labels-idx1-ubyte{suffix}", labels)
        data[stem] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_paper_splits_on_generated_idx(tmp_path, rng, gz):
    data = _write_mnist_like(tmp_path / "fashion-mnist", rng, gz=gz)
    splits = datasets.load_splits("fashion-mnist", tmp_path, dtype="uint8")
    x_tr, y_tr = splits["train"]
    x_va, y_va = splits["validation"]
    x_te, y_te = splits["test"]
    assert x_tr.shape == (40, 28, 28) and x_va.shape == (10, 28, 28) and x_te.shape == (20, 28, 28)
    np.testing.assert_array_equal(x_tr, data["train"][0][:40])
    np.testing.assert_array_equal(y_va, data["train"][1][40:])
    np.testing.assert_array_equal(x_te, data["t10k"][0])
    x, y = datasets.load_dataset("fashion-mnist", tmp_path, "validation", dtype="float32")
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, data["train"][0][40:].astype(np.float32) / np.float32(255))
    assert x.max() <= 1.0 and x.min() >= 0.0
    np.testing.assert_array_equal(y, data["train"][1][40:])


def test_data_dir_precedence(tmp_path, rng, monkeypatch):
    monkeypatch.setenv("MEMNP_DATA", str(tmp_path / "env"))
    assert paths.data_dir() == tmp_path / "env"
    assert paths.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MEMNP_DATA")
    assert str(paths.data_dir()).endswith(".cache/memnp")
    data = _write_mnist_like(tmp_path / "env" / "mnist", rng)
    monkeypatch.setenv("MEMNP_DATA", str(tmp_path / "env"))
    x, y = datasets.load_dataset("mnist", split="test", dtype="uint8", fallback=False)
    np.testing.assert_array_equal(y, data["t10k"][1])


def test_cifar_splits_and_layouts(tmp_path, rng):
    sub = tmp_path / cifar.SUBDIR
    written = {}
    for name in cifar.ALL_FILES:
        images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).astype(np.uint8)
        cifar.write_cifar_batch(sub / name, images, labels)
        written[name] = (images, labels)
    all_train = np.concatenate([written[n][0] for n in cifar.TRAIN_FILES])
    x, y = datasets.load_dataset("cifar10", tmp_path, "train", dtype="uint8")
    assert x.shape == (16, 32, 32, 3)  # 80 % of 20
    np.testing.assert_array_equal(x, all_train[:16].transpose(0, 2, 3, 1))
    x, _ = datasets.load_dataset("CIFAR-10", tmp_path, "validation", dtype="uint8", layout="nchw")
    np.testing.assert_array_equal(x, all_train[16:])
    x, y = datasets.load_dataset("cifar10", tmp_path, "test")
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, written["test_batch.bin"][1])


def test_embedded_split_is_stratified_disjoint_and_fixed():
    sel = datasets.embedded_split_indices()
    sizes = {k: len(v) for k, v in sel.items()}
    assert sizes == {"train": 6400, "validation": 1600, "test": 2000}
    every = np.concatenate(list(sel.values()))
    assert np.array_equal(np.sort(every), np.arange(10000))
    _, labels = datasets._embedded_arrays()
    counts = np.bincount(labels)
    assert counts.tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    for name, frac in (("train", 0.64), ("validation", 0.16), ("test", 0.2)):
        per_class = np.bincount(labels[sel[name]], minlength=10)
        assert np.all(np.abs(per_class - frac * counts) <= 1), (name, per_class)
    # The classes are interleaved: every run of 10 consecutive training digits has >= 8 classes.
    train_labels = labels[sel["train"]]
    assert min(len(set(train_labels[i:i + 10])) for i in range(0, 6390, 10)) >= 8
    # The documented rule fixes the order: smallest key 0.5 / n first, so the largest classes lead:
    # the first digit of class 1 (n = 1127, index 1001), of class 7 (n = 1070, index 7008), of class 3.
    assert sel["train"][:3].tolist() == [1001, 7008, 1001 + 1127 + 991]


def test_embedded_warns_once_and_fallback(tmp_path):
    with pytest.warns(UserWarning, match="subset") as record:
        x, y = datasets.load_dataset("mnist", tmp_path, "train")
    assert len([w for w in record if "subset" in str(w.message)]) == 1
    assert x.shape == (6400, 28, 28) and x.dtype == np.float32 and y.dtype == np.uint8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x2, y2 = datasets.load_dataset("mnist-10k", split="test", dtype="uint8")
    assert x2.shape == (2000, 28, 28) and x2.dtype == np.uint8
    test_idx = datasets.embedded_split_indices()["test"]
    np.testing.assert_array_equal(x2, datasets._embedded_arrays()[0][test_idx])


def test_missing_data_message(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        datasets.load_dataset("mnist", tmp_path, "train", fallback=False)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "train-labels-idx1-ubyte.gz" in message and "MEMNP_DATA" in message
    with pytest.raises(DataUnavailableError, match="cifar-10-binary.tar.gz"):
        datasets.load_dataset("cifar10", tmp_path, "test")
    with pytest.raises(DataUnavailableError, match="fashion-mnist"):
        datasets.load_dataset("fashion-mnist", tmp_path, "test", download=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "svhn"}, "name must be one of"),
    ({"name": "mnist", "split": "val"}, "split must be one of"),
    ({"name": "mnist", "dtype": "float64"}, "dtype must be"),
    ({"name": "cifar10", "layout": "hwc"}, "layout must be"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_dataset(data_dir=tmp_path, **kwargs)


def test_mismatched_images_and_labels(tmp_path, rng):
    d = tmp_path / "mnist"
    _write_mnist_like(d, rng)
    idx.write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        datasets.load_dataset("mnist", tmp_path, "test", fallback=False)


def test_imports_stay_light():
    import subprocess
    import sys
    code = ("import sys, memnp.data\n"
            "light = set(sys.modules)\n"
            "import memnp.data.datasets, memnp.data.devices, memnp.data.presets\n"
            "bad = [m for m in ('matplotlib', 'click', 'h5py') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "assert not any(m.startswith('scipy') for m in light)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(datasets.EMBEDDED_PATH.parents[2]))
