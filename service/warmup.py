"""Compile the worker's numba kernels before it joins its consumer group.

numba compiles a kernel at its first call, or loads it from its on-disk cache. With an empty cache
(a new container, a new version: :mod:`models.numba_config` keys the cache by the models' sources)
the first batches compiled the hot path's kernels inside Faust's event loop: ~40 s on two cores in
which the worker's pages and metrics did not answer and a SIGTERM was seen only afterwards, past
Kubernetes' 30 s grace period (Faust's consumer thread kept the group's heartbeats going). So the
worker first runs a simulated plant through a throwaway processor, before Faust starts: the plant's
settings and anomaly models, the same decode and engine paths (JSON records, binary frames,
runs of several frames per machine, stream time, the changelog's encoding), long enough for every
signal's baseline to close so that the monitors judge, on one machine of each type (at most four:
the kernels are the same for every machine). Until then a SIGTERM ends the process at once (nothing
to commit). With a warm cache this takes ~1 s; nothing of it is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from models.anomaly.scoring import AnomalyModels
from models.machine_state import MachineState
from models.numba_config import compiled_signatures
from models.plant import MachineSpec, PlantConfig
from service.simulator import PlantSimulator
from streams.decode import Accepted
from streams.frames import Frame, encode_frame
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state

__all__ = ["WARM_UP_MINUTES", "WarmUp", "warm_up", "warm_up_or_log"]

log = logging.getLogger(__name__)

# Past the sensor monitors' baseline (1,800 readings at 1 Hz) and settle time, so they judge too.
WARM_UP_MINUTES = 40.0
_RUN = 4  # frames of one machine applied in one engine call, as the worker applies a batch's runs
_SOURCE = "warm-up:0"
_MACHINES = 4


@dataclass(frozen=True, slots=True)
class WarmUp:
    messages: int
    seconds: float
    compiled: int  # signatures numba compiled (not found in its cache)


def warm_up(
    plant: PlantConfig,
    *,
    max_payload_bytes: int,
    max_future_ms: int,
    anomaly_models: AnomalyModels | None,
    minutes: float = WARM_UP_MINUTES,
) -> WarmUp:
    """Run ``minutes`` of the simulated ``plant`` through a processor like the worker's."""
    started = time.perf_counter()
    compiled_before = compiled_signatures()
    sample = _sample(plant)
    processor = TelemetryProcessor(
        sample,
        max_payload_bytes=max_payload_bytes,
        max_future_ms=max_future_ms,
        anomaly_models=anomaly_models,
    )
    now_ms = int(time.time() * 1000)
    simulator = PlantSimulator(sample, seed=1, start_ms=now_ms - int(minutes * 60_000))
    states: dict[str, MachineState] = {}
    runs: dict[str, list[tuple[Accepted, int]]] = {}
    messages = 0
    records = (_with_ambient(sample, record) for record in simulator.events(now_ms))
    for offset, (key, value) in enumerate(_messages(processor, records, now_ms)):
        decoded = processor.decode(key, value, timestamp_ms=now_ms)
        messages += 1
        if not isinstance(decoded, Accepted):
            continue  # the simulator writes valid telemetry; nothing to compile here
        machine = decoded.spec.key
        if processor.is_samples(decoded):
            run = runs.setdefault(machine, [])
            run.append((decoded, offset))
            if len(run) == _RUN:
                _apply_run(processor, states, runs.pop(machine))
            continue
        if machine in runs:
            _apply_run(processor, states, runs.pop(machine))
        _keep(
            states, processor.process_decoded(decoded, load_state=states.get, source=_SOURCE, offset=offset)
        )
    for run in runs.values():
        _apply_run(processor, states, run)
    for state in list(states.values()):
        _keep(states, processor.process_stream_time(state, now_ms))
    for state in states.values():
        decode_state(encode_state(state))  # the changelog's form: packed monitors, as at recovery
    seconds = time.perf_counter() - started
    compiled = compiled_signatures() - compiled_before
    if compiled:
        log.warning(
            "kernels compiled in %.0f s before joining the group (%d signatures not in the kernel "
            "cache: keep NUMBA_CACHE_DIR on a volume to load them next time)",
            seconds,
            compiled,
        )
    else:
        log.info("kernels loaded in %.1f s (%d simulated messages, nothing kept)", seconds, messages)
    return WarmUp(messages, seconds, compiled)


