"""IDX and CIFAR-10 binary file formats: generated files, the full Fashion-MNIST, corrupt files."""
import gzip
import io
import tarfile

import numpy as np
import pytest

from memnp.data import cifar, idx


def _images(rng, n, shape=(28, 28)):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, rng, name):
    images = _images(rng, 7)
    path = idx.write_idx(tmp_path / name, images)
    out = idx.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, images)
    assert out.flags.writeable
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_idx_header_bytes_and_other_dtypes(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    raw = idx.encode_idx(labels)
    assert raw[:8] == bytes([0, 0, 8, 1, 0, 0, 0, 5]) and raw[8:] == bytes([3, 1, 4, 1, 5])
    values = np.array([[1.5, -2.25], [3.0, 1e6]], dtype=np.float32)
    raw = idx.encode_idx(values)
    assert raw[2] == 0x0D and raw[3] == 2
    np.testing.assert_array_equal(idx.parse_idx(raw), values)
    ints = np.array([-70000, 5, 123456], dtype=np.int32)
    assert idx.parse_idx(idx.encode_idx(ints)).tolist() == [-70000, 5, 123456]
    with pytest.raises(ValueError, match="dtype"):
        idx.encode_idx(np.zeros(3, dtype=np.uint16))


def test_idx_gzip_detected_by_content_not_name(tmp_path, rng):
    images = _images(rng, 3)
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(idx.encode_idx(images)))
    np.testing.assert_array_equal(idx.read_idx(path), images)
    assert idx.find_idx(tmp_path, "absent") is None
    (tmp_path / "x-idx1-ubyte.gz").write_bytes(b"")
    assert idx.find_idx(tmp_path, "x-idx1-ubyte") == tmp_path / "x-idx1-ubyte.gz"


def test_idx_corrupt_files(tmp_path, rng):
    good = idx.encode_idx(_images(rng, 4))
    cases = {
        "truncated": (good[:-10], "truncated"),
        "wrongmagic": (b"\x08\x03" + good[2:], "wrong magic"),
        "badtype": (b"\x00\x00\x07\x03" + good[4:], "wrong magic"),
        "trailing": (good + b"\x00\x00", "wrong size"),
        "tiny": (b"\x00\x00", "too short"),
        "header": (good[:9], "truncated IDX header"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message) as info:
            idx.read_idx(path)
        assert name in str(info.value)  # the message names the file
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(good)[:-30])
    with pytest.raises(ValueError, match="gzip"):
        idx.read_idx(gz)


def test_full_fashion_mnist(shared_data):
    directory = shared_data / "fashion-mnist"
    if not directory.is_dir():
        pytest.skip("fashion-mnist is absent")
    train = idx.read_idx(directory / "train-images-idx3-ubyte.gz")
    labels = idx.read_idx(directory / "train-labels-idx1-ubyte.gz")
    test = idx.read_idx(directory / "t10k-images-idx3-ubyte.gz")
    test_labels = idx.read_idx(directory / "t10k-labels-idx1-ubyte.gz")
    assert train.shape == (60000, 28, 28) and test.shape == (10000, 28, 28)
    assert labels.shape == (60000,) and test_labels.shape == (10000,)
    # Fashion-MNIST is balanced: 6,000 / 1,000 images per class.
    assert np.bincount(labels).tolist() == [6000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert train.max() == 255 and train.min() == 0


def _cifar(rng, n):
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def test_cifar_batch_layout(tmp_path, rng):
    images, labels = _cifar(rng, 5)
    path = cifar.write_cifar_batch(tmp_path / "b.bin", images, labels)
    raw = path.read_bytes()
    assert len(raw) == 5 * 3073
    # Record 2: label byte, then red plane row-major, then green, then blue.
    rec = raw[2 * 3073:3 * 3073]
    assert rec[0] == labels[2]
    assert rec[1:1025] == images[2, 0].tobytes() and rec[2049:] == images[2, 2].tobytes()
    out_images, out_labels = cifar.read_cifar_batch(path)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)


def test_cifar_corrupt(tmp_path, rng):
    images, labels = _cifar(rng, 2)
    raw = cifar.write_cifar_batch(tmp_path / "b.bin", images, labels).read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="wrong size"):
        cifar.read_cifar_batch(tmp_path / "cut.bin")
    bad = bytearray(raw)
    bad[3073] = 12
    (tmp_path / "label.bin").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="label 12"):
        cifar.read_cifar_batch(tmp_path / "label.bin")
    with pytest.raises(ValueError, match="shape"):
        cifar.write_cifar_batch(tmp_path / "x.bin", images[:, :2], labels)


def _tar(path, members, extra=()):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in list(members.items()) + list(extra):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _batches(rng, n=3):
    out = {}
    for name in cifar.ALL_FILES:
        images, labels = _cifar(rng, n)
        out[name] = (images, labels)
    return out


def _batch_bytes(images, labels):
    rec = np.empty((len(labels), 3073), np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = images.reshape(len(labels), -1)
    return rec.tobytes()


def test_cifar_archive_extraction_is_safe(tmp_path, rng):
    batches = _batches(rng)
    members = {f"cifar-10-batches-bin/{n}": _batch_bytes(*b) for n, b in batches.items()}
    evil = [("../evil.bin", b"x"), ("/tmp/abs.bin", b"y"), ("cifar-10-batches-bin/readme.html", b"z"),
            ("deep/er/test_batch.bin", b"w")]
    archive = _tar(tmp_path / "c.tar.gz", members, evil)
    dest = tmp_path / "out"
    paths = cifar.extract_cifar_binary(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(cifar.ALL_FILES)
    assert [p.name for p in paths] == list(cifar.ALL_FILES)
    assert not (tmp_path / "evil.bin").exists()
    arrays = cifar.load_cifar10_arrays(dest)
    train_x, train_y = arrays["train"]
    assert train_x.shape == (15, 3, 32, 32)
    np.testing.assert_array_equal(train_x[3:6], batches["data_batch_2.bin"][0])
    np.testing.assert_array_equal(arrays["test"][1], batches["test_batch.bin"][1])


def test_cifar_archive_bad_leaves_nothing(tmp_path, rng):
    batches = _batches(rng)
    members = {f"cifar-10-batches-bin/{n}": _batch_bytes(*b) for n, b in batches.items()}
    members.pop("cifar-10-batches-bin/test_batch.bin")
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="test_batch.bin"):
        cifar.extract_cifar_binary(_tar(tmp_path / "a.tar.gz", members), dest)
    assert not dest.exists() or list(dest.iterdir()) == []
    # A truncated archive.
    full = {f"cifar-10-batches-bin/{n}": _batch_bytes(*b) for n, b in batches.items()}
    data = _tar(tmp_path / "b.tar.gz", full).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        cifar.extract_cifar_binary(tmp_path / "cut.tar.gz", dest)
    assert not dest.exists() or list(dest.iterdir()) == []
    # A member with a wrong size.
    full["cifar-10-batches-bin/data_batch_3.bin"] = full["cifar-10-batches-bin/data_batch_3.bin"][:-5]
    with pytest.raises(ValueError, match="wrong size"):
        cifar.extract_cifar_binary(_tar(tmp_path / "c.tar.gz", full), dest)
    assert not dest.exists() or list(dest.iterdir()) == []
