"""The machine-state table as the agent uses it: decoded states cached, writes staged per batch.

The Faust table (with its changelog) stays the source of truth; this keeps the decoded
:class:`~models.machine_state.MachineState` of each machine this worker owns, so a message does not decode
JSON, and stages the states a batch changed so that each is encoded and written to the changelog
once per batch rather than once per message (the per-message write of the whole state cost more
CPU than all the analytics; see benchmarks/RESULTS.md).

The changelog records are not written with Faust's ``send_changelog``: that goes through the
producer buffer (``send_soon``), where a refused or unanswered write is only logged, and Faust's
flush before a commit may return with writes still queued, so an offset could be committed that no
state on the changelog has applied, and a recovery from the changelog would miss it. Instead
:meth:`StateTable.changelog_records` hands them to the outbox, which waits until the broker has
acknowledged each (:mod:`streams.outbox`); only then does :meth:`StateTable.write_staged` put them
in the local store and the batch is acked.

A staged write carries its source partition explicitly: the machine's state lives on its telemetry
partition (co-partitioned), and a write made after ``stream.take_events()`` has yielded has no
current event for Faust to take the partition from (faust-streaming issue 497).
"""

from __future__ import annotations

from typing import Any, Final

from models.machine_state import MachineState
from streams.exceptions import StreamsError
from streams.outbox import Outgoing
from streams.processing import decode_state, encode_state

__all__ = ["FAUST_MEMORY_RECOVERY_SHA256", "StateTable", "remember_partition"]

# sha256 of inspect.getsource(faust.stores.memory.Store.on_recovery_completed): it drops the keys
# whose partition (in the store's ``_key_partition``) this worker no longer holds.
FAUST_MEMORY_RECOVERY_SHA256: Final = "a00bef343e139602606996e88809e62731a9113691ae678095266a52e0e0b013"


class StateTable:
    def __init__(self, table: Any) -> None:
        self._table = table
        self._decoded: dict[str, MachineState] = {}
        self._staged: dict[str, tuple[MachineState, int]] = {}
        self._encoded: dict[str, bytes] = {}  # changelog values of the staged states, once encoded

    def load(self, key: str) -> MachineState | None:
        """The machine's newest state: staged or cached, else decoded from the table."""
        state = self._decoded.get(key)
        if state is None:
            raw = self._table.get(key.encode())
            if raw is not None:
                state = self._decoded[key] = decode_state(raw)
        return state

    def stage(self, state: MachineState, partition: int) -> None:
        """Remember ``state`` (already changed in place) to be written by :meth:`write_staged`."""
        self._decoded[state.key] = state
        self._staged[state.key] = (state, partition)

    def forget(self, key: str) -> None:
        """Drop the cached and staged state of ``key``: the next load reads the table."""
        self._decoded.pop(key, None)
        self._staged.pop(key, None)
        self._encoded.pop(key, None)

    def forget_staged(self) -> None:
        """Drop every staged state (their effects were never published): loads read the table."""
        for key in self._staged:
            self._decoded.pop(key, None)
        self._staged.clear()
        self._encoded.clear()

    def changelog_records(self) -> list[Outgoing]:
        """The changelog record of each staged state (encoded once), to be delivered before
        :meth:`write_staged`; on the state's source partition, as ``Table.__setitem__`` would."""
        topic = self._table.changelog_topic
        records = []
        for key, (state, partition) in self._staged.items():
            value = self._encoded[key] = encode_state(state)
            records.append(Outgoing(topic, key.encode(), value, partition=partition))
        return records

    def write_staged(self) -> list[MachineState]:
        """Put each staged state in the local store, its changelog record already acknowledged
        (:meth:`changelog_records`); returns them."""
        unsent = self._staged.keys() - self._encoded.keys()
        if unsent:
            # Writing them would put a state in the store that no changelog record carries.
            raise StreamsError(f"write_staged: no changelog record was taken for {sorted(unsent)}")
        written = []
        for key, (state, partition) in self._staged.items():
            raw_key = key.encode()
            self._table.data[raw_key] = self._encoded[key]
            remember_partition(self._table.data, raw_key, partition)
            written.append(state)
        self._staged.clear()
        self._encoded.clear()
        return written

    def keys(self) -> list[bytes]:
        """Keys of every state: in the table (recovered ones included) or staged by this batch, so
        a machine first seen in the batch is not missed before the batch is written."""
        staged = (key.encode() for key in self._staged)
        return list(dict.fromkeys([*self._table.keys(), *staged]))

    def clear(self) -> None:
        """On rebalance: machines of revoked partitions may now belong to another worker."""
        self._decoded.clear()
        self._staged.clear()
        self._encoded.clear()


def remember_partition(store: Any, raw_key: bytes, partition: int) -> None:
    """Record the key's partition where Faust's memory store keeps it for the keys it recovers.

    After every rebalance the store drops the keys of partitions this worker no longer holds
    (``Store.on_recovery_completed``), but only those it knows the partition of: a key written
    here (not through ``Table.__setitem__``, which records nothing either) would otherwise stay,
    and a worker that lost a machine would keep showing it, frozen, in /metrics and /api/machines.
    """
    key_partition = getattr(store, "_key_partition", None)
    if key_partition is not None:
        key_partition[raw_key] = partition
