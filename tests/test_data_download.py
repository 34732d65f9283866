"""Downloads against a local HTTP server on 127.0.0.1: mirrors, bad checksums, dropped connections."""
import gzip
import hashlib
import http.server
import logging
import threading

import numpy as np
import pytest

from memnp.data import datasets, download, idx, sources
from memnp.data.download import ChecksumError, DataUnavailableError, DownloadError
from memnp.data.sources import RemoteFile


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}    # path -> bytes
    drop: set = set()   # paths whose connection is dropped half-way
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in self.drop:
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "drop": set(), "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("MEMNP_OFFLINE", raising=False)


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_verifies_and_places(server, tmp_path):
    payload = bytes(range(256)) * 5000
    server.files["/a/file.bin"] = payload
    remote = RemoteFile("file.bin", (server.base + "/a/file.bin",), sha256=_sha(payload))
    path = download.download(remote, tmp_path / "d")
    assert path == tmp_path / "d" / "file.bin" and path.read_bytes() == payload
    assert _leftovers(tmp_path / "d") == ["file.bin"]


def test_mirror_fallback(server, tmp_path):
    payload = b"memnp" * 1000
    server.files["/second/f"] = payload
    remote = RemoteFile("f", (server.base + "/first/f", server.base + "/second/f"), sha256=_sha(payload))
    assert download.download(remote, tmp_path).read_bytes() == payload
    assert server.hits == ["/first/f", "/second/f"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/f"] = b"tampered content"
    remote = RemoteFile("f", (server.base + "/f",), sha256=_sha(b"original content"))
    with pytest.raises(ChecksumError, match="SHA-256") as info:
        download.download(remote, tmp_path)
    assert _sha(b"tampered content") in str(info.value)
    assert _leftovers(tmp_path) == []


def test_md5_mismatch(server, tmp_path):
    server.files["/f"] = b"abc"
    good = RemoteFile("f", (server.base + "/f",), md5=hashlib.md5(b"abc").hexdigest())
    assert download.download(good, tmp_path).read_bytes() == b"abc"
    bad = RemoteFile("g", (server.base + "/f",), md5=hashlib.md5(b"abd").hexdigest())
    with pytest.raises(ChecksumError, match="MD5"):
        download.download(bad, tmp_path)
    assert _leftovers(tmp_path) == ["f"]


def test_dropped_connection_leaves_nothing(server, tmp_path):
    payload = b"x" * 300_000
    server.files["/f"] = payload
    server.drop.add("/f")
    remote = RemoteFile("f", (server.base + "/f",), sha256=_sha(payload))
    with pytest.raises(DownloadError, match="closed early|IncompleteRead|Connection"):
        download.download(remote, tmp_path)
    assert _leftovers(tmp_path) == []


def test_unverifiable_file_is_logged(server, tmp_path, caplog):
    server.files["/f"] = b"no checksum known"
    remote = RemoteFile("f", (server.base + "/f",))
    with caplog.at_level(logging.WARNING, logger="memnp.data"):
        download.download(remote, tmp_path)
    assert "could not verify" in caplog.text and _sha(b"no checksum known") in caplog.text


def test_unreachable_server_gives_placement_message(tmp_path):
    remote = RemoteFile("f.gz", ("http://127.0.0.1:9/f.gz",), sha256="0" * 64)
    with pytest.raises(DataUnavailableError) as info:
        download.ensure([remote], tmp_path / "x", what="Thing", timeout=5)
    message = str(info.value)
    assert str(tmp_path / "x" / "f.gz") in message and "http://127.0.0.1:9/f.gz" in message
    assert "download failed" in message
    assert _leftovers(tmp_path / "x") == []


def test_offline_switch_does_not_touch_network(server, tmp_path, monkeypatch):
    server.files["/f"] = b"data"
    monkeypatch.setenv("MEMNP_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="MEMNP_OFFLINE"):
        download.ensure([RemoteFile("f", (server.base + "/f",))], tmp_path, what="Thing")
    assert server.hits == []


def test_load_dataset_downloads_missing_files(server, tmp_path, rng, monkeypatch):
    files = []
    expected = {}
    for stem, n in (("train", 10), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{stem}-{kind}-ubyte.gz"
            data = gzip.compress(idx.encode_idx(arr))
            server.files["/fm/" + name] = data
            files.append(RemoteFile(name, (server.base + "/fm/" + name,), sha256=_sha(data)))
        expected[stem] = (images, labels)
    monkeypatch.setattr(sources, "FASHION_MNIST_FILES", tuple(files))
    x, y = datasets.load_dataset("fashion-mnist", tmp_path, "test", dtype="uint8")
    np.testing.assert_array_equal(x, expected["t10k"][0])
    assert sorted(server.hits) == ["/fm/t10k-images-idx3-ubyte.gz", "/fm/t10k-labels-idx1-ubyte.gz"]
    x, y = datasets.load_dataset("fashion-mnist", tmp_path, "validation", dtype="uint8")
    np.testing.assert_array_equal(y, expected["train"][1][8:])
    # Present files are not downloaded again.
    datasets.load_dataset("fashion-mnist", tmp_path, "train")
    assert len(server.hits) == 4


def test_remote_file_validation():
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("f", ("http://x/f",), sha256="abc")
    with pytest.raises(ValueError, match="plain file name"):
        RemoteFile("../f", ("http://x/f",))
    with pytest.raises(ValueError, match="mirror"):
        RemoteFile("f", ())
    # Every shipped data set is verified by SHA-256.
    for remote in (sources.MNIST_FILES + sources.FASHION_MNIST_FILES
                   + (sources.CIFAR10_ARCHIVE, sources.SIOX_MULTISTATE)):
        assert remote.sha256 is not None and len(remote.sha256) == 64


def test_shipped_checksums_match_shared_files(shared_data):
    for remote in sources.FASHION_MNIST_FILES:
        path = shared_data / "fashion-mnist" / remote.name
        if path.is_file():
            assert download.file_digest(path) == remote.sha256
    path = shared_data / "SiO_x-multistate-data.mat"
    if path.is_file():
        assert download.file_digest(path) == sources.SIOX_MULTISTATE.sha256


def test_cifar_download_extracts_batches(server, tmp_path, rng, monkeypatch):
    import io
    import tarfile

    from memnp.data import cifar
    buf = io.BytesIO()
    expected = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in cifar.ALL_FILES:
            images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 10, 2).astype(np.uint8)
            rec = np.concatenate([labels[:, None], images.reshape(2, -1)], axis=1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(rec)
            tar.addfile(info, io.BytesIO(rec))
            expected[name] = (images, labels)
    data = buf.getvalue()
    server.files["/c.tar.gz"] = data
    remote = RemoteFile("cifar-10-binary.tar.gz", (server.base + "/c.tar.gz",),
                        md5=hashlib.md5(data).hexdigest())
    monkeypatch.setattr(sources, "CIFAR10_ARCHIVE", remote)
    x, y = datasets.load_dataset("cifar10", tmp_path, "test", dtype="uint8", layout="nchw")
    np.testing.assert_array_equal(x, expected["test_batch.bin"][0])
    assert sorted(_leftovers(tmp_path / "cifar-10-batches-bin")) == sorted(cifar.ALL_FILES)
    # A wrong checksum: DataUnavailableError, nothing written.
    bad = RemoteFile("cifar-10-binary.tar.gz", (server.base + "/c.tar.gz",), md5="0" * 32)
    monkeypatch.setattr(sources, "CIFAR10_ARCHIVE", bad)
    with pytest.raises(DataUnavailableError, match="MD5"):
        datasets.load_dataset("cifar10", tmp_path / "other", "train")
    assert _leftovers(tmp_path / "other" / "cifar-10-batches-bin") == []


def test_siox_file_download_and_names(server, tmp_path, monkeypatch):
    from scipy.io import savemat

    from memnp.data.devices import siox, synthetic
    curves = synthetic.synthetic_siox_curves(4, rng=0)
    # The published layout: (point, channel, state), state axis flipped.
    data = np.stack([curves.I.T, curves.V.T, (curves.V / np.where(curves.I == 0, 1, curves.I)).T], axis=1)
    savemat(tmp_path / "src.mat", {"data": np.flip(data, axis=2)})
    payload = (tmp_path / "src.mat").read_bytes()
    server.files["/z.mat"] = payload
    remote = RemoteFile("SiO_x-multistate-data.mat", (server.base + "/z.mat",), sha256=_sha(payload))
    monkeypatch.setattr(sources, "SIOX_MULTISTATE", remote)
    fit = siox.fit_siox_file(data_dir=tmp_path / "d")
    np.testing.assert_allclose(np.sort(fit.c), np.sort(curves.c), rtol=1e-6)
    assert _leftovers(tmp_path / "d") == ["SiO_x-multistate-data.mat"]
    # Zenodo's own file name is recognised too, without a download.
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "excelDataCombined.mat").write_bytes(payload)
    assert siox.siox_multistate_path(tmp_path / "e").name == "excelDataCombined.mat"
    assert server.hits == ["/z.mat"]
