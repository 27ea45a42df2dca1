"""The stream's own counters and gauges (messages, readings, dead letters, records, lag, readiness).

:class:`WorkerMetrics` is the stream's observer (:class:`streams.app.StreamObserver`): the agents
call it as they go, so these are ordinary prometheus-client metrics, not read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.decode import REJECTION_CODES, Rejection
from streams.processing import Applied, Outcome

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """Counters about the stream itself; implements :class:`streams.app.StreamObserver`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "linepulse_messages",
            "Telemetry messages processed, by result.",
            ["result"],
            registry=registry,
        )
        self.readings = Counter("linepulse_readings", "Telemetry readings applied.", registry=registry)
        self.dead_letters = Counter(
            "linepulse_dead_letters",
            "Messages sent to the dead-letter topic, by reason code.",
            ["code"],
            registry=registry,
        )
        self.kpi_records = Counter("linepulse_kpi_records", "KPI records published.", registry=registry)
        self.alert_records = Counter(
            "linepulse_alert_records", "Alert records published, by status.", ["status"], registry=registry
        )
        self.rebalances = Counter("linepulse_rebalances", "Partition rebalances seen.", registry=registry)
        self.ready = Gauge(
            "linepulse_ready",
            "1 when partitions are assigned, state recovered and no send is stuck (as /ready).",
            registry=registry,
        )
        # streams.outbox: a refused send is retried and the partitions wait (nothing is skipped).
        self.send_failures = Counter(
            "linepulse_send_failures",
            "Record sends the broker refused (each is retried until it succeeds), by topic.",
            ["topic"],
            registry=registry,
        )
        self.send_stuck = Gauge(
            "linepulse_send_stuck",
            "1 while the worker waits for a refused or unanswered record: its partitions do not progress.",
            registry=registry,
        )
        # streams.ownership: a batch whose partition the worker lost is not acked (its next owner
        # applies it); by source topic (each topic an agent reads).
        self.batches_fenced = Counter(
            "linepulse_batches_fenced",
            "Batches not acknowledged because the worker lost their partition first, by source topic.",
            ["topic"],
            registry=registry,
        )
        for code in REJECTION_CODES:
            self.dead_letters.labels(code=code)
        # Children bound once: labels() costs more than inc() (~1.5 us a message, measured).
        self._by_result = {
            result: self.messages.labels(result=result)
            for result in ("applied", "duplicate", "late", "too_late", "dead_letter")
        }

    def on_outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, Rejection):
            self._by_result["dead_letter"].inc()
            self.dead_letters.labels(code=outcome.code).inc()
            return
        if outcome.duplicate:
            self._by_result["duplicate"].inc()
            return
        self._by_result["too_late" if outcome.too_late else "late" if outcome.late else "applied"].inc()
        self.readings.inc(outcome.readings)
        self.on_records(outcome)

    def on_records(self, outcome: Applied) -> None:
        """The KPI and alert records of an outcome that is not a message's (a silence tick, a stop
        judged on stream time): counted as records, not as messages."""
        if outcome.kpis:
            self.kpi_records.inc(len(outcome.kpis))
        for alert in outcome.alerts:
            self.alert_records.labels(status=alert.status).inc()

    def on_rebalance(self) -> None:
        self.rebalances.inc()

    def expect_topics(self, written: Iterable[str], sources: Iterable[str]) -> None:
        """A series at 0 for every topic the worker writes and every topic it takes batches from:
        a rate or an alert rule on a topic that never failed reads 0, not "no data"."""
        for topic in written:
            self.send_failures.labels(topic=topic)
        for topic in sources:
            self.batches_fenced.labels(topic=topic)

    def on_send_failed(self, topic: str) -> None:
        self.send_failures.labels(topic=topic).inc()

    def on_send_stuck(self, stuck: bool) -> None:
        self.send_stuck.set(1.0 if stuck else 0.0)

    def on_batch_fenced(self, topic: str) -> None:
        self.batches_fenced.labels(topic=topic).inc()
