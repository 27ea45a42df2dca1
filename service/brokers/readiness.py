"""Waiting for a freshly started broker to serve metadata, and picking loopback ports for it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from service.brokers.exceptions import BrokerStartError
from service.processes import tail

__all__ = ["free_port", "wait_until_ready"]

_POLL_S = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick, so races are rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _split(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        addresses.append((host, int(port)))
    return addresses


def _accepts_tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _broker_count(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists, or 0 if it does not answer yet."""
    # Imported lazily: kafka-python is only needed once something is listening.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="linepulse-readiness",
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
        )
    except (KafkaError, OSError):
        return 0
    try:
        return len(admin.describe_cluster()["brokers"])
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()


def _failure(message: str, log_paths: Sequence[Path]) -> BrokerStartError:
    logs = "\n".join(f"--- {path} ---\n{tail(path)}" for path in log_paths)
    return BrokerStartError(f"{message}\n{logs}" if logs else message)


def wait_until_ready(
    bootstrap: str,
    timeout_s: float,
    *,
    expected_brokers: int = 1,
    processes: Sequence[subprocess.Popen[bytes]] = (),
    log_paths: Sequence[Path] = (),
) -> None:
    """Block until the metadata served at ``bootstrap`` lists ``expected_brokers`` brokers.

    Fails fast if one of ``processes`` exits; on failure the error carries the tail of each log.
    """
    deadline = time.monotonic() + timeout_s
    addresses = _split(bootstrap)
    while True:
        for proc in processes:
            if proc.poll() is not None:
                raise _failure(f"broker process {proc.pid} exited with code {proc.returncode}", log_paths)
        # A cheap TCP probe first keeps kafka-python from logging connection errors while the JVM boots.
        listening = all(_accepts_tcp(host, port) for host, port in addresses)
        if listening and _broker_count(bootstrap) >= expected_brokers:
            return
        if time.monotonic() >= deadline:
            raise _failure(
                f"broker at {bootstrap} did not list {expected_brokers} broker(s) within {timeout_s:.0f} s",
                log_paths,
            )
        time.sleep(_POLL_S)
