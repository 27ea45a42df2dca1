"""A worker process for the end-to-end benchmarks: the real linepulse worker, or an empty Faust agent.

``python -m benchmarks.e2e_worker MODE --bootstrap B --topic T --expect N --result FILE``, ``MODE``
one of ``linepulse``, ``empty``, ``empty-direct``.

Both consume ``T`` from the earliest offset in a fresh consumer group and time themselves from the
moment the first message (the worker: its first batch) has been processed to the ``N``-th, counting
only what they processed in between: wall time and this process's CPU time (``time.process_time``, all
threads). CPU time is the steadier figure on a shared 2-core machine, since the broker and the
producer compete for the same cores; wall time is reported beside it. The result is written to
``FILE`` as JSON and the process then waits to be stopped.

- ``linepulse`` is the worker of ``linepulse worker`` (:func:`streams.app.create_stream` with its
  table, KPI/alert publishing and Prometheus counters), minus the web routes, which cost nothing per
  message. Its observer is wrapped to count, and with ``--latency`` to record, for each applied
  message, the time from the newest reading's event time to the moment its effects were published
  and its state written (after the agent's ``publish``): a worker-side event-to-processed latency.
  Like ``linepulse worker`` it compiles (or loads) its kernels before Faust starts
  (:mod:`service.warmup`); without that a fresh tree's first run compiled them inside its timed
  interval (~2,000 instead of ~550 us CPU per 5,000-reading frame).
- ``empty`` is the framework's ceiling: ``async for _ in stream.events(): pass`` with the same
  consumer settings. It stays a plain Faust agent as a user would write it: Faust's own delivery
  and Monitor sensor, which the worker leaves out (:mod:`streams.delivery`, docs/operations.md).
- ``empty-direct`` is that agent with the worker's own Faust side: direct delivery, no Monitor
  sensor, the startup heap frozen; against it the ratio is what linepulse's own work costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from service.brokers.readiness import free_port
from service.faust_worker import quiet_worker
from service.plant_file import load_demo_plant
from service.settings import Settings
from service.warmup import warm_up_or_log
from service.worker_metrics import WorkerMetrics
from streams.app import create_stream
from streams.decode import Rejection
from streams.fetch_wait import app_with_fetch_wait
from streams.heap import freeze_startup_heap
from streams.processing import Applied, Outcome
from streams.topics import MAX_MESSAGE_BYTES, ensure_topics, topic_specs

__all__ = ["Probe", "main"]

SESSION_TIMEOUT_S = 6.0  # short: Tansu holds a group's first join for about half of it


class Probe:
    """Counts messages and readings; writes the timing (and latencies) when the expected count is reached."""

    def __init__(self, expect: int, result: Path, latency: bool, warmup: int) -> None:
        self.expect = expect
        self.result = result
        self.latency = latency
        self.warmup = warmup
        self.messages = 0
        self.readings = 0
        self.rejected = 0
        self.started = False
        self.first_messages = 0
        self.first_readings = 0
        self.t0 = 0.0
        self.cpu0 = 0.0
        self.latencies_ms: list[float] = []
        self.done = False

    def hit(self, readings: int, newest_ms: float | None = None) -> None:
        if self.done:
            return
        self.messages += 1
        self.readings += readings
        if self.messages == 1:
            # Startup (and numba's first calls) stay out: timing starts once the loop runs again.
            asyncio.get_running_loop().call_soon(self._start)
            (self.result.parent / (self.result.name + ".started")).touch()
        if self.latency and newest_ms is not None and self.messages > self.warmup:
            self.latencies_ms.append(time.time() * 1000.0 - newest_ms)
        if self.started and self.messages >= self.expect:
            self._finish()

    def _start(self) -> None:
        """Every message counted so far was processed before the clocks start, so none of them
        counts: the worker reports a whole batch's outcomes after applying it, and counting the
        rest of its first batch (~110 of 2,000 long frames) without its CPU flattered it."""
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.first_messages, self.first_readings = self.messages, self.readings
        self.started = True
        if self.messages >= self.expect:
            self._finish()

    def _finish(self) -> None:
        self.done = True
        payload: dict[str, Any] = {
            "messages": self.messages - self.first_messages,
            "readings": self.readings - self.first_readings,
            "rejected": self.rejected,
            "wall_s": time.perf_counter() - self.t0,
            "cpu_s": time.process_time() - self.cpu0,
            "latencies_ms": self.latencies_ms,
        }
        tmp = self.result.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(self.result)  # atomic: the parent never reads half a file


class _ProbingObserver:
    """The worker's Prometheus observer, plus the probe."""

    def __init__(self, metrics: WorkerMetrics, probe: Probe) -> None:
        self.metrics = metrics
        self.probe = probe

    def on_outcome(self, outcome: Outcome) -> None:
        self.metrics.on_outcome(outcome)
        if isinstance(outcome, Rejection):
            self.probe.rejected += 1
            self.probe.hit(0)
            return
        # The message's own newest reading: the state may already hold later messages of its batch.
        newest = float(outcome.newest_ms) if outcome.newest_ms is not None else None
        self.probe.hit(outcome.readings, newest)

    def on_records(self, outcome: Applied) -> None:
        self.metrics.on_records(outcome)

    def on_rebalance(self) -> None:
        self.metrics.on_rebalance()

    def on_send_failed(self, topic: str) -> None:
        self.metrics.on_send_failed(topic)

    def on_send_stuck(self, stuck: bool) -> None:
        self.metrics.on_send_stuck(stuck)

    def on_batch_fenced(self, topic: str) -> None:
        self.metrics.on_batch_fenced(topic)


