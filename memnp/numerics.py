"""The version of memnp's numbers, and the stamp every stored result carries.

:data:`NUMERICS_VERSION` names the numbers memnp computes. It covers everything a job's result
depends on besides its config and seed: the kernels (PF currents, their VJPs, the fused loops and
their float32 / float64 arithmetic), the order and the draws of the nonideality phases (Box-Muller
words, stuck masks, drift, read noise, DAC / ADC), the circuit solver, the layers' forward and
backward passes, the optimiser, the training protocol (shuffling, validation, the kept epoch,
augmentation) and the inference protocol (repeats, batches, power). Bump it with any change that
alters a number a job produces (an accuracy, a loss, a power, a history entry or a weight, even in
its last bit), and update the pins of ``tests/test_numerics_version.py`` in the same commit.
Changes that leave every number as it was (speed, messages, new options whose defaults keep the old
path) do not bump it. A change of a job's config is not a numerics change: it gives a new job key
(:mod:`memnp.experiments.keys`).

The kernel backend (``cpu``, ``cuda`` or ``numpy``, :mod:`memnp.kernels.backend`) is part of the
stamp too: float32 results on a GPU differ from the CPU's in the last bits.

Where it is recorded: next to the job's key, never inside the hashed content, so job keys do not
change with the version. Every job record (``jobs/train/<key>.json``, ``jobs/infer/<key>.json``,
``train``'s ``training.json``, ``infer``'s ``--out`` record), every in-job checkpoint and the
manifest hold ``"numerics_version": N`` and ``"backend": NAME``. A record without these fields was
written by an older memnp, before the version existed ("unversioned"). A rerun into a directory
holding results of another stamp stops before it computes anything
(:mod:`memnp.experiments.stale`), unless told to recompute them (``--recompute-stale``).

History:

1. The numbers of memnp 0.1.0 as of 2026-12-04 (commit f91c349), the first versioned ones.
2. The line-resistance adjoint checks its residual and refines or solves directly where CG
   crawls (:mod:`memnp.circuit.adjoint`): training with wires on strongly coupled arrays (e.g.
   low-resistance devices at r >= 0.1 ohm) gets exact gradients, so its numbers change; the cuda
   backend's PF VJP sums over chunks of examples, and its line-resistance solver and adjoint take
   line steps where the cpu's do (last bits of its results). Every other cpu
   number is as in version 1.
3. With the cuda backend, training jobs of networks the GPU trainer supports train, validate and
   test on the device (:mod:`memnp.experiments.device_train`): their cuda numbers change in the
   last bits (float32 sums in another order). Every cpu number is as in version 2.
4. With the cuda backend, more networks train and are evaluated on the device: linear crossbars
   (the ideal stage, D2D, stuck devices alone), standard weights under either mapping rule or the
   ideal stage, StuckDistribution's drawn stuck values and Gaussian programming noise; test passes
   and inference repeats of those stages, and chip-sampling inference, run there too. Their cuda
   numbers change in the last bits. Every cpu number is as in version 3.
"""
import dataclasses

from .kernels.backend import backend_name

#: The version of the numbers memnp computes (see the module docstring for what it covers).
NUMERICS_VERSION = 4

#: The record fields that hold the stamp.
VERSION_FIELD = "numerics_version"
BACKEND_FIELD = "backend"


@dataclasses.dataclass(frozen=True)
class NumericsStamp:
    """The numerics version and the kernel backend a result was computed with.

    version: an int >= 1, or None for a result written before versions existed (unversioned).
    backend: ``cpu``, ``cuda`` or ``numpy``, or None when the result does not say (unversioned).
    """

    version: object
    backend: object

    def __post_init__(self):
        version = self.version
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError(f"numerics version must be an integer >= 1 or None; got {version!r}")
        if self.backend is not None and not isinstance(self.backend, str):
            raise ValueError(f"backend must be a backend name or None; got {self.backend!r}")

    @classmethod
    def of(cls, record):
        """The stamp a record (a dict) carries; fields that are missing or malformed read as None."""
        version, backend = record.get(VERSION_FIELD), record.get(BACKEND_FIELD)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            version = None
        return cls(version, backend if isinstance(backend, str) else None)

    def to_dict(self):
        """The record fields: ``{"numerics_version": N, "backend": NAME}``."""
        return {VERSION_FIELD: self.version, BACKEND_FIELD: self.backend}

    def describe(self):
        """E.g. ``numerics version 1, backend cpu`` or ``no numerics version (an older memnp)``."""
        version = "no numerics version (an older memnp)" if self.version is None else \
            f"numerics version {self.version}"
        return f"{version}, backend {self.backend or 'unknown'}"


def current(backend=None):
    """The stamp of results computed now, in this process: :data:`NUMERICS_VERSION` and the backend
    ``backend`` resolves to (default: ``MEMNP_BACKEND``, else ``cpu``; ValueError for an unknown one)."""
    return NumericsStamp(NUMERICS_VERSION, backend_name(backend))
