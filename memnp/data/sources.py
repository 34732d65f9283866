"""Where memnp's data files come from: public mirrors and checksums.

Every checksum below is either computed from a copy of the file the authors of memnp hold
(SHA-256), or the MD5 value the distributor itself publishes (used only where no SHA-256 is
known). Where neither is known the checksum is None, and the downloader logs that it could not
verify the file. None of these values are guessed.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes:
        name: file name inside its target directory.
        urls: full URLs (mirrors) tried in order.
        sha256: expected SHA-256 (hex), or None when unknown.
        md5: the distributor's published MD5 (hex), checked only when ``sha256`` is None.
    """
    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None

    def __post_init__(self):
        if not self.name or "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise ValueError(f"name must be a plain file name, got {self.name!r}")
        if not self.urls:
            raise ValueError("urls must list at least one mirror")
        for field, length in (("sha256", 64), ("md5", 32)):
            value = getattr(self, field)
            hexdigits = value is None or all(ch in "0123456789abcdef" for ch in value)
            if value is not None and (len(value) != length or not hexdigits):
                raise ValueError(f"{field} must be {length} lowercase hex digits or None, got {value!r}")


def _mirrored(name: str, bases: tuple[str, ...], **checks) -> RemoteFile:
    return RemoteFile(name=name, urls=tuple(base + name for base in bases), **checks)


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# SHA-256 values as recorded in TensorFlow Datasets' URL checksums for these files (sizes 9,912,422,
# 28,881, 1,648,877 and 4,542 bytes); the MD5s are the ones the distributors publish.
MNIST_FILES = (
    _mirrored("train-images-idx3-ubyte.gz", MNIST_MIRRORS,
              sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
              md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    _mirrored("train-labels-idx1-ubyte.gz", MNIST_MIRRORS,
              sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
              md5="d53e105ee54ea40749a09fcbcd1e9432"),
    _mirrored("t10k-images-idx3-ubyte.gz", MNIST_MIRRORS,
              sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
              md5="9fb629c4189551a2d022fa330f9573f3"),
    _mirrored("t10k-labels-idx1-ubyte.gz", MNIST_MIRRORS,
              sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
              md5="ec29112dd5afa0611ce80d1b7f02629c"),
)

FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# SHA-256 computed from the full Fashion-MNIST files held by the developers.
FASHION_MNIST_FILES = (
    _mirrored("train-images-idx3-ubyte.gz", FASHION_MNIST_MIRRORS,
              sha256="b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    _mirrored("train-labels-idx1-ubyte.gz", FASHION_MNIST_MIRRORS,
              sha256="0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    _mirrored("t10k-images-idx3-ubyte.gz", FASHION_MNIST_MIRRORS,
              sha256="cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    _mirrored("t10k-labels-idx1-ubyte.gz", FASHION_MNIST_MIRRORS,
              sha256="8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
)

# SHA-256 as recorded in TensorFlow Datasets' URL checksums (170,052,171 bytes); the MD5 is the one
# published on the CIFAR-10 page next to the binary version.
CIFAR10_ARCHIVE = RemoteFile(
    name="cifar-10-binary.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    md5="c32a1d4ab5d03f1284b67883e8d87530",
)

# Zenodo record 5762184, file excelDataCombined.mat, stored under memnp's name for it.
SIOX_MULTISTATE = RemoteFile(
    name="SiO_x-multistate-data.mat",
    urls=("https://zenodo.org/records/5762184/files/excelDataCombined.mat?download=1",
          "https://zenodo.org/record/5762184/files/excelDataCombined.mat"),
    sha256="a07035682c4310988dedb697ebfcb5a302e447aaffb89309ba1a99812189ddf6",
)
