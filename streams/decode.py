"""Kafka message bytes to validated telemetry, or a :class:`Rejection` naming the field and the reason.

This is the input boundary of the stream and of ``analyze``: it never raises on bad input. Checks
that need context beyond the contract happen here too: the payload size, the message key (which must
be ``"{tenant}/{machine}"`` so one machine's events stay ordered on one partition), event times too
far ahead of the message's own Kafka timestamp, and machines the plant configuration does not know
(which would otherwise grow Prometheus label sets without bound).

The "in the future" check is judged against the message's Kafka timestamp (the producer's
CreateTime, or the broker's LogAppendTime), as the broker judges ``message.timestamp.after.max.ms``,
never against the clock of whoever decodes it: that timestamp is fixed for the message forever, so
a batch applied again after a restart, a topic replayed a year later and ``analyze`` give the same
verdict. A message without one (a line of a file, unless ``analyze --received-at`` gives one) has
nothing to be judged against and is not judged.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Final

import numpy as np
from pydantic import ValidationError

from models.plant import MachineSpec, PlantConfig
from streams.contract import QualityEvent, SamplesEvent, TelemetryEvent, telemetry_adapter
from streams.exceptions import InvalidTelemetry
from streams.frames import Frame, FrameDecoder, SignalBlock, is_frame
from streams.json_keys import REPEATED_KEY_REASON, model_keys, repeated_key

__all__ = ["Decoded", "Rejection", "TelemetryDecoder", "placement_rejection"]

Decoded = TelemetryEvent | Frame


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message went to the dead-letter topic. ``code`` is one of :data:`REJECTION_CODES`
    (a metric label)."""

    code: str
    field: str
    reason: str
    # Set when the machine's in-memory state may already have changed (a processing error, or a
    # control command refused after its offset was recorded): it must be reloaded from its last
    # stored version.
    machine_key: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Accepted:
    event: Decoded
    spec: MachineSpec
    newest_ms: int  # the newest event time the message carries


REJECTION_CODES = (
    "empty",
    "too_large",
    "invalid_json",
    "invalid_schema",
    "invalid_frame",
    "key_mismatch",
    "future_timestamp",
    "past_timestamp",  # an event time far behind its Kafka timestamp (a device clock reset)
    "unknown_machine",
    "processing_error",
    "too_many_pending",  # control commands only: a machine's waiting `baseline reset --at` are bounded
    "too_many_signals",  # a machine's distinct sensor signals are bounded (streams.name_limits)
    "too_many_characteristics",  # and its quality characteristics
    "spec_limits_conflict",  # a quality measurement's limit and the plant file's other one are inverted
)


# LINEPULSE_MAX_PAST_S's default: history produced now (a gateway's buffer after an outage, last
# month replayed, a simulated year to train on) is still taken, while a device whose clock fell back
# to 2000 after a dead battery cannot make a machine's first event decades old, from which every
# hour, shift and day window to now was built and sent (~275,000 KPI records from one line, minutes
# of a partition's time).
MAX_PAST_MS_DEFAULT: Final = 5 * 365 * 86_400_000


