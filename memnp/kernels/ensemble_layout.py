"""The ragged layout of the K-axis kernels (issue 15: K networks of one architecture per pass).

K members read one crossbar shape (m rows, n columns) with one batch size p, but each member reads
only its own *active* rows (the rows with a nonzero input in its batch, the bias row always), so
the number of rows read, r_k, differs from member to member. The K-axis kernels take the rows of
all members concatenated; :class:`MemberRows` says which belong to whom:

- ``rows`` (R,) int64: member k's crossbar row indices, increasing, are
  ``rows[offsets[k]:offsets[k + 1]]``; R = sum_k r_k;
- ``offsets`` (K + 1,) int64: offsets[0] = 0, offsets[K] = R, r_k = offsets[k + 1] - offsets[k] >= 1.

Three packings of the arrays follow from it (units as in :mod:`memnp.kernels.reference`):

- *row-packed* (R, n): device arrays of the rows read, c (A/V), d_eps (F/m), G (S), and their
  gradients; member k's block is rows offsets[k]:offsets[k + 1] (a C-contiguous (r_k, n) slice),
  its row s being crossbar row rows[offsets[k] + s];
- *voltage-packed* (p R,): V (V) and dL/dV (1/V); member k's block is V_k (p, r_k) in C order at
  [p offsets[k], p offsets[k + 1]) (:meth:`MemberRows.block`), so each V_k is C-contiguous, as the
  single-network kernels take it;
- *per-member* (K, p, n) (or (K, p, ...)): column currents I (A), dL/dI, outputs, logits.

Per-member scalars (k_V, G_off, G_on, max_weight, learning rates, L1 gammas) are (K,) float64 arrays.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MemberRows:
    """Which crossbar rows each of K members reads (see the module docstring for the layout).

    rows (R,) int64 and offsets (K + 1,) int64; ``n_rows`` is the crossbar's row count m (every
    row index lies in [0, m)).
    """

    rows: np.ndarray
    offsets: np.ndarray
    n_rows: int

    def __post_init__(self):
        rows = np.ascontiguousarray(self.rows, dtype=np.int64)
        offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        m = int(self.n_rows)
        if m < 1:
            raise ValueError(f"n_rows must be an integer >= 1; got {self.n_rows!r}")
        if offsets.ndim != 1 or offsets.size < 2:
            raise ValueError(f"offsets must be a 1-D array of K + 1 >= 2 entries; got shape {offsets.shape}")
        if rows.ndim != 1 or offsets[0] != 0 or offsets[-1] != rows.size:
            raise ValueError(f"offsets must start at 0 and end at len(rows) = {rows.size}; got "
                             f"{offsets[0]} ... {offsets[-1]}")
        if np.any(np.diff(offsets) < 1):
            raise ValueError("offsets must increase: every member reads at least one row (its bias row)")
        if rows.size and (rows.min() < 0 or rows.max() >= m):
            raise ValueError(f"rows must hold crossbar row indices in [0, {m - 1}]; got {rows.min()} to {rows.max()}")
        steps = np.diff(rows)
        steps[offsets[1:-1] - 1] = 1        # a member's first row may be below the last one's
        if np.any(steps < 1):
            raise ValueError("rows must increase within each member")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "n_rows", m)
        rows.flags.writeable = False
        offsets.flags.writeable = False

    @classmethod
    def from_active(cls, active):
        """The rows of a (K, m) boolean mask: member k reads the rows i with active[k, i]."""
        active = np.asarray(active, dtype=bool)
        if active.ndim != 2:
            raise ValueError(f"active must have shape (members, rows); got {active.shape}")
        members, rows = np.nonzero(active)
        offsets = np.zeros(active.shape[0] + 1, np.int64)
        np.cumsum(np.count_nonzero(active, axis=1), out=offsets[1:])
        return cls(rows, offsets, active.shape[1])

    @classmethod
    def unchecked(cls, rows, offsets, n_rows):
        """A MemberRows of arrays a kernel built to this layout's rules (rows (R,) and offsets
        (K + 1,) int64, C-contiguous), without checking them again."""
        self = object.__new__(cls)
        rows.flags.writeable = False
        offsets.flags.writeable = False
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "n_rows", int(n_rows))
        return self

    @classmethod
    def full(cls, members, n_rows):
        """Every member reads all n_rows rows."""
        return cls(np.tile(np.arange(n_rows), members), np.arange(members + 1) * n_rows, n_rows)

    @property
    def members(self):
        """K, the number of members."""
        return self.offsets.size - 1

    @property
    def total(self):
        """R, the number of rows read by all members together."""
        return int(self.offsets[-1])

    def counts(self):
        """(K,) int64: r_k, the rows each member reads."""
        return np.diff(self.offsets)

    def member_rows(self, k):
        """(r_k,) int64: member k's crossbar row indices."""
        return self.rows[self.offsets[k]:self.offsets[k + 1]]

    def row_block(self, a, k):
        """Member k's (r_k, ...) block of a row-packed array a (R, ...) (a view)."""
        return a[self.offsets[k]:self.offsets[k + 1]]

    def block(self, V, k, p):
        """Member k's (p, r_k) block of a voltage-packed array V (p R,) (a view)."""
        first, last = self.offsets[k], self.offsets[k + 1]
        return V[p * first:p * last].reshape(p, last - first)

    def batch(self, V):
        """p of a voltage-packed array V (p R,); ValueError when its size is not a multiple of R."""
        V = np.asarray(V)
        p, rest = divmod(V.size, self.total)
        if V.ndim != 1 or rest:
            raise ValueError(f"V must be voltage-packed: a 1-D array of p * R entries, R = {self.total} "
                             f"rows read; got shape {V.shape}")
        return p

    def pack(self, blocks):
        """The voltage-packed (p R,) array of K blocks (p, r_k) (one p for all)."""
        blocks = [np.asarray(b) for b in blocks]
        if len(blocks) != self.members:
            raise ValueError(f"blocks must hold one (p, r_k) array per member ({self.members}); got {len(blocks)}")
        for k, b in enumerate(blocks):
            if b.ndim != 2 or b.shape != (blocks[0].shape[0], self.offsets[k + 1] - self.offsets[k]):
                raise ValueError(f"block {k} must have shape (p, {self.offsets[k + 1] - self.offsets[k]}); "
                                 f"got {b.shape}")
        return np.concatenate([b.reshape(-1) for b in blocks])


def member_scalars(name, value, members, positive=False):
    """``value`` (a number or K numbers) as a (K,) float64 array of finite numbers (> 0 when
    ``positive``); ValueError naming ``name`` otherwise."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(members, float(a))
    if a.shape != (members,):
        raise ValueError(f"{name} must be a number or one number per member ({members}); got shape {a.shape}")
    if not np.all(np.isfinite(a)) or (positive and not np.all(a > 0)):
        raise ValueError(f"{name} must hold finite numbers{' > 0' if positive else ''}; got {a}")
    return np.ascontiguousarray(a)
