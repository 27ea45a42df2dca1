"""What two of Faust's per-message steps cost, in one process: ``python -m benchmarks.faust_overheads``.

- Delivery: Faust's consumer races every delivery against the flow suspension with mode's
  ``wait_first`` (four tasks); :func:`streams.delivery.deliver` takes a delivery that does not wait
  directly.
- Sensors: Faust's Monitor is called four times per message and event (``on_message_in``,
  ``on_stream_event_in``, ``on_stream_event_out``, ``on_message_out``); the worker leaves it out.

Prints µs of CPU per message for each, the median of a few repeats. Not part of ``make bench``: the
end-to-end A/B (``benchmarks/ab_e2e.py``) is the figure that counts; this says where it comes from.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.sensors import Monitor, SensorDelegate
from faust.types import TP
from mode import Service

from streams.delivery import deliver

__all__ = ["main"]

_N = 20_000


class _Stub:
    """Stands in for Faust's message, event and stream: the Monitor reads these attributes only
    (and keeps weak references, which SimpleNamespace does not allow)."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


async def _delivered(message: int) -> None:
    return None


async def _race_each(service: Service, suspend: asyncio.Event) -> float:
    start = time.process_time()
    for message in range(_N):
        await service.wait_first(_delivered(message), suspend.wait())
    return (time.process_time() - start) / _N * 1e6


async def _deliver_each(service: Service, suspend: asyncio.Event) -> float:
    start = time.process_time()
    for message in range(_N):
        await deliver(service, suspend, _delivered, message)
    return (time.process_time() - start) / _N * 1e6


def _delivery(run: Callable[[Service, asyncio.Event], Any]) -> float:
    async def once() -> float:
        us: float = await run(Service(), asyncio.Event())
        return us

    return statistics.median(asyncio.run(once()) for _ in range(5))


def _sensors(with_monitor: bool) -> float:
    app = faust.App("faust-overheads", broker="kafka://127.0.0.1:1")
    sensors = SensorDelegate(app)
    if with_monitor:
        sensors.add(Monitor())
    tp = TP("telemetry", 0)
    message: Any = _Stub(tp=tp, offset=0, time_in=None, time_out=None, time_total=None, stream_meta={})
    event: Any = _Stub(message=message)
    stream: Any = _Stub(shortlabel="agent", task_owner=_Stub())

    def once() -> float:
        start = time.process_time()
        for offset in range(_N):
            message.offset = offset
            sensors.on_message_in(tp, offset, message)
            state = sensors.on_stream_event_in(tp, offset, stream, event)
            sensors.on_stream_event_out(tp, offset, stream, event, state)
            sensors.on_message_out(tp, offset, message)
        return (time.process_time() - start) / _N * 1e6

    return statistics.median(once() for _ in range(5))


def main() -> int:
    print(f"delivery, Faust's race (wait_first): {_delivery(_race_each):6.2f} us per message")
    print(f"delivery, streams.delivery.deliver:  {_delivery(_deliver_each):6.2f} us per message")
    print(f"sensors with Faust's Monitor:        {_sensors(True):6.2f} us per message")
    print(f"sensors without it:                  {_sensors(False):6.2f} us per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