class TelemetryDecoder:
    def __init__(
        self,
        plant: PlantConfig,
        *,
        max_payload_bytes: int,
        max_future_ms: int,
        max_past_ms: int | None = None,
    ) -> None:
        """``max_past_ms``: how far an event time may lie behind its message's Kafka timestamp (the
        worker, ``analyze`` and ``train`` pass ``LINEPULSE_MAX_PAST_S``); None: not judged."""
        self.plant = plant
        self.max_payload_bytes = max_payload_bytes
        self.max_future_ms = max_future_ms
        self.max_past_ms = max_past_ms
        # plant.machine() reads a pydantic private attribute (~15 us in a profile of the frame path).
        self._machines = {machine.key: machine for machine in plant.machines}
        self._frames = FrameDecoder()  # validates each machine's repeating frame header once

    def decode(
        self, key: bytes | None, value: bytes | None, timestamp_ms: int | None, *, require_key: bool = True
    ) -> Accepted | Rejection:
        """``timestamp_ms``: the message's Kafka timestamp (None: it has none, the time is not judged)."""
        if not value:
            return Rejection("empty", "value", "empty message")
        if len(value) > self.max_payload_bytes:
            return Rejection(
                "too_large",
                "value",
                f"{len(value)} bytes exceeds the limit of {self.max_payload_bytes} bytes",
            )
        event: Decoded
        if is_frame(value):
            try:
                # The frame decoder reads the newest event time off its checked columns.
                event, newest = self._frames.decode_newest(value)
            except InvalidTelemetry as exc:
                return Rejection("invalid_frame", exc.field, exc.reason)
        else:
            try:
                parsed = telemetry_adapter.validate_json(value)
            except ValidationError as exc:
                rejection = _schema_rejection(exc)
                if rejection.code == "invalid_json" and value.startswith(codecs.BOM_UTF8):
                    # Invisible where the record is shown: the reason must say what it is.
                    reason = f"{rejection.reason} (it starts with a UTF-8 byte-order mark: remove it)"
                    return Rejection(rejection.code, rejection.field, reason)
                return rejection
            repeated = repeated_key(value, model_keys(parsed))
            if repeated is not None:
                return Rejection("invalid_schema", repeated, REPEATED_KEY_REASON)
            event = _samples_to_frame(parsed) if isinstance(parsed, SamplesEvent) else parsed
            newest = _newest_ms(event)
        return self._check_context(key, event, newest, timestamp_ms, require_key)

    def _check_context(
        self, key: bytes | None, event: Decoded, newest: int, timestamp_ms: int | None, require_key: bool
    ) -> Accepted | Rejection:
        expected_key = f"{event.tenant}/{event.machine}"
        if require_key and (key is None or key != expected_key.encode()):
            shown = "none" if key is None else repr(key[:80].decode("utf-8", "replace"))
            return Rejection("key_mismatch", "key", f"must be {expected_key!r} (tenant/machine), got {shown}")
        if timestamp_ms is not None and newest > timestamp_ms + self.max_future_ms:
            return Rejection(
                "future_timestamp",
                "ts",
                f"{_seconds(newest - timestamp_ms)} s ahead of the message's Kafka timestamp "
                f"(limit {_seconds(self.max_future_ms)} s)",
            )
        if timestamp_ms is not None and self.max_past_ms is not None:
            oldest = _oldest_ms(event)
            if oldest < timestamp_ms - self.max_past_ms:
                return Rejection(
                    "past_timestamp",
                    "ts",
                    f"{_seconds(timestamp_ms - oldest)} s before the message's Kafka timestamp "
                    f"(limit {_seconds(self.max_past_ms)} s: a device clock that was reset?)",
                )
        spec = self._machines.get(expected_key)
        unknown = placement_rejection(spec, expected_key, event.site, event.line)
        if unknown is not None:
            return unknown
        assert spec is not None  # placement_rejection refuses a machine the plant does not have
        if isinstance(event, QualityEvent):
            conflict = self._limits_conflict(event, spec)
            if conflict is not None:
                return conflict
        return Accepted(event, spec, newest)

    def _limits_conflict(self, event: QualityEvent, spec: MachineSpec) -> Rejection | None:
        """A part's own limit against the plant file's other one (a part with only ``usl`` is judged
        against the configured ``lsl``): inverted, every part would be out of spec and capability
        negative. Both its own are checked by the contract, both configured at plant load."""
        if (event.lsl is None) == (event.usl is None):
            return None
        settings = self.plant.monitoring.settings_for("characteristics", event.characteristic, spec.id)
        lsl, usl = settings.spec_limits(event.lsl, event.usl)
        if lsl is None or usl is None or lsl < usl:
            return None
        own, given, other, configured = (
            ("lsl", lsl, "usl", usl) if event.lsl is not None else ("usl", usl, "lsl", lsl)
        )
        return Rejection(
            "spec_limits_conflict",
            own,
            f"{own} {given!r} and the plant file's {other} {configured!r} for {event.characteristic!r} "
            "are inverted: lsl must be below usl",
        )


