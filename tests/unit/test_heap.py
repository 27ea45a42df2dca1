"""The startup heap is frozen only after a collection: no unreachable cycle is kept forever."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfreeze")
def test_live_objects_are_frozen_and_garbage_cycles_are_collected_first() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle only the cyclic collector can free
    dead = weakref.ref(a)
    del a, b
    alive = _Node()
    frozen_before = gc.get_freeze_count()
    freeze_startup_heap()
    assert dead() is None, "the unreachable cycle was collected, not frozen"
    assert gc.get_freeze_count() > frozen_before
    assert all(obj is not alive for obj in gc.get_objects()), "a live object is frozen"
