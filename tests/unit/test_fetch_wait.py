"""The worker's Kafka consumer long-polls for LINEPULSE_FETCH_WAIT_S, not Faust's fixed 1.5 s.

The consumer is built as Faust builds it for a worker (nothing connects before ``start``); the
stalls this removes are measured by benchmarks/bench_e2e.py on real brokers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from streams.fetch_wait import FAUST_FETCH_MAX_WAIT_MS, app_with_fetch_wait


def _worker_consumer_wait_ms(app: object) -> int:
    async def build() -> int:
        # aiokafka creates its consumer inside a running loop, as Faust's consumer thread does.
        consumer = app.consumer  # type: ignore[attr-defined]
        thread = consumer._new_consumer_thread()
        aiokafka_consumer = thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        wait: int = aiokafka_consumer._fetch_max_wait_ms
        await aiokafka_consumer.stop()
        return wait

    return asyncio.run(build())


def test_the_consumer_fetch_wait_is_the_setting(tmp_path: Path) -> None:
    app = app_with_fetch_wait(0.05, "fetch-wait-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert _worker_consumer_wait_ms(app) == 50


def test_faust_alone_waits_1500_ms(tmp_path: Path) -> None:
    """What the module works around: if Faust changes its default, this says so."""
    import faust

    app = faust.App("fetch-wait-plain", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert _worker_consumer_wait_ms(app) == FAUST_FETCH_MAX_WAIT_MS


@pytest.mark.parametrize("wait", [0.0, -1.0, 31.0])
def test_out_of_range_waits_are_refused(wait: float) -> None:
    with pytest.raises(ValueError, match=r"^fetch_wait_s"):
        app_with_fetch_wait(wait, "fetch-wait-bad", broker="kafka://127.0.0.1:1")


def test_the_monitor_sensor_can_be_left_out(tmp_path: Path) -> None:
    """Faust adds its Monitor to the sensors when the app's dependencies are set up."""
    quiet = app_with_fetch_wait(
        0.05, "monitor-off", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), monitor_sensor=False
    )
    plain = app_with_fetch_wait(0.05, "monitor-on", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    for app in (quiet, plain):
        app.on_init_dependencies()
    assert quiet.monitor not in set(quiet.sensors)
    assert plain.monitor in set(plain.sensors)


def test_a_rebalance_without_the_monitor_is_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with_fetch_wait(
        0.05, "rebalance-off", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), monitor_sensor=False
    )
    app.on_init_dependencies()
    with caplog.at_level(logging.WARNING):
        app.on_rebalance_start()
        app.on_rebalance_return()
        app.on_rebalance_end()
    assert not caplog.records, caplog.text
    assert app.rebalancing is False
