"""Seed derivation shared by generation, evaluation and training.

No global RNG anywhere: every random draw comes from a seed derived from a run's base seed and
a path of integers (episode index, attempt, stream, ...) with ``numpy.random.SeedSequence``, so
a derived seed depends only on its path, never on the worker, the shard or the order of draws.
Names (tasks, variants) enter a path through :func:`name_key`, a stable function of the name's
bytes alone: adding or removing a task leaves every other task's seeds unchanged.
"""

from __future__ import annotations

import hashlib

import numpy as np

_SEED_BITS = 63
_NAME_KEY_BYTES = 4


def derived_seed(base_seed: int, *path: int) -> int:
    """A 63-bit seed derived from ``(base_seed, *path)`` (non-negative integers)."""
    state = np.random.SeedSequence([base_seed, *path]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << _SEED_BITS) - 1)


def derived_rng(base_seed: int, *path: int) -> np.random.Generator:
    """An independent generator for ``(base_seed, *path)``."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, *path]))


def name_key(name: str) -> int:
    """A 32-bit path element for ``name``: the first 4 bytes of the SHA-256 of its UTF-8 bytes
    (stable across processes and Python versions, unlike ``hash()``)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:_NAME_KEY_BYTES], "big")
