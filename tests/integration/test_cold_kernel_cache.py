"""A worker started with an empty numba cache stops promptly on SIGTERM while its first batches run:
its kernels are compiled before Faust starts (service.warmup), not in those batches, where ~40 s of
compiling held up the event loop, and with it the worker's pages and its signal handling."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from service.brokers import KafkaCluster
from tests.frame_records import as_frame
from tests.integration.harness import WorkerProcess, produce
from tests.integration.kafka_admin import committed_total
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

MESSAGES = 3_000
STOP_BOUND_S = 20.0  # well inside Kubernetes' 30 s grace period; a compile stall took ~40 s


def test_a_cold_kernel_cache_does_not_hold_up_the_first_batches(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    # Half of the readings records as binary frames: both decoders' kernels are on the path.
    messages = [
        (key, as_frame(value) if b'"kind":"samples"' in value and index % 2 else value)
        for index, (key, value) in enumerate(simulated_messages(MESSAGES, seed=4))
    ]
    cache = tmp_path / "numba-cache"
    worker = WorkerProcess(bootstrap, topics, tmp_path, extra_env={"NUMBA_CACHE_DIR": str(cache)}).start()
    assert worker.process is not None
    try:
        assert "kernels compiled in" in worker.log_path.read_text()  # the cache was cold
        produce(bootstrap, topics["telemetry"], messages)
        time.sleep(3)  # the worker fetches within its 50 ms fetch wait: its first batches are running
        worker.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = worker.process.wait(timeout=90)
        took = time.monotonic() - sent
    finally:
        worker.stop()
    assert code == 0, worker.log_tail()
    assert took < STOP_BOUND_S, f"the stop took {took:.1f} s; log:\n{worker.log_tail()}"
    # It was stopped at work, not before: what it applied was committed on the way out.
    assert 0 < committed_total(bootstrap, worker.app_id, topics["telemetry"]) <= len(messages)
    assert any(cache.rglob("*.nbi"))