def _sample(plant: PlantConfig) -> PlantConfig:
    """The plant with :data:`_MACHINES` of its machines, one of each type first (anomaly models are
    served per type), then the next in the plant file (machines differ in products, quality checks
    and sensors): the kernels are the same for every machine, and a warm-up simulating every machine
    of a large plant took ~0.075 s each."""
    if len(plant.machines) <= _MACHINES:
        return plant
    first_of_type: dict[str | None, MachineSpec] = {}
    for machine in plant.machines:
        first_of_type.setdefault(machine.type, machine)
    picked = list(first_of_type.values())[:_MACHINES]
    picked += [machine for machine in plant.machines if machine not in picked][: _MACHINES - len(picked)]
    machines = [machine for machine in plant.machines if machine in picked]  # in the plant's order
    data = plant.model_dump()
    data["machines"] = [machine.model_dump() for machine in machines]
    try:
        return PlantConfig.model_validate(data)
    except ValidationError:  # a plant whose other settings name the machines left out
        return plant


def warm_up_or_log(
    plant: PlantConfig,
    *,
    max_payload_bytes: int,
    max_future_ms: int,
    anomaly_models: AnomalyModels | None,
) -> WarmUp | None:
    """:func:`warm_up`, or None after logging why it failed: a worker that would run without it
    must not stop for it (its kernels then compile at their first use, in the first batches).
    Typed, not ``**options``: an option warm_up does not take was a TypeError logged at every
    start, found only by a cold-cache test on a broker."""
    try:
        return warm_up(
            plant,
            max_payload_bytes=max_payload_bytes,
            max_future_ms=max_future_ms,
            anomaly_models=anomaly_models,
        )
    except Exception:
        log.exception("kernel warm-up failed; the kernels compile at their first use instead")
        return None


# What the warm-up's hall sensor reads: a constant suffices (the kernels, not the values, matter).
_HALL_READING = 21.0


def _with_ambient(plant: PlantConfig, record: dict[str, object]) -> dict[str, object]:
    """``record``, a samples record with the ambient (hall) signal its temperatures' thermal model
    is set to read (``ambient_signal``) added, as the plant's gateway would send it: the simulator
    has no hall sensor, and without one such a temperature is never judged, so the expected level's
    kernels compiled in the worker's first batch instead (~4 s on two cores)."""
    columns = record.get("signals")
    if record.get("kind") != "samples" or not isinstance(columns, list) or not columns:
        return record
    machine = str(record["machine"])
    sent = {column["signal"] for column in columns}
    hall: set[str] = set()
    for name in sent:
        settings = plant.monitoring.settings_for("signals", str(name), machine)
        if settings.expected_level == "thermal" and settings.ambient_signal is not None:
            hall.add(settings.ambient_signal)
    stamps = columns[0]["ts"]
    added = [
        {"signal": name, "unit": "degC", "ts": stamps, "values": [_HALL_READING] * len(stamps)}
        for name in sorted(hall - sent)
    ]
    return {**record, "signals": [*columns, *added]} if added else record


def _messages(
    processor: TelemetryProcessor, records: Iterable[dict[str, object]], now_ms: int
) -> Iterable[tuple[bytes, bytes]]:
    """The simulator's JSON records, every other readings record re-encoded as a binary frame."""
    as_frame = False
    for record in records:
        key = f"{record['tenant']}/{record['machine']}".encode()
        value = orjson.dumps(record)
        if record.get("kind") == "samples":
            as_frame = not as_frame
            if as_frame:
                decoded = processor.decode(key, value, timestamp_ms=now_ms)
                if isinstance(decoded, Accepted) and isinstance(decoded.event, Frame):
                    value = encode_frame(decoded.event)
        yield key, value


def _apply_run(
    processor: TelemetryProcessor, states: dict[str, MachineState], run: list[tuple[Accepted, int]]
) -> None:
    for outcome in processor.process_samples(run, load_state=states.get, source=_SOURCE):
        _keep(states, outcome)


def _keep(states: dict[str, MachineState], outcome: object) -> None:
    if isinstance(outcome, Applied):
        states[outcome.state.key] = outcome.state
