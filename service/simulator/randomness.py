"""Deterministic, independent random streams derived from one seed.

Each machine (and each aspect of it) gets its own stream, keyed by name rather than by order, so adding
a fault to M02 or a machine to the plant leaves every other machine's output byte-for-byte unchanged.
``hash()`` is salted per process, hence SHA-256.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["derive_rng", "derive_seed"]


def derive_seed(seed: int, *parts: str) -> int:
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derive_rng(seed: int, *parts: str) -> random.Random:
    return random.Random(derive_seed(seed, *parts))
