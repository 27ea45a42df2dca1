"""Shared pieces of the Prometheus and status-page tests: system tools, and a worker with demo data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from service.plant_file import load_demo_plant
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

__all__ = ["DEMO_MESSAGES", "demo_machines", "demo_worker", "require_executable"]

# About an hour of the demo plant: every machine has open hour/shift/day windows with OEE figures.
DEMO_MESSAGES = 3_000


def require_executable(name: str) -> str:
    """The tool's path; a missing tool fails under CI=true and skips, with the reason, elsewhere."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (scripts/install-system-deps installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def demo_machines() -> set[tuple[str, str]]:
    """(tenant, machine) of every machine in the built-in demo plant."""
    return {(machine.tenant, machine.id) for machine in load_demo_plant().machines}


@contextmanager
def demo_worker(bootstrap: str, workdir: Path) -> Iterator[WorkerProcess]:
    """A real worker on fresh topics that has applied ``DEMO_MESSAGES`` simulated messages."""
    # Two hours back, so the newest events are about an hour old: recent, but older than the
    # 30-minute LinepulseMachineSilent threshold.
    messages = simulated_messages(DEMO_MESSAGES, hours_ago=2)
    topics = unique_topics()
    create_topics(bootstrap, topics)
    produce(bootstrap, topics["telemetry"], messages)
    with WorkerProcess(bootstrap, topics, workdir) as worker:
        wait_for(lambda: worker.applied_events() >= DEMO_MESSAGES, 45, f"{DEMO_MESSAGES} events applied")
        yield worker