def placement_rejection(spec: MachineSpec | None, key: str, site: str, line: str) -> Rejection | None:
    """Why a record of machine ``key`` (tenant/machine) placed on ``site``/``line`` is not one of the
    plant's machines (``spec``: the plant file's, if any), or None when it is."""
    if spec is None:
        return Rejection("unknown_machine", "machine", f"{key} is not in the plant configuration")
    if spec.site != site or spec.line != line:
        return Rejection(
            "unknown_machine",
            "line" if spec.site == site else "site",
            f"{key} is configured on {spec.site}/{spec.line}, not {site}/{line}",
        )
    return None


def _newest_ms(event: Decoded) -> int:
    if isinstance(event, Frame):
        newest = event.ts_ms
        for block in event.signals:  # a plain loop: max() over an unpacked generator costs ~1 us more
            last = int(block.ts_ms[-1])
            newest = max(newest, last)
        return newest
    return event.ts


def _oldest_ms(event: Decoded) -> int:
    """The oldest event time a message carries (a frame's readings are in time order per signal)."""
    if isinstance(event, Frame):
        oldest = event.ts_ms
        for block in event.signals:
            first = int(block.ts_ms[0])
            oldest = min(oldest, first)
        return oldest
    return event.ts


def _samples_to_frame(event: SamplesEvent) -> Frame:
    blocks = tuple(
        SignalBlock(
            signal=series.signal,
            unit=series.unit,
            ts_ms=np.asarray(series.ts, dtype=np.int64),
            values=np.asarray(series.values, dtype=np.float64),
        )
        for series in event.signals
    )
    return Frame(
        tenant=event.tenant,
        site=event.site,
        line=event.line,
        machine=event.machine,
        ts_ms=event.ts,
        seq=event.seq,
        signals=blocks,
    )


def _schema_rejection(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] in ("json_invalid", "json_type"):
        return Rejection("invalid_json", "value", f"not valid JSON: {first['msg']}")
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return Rejection("invalid_schema", "kind", f"{first['msg']}")
    # A reading fails each branch of its union (float, int); where one branch says why in words (an
    # integer beyond a float's range), that is the field's reason, not "should be a finite number".
    explained = {_field_path(error["loc"]) for error in errors if error["type"] == "value_error"}
    errors = [
        error
        for error in errors
        if error["type"] == "value_error" or _field_path(error["loc"]) not in explained
    ]
    first = errors[0]
    parts = []
    for error in errors[:3]:
        parts.append(f"{_field_path(error['loc']) or 'record'}: {error['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return Rejection("invalid_schema", _field_path(first["loc"]) or "record", "; ".join(parts) + more)


_KINDS = frozenset({"state", "count", "cycle", "sensor", "quality", "samples"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic puts the discriminator's value first ('sensor', 'value'); users know the field, not the tag.
    parts = list(loc)
    if parts and parts[0] in _KINDS:
        parts = parts[1:]
    return ".".join(str(part) for part in parts if not _is_branch_tag(part))


_BRANCH_TAGS = frozenset({"float", "int", "str", "bool", "none", "list", "dict"})


def _is_branch_tag(part: int | str) -> bool:
    # Union members appear in error locations as type tags ('value', 'float'); they are not fields.
    return isinstance(part, str) and (
        part in _BRANCH_TAGS or "[" in part or part.startswith(("function-", "constrained-"))
    )


def _seconds(ms: int) -> str:
    # Whole seconds print as such; otherwise milliseconds show, so 300.027 s is not read as 300 s.
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}"
