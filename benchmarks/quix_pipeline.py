"""What a user would pick instead: a Quix Streams app computing the same statistics with river.

Run in its own virtualenv (``.venv-bench-quix``: quixstreams pins pydantic below the version linepulse
pins), from the repository root: ``python -m benchmarks.quix_pipeline --bootstrap B --topic T
--expect N --result FILE``. It imports nothing of linepulse but :mod:`benchmarks.peers` (river only).

Per message it decodes the value the way a user would (``orjson`` for JSON records; for the binary
frame, its header with ``orjson`` and its columns with ``numpy.frombuffer``) and updates river's
statistics of each (machine, signal), kept in a plain dict. With ``--drift`` (a JSON object from
:func:`benchmarks.peer_drift.drift_json`, which the end-to-end benchmark passes since this version)
it also runs on each named signal the drift detection linepulse's sensor monitors run, with their
settings (:class:`benchmarks.peers.DriftMonitor`: a frozen baseline, then river's PageHinkley and
ADWIN and a CUSUM and an EWMA chart on the standardised readings); a signal mapped to null, such as
a temperature (which linepulse judges against its thermal expected level, a model with no river
equivalent), keeps the statistics only. What it leaves out of linepulse's work: validation, the
machine state (so no running/settle gating of the readings), accounting and KPIs, alerts (it
counts detections), state written to a changelog, metrics and the thermal expected level. It does
strictly less work than the linepulse worker but in one place: river's ADWIN window is not capped
(linepulse caps its rows to bound the state), so its cut check, every ``adwin_clock`` readings,
scans a few more buckets on a long in-control series. Timing is from the first message to the
``N``-th, wall and CPU, as in :mod:`benchmarks.e2e_worker`.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from quixstreams import Application

from benchmarks.peers import DriftParams, RiverSignalStats

__all__ = ["main"]

_PREFIX = struct.Struct("<4sI")
_ALPHA = 1.0 - 0.5 ** (1.0 / 50.0)  # linepulse's default EW weight (half-life of 50 readings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quix_pipeline")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument(
        "--drift",
        type=json.loads,
        default={},
        help="JSON object: signal name -> DriftParams fields (or null: statistics only)",
    )
    args = parser.parse_args(argv)
    drift = {name: DriftParams.from_dict(fields) for name, fields in args.drift.items() if fields is not None}

    stats: dict[tuple[str, str], RiverSignalStats] = {}
    progress = {"messages": 0, "readings": 0, "first_readings": 0, "t0": 0.0, "cpu0": 0.0}

    def signal(machine: str, name: str) -> RiverSignalStats:
        found = stats.get((machine, name))
        if found is None:
            found = stats[(machine, name)] = RiverSignalStats(_ALPHA, drift=drift.get(name))
        return found

    def process(value: bytes) -> None:
        readings = 0
        if value[:4] == b"LPF1":
            _, header_len = _PREFIX.unpack_from(value)
            header = orjson.loads(value[8 : 8 + header_len])
            total = sum(entry["n"] for entry in header["signals"])
            ts = np.frombuffer(value, dtype="<i8", count=total, offset=8 + header_len)
            values = np.frombuffer(value, dtype="<f8", count=total, offset=8 + header_len + 8 * total)
            start = 0
            for entry in header["signals"]:
                end = start + entry["n"]
                signal(header["machine"], entry["signal"]).update_many(ts[start:end], values[start:end])
                start = end
            readings = total
        else:
            record: dict[str, Any] = orjson.loads(value)
            if record["kind"] == "samples":
                for series in record["signals"]:
                    signal(record["machine"], series["signal"]).update_many(series["ts"], series["values"])
                    readings += len(series["values"])
            elif record["kind"] == "sensor":
                signal(record["machine"], record["signal"]).update(record["ts"], record["value"])
                readings = 1
        _count(readings)

    def _count(readings: int) -> None:
        progress["messages"] += 1
        progress["readings"] += readings
        if progress["messages"] == 1:
            progress.update(t0=time.perf_counter(), cpu0=time.process_time(), first_readings=readings)
        if progress["messages"] == args.expect:
            payload = {
                "messages": args.expect - 1,
                "readings": progress["readings"] - progress["first_readings"],
                "wall_s": time.perf_counter() - progress["t0"],
                "cpu_s": time.process_time() - progress["cpu0"],
                "latencies_ms": [],
            }
            tmp = args.result.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload), encoding="utf-8")
            tmp.replace(args.result)
            app.stop()

    with tempfile.TemporaryDirectory(prefix="linepulse-bench-quix-") as state_dir:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=args.group,
            auto_offset_reset="earliest",
            state_dir=state_dir,
            use_changelog_topics=False,
            auto_create_topics=False,
            loglevel="WARNING",
            consumer_extra_config={
                "session.timeout.ms": 6000,
                "fetch.max.bytes": 16 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
            },
        )
        topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
        dataframe = app.dataframe(topic)
        dataframe = dataframe.update(process)
        app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
