"""streams.state_table records each written key's partition where Faust's memory store looks for it
after a rebalance (tests/integration/test_rebalance.py shows the effect on two real workers)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.stores.memory import Store
from faust.types import TP

from models.machine_state import MachineState
from streams.state_table import FAUST_MEMORY_RECOVERY_SHA256, StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged


def test_faust_memory_store_recovery_is_the_one_relied_on() -> None:
    """When faust changes how the memory store drops revoked keys, review streams.state_table."""
    source = inspect.getsource(Store.on_recovery_completed)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_MEMORY_RECOVERY_SHA256
    assert "self._key_partition.items()" in source


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with memory_table(tmp_path, "partitions-test", partitions=3) as table:
        yield table


def test_a_rebalance_drops_the_states_of_partitions_this_worker_no_longer_holds(table: Any) -> None:
    """The worker kept M02 (partition 1) frozen in /metrics after partition 1 moved: its state was
    in the store without a partition, so Faust's recovery never dropped it."""
    states = StateTable(table)
    for machine, partition in (("M01", 0), ("M02", 1)):
        states.stage(MachineState(tenant="demo", site="s", line="l", machine=machine), partition)
    assert [state.key for state in write_acknowledged(states)] == ["demo/M01", "demo/M02"]

    # What Faust calls on every worker once a rebalance's recovery completes: it holds partition 0.
    held = {TP(table.changelog_topic.get_topic_name(), 0)}
    asyncio.get_event_loop().run_until_complete(table.on_recovery_completed(held, set()))
    states.clear()  # what the worker does on revocation

    assert states.keys() == [b"demo/M01"]
    assert states.load("demo/M02") is None
    assert states.load("demo/M01") is not None
