"""The messages every benchmark feeds: single sensor events, JSON ``samples`` records and binary frames.

All three carry the same kind of readings of the demo plant's machines, so a figure on one form can be
compared with another. Batches hold :data:`SIGNALS` signals x :data:`PER_SIGNAL` readings (500
readings, the batch size the design notes measured) sampled every :data:`PERIOD_MS`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

import numpy as np
import orjson

from models.plant import MachineSpec
from service.plant_file import load_demo_plant
from streams.frames import Frame, SignalBlock, encode_frame

__all__ = [
    "PERIOD_MS",
    "PER_SIGNAL",
    "READINGS_PER_BATCH",
    "RUNNING_LEAD_MS",
    "SIGNALS",
    "Message",
    "demo_machines",
    "frames",
    "running_states",
    "samples_records",
    "sensor_events",
]

SIGNALS: Final = ("spindle_temp", "vibration", "motor_current", "pressure", "speed")
PER_SIGNAL: Final = 100
READINGS_PER_BATCH: Final = len(SIGNALS) * PER_SIGNAL
PERIOD_MS: Final = 10

Message = tuple[bytes, bytes]  # (key, value)


def demo_machines() -> tuple[MachineSpec, ...]:
    return tuple(load_demo_plant().machines)


def _start_ms(span_ms: int) -> int:
    # Event times end about now: in the past (the worker rejects the future) and recent.
    return int(time.time() * 1000) - span_ms - 60_000


# Before the first reading: past the sensor monitors' settle_s (120 s), within state_timeout_s (900 s).
RUNNING_LEAD_MS: Final = 300_000


def running_states(first_reading_ms: int) -> list[Message]:
    """A ``running`` state per machine: the monitors judge sensor readings only while a machine runs,
    so without it the readings would skip drift/SPC (the analytics a benchmark must include)."""
    out: list[Message] = []
    for spec in demo_machines():
        record = {
            "v": 1, "tenant": spec.tenant, "site": spec.site, "line": spec.line, "machine": spec.id,
            "ts": first_reading_ms - RUNNING_LEAD_MS, "kind": "state", "state": "running",
        }  # fmt: skip
        out.append((spec.key.encode(), orjson.dumps(record)))
    return out


def sensor_events(count: int, *, seed: int = 1, running: bool = False) -> list[Message]:
    """``count`` single ``sensor`` records, round-robin over machines and signals.

    ``running``: first a ``running`` state per machine (so one message per machine more).
    """
    machines = demo_machines()
    rng = np.random.default_rng(seed)
    values = rng.normal(50.0, 5.0, count).round(3).tolist()
    start = _start_ms(count * PERIOD_MS)
    out: list[Message] = running_states(start) if running else []
    for i, value in enumerate(values):
        spec = machines[i % len(machines)]
        record = {
            "v": 1, "tenant": spec.tenant, "site": spec.site, "line": spec.line, "machine": spec.id,
            "ts": start + i * PERIOD_MS, "kind": "sensor",
            "signal": SIGNALS[(i // len(machines)) % len(SIGNALS)], "value": value,
        }  # fmt: skip
        out.append((spec.key.encode(), orjson.dumps(record)))
    return out


def _batch_start(count: int, per_signal: int) -> int:
    rounds = -(-count // len(demo_machines()))
    return _start_ms(rounds * per_signal * PERIOD_MS)


def _batches(
    count: int, seed: int, per_signal: int = PER_SIGNAL
) -> Iterator[tuple[MachineSpec, int, list[tuple[str, np.ndarray, np.ndarray]]]]:
    """(machine, cut time, [(signal, ts, values)]) for ``count`` batches, each machine's time moving on."""
    machines = demo_machines()
    rng = np.random.default_rng(seed)
    span = per_signal * PERIOD_MS
    start = _batch_start(count, per_signal)
    offsets = np.arange(per_signal, dtype=np.int64) * PERIOD_MS
    for i in range(count):
        spec = machines[i % len(machines)]
        t0 = start + (i // len(machines)) * span
        ts = t0 + offsets
        series = [(signal, ts, rng.normal(50.0, 5.0, per_signal).round(3)) for signal in SIGNALS]
        yield spec, int(ts[-1]), series


def samples_records(count: int, *, seed: int = 2, running: bool = False) -> list[Message]:
    """``count`` JSON ``samples`` records of :data:`READINGS_PER_BATCH` readings each (``running``: as
    in :func:`sensor_events`)."""
    out: list[Message] = running_states(_batch_start(count, PER_SIGNAL)) if running else []
    for spec, cut, series in _batches(count, seed):
        record = {
            "v": 1, "tenant": spec.tenant, "site": spec.site, "line": spec.line, "machine": spec.id,
            "ts": cut, "kind": "samples",
            "signals": [
                {"signal": name, "ts": ts.tolist(), "values": values.tolist()} for name, ts, values in series
            ],
        }  # fmt: skip
        out.append((spec.key.encode(), orjson.dumps(record)))
    return out


def frames(
    count: int, *, seed: int = 2, per_signal: int = PER_SIGNAL, running: bool = False
) -> list[Message]:
    """``count`` binary frames with the same content as :func:`samples_records` (same seed, same readings).

    ``per_signal`` other than :data:`PER_SIGNAL`: longer frames, as a high-rate sensor (vibration at
    1 kHz and more) or a gateway that batches a longer interval sends them. ``running``: as in
    :func:`sensor_events`.
    """
    out: list[Message] = running_states(_batch_start(count, per_signal)) if running else []
    for spec, cut, series in _batches(count, seed, per_signal):
        frame = Frame(
            tenant=spec.tenant, site=spec.site, line=spec.line, machine=spec.id, ts_ms=cut, seq=None,
            signals=tuple(SignalBlock(name, None, ts, values) for name, ts, values in series),
        )  # fmt: skip
        out.append((spec.key.encode(), encode_frame(frame)))
    return out
