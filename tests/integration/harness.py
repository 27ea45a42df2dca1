"""A real ``linepulse worker`` process for integration tests: start, wait, inspect, SIGKILL, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer

from service.brokers.readiness import free_port

__all__ = [
    "WorkerProcess",
    "consume_all",
    "listening_addresses",
    "produce",
    "server_process",
    "stop_process",
    "tail",
    "wait_for",
]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """No orphans: SIGTERM lets the process close its files; SIGKILL if it does not go in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def server_process(name: str, argv: list[str], log: Path, base_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server (Prometheus, Alertmanager) with its output in ``log``, yielded once its ``/-/ready``
    answers 200 (failing with its log if it exits first), stopped by :func:`stop_process` after."""
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail(log)}")
            try:
                with urllib.request.urlopen(f"{base_url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(ready, 30, f"{name} /-/ready", interval_s=0.2)
        yield process
    finally:
        stop_process(process, timeout_s=15)


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket of this machine listens on at ``port`` (``/proc/net``)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:  # IPv4, little-endian
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add("ipv6:" + address)
    return found


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=5,
        max_request_size=8 * 1024 * 1024,
    )
    sent = 0
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    return sent


def consume_all(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[Any]:
    """Every message on ``topic`` (counted, not compared with end offsets: Tansu reports those oddly)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_s * 1000),
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


@dataclass
class WorkerProcess:
    bootstrap: str
    topics: dict[str, str]
    workdir: Path
    app_id: str = field(default_factory=lambda: f"it-{uuid.uuid4().hex[:10]}")
    web_port: int = field(default_factory=free_port)
    config: Path | None = None
    partitions: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.app_id}.log"

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            "LINEPULSE_TOPIC_TELEMETRY": self.topics["telemetry"],
            "LINEPULSE_TOPIC_KPIS": self.topics["kpis"],
            "LINEPULSE_TOPIC_ALERTS": self.topics["alerts"],
            "LINEPULSE_TOPIC_DEAD_LETTERS": self.topics["dead_letters"],
            "LINEPULSE_TOPIC_LINE_KPIS": self.topics["line_kpis"],
            "LINEPULSE_TOPIC_KPIS_BY_LINE": self.topics["kpis_by_line"],
            "LINEPULSE_TOPIC_CONTROL": self.topics["control"],
            "LINEPULSE_DATA_DIR": str(self.workdir / f"data-{self.app_id}"),
            "LINEPULSE_SESSION_TIMEOUT_S": "6",
            "LINEPULSE_LOG_LEVEL": "info",
            **self.extra_env,
        }
        argv = [
            sys.executable,
            "-m",
            "service.cli",
            "worker",
            "--bootstrap-servers",
            self.bootstrap,
            "--web-port",
            str(self.web_port),
            "--app-id",
            self.app_id,
            "--partitions",
            str(self.partitions),
        ]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        # A first start with an empty kernel cache compiles for ~40-50 s before /ready (service.warmup).
        wait_for(self._ready, 240, f"worker {self.app_id} /ready (log {self.log_path})")
        return self

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
            body = response.read()
        return orjson.loads(body) if path.startswith(("/api", "/ready", "/health")) else body.decode()

    def _ready(self) -> bool:
        self.assert_alive()
        try:
            return bool(self.get("/ready")["ready"])
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def assert_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"worker exited with {code}; log:\n{self.log_tail()}")

    def machines(self) -> list[dict[str, Any]]:
        try:
            payload = self.get("/api/machines")
        except (OSError, urllib.error.URLError, ValueError):
            return []
        machines: list[dict[str, Any]] = payload["machines"]
        return machines

    def applied_events(self) -> int:
        return sum(machine["totals"]["events"] for machine in self.machines())

    def totals(self) -> dict[str, dict[str, int]]:
        return {f"{m['tenant']}/{m['machine']}": m["totals"] for m in self.machines()}

    def metric(self, sample: str) -> float:
        """The value of one exposition line, e.g. 'linepulse_messages_total{result="duplicate"}'."""
        for line in self.get("/metrics").splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{sample} not in /metrics")

    def metric_if_up(self, sample: str) -> float | None:
        """:meth:`metric`, or None while /metrics does not answer or lacks it; the worker must be alive."""
        self.assert_alive()
        try:
            return self.metric(sample)
        except (OSError, AssertionError):
            return None

    def send_stuck(self) -> bool:
        """Whether the worker says a send is stuck (refused, or unanswered during an outage)."""
        return self.metric_if_up("linepulse_send_stuck") == 1.0

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen (no heartbeat), as a paused VM or a long swap would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a frozen process would not act on SIGTERM
            stop_process(self.process, timeout_s=30)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def records(messages: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for message in messages:
        yield orjson.loads(message.value)
