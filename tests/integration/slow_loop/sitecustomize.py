"""Imported at start by a worker run with this directory on PYTHONPATH: its event loop is held for
0.3 s right after each table recovery seeks its changelog partitions, as a busy machine's loop may
be (tests/integration/test_recovery_after_rebalance.py). The consumer thread runs on meanwhile."""

from __future__ import annotations

import time
from typing import Any

from faust.tables.recovery import Recovery

_seek_offsets = Recovery._seek_offsets


async def _seek_offsets_then_hold_the_loop(
    self: Recovery, consumer: Any, tps: Any, offsets: Any, title: str
) -> None:
    await _seek_offsets(self, consumer, tps, offsets, title)
    if title == "active":
        time.sleep(0.3)  # noqa: ASYNC251 (holding the loop is the point)


Recovery._seek_offsets = _seek_offsets_then_hold_the_loop  # type: ignore[method-assign]
