"""One message in, its effects out: the single code path the Faust agent and ``analyze`` share.

:meth:`TelemetryProcessor.process` decodes a message, loads the machine's state, skips it if the
state already applied that source offset (Faust is at-least-once; this makes the effect
exactly-once), applies it to the engine, and returns the new state with the KPI and alert records
to publish. It never raises on bad input: a bad message comes back as a :class:`Rejection`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.anomaly.scoring import AnomalyModels
from models.machine import EngineOutput, MachineEngine
from models.machine_state import MachineState
from models.pending_resets import PendingReset, TooManyPendingResets, is_due, schedule, take_due
from models.plant import PlantConfig
from streams.contract import CountEvent, CycleEvent, QualityEvent, SensorEvent, StateEvent
from streams.control import ControlDecoder
from streams.decode import Accepted, Decoded, Rejection, TelemetryDecoder
from streams.frames import Frame
from streams.name_limits import CharacteristicLimit, SignalLimit
from streams.records import AlertRecord, KpiRecord, alert_record, kpi_record
from streams.unscored_log import UnscoredLog

__all__ = [
    "Applied",
    "AppliedReset",
    "Outcome",
    "Series",
    "TelemetryProcessor",
    "decode_state",
    "encode_state",
    "event_samples",
]


def encode_state(state: MachineState) -> bytes:
    """The table's form of a state: its JSON, zlib-compressed (level 1).

    Compression halves what the table and its changelog hold (about 1 KB per monitored series
    instead of 2.1 KB: numbers and keys repeat across windows and monitors) for ~50 us per write,
    which the agent pays once per machine and batch (benchmarks/bench_memory.py).
    """
    return zlib.compress(orjson.dumps(state.to_dict()), 1)


def decode_state(data: bytes) -> MachineState:
    # Plain JSON is what versions before compression wrote: their changelogs still load.
    text = data if data[:1] == b"{" else zlib.decompress(data)
    return MachineState.from_dict(orjson.loads(text))


@dataclass(slots=True)
class Applied:
    """A valid message's effects. ``duplicate`` means the state had already applied this offset."""

    state: MachineState
    kpis: list[KpiRecord] = field(default_factory=list)
    alerts: list[AlertRecord] = field(default_factory=list)
    duplicate: bool = False
    late: bool = False  # within the allowed lateness: its windows were corrected
    too_late: bool = False  # beyond it: counted, not merged
    readings: int = 0
    newest_ms: int | None = None  # the message's newest event time (latency measurements)


Outcome = Applied | Rejection


@dataclass(frozen=True, slots=True)
class AppliedReset:
    """A baseline reset applied: its outcome and the monitors (``"series:name"``) it dropped."""

    reset: PendingReset
    outcome: Outcome
    dropped: list[str]


StateLoader = Callable[[str], MachineState | None]
_log = logging.getLogger(__name__)


