"""streams.state_table records each written key's partition where Faust's memory store looks for it
after a rebalance (tests/integration/test_rebalance.py shows the effect on two real workers)."""

from __future__ import annotations

import hashlib
import inspect

from faust.stores.memory import Store

from streams.state_table import FAUST_MEMORY_RECOVERY_SHA256


def test_faust_memory_store_recovery_is_the_one_relied_on() -> None:
    """When faust changes how the memory store drops revoked keys, review streams.state_table."""
    source = inspect.getsource(Store.on_recovery_completed)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_MEMORY_RECOVERY_SHA256
    assert "self._key_partition.items()" in source
