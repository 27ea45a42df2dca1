"""Whether a machine of ``/api/machines`` is stale: no data for longer than the plant's state timeout.

Measured on each tenant's *stream clock*: the wall clock minus the lag the tenant's newest event
had when this worker received it. Live, that lag is a few seconds, so the stream clock is the wall
clock and a plant (or tenant) that goes silent as a whole turns stale after ``state_timeout_s``.
During a replay of history the lag is hours or days, so the stream clock follows the replay's event
time: a machine is stale only when it is silent in the replayed history, not because history is
old. When the replay stops sending, the stream clock runs on with the wall clock and the machines
turn stale after ``state_timeout_s``: no data is arriving, which is what stale says.

Comparing with the newest event time of the shown machines alone (the first implementation) never
marked anything stale when every machine went silent at once; comparing with the wall clock alone
marks every machine of a replay stale. A tenant with nothing received since this worker started
(only states recovered from the table) has no lag to go by: the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.machine_state import MachineState
from streams.live import LiveMachines, Receipt

__all__ = ["Silence", "silence", "silences", "stream_clocks"]


@dataclass(frozen=True, slots=True)
class Silence:
    silent_s: float | None  # stream clock minus the machine's newest event time
    received_ago_s: float | None  # wall clock since this worker received its newest event time
    stale: bool


def stream_clocks(receipts: Iterable[tuple[str, Receipt]], now_ms: int) -> dict[str, int]:
    """Each tenant's stream clock (epoch ms) from its machines' receipts, ``(tenant, receipt)``."""
    newest: dict[str, Receipt] = {}
    for tenant, receipt in receipts:
        if receipt.recovered or receipt.last_seen_ms is None:
            continue
        current = newest.get(tenant)
        if current is None or receipt.last_seen_ms > (current.last_seen_ms or 0):
            newest[tenant] = receipt
    clocks = {}
    for tenant, receipt in newest.items():
        assert receipt.last_seen_ms is not None
        # Clamped: an event stamped a little ahead of this host's clock must not move it ahead.
        lag_ms = max(0, receipt.received_ms - receipt.last_seen_ms)
        clocks[tenant] = now_ms - lag_ms
    return clocks


def silence(
    last_seen_ms: int | None, receipt: Receipt | None, clock_ms: int, now_ms: int, timeout_s: float
) -> Silence:
    """A machine's silence on its tenant's stream clock ``clock_ms`` (``now_ms`` when it has none)."""
    silent_s = None if last_seen_ms is None else max(0.0, (clock_ms - last_seen_ms) / 1000.0)
    received_ago_s = (
        None if receipt is None or receipt.recovered else max(0.0, (now_ms - receipt.received_ms) / 1000.0)
    )
    return Silence(silent_s, received_ago_s, stale=silent_s is not None and silent_s > timeout_s)


def silences(
    live: LiveMachines, shown: Sequence[MachineState], now_ms: int, timeout_s: float
) -> list[Silence]:
    """Each shown machine's silence, on its tenant's stream clock from all of the worker's machines
    of that tenant (so ``?tenant=`` does not change the answer)."""
    receipts = [(state.tenant, receipt) for state in live if (receipt := live.receipt(state.key))]
    clocks = stream_clocks(receipts, now_ms)
    return [
        silence(
            state.last_seen_ms, live.receipt(state.key), clocks.get(state.tenant, now_ms), now_ms, timeout_s
        )
        for state in shown
    ]
