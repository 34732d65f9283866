"""Topology of a crossbar with line resistance, node numbering and shapes.

The network is badcrossbar's (Joksas and Mehonic). With m word lines (rows i), n bit lines
(columns j), r_word and r_bit ohms per segment::

    V[0] --r_w--o--r_w--o--r_w--o          word line 0: driver at the left end, open right end
                |       |       |
               [d]     [d]     [d]          device (i, j) between word node (i, j) and
                |       |       |           bit node (i, j)
                o       o       o
                r_b     r_b     r_b
    V[1] --r_w--o--r_w--o--r_w--o          word line 1
                |       |       |
               [d]     [d]     [d]
                |       |       |
                o       o       o
                r_b     r_b     r_b
                |       |       |
               (SA)    (SA)    (SA)        sense amplifiers: virtual ground, 0 V

Word line i is driven at its left end by V[i] through one segment r_word, then r_word between
neighbouring columns (n segments). Bit line j has r_bit between neighbouring rows and one r_bit
from the last row to its sense amplifier (m segments; its top end, row 0, is open). The output
current I[j] of column j is the current through that last segment, flowing into the amplifier:
positive for positive voltages. Device current is positive from the word node to the bit node.

Unknowns of the nodal equations: the word-line node voltages U (m, n) and the bit-line node
voltages W (m, n), 2 m n per example. Node numbering (badcrossbar's): word node (i, j) is
i n + j, bit node (i, j) is m n + i n + j. A side with zero resistance has known node voltages
(U = V[i] on every word node when r_word = 0, W = 0 when r_bit = 0) and drops out of the
unknowns, which halves them; with both zero there is nothing to solve.
"""
import dataclasses
import math

import numpy as np


def non_negative(name, value):
    """A finite number >= 0 (a resistance in ohms), returned as float; ValueError naming it."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a finite number >= 0, not a boolean; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {number!r}")
    return number


@dataclasses.dataclass(frozen=True)
class Network:
    """An m x n crossbar with r_word and r_bit (ohms per segment, >= 0)."""

    m: int
    n: int
    r_word: float
    r_bit: float

    def __post_init__(self):
        for name in ("m", "n"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "r_word", non_negative("r_word", self.r_word))
        object.__setattr__(self, "r_bit", non_negative("r_bit", self.r_bit))

    @property
    def size(self):
        """Number of devices m n."""
        return self.m * self.n

    @property
    def word_unknown(self):
        """True when the word-line node voltages are unknowns (r_word > 0)."""
        return self.r_word > 0

    @property
    def bit_unknown(self):
        """True when the bit-line node voltages are unknowns (r_bit > 0)."""
        return self.r_bit > 0

    @property
    def n_unknowns(self):
        """2 m n, m n with one side of zero resistance, 0 with both."""
        return self.size * (int(self.word_unknown) + int(self.bit_unknown))

    def word_index(self, i, j):
        """Index of word node (i, j) among the unknowns (only when r_word > 0)."""
        return i * self.n + j

    def bit_index(self, i, j):
        """Index of bit node (i, j) among the unknowns (only when r_bit > 0)."""
        return (self.size if self.word_unknown else 0) + i * self.n + j

    def label(self):
        return f"{self.m} x {self.n} crossbar, r_word={self.r_word:g} ohm, r_bit={self.r_bit:g} ohm"


def line_voltages(net, x, V):
    """(U, W), each (p, m, n) in V: the node voltages that device currents x (p, m, n) in A set up.

    Word-line segment k of row i (k = 0 from the driver) carries the currents of devices k..n-1;
    bit-line segment k of column j (k = m - 1 into the amplifier) carries the currents of rows
    0..k. U = V - r_word * (cumulative sum of those currents from the driver), W = r_bit *
    (cumulative sum from the amplifier). Plain NumPy (float64)."""
    x = np.asarray(x, dtype=np.float64)
    word_segments = np.cumsum(x[:, :, ::-1], axis=2)[:, :, ::-1]      # current into node (i, j)
    bit_segments = np.cumsum(x, axis=1)                                # current below node (i, j)
    U = np.asarray(V, dtype=np.float64)[:, :, None] - net.r_word * np.cumsum(word_segments, axis=2)
    W = net.r_bit * np.cumsum(bit_segments[:, ::-1], axis=1)[:, ::-1]
    return U, W, word_segments, bit_segments
