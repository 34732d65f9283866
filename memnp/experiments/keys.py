"""Job keys and seeds: stable hashes of configs, and seeds derived from the run seed and the key.

A job's *content* is a JSON object (its config, the key of the job it depends on, the index of the
network). Its key is the SHA-256 of the canonical JSON of ``{"content": content, "seed": run_seed}``
(first 20 hex digits), so the same config with the same run seed always has the same key, and any
change of config or seed gives a new key (a changed config never reuses stale results).

The job's random numbers come from ``numpy.random.SeedSequence(run_seed, spawn_key=...)`` with the
spawn key made of the content hash (four 32-bit words): independent of the order jobs run in, of
the number of worker processes and of the machine, so ``--jobs 1``, ``--jobs N`` and a Dask
cluster give the same numbers.
"""
import hashlib

import numpy as np

from .configs import canonical_json

KEY_LENGTH = 20


def content_hash(content):
    """SHA-256 (hex) of the canonical JSON of ``content``."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def check_seed(seed):
    """A run seed: an integer in [0, 2**63)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 63:
        raise ValueError(f"seed must be an integer in [0, 2**63); got {seed!r}")
    return int(seed)


def job_key(content, seed):
    """The job's key (hex string): a hash of its content and the run seed."""
    return content_hash({"content": content, "seed": check_seed(seed)})[:KEY_LENGTH]


def spawn_key(content):
    """Four 32-bit words from the content hash (the SeedSequence spawn key)."""
    digest = content_hash(content)
    return tuple(int(digest[i:i + 8], 16) for i in range(0, 32, 8))


def seed_sequence(content, seed):
    """The job's SeedSequence: entropy = run seed, spawn key from the content hash."""
    return np.random.SeedSequence(check_seed(seed), spawn_key=spawn_key(content))


def seed_record(content, seed):
    """JSON description of the job's seed (enough to rebuild its SeedSequence)."""
    return {"entropy": check_seed(seed), "spawn_key": list(spawn_key(content))}


def sequence_from_record(record):
    return np.random.SeedSequence(int(record["entropy"]), spawn_key=tuple(int(v) for v in record["spawn_key"]))
