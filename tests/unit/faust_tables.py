"""A Faust table on the memory store, as the worker's machine-state table, for tests that need no broker,
and the write the agent makes once a batch's changelog records are acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faust

from models.machine_state import MachineState
from streams.state_table import StateTable


@contextmanager
def memory_table(datadir: Path, app_name: str, partitions: int) -> Iterator[Any]:
    # The changelog topic needs a current event loop, and an earlier test's asyncio.run() leaves none.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = faust.App(
            app_name, broker="kafka://127.0.0.1:1", store="memory://", datadir=str(datadir),
            key_serializer="raw", value_serializer="raw", topic_partitions=partitions,
        )  # fmt: skip
        yield app.Table("machine-state", key_type=bytes, value_type=bytes, partitions=partitions)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def write_acknowledged(states: StateTable) -> list[MachineState]:
    """The agent's order: the staged states' changelog records (here: taken, as if acknowledged),
    then the local store."""
    states.changelog_records()
    return states.write_staged()
