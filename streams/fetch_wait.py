"""A Faust app whose Kafka consumer long-polls the broker for at most ``fetch_wait_s``.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. One
consumer serves all of a worker's topics, and aiokafka keeps one fetch in flight per broker: while
the telemetry partition still has fetched records waiting (the agent is busy with a batch), the
next fetch asks only for the quiet topics (control, kpis-by-line), and the broker holds it for the
whole 1.5 s because they have no data. The telemetry partition, fetchable again a moment later,
waits for that fetch to come back. The end-to-end benchmark showed these stalls (~1.2 s, a few per
second of data) taking two thirds of the worker's wall time on Apache Kafka and Tansu alike; an
empty agent on one topic never sees them. A short wait costs an idle worker a few small fetch
requests per second.

aiokafka reads the wait from ``AIOKafkaConsumer._fetch_max_wait_ms`` when it starts its fetcher;
this sets it between Faust creating the consumer and starting it (aiokafka and faust-streaming
are pinned together in constraints.txt; tests/unit/test_fetch_wait.py checks that it takes).

With ``direct_delivery`` the consumer also hands messages to their streams without Faust's four
tasks per message (:mod:`streams.delivery`). Either way, a table's changelog records that Faust
took from aiokafka and dropped are fetched again (:mod:`streams.refetch`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

from streams.delivery import SUPPORTED as DELIVERY_SUPPORTED
from streams.delivery import DirectDeliveryConsumer
from streams.refetch import RefetchingConsumer, RefetchingThread

__all__ = ["FAUST_FETCH_MAX_WAIT_MS", "app_with_fetch_wait"]

FAUST_FETCH_MAX_WAIT_MS = 1500  # what faust.transport.drivers.aiokafka passes to aiokafka


class _ConsumerThread(RefetchingThread):
    fetch_max_wait_ms: ClassVar[int] = FAUST_FETCH_MAX_WAIT_MS

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


def _transport_class(fetch_max_wait_ms: int, direct_delivery: bool) -> type[faust_aiokafka.Transport]:
    thread_class = type("ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms})
    direct = direct_delivery and DELIVERY_SUPPORTED
    consumer_base = DirectDeliveryConsumer if direct else faust_aiokafka.Consumer

    # streams.refetch: a table recovery's changelog records are not lost to a batch Faust drops.
    class Consumer(RefetchingConsumer, consumer_base):  # type: ignore[valid-type,misc]
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            thread: faust_aiokafka.AIOKafkaConsumerThread = thread_class(
                self, loop=self.loop, beacon=self.beacon
            )
            return thread

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


# The rebalance's sensor state when no sensor keeps one (see App.on_rebalance_start below).
_NO_SENSOR: Any = object()


def app_with_fetch_wait(
    fetch_wait_s: float,
    *args: Any,
    direct_delivery: bool = False,
    monitor_sensor: bool = True,
    **kwargs: Any,
) -> faust.App:
    """``faust.App(*args, **kwargs)`` whose consumer waits at most ``fetch_wait_s`` per fetch and,
    with ``direct_delivery``, delivers messages as :mod:`streams.delivery` does.

    Without ``monitor_sensor``, Faust's Monitor is not called for every message and event (about
    2.5 µs of CPU per event: its counters and timings serve only Faust's debug ``/stats`` page; the
    consumer still tells it end offsets and commits).
    """
    if not 0 < fetch_wait_s <= 30:
        raise ValueError(f"fetch_wait_s: must lie in (0, 30] seconds, got {fetch_wait_s!r}")
    transport_class = _transport_class(max(1, round(fetch_wait_s * 1000)), direct_delivery)

    class App(faust.App):
        def on_rebalance_start(self) -> None:
            super().on_rebalance_start()
            if not monitor_sensor and not self._rebalancing_sensor_state:
                # No sensor, so no state: Faust took the empty state for a lost one and logged a
                # WARNING at every rebalance, which reads as a fault to whoever watches the log.
                self._rebalancing_sensor_state = {_NO_SENSOR: None}

        def on_init_dependencies(self) -> Any:
            dependencies = super().on_init_dependencies()  # adds the Monitor to the sensors
            if not monitor_sensor:
                self.sensors.remove(self.monitor)
            return dependencies

        def _new_transport(self) -> TransportT:
            # Only the kafka:// driver is replaced; faust's own default for any other URL.
            url = self.conf.broker_consumer[0]
            if drivers.by_url(url) is not faust_aiokafka.Transport:
                return super()._new_transport()
            transport: TransportT = transport_class(self.conf.broker_consumer, self)
            return transport

    return App(*args, **kwargs)