class TelemetryProcessor:
    def __init__(
        self,
        plant: PlantConfig,
        *,
        max_payload_bytes: int,
        max_future_ms: int,
        max_past_ms: int | None = None,
        anomaly_models: AnomalyModels | None = None,
    ) -> None:
        self.plant = plant
        self.engine = MachineEngine(plant, anomaly_models)
        self.decoder = TelemetryDecoder(
            plant, max_payload_bytes=max_payload_bytes, max_future_ms=max_future_ms, max_past_ms=max_past_ms
        )
        self.control = ControlDecoder(plant)
        self.signal_limit = SignalLimit(plant.max_signals_per_machine)
        self.characteristic_limit = CharacteristicLimit(plant.max_characteristics_per_machine)
        self.config_version = plant.version
        self.unscored = UnscoredLog()

    def process(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        timestamp_ms: int | None,
        load_state: StateLoader,
        source: str | None = None,
        offset: int | None = None,
        require_key: bool = True,
    ) -> Outcome:
        """Apply one message. ``source`` ("topic:partition") and ``offset`` make re-delivery a no-op.

        ``timestamp_ms``: the message's Kafka timestamp, what the event time may not be more than
        ``max_future_ms`` ahead of (None: not judged). ``require_key=False`` is for files, whose
        lines carry no Kafka key.
        """
        decoded = self.decoder.decode(key, value, timestamp_ms, require_key=require_key)
        if isinstance(decoded, Rejection):
            return decoded
        return self.process_decoded(decoded, load_state=load_state, source=source, offset=offset)

    def decode(
        self, key: bytes | None, value: bytes | None, *, timestamp_ms: int | None, require_key: bool = True
    ) -> Accepted | Rejection:
        """The first half of :meth:`process`: validation only, no state touched."""
        return self.decoder.decode(key, value, timestamp_ms, require_key=require_key)

    def process_decoded(
        self,
        decoded: Accepted,
        *,
        load_state: StateLoader,
        source: str | None = None,
        offset: int | None = None,
    ) -> Outcome:
        """The second half of :meth:`process`: apply a decoded message to its machine's state."""
        spec = decoded.spec
        state = self.engine.state_of(spec, load_state(spec.key))
        if source is not None and offset is not None and offset <= state.applied.get(source, -1):
            return Applied(state, duplicate=True)
        over = self.signal_limit.check(
            decoded.event, state.signals, set()
        ) or self.characteristic_limit.check(decoded.event, state)
        if over is not None:
            return over  # before anything is changed: the state stays as it was
        if source is not None and offset is not None:
            state.applied[source] = offset
        try:
            output = self._apply(state, decoded)
        except Exception as exc:
            # A bug, not bad input: dead-letter the message rather than stall its partition forever
            # on a message that fails the same way at every redelivery.
            _log.exception("processing %s failed; message dead-lettered", spec.key)
            return Rejection(
                "processing_error", "value", f"{type(exc).__name__}: {exc}", machine_key=spec.key
            )
        return self._applied_event(state, decoded, output)

    @staticmethod
    def is_samples(decoded: Accepted) -> bool:
        """Readings only (a frame, a ``samples`` record or one ``sensor`` event): what
        :meth:`process_samples` can apply several of in one engine call."""
        return isinstance(decoded.event, Frame | SensorEvent)

    @staticmethod
    def readings(decoded: Accepted) -> int:
        """How many readings a message carries (1 for anything but a frame or ``samples`` record)."""
        return _readings(decoded.event)

    def process_samples(
        self, run: Sequence[tuple[Accepted, int]], *, load_state: StateLoader, source: str
    ) -> list[Outcome]:
        """Consecutive messages of one machine that carry only readings (:meth:`is_samples`), with
        their source offsets: one outcome each, the same as :meth:`process_decoded` one by one (the
        engine's :meth:`~models.machine.MachineEngine.on_samples_each`), for a fraction of the cost.
        A message that would give the machine too many signals is rejected, the others applied.

        Unlike :meth:`process_decoded` it raises when the engine fails, leaving the state
        half-changed: the caller then reloads the state and applies the messages one by one, so
        that only the failing message is dead-lettered.
        """
        spec = run[0][0].spec
        state = self.engine.state_of(spec, load_state(spec.key))
        outcomes: list[Outcome | None] = []
        fresh: list[tuple[int, Accepted]] = []
        added = set[str]()
        for decoded, offset in run:
            if offset <= state.applied.get(source, -1):
                outcomes.append(Applied(state, duplicate=True))
                continue
            over = self.signal_limit.check(decoded.event, state.signals, added)
            if over is not None:
                outcomes.append(over)
                continue
            state.applied[source] = offset
            fresh.append((len(outcomes), decoded))
            outcomes.append(None)  # filled below
        batches = [event_samples(decoded.event) for _, decoded in fresh]
        outputs = self.engine.on_samples_each(state, spec, batches)
        for (index, decoded), output in zip(fresh, outputs, strict=True):
            # Records are built as each batch is applied: a later batch updates the alert states.
            outcomes[index] = self._applied_event(state, decoded, output)
        return [outcome for outcome in outcomes if outcome is not None]

    def _applied_event(self, state: MachineState, decoded: Accepted, output: EngineOutput) -> Applied:
        """The effects of one telemetry message."""
        self.unscored.observe(state)
        return self._applied(
            state,
            output,
            late=output.late,
            too_late=output.too_late,
            readings=_readings(decoded.event),
            newest_ms=decoded.newest_ms,
        )

    def process_tick(self, state: MachineState, tick_ms: int) -> Applied | None:
        """Tick a silent machine to ``tick_ms`` (:mod:`streams.silence`); None when it is not
        behind that time or has no spec in this plant."""
        if state.cursor_ms is None or state.cursor_ms >= tick_ms:
            return None  # the cheap test first: most machines are not behind the tick
        spec = self.plant.machine(state.tenant, state.machine)
        if spec is None:
            return None
        return self._applied(state, self.engine.on_tick(state, spec, tick_ms))

    def stop_deadline(self, state: MachineState) -> int | None:
        """When stream time makes the machine's current stop an alert (:mod:`streams.stop_watch`)."""
        return self.engine.stop_deadline(state)

    def process_stream_time(self, state: MachineState, stream_ms: int) -> Applied | None:
        """Judge a stopped machine on its partition's stream time (:mod:`streams.stop_watch`); None
        when that changes nothing (it is not stopped long enough, or has no spec in this plant)."""
        spec = self.plant.machine(state.tenant, state.machine)
        if spec is None:
            return None
        output = self.engine.on_stream_time(state, spec, stream_ms)
        return self._applied(state, output) if output.alerts else None

    def _applied(self, state: MachineState, output: EngineOutput, **extra: Any) -> Applied:
        """The state with the KPI records of the windows ``output`` closed and its alerts."""
        calendar, version = self.engine.calendar_for(state), self.config_version
        return Applied(
            state,
            kpis=[
                kpi_record(closed.machine, closed.window, calendar, version, revision=closed.revision)
                for closed in output.closed
            ],
            alerts=[alert_record(state, change, calendar) for change in output.alerts],
            **extra,
        )

    def process_control(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        load_state: StateLoader,
        source: str | None = None,
        offset: int | None = None,
        require_key: bool = True,
    ) -> Outcome:
        """Apply one control command (:mod:`streams.control`), with the same exactly-once offset
        check as telemetry: a redelivered reset must not throw away what was learned since."""
        decoded = self.control.decode(key, value, require_key=require_key)
        if isinstance(decoded, Rejection):
            return decoded
        command, spec = decoded.command, decoded.spec
        state = self.engine.state_of(spec, load_state(spec.key))
        if source is not None and offset is not None:
            if offset <= state.applied.get(source, -1):
                return Applied(state, duplicate=True)
            state.applied[source] = offset
        reset = PendingReset(
            command.ts if command.at_ms is None else command.at_ms,
            command.series,
            command.name,
            command.requested_by,
            command.reason,
        )
        if command.at_ms is not None and not is_due(command.at_ms, state.last_seen_ms):
            try:
                schedule(state.pending_resets, reset)
            except TooManyPendingResets as exc:
                return Rejection("too_many_pending", "at_ms", str(exc), machine_key=spec.key)
            _log.warning(
                "baseline reset on %s scheduled for event time %s (series %s, name %s, by %s: %s); "
                "%d waiting for the machine's telemetry to get there",
                spec.key,
                self._local(state, command.at_ms),
                command.series or "all",
                command.name or "all",
                command.requested_by or "-",
                command.reason or "-",
                len(state.pending_resets),
            )
            return Applied(state)
        if command.at_ms is not None:
            # Not where `analyze --baseline-reset` would apply it: the readings between the asked
            # time and now were judged on the old baseline, and they cannot be judged again.
            _log.warning(
                "baseline reset on %s asked for event time %s, but the machine's telemetry is already "
                "at %s: applied now, not exactly at its time (to repeat it exactly, send it before "
                "the stream gets there, e.g. before replaying)",
                spec.key,
                self._local(state, command.at_ms),
                self._local(state, state.last_seen_ms or command.at_ms),
            )
        return self._reset(state, reset).outcome

    def _local(self, state: MachineState, ms: int) -> str:
        """An event time as the machine's records show it: RFC 3339 in its site's offset, which is
        what an operator copies into ``--at`` or ``--baseline-reset``."""
        return self.engine.calendar_for(state).local_isoformat(ms)

    def apply_due_resets(self, state: MachineState, *, announce: bool = True) -> list[AppliedReset]:
        """Apply the machine's waiting resets its telemetry has reached (:func:`is_due`), in order:
        right after each telemetry message, in the worker and in ``analyze`` alike. ``announce``:
        log each (False when a machine is rebuilt after a processing error: logged the first time)."""
        if not state.pending_resets:
            return []
        due = take_due(state.pending_resets, state.last_seen_ms)
        return [self._reset(state, reset, announce=announce) for reset in due]

    def _reset(self, state: MachineState, reset: PendingReset, *, announce: bool = True) -> AppliedReset:
        # Alerts resolved by the reset carry the machine's event time when it has one, so they do
        # not appear to come from the future of a replay.
        at_ms = state.last_seen_ms if state.last_seen_ms is not None else reset.at_ms
        try:
            output, dropped = self.engine.reset_baselines(state, at_ms, reset.series, reset.name)
        except Exception as exc:
            # A bug, not bad input: as for telemetry, dead-letter it rather than stop the worker.
            if announce:  # a redo fails as the first attempt did, which said so
                _log.exception("baseline reset on %s failed; command dead-lettered", state.key)
            failed = Rejection(
                "processing_error", "value", f"{type(exc).__name__}: {exc}", machine_key=state.key
            )
            return AppliedReset(reset, failed, [])
        if not announce:
            return AppliedReset(reset, self._applied(state, output), dropped)
        # Logged at the default level: the event time is what a replay needs to repeat the reset
        # (`analyze --baseline-reset MACHINE@TIME`, or `baseline reset --at TIME`).
        _log.warning(
            "baseline reset on %s at event time %s (series %s, name %s, by %s: %s): %d monitors dropped%s",
            state.key,
            self._local(state, at_ms),
            reset.series or "all",
            reset.name or "all",
            reset.requested_by or "-",
            reset.reason or "-",
            len(dropped),
            ""
            if dropped
            else " (no monitor of that series on the machine yet: a misspelt name, or a series not judged "
            "yet, such as a temperature whose expected level is still learning; docs/drift-and-spc.md)",
        )
        return AppliedReset(reset, self._applied(state, output), dropped)

    def open_window_records(self, state: MachineState) -> list[KpiRecord]:
        """The machine's still-open windows, as ``complete: false`` records (live views, end of a file)."""
        spec = self.plant.machine(state.tenant, state.machine)
        if spec is None:
            return []
        return [
            kpi_record(spec, window, self.engine.calendar_for(spec), self.config_version, complete=False)
            for window in state.windows.values()
        ]

    def _apply(self, state: MachineState, accepted: Accepted) -> EngineOutput:
        engine, spec, event = self.engine, accepted.spec, accepted.event
        if isinstance(event, Frame):
            return engine.on_samples(state, spec, *event_samples(event))
        if isinstance(event, StateEvent):
            return engine.on_state(state, spec, event.ts, event.state, event.reason)
        if isinstance(event, CountEvent):
            return engine.on_count(
                state, spec, event.ts, event.good, event.scrap, event.product, event.scrap_reason
            )
        if isinstance(event, CycleEvent):
            return engine.on_cycle(state, spec, event.ts, float(event.seconds), event.product)
        if isinstance(event, SensorEvent):
            return engine.on_samples(state, spec, *event_samples(event))
        if isinstance(event, QualityEvent):
            return engine.on_quality(
                state,
                spec,
                event.ts,
                event.characteristic,
                float(event.value),
                None if event.lsl is None else float(event.lsl),
                None if event.usl is None else float(event.usl),
                event.product,
            )
        raise TypeError(f"unhandled telemetry type {type(event).__name__}")  # pragma: no cover


Series = list[tuple[str, np.ndarray, np.ndarray]]


def event_samples(event: Decoded) -> tuple[int, Series]:
    """A frame's or sensor event's (ts_ms, series), as :meth:`MachineEngine.on_samples` takes them."""
    if isinstance(event, Frame):
        return event.ts_ms, [(block.signal, block.ts_ms, block.values) for block in event.signals]
    assert isinstance(event, SensorEvent), "only frames and sensor events carry samples"
    times = np.array([event.ts], dtype=np.int64)
    values = np.array([event.value], dtype=np.float64)
    return event.ts, [(event.signal, times, values)]


def _readings(event: Decoded) -> int:
    if isinstance(event, Frame):
        count = 0
        for block in event.signals:  # a plain loop: sum() over a generator costs ~1 us a frame more
            count += block.values.shape[0]
        return count
    return 1