def _linepulse_app(args: argparse.Namespace, probe: Probe, workdir: Path) -> faust.App:
    prefix = args.topic
    settings = Settings(
        app_id=args.app_id,
        topic_telemetry=args.topic,
        topic_kpis=f"{prefix}-kpis",
        topic_alerts=f"{prefix}-alerts",
        topic_dead_letters=f"{prefix}-dead",
        topic_control=f"{prefix}-control",
        partitions=1,
        web_port=free_port(),
        data_dir=workdir,
        session_timeout_s=SESSION_TIMEOUT_S,
        log_level="warn",
    )
    counts = ensure_topics(args.bootstrap, topic_specs(settings.topics, 1, 1))
    metrics = WorkerMetrics(CollectorRegistry())
    plant = load_demo_plant()
    warm_up_or_log(
        plant,
        max_payload_bytes=settings.max_payload_bytes,
        max_future_ms=int(settings.max_future_s * 1000),
        anomaly_models=None,
    )
    stream = create_stream(
        settings.stream_config(args.bootstrap, counts[args.topic]),
        plant,
        _ProbingObserver(metrics, probe),
    )
    return stream.app


def _empty_app(args: argparse.Namespace, probe: Probe, workdir: Path) -> faust.App:
    # The worker's consumer settings, the fetch wait included (one topic never waits on it).
    # "empty-direct": also the worker's delivery (streams.delivery) and no Monitor sensor, so the
    # ratio against it is what linepulse's own work costs on top of the same Faust side.
    direct = args.mode == "empty-direct"
    app = app_with_fetch_wait(
        Settings().fetch_wait_s,
        args.app_id,
        direct_delivery=direct,
        monitor_sensor=not direct,
        broker=[f"kafka://{args.bootstrap}"],
        store="memory://",
        datadir=str(workdir),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=2.0,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        topic_partitions=1,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    per_message = args.readings_per_message

    @app.agent(topic, concurrency=1)
    async def consume(stream: faust.StreamT[bytes]) -> None:
        if direct:
            freeze_startup_heap()  # as the worker's agent does
        async for _ in stream.events():
            probe.hit(per_message)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e_worker")
    parser.add_argument("mode", choices=("linepulse", "empty", "empty-direct"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--expect", type=int, required=True, help="messages to wait for")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--readings-per-message", type=int, default=1, help="empty mode: for readings/s")
    parser.add_argument("--latency", action="store_true", help="record event-to-processed latencies")
    parser.add_argument("--warmup", type=int, default=0, help="messages not counted in latencies")
    args = parser.parse_args(argv)
    probe = Probe(args.expect, args.result, args.latency, args.warmup)
    with tempfile.TemporaryDirectory(prefix="linepulse-bench-") as tmp:
        workdir = Path(tmp)
        app = (
            _linepulse_app(args, probe, workdir)
            if args.mode == "linepulse"
            else _empty_app(args, probe, workdir)
        )
        worker = quiet_worker(app, "warn")  # both modes: the same worker, logging and all
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
