"""Caches keyed by what telemetry names (signals, reason codes, ids, layouts) stay bounded.

Emptied when full rather than evicted one by one: a real stream refills the few keys it uses at once,
and a producer minting new names cannot grow a worker's memory; no bookkeeping on the hit path.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol, TypeVar

__all__ = ["bounded"]


class _Clearable(Sized, Protocol):
    def clear(self) -> None: ...


_C = TypeVar("_C", bound=_Clearable)


def bounded(cache: _C, limit: int) -> _C:
    """``cache``, emptied first if it holds ``limit`` entries: about to take one more."""
    if len(cache) >= limit:
        cache.clear()
    return cache
