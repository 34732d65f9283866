"""What a memristive layer keeps of its last read for the backward pass and the power report."""
import dataclasses

import numpy as np


@dataclasses.dataclass(eq=False)
class DigitalRead:
    """A digital-shortcut read (standard weights, ideal stage): y = x W + b.

    x (p, n_rows) the inputs; stage the stage it ran under; backend the kernel backend
    (memnp.kernels.backend.Backend) for the power the ideal crossbar would dissipate."""

    x: np.ndarray
    stage: object
    backend: object


@dataclasses.dataclass(eq=False)
class CrossbarRead:
    """A read through the crossbar.

    M the weight matrix mapped (double: D (n_rows + 1, 2 n_out); standard: W with the bias row);
    max_weight its largest magnitude (sets k_G); I (p, n) the column currents in A; crossbar the
    memnp.crossbar.CrossbarPass that read them (its draws and state); stage the stage; rows the
    indices of the crossbar rows read (ascending), or None when every row was read."""

    M: np.ndarray
    max_weight: float
    I: np.ndarray
    crossbar: object
    stage: object
    rows: object
