"""Broker plumbing of the end-to-end and latency benchmarks: start a broker, fill a topic, time consumers.

Each consumer runs in its own process (:mod:`benchmarks.e2e_worker` or, in its own virtualenv,
:mod:`benchmarks.quix_pipeline`), reads the topic from the start in a fresh consumer group, and
reports its own first-to-last timing in a JSON file, so broker start, process start and group join
are never inside a measured interval.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from service.brokers import KafkaCluster, TansuBroker
from streams.topics import LOG_APPEND_TIME, TIMESTAMP_TYPE

__all__ = [
    "QUIX_PYTHON",
    "REPO",
    "BrokerName",
    "ConsumerKind",
    "Timing",
    "create_topic",
    "produce",
    "running_broker",
    "start_consumer",
    "wait_result",
]

REPO: Final = Path(__file__).resolve().parent.parent
QUIX_PYTHON: Final = REPO / ".venv-bench-quix" / "bin" / "python"
BrokerName = Literal["tansu", "apache-kafka"]
ConsumerKind = Literal["linepulse", "empty", "empty-direct", "quix"]
_MAX_REQUEST: Final = 8 * 1024 * 1024


@contextlib.contextmanager
def running_broker(name: BrokerName) -> Iterator[str]:
    """A fresh broker on 127.0.0.1 for the duration; yields its bootstrap servers."""
    broker: KafkaCluster | TansuBroker = KafkaCluster(1) if name == "apache-kafka" else TansuBroker()
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def create_topic(bootstrap: str, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="linepulse-bench")
    try:
        # As linepulse creates a telemetry topic (streams.topics): the broker stamps the messages.
        config = {TIMESTAMP_TYPE: LOG_APPEND_TIME}
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, topic_configs=config)])
    finally:
        admin.close()
    return name


def _producer(bootstrap: str, linger_ms: int) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=linger_ms,
        batch_size=1024 * 1024,
        max_request_size=_MAX_REQUEST,
    )


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    """Send all ``messages`` and wait for their acks; returns how many."""
    producer = _producer(bootstrap, linger_ms=20)
    sent = 0
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush(timeout=300)
    finally:
        producer.close(timeout=30)
    return sent


def produce_paced(
    bootstrap: str, topic: str, make: Callable[[int], tuple[bytes, bytes]], count: int, per_second: float
) -> float:
    """Send ``make(i)`` for i < count at a fixed rate (each message built at its send time); returns the
    achieved rate. A slow moment is caught up on at once rather than skipped, as a real gateway would."""
    producer = _producer(bootstrap, linger_ms=1)
    interval = 1.0 / per_second
    start = time.perf_counter()
    try:
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key, value = make(i)
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    return count / (time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class Timing:
    """What a consumer reports: messages and readings after the first one, wall and CPU seconds."""

    kind: str
    messages: int
    readings: int
    wall_s: float
    cpu_s: float
    rejected: int
    latencies_ms: tuple[float, ...]

    @property
    def cpu_rate(self) -> float:
        return self.readings / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def wall_rate(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class Consumer:
    kind: ConsumerKind
    process: subprocess.Popen[bytes]
    result: Path
    log: Path

    @property
    def started(self) -> bool:
        return (self.result.parent / (self.result.name + ".started")).exists()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_consumer(
    kind: ConsumerKind,
    bootstrap: str,
    topic: str,
    expect: int,
    workdir: Path,
    *,
    readings_per_message: int = 1,
    latency: bool = False,
    warmup: int = 0,
    peer_drift: Mapping[str, Any] | None = None,
    checkout: Path = REPO,
) -> Consumer:
    """``checkout``: the source tree the consumer runs (another commit's, for an A/B in one session).

    ``peer_drift``: for the Quix peer, the drift detection per signal
    (:func:`benchmarks.peer_drift.drift_json`); without it the peer keeps statistics only.
    """
    tag = f"{kind}-{uuid.uuid4().hex[:8]}"
    result = workdir / f"{tag}.json"
    log = workdir / f"{tag}.log"
    common = ["--bootstrap", bootstrap, "--topic", topic, "--expect", str(expect), "--result", str(result)]
    if kind == "quix":
        argv = [str(QUIX_PYTHON), "-m", "benchmarks.quix_pipeline", *common, "--group", f"bench-{tag}"]
        if peer_drift:
            argv += ["--drift", json.dumps(peer_drift)]
    else:
        argv = [sys.executable, "-m", "benchmarks.e2e_worker", kind, *common, "--app-id", f"bench-{tag}"]
        argv += ["--readings-per-message", str(readings_per_message), "--warmup", str(warmup)]
        if latency:
            argv.append("--latency")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=checkout, stdout=out, stderr=subprocess.STDOUT)
    return Consumer(kind, process, result, log)


def wait_result(consumer: Consumer, timeout_s: float) -> Timing:
    """The consumer's timing once it has seen all it expects; stops it either way."""
    deadline = time.monotonic() + timeout_s
    try:
        while not consumer.result.exists():
            if consumer.process.poll() is not None and not consumer.result.exists():
                code = consumer.process.returncode
                raise RuntimeError(f"{consumer.kind} consumer exited with {code}:\n{consumer.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{consumer.kind} consumer took over {timeout_s:.0f} s:\n{consumer.log_tail()}"
                )
            time.sleep(0.1)
        data = json.loads(consumer.result.read_text(encoding="utf-8"))
    finally:
        consumer.stop()
    if int(data["messages"]) <= 0:
        raise RuntimeError(
            f"{consumer.kind} consumer processed every message before its clocks started (one batch): "
            "send more messages"
        )
    return Timing(
        kind=consumer.kind,
        messages=int(data["messages"]),
        readings=int(data["readings"]),
        wall_s=float(data["wall_s"]),
        cpu_s=float(data["cpu_s"]),
        rejected=int(data.get("rejected", 0)),
        latencies_ms=tuple(float(v) for v in data.get("latencies_ms", ())),
    )


def time_consumer(
    kind: ConsumerKind,
    bootstrap: str,
    topic: str,
    expect: int,
    *,
    readings_per_message: int,
    timeout_s: float,
    peer_drift: Mapping[str, Any] | None = None,
) -> Timing:
    with tempfile.TemporaryDirectory(prefix="linepulse-bench-") as tmp:
        consumer = start_consumer(
            kind, bootstrap, topic, expect, Path(tmp),
            readings_per_message=readings_per_message, peer_drift=peer_drift,
        )  # fmt: skip
        timing = wait_result(consumer, timeout_s)
    if timing.rejected:
        raise RuntimeError(f"{kind}: {timing.rejected} benchmark messages were dead-lettered")
    return timing
