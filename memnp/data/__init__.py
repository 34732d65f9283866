"""Data and devices: image data sets, downloads, measured device data, fitting and presets.

Submodules are imported on first use (so ``import memnp.data`` stays light):

- :mod:`memnp.data.datasets` — ``load_dataset``, ``load_splits`` (MNIST, Fashion-MNIST, CIFAR-10,
  the embedded MNIST subset) with the paper's splits;
- :mod:`memnp.data.idx`, :mod:`memnp.data.cifar` — file formats;
- :mod:`memnp.data.download`, :mod:`memnp.data.sources` — mirrors, checksums, atomic downloads;
- :mod:`memnp.data.devices` — SiOx fitting, Ta/HfO2 extraction, synthetic generators;
- :mod:`memnp.data.presets` — published device presets as Stage dicts (:mod:`memnp.data.preset_files`:
  the Preset record and preset files);
- :mod:`memnp.data.paths` — the data directory (argument, ``MEMNP_DATA``, ``~/.cache/memnp``).
"""
from importlib import import_module

_LAZY = {
    "load_dataset": "datasets", "load_splits": "datasets", "load_embedded": "datasets",
    "embedded_split_indices": "datasets", "DATASETS": "datasets", "SPLITS": "datasets",
    "data_dir": "paths", "default_data_dir": "paths",
    "read_idx": "idx", "write_idx": "idx", "read_cifar_batch": "cifar", "write_cifar_batch": "cifar",
    "DataUnavailableError": "download", "DownloadError": "download", "ChecksumError": "download",
    "Preset": "preset_files", "preset": "presets", "preset_record": "presets", "list_presets": "presets",
    "save_preset": "preset_files", "load_preset": "preset_files", "load_preset_record": "preset_files",
    "preset_stage": "presets", "preset_from_fit": "preset_files",
    "fit_siox": "devices", "fit_siox_file": "devices", "load_siox_mat": "devices",
    "extract_tahfo2": "devices", "load_tahfo2": "devices",
    "synthetic_siox_curves": "devices", "synthetic_tahfo2_reads": "devices",
}
_SUBMODULES = ("cifar", "datasets", "devices", "download", "idx", "paths", "preset_files", "presets",
               "sources")

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
