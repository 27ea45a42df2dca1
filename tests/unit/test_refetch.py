"""A batch Faust's getmany drops because the flow stopped has its changelog partitions sought back
before the next fetch; stream partitions are left to Faust's own seek (streams.refetch). Faust's
real getmany runs here, on a batch handed in where the consumer thread's would be;
tests/integration/test_refetch.py seeks on a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streams.fetch_wait import app_with_fetch_wait
from streams.refetch import RefetchingConsumer, RefetchingThread, Taken, first_offsets


def _records(topic: str, partition: int, offsets: range) -> list[ConsumerRecord[bytes, bytes]]:
    return [ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"v", None, 1, 1, ()) for offset in offsets]


def test_the_first_offset_of_each_kept_partition() -> None:
    batch = {"a": _records("a", 0, range(5, 9)), "b": _records("b", 0, range(0, 3)), "c": []}
    assert first_offsets(batch, lambda tp: True) == {"a": 5, "b": 0}
    assert first_offsets(batch, lambda tp: tp == "b") == {"b": 0}


class _Consumer:
    """An app's consumer whose consumer thread hands in ``batches`` one per fetch; a rebalance
    stops the flow while the fetches listed in ``stop_flow_during`` wait in the thread."""

    def __init__(
        self, tmp_path: Path, batches: list[dict[TP, list[Any]]], stop_flow_during: set[int]
    ) -> None:
        app = app_with_fetch_wait(
            0.05, "refetch-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), direct_delivery=True
        )
        app.Table("state", partitions=2)
        self.changelog = TP(f"{app.conf.id}-state-changelog", 1)
        self.stream = TP("telemetry", 1)
        consumer = app.consumer
        assert isinstance(consumer, RefetchingConsumer)
        thread = consumer._thread
        assert isinstance(thread, RefetchingThread)
        self.consumer = consumer
        self.sought: list[tuple[Mapping[Any, int], Taken]] = []
        self.yielded: list[tuple[TP, int]] = []
        consumer._active_partitions = {self.changelog, self.stream}
        fetches = iter(enumerate(batches))

        async def getmany_from_thread(active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
            n, batch = next(fetches)
            thread.taken = {tp: ("assignment", n) for tp in batch}  # what the thread would note
            if n in stop_flow_during:
                consumer.stop_flow()
            return batch

        async def seek_back(first: Mapping[Any, int], taken: Taken) -> list[Any]:
            self.sought.append((first, taken))
            return list(first)

        async def no_seek() -> None:
            return None

        consumer._getmany = getmany_from_thread  # type: ignore[method-assign]
        thread.seek_back = seek_back  # type: ignore[method-assign]
        consumer.perform_seek = no_seek  # type: ignore[method-assign]
        consumer.highwater = lambda tp: 100  # type: ignore[method-assign]

    async def getmany(self) -> None:
        self.consumer.resume_flow()  # the rebalance's recovery resumed it
        async for tp, message in self.consumer.getmany(timeout=1.0):
            self.yielded.append((tp, message.offset))


def test_a_batch_dropped_as_the_flow_stops_is_sought_back_on_the_changelog_only(tmp_path: Path) -> None:
    changelog, stream = TP("refetch-test-state-changelog", 1), TP("telemetry", 1)
    dropped = {
        changelog: _records(changelog.topic, 1, range(0, 28)),
        stream: _records("telemetry", 1, range(40, 45)),
    }
    run = _Consumer(tmp_path, [dropped, {}], stop_flow_during={0})
    assert run.changelog == changelog

    async def two_fetches() -> None:
        await run.getmany()
        assert run.yielded == [] and run.sought == []  # dropped by Faust; sought back before the next fetch
        await run.getmany()

    asyncio.run(two_fetches())
    assert run.sought == [({changelog: 0}, {changelog: ("assignment", 0), stream: ("assignment", 0)})]


def test_a_batch_delivered_seeks_nothing(tmp_path: Path) -> None:
    changelog, stream = TP("refetch-test-state-changelog", 1), TP("telemetry", 1)
    batch = {
        changelog: _records(changelog.topic, 1, range(0, 3)),
        stream: _records("telemetry", 1, range(0, 2)),
    }
    run = _Consumer(tmp_path, [batch, {}], stop_flow_during=set())

    async def two_fetches() -> None:
        await run.getmany()
        await run.getmany()

    asyncio.run(two_fetches())
    assert sorted(run.yielded) == sorted(
        [(changelog, 0), (changelog, 1), (changelog, 2), (stream, 0), (stream, 1)]
    )
    assert run.sought == []
