"""Telemetry contract, version 1: the JSON records machines send, as pydantic models.

One JSON object per Kafka message, keyed ``"{tenant}/{machine}"`` so one machine's events stay in
order on one partition. High-rate signals use the columnar ``samples`` form (JSON) or the binary
frame in :mod:`streams.frames`; both decode to numpy arrays, which is the fast path.

Validation is strict on purpose: a wrong-typed field (``"good": "5"``), NaN or Infinity, an unknown
field or an unknown kind is rejected with the field's path, never coerced, so a producer's bug shows
up in the dead-letter topic instead of in the KPIs.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    field_validator,
    model_validator,
)

__all__ = [
    "CONTRACT_VERSION",
    "ID_PATTERN",
    "MACHINE_STATES",
    "TELEMETRY_MAX_MS",
    "TELEMETRY_MIN_MS",
    "TS_RANGE_REASON",
    "CountEvent",
    "CycleEvent",
    "QualityEvent",
    "SampleSeries",
    "SamplesEvent",
    "SensorEvent",
    "StateEvent",
    "Telemetry",
    "TelemetryEvent",
    "Version",
    "telemetry_adapter",
    "telemetry_json_schema",
]

CONTRACT_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MACHINE_STATES = ("running", "idle", "down", "setup", "planned_stop", "offline")
# Epoch-ms bounds for a timestamp to be plausible at all; the "not in the future" check needs the
# message's Kafka timestamp and lives in the decoder.
TELEMETRY_MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
TELEMETRY_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)
# What an event time out of those bounds is told (decoding of JSON and of frames alike).
TS_RANGE_REASON = "must lie between 2000-01-01 and 2100-01-01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MAX_SAMPLES = 100_000


def _not_a_boolean(value: Any) -> Any:
    # Literal[1] takes true (true == 1 in Python); the published schemas and the frame header do not.
    if isinstance(value, bool):
        raise ValueError("must be the integer 1, not a boolean")
    return value


# The contract version field of every v1 message (telemetry, control).
Version = Annotated[Literal[1], BeforeValidator(_not_a_boolean)]

Id = Annotated[str, Field(pattern=ID_PATTERN)]


def _not_the_none_mark(code: str) -> str:
    if code == NONE_MARK:
        raise ValueError(f"{NONE_MARK!r} is how linepulse's records and labels say 'none': use another code")
    return code


# In keys, labels and records "-" stands for no product or reason: a code "-" merged with those.
NONE_MARK = "-"
Code = Annotated[
    str, Field(min_length=1, max_length=64, pattern=ID_PATTERN), AfterValidator(_not_the_none_mark)
]
Unit = Annotated[str, Field(min_length=1, max_length=32)]
FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
_FLOAT_MAX = sys.float_info.max


def _fits_a_float(value: int) -> int:
    # JSON integers are exact and unbounded in Python, but a reading is processed as a 64-bit float:
    # one beyond its range overflowed there, far from the boundary that should name the field.
    if not -_FLOAT_MAX <= value <= _FLOAT_MAX:
        raise ValueError("integer too large for a reading (a 64-bit float, at most about 1.8e308 in size)")
    return value


# A measured value: a finite float, or an integer a float can hold.
Reading = FiniteFloat | Annotated[StrictInt, AfterValidator(_fits_a_float)]


def _parse_timestamp(value: Any) -> int:
    """RFC 3339 with an explicit offset, or integer epoch milliseconds, to epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 string with offset or integer epoch milliseconds")
    if isinstance(value, int):
        millis = value
    elif isinstance(value, str):
        if len(value) > 40 or not re.fullmatch(
            r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)", value
        ):
            raise ValueError("must be RFC 3339 with an offset, e.g. 2026-11-25T06:00:00+09:00")
        text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
        # Python parses at most microseconds; trim extra fraction digits, keeping the offset.
        head, sep, frac_and_offset = text.partition(".")
        if sep:
            digits = re.match(r"\d+", frac_and_offset)
            assert digits is not None  # guaranteed by the regex above
            text = f"{head}.{digits.group()[:6]}{frac_and_offset[digits.end() :]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a valid date/time: {exc}") from None
        # Exact: timestamp() is a float, and its seconds times 1000 came out 1 ms early for some
        # times (2039-07-06T01:24:33.693Z gave ...692).
        millis = (parsed - _EPOCH) // _ONE_MS
    else:
        raise ValueError("must be an RFC 3339 string with offset or integer epoch milliseconds")
    if not TELEMETRY_MIN_MS <= millis < TELEMETRY_MAX_MS:
        raise ValueError(f"out of range: {TS_RANGE_REASON}")
    return millis


class _Envelope(BaseModel):
    """Fields every v1 record carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    v: Version = Field(description="Contract version: the integer 1.")
    tenant: Id
    site: Id
    line: Id
    machine: Id
    ts: int = Field(description="Event time: RFC 3339 with offset, or integer epoch milliseconds.")
    # Bounded as the binary frame's u64 is: the same sequence numbers either way.
    seq: Annotated[StrictInt, Field(ge=0, le=2**64 - 1)] | None = Field(
        default=None, description="Optional per-source sequence number, for de-duplication."
    )

    @field_validator("ts", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> int:
        return _parse_timestamp(value)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.machine}"


class StateEvent(_Envelope):
    kind: Literal["state"]
    state: Literal["running", "idle", "down", "setup", "planned_stop", "offline"]
    reason: Code | None = None


class CountEvent(_Envelope):
    kind: Literal["count"]
    good: NonNegativeInt = 0
    scrap: NonNegativeInt = 0
    product: Code | None = None
    scrap_reason: Code | None = None

    @model_validator(mode="before")
    @classmethod
    def _some_quantity(cls, data: Any) -> Any:
        if isinstance(data, dict) and "good" not in data and "scrap" not in data:
            raise ValueError("a count event needs 'good' or 'scrap'")
        return data


class CycleEvent(_Envelope):
    kind: Literal["cycle"]
    seconds: Annotated[Reading, Field(gt=0, le=86_400)]
    product: Code | None = None


class SensorEvent(_Envelope):
    kind: Literal["sensor"]
    signal: Id
    value: Reading
    unit: Unit | None = None


class QualityEvent(_Envelope):
    kind: Literal["quality"]
    characteristic: Id
    value: Reading
    lsl: Reading | None = None
    usl: Reading | None = None
    product: Code | None = None

    @model_validator(mode="after")
    def _limits_ordered(self) -> QualityEvent:
        if self.lsl is not None and self.usl is not None and self.lsl >= self.usl:
            raise ValueError("lsl must be below usl")
        return self


class SampleSeries(BaseModel):
    """One signal's readings inside a ``samples`` record: parallel arrays, oldest first."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    signal: Id
    unit: Unit | None = None
    ts: list[StrictInt] = Field(max_length=_MAX_SAMPLES, description="Epoch milliseconds, non-decreasing.")
    values: list[Reading] = Field(max_length=_MAX_SAMPLES)

    @model_validator(mode="after")
    def _aligned(self) -> SampleSeries:
        if len(self.ts) != len(self.values):
            raise ValueError(f"ts has {len(self.ts)} entries but values has {len(self.values)}")
        if not self.ts:
            raise ValueError("a series needs at least one reading")
        for index, (earlier, later) in enumerate(zip(self.ts, self.ts[1:], strict=False)):
            if later < earlier:
                raise ValueError(f"ts[{index + 1}] goes back in time; readings must be oldest first")
        if not (self.ts[0] >= TELEMETRY_MIN_MS and self.ts[-1] < TELEMETRY_MAX_MS):
            raise ValueError(f"ts out of range: {TS_RANGE_REASON}")
        return self


class SamplesEvent(_Envelope):
    """Batched, columnar sensor readings of one machine: the fast path for high-rate signals.

    ``ts`` is the time the batch was cut (usually the newest reading's time).
    """

    kind: Literal["samples"]
    signals: list[SampleSeries] = Field(min_length=1, max_length=256)

    @field_validator("signals")
    @classmethod
    def _signals_named_once(cls, signals: list[SampleSeries]) -> list[SampleSeries]:
        names = [series.signal for series in signals]
        if len(names) != len(set(names)):
            raise ValueError("each signal may appear once per record")
        return signals


TelemetryEvent = StateEvent | CountEvent | CycleEvent | SensorEvent | QualityEvent | SamplesEvent
Telemetry = Annotated[TelemetryEvent, Field(discriminator="kind")]

telemetry_adapter: TypeAdapter[TelemetryEvent] = TypeAdapter(Telemetry)


def published_schema(adapter: TypeAdapter[Any], title: str) -> dict[str, Any]:
    """A record type's JSON Schema as published in docs/schema/: draft 2020-12, with a title."""
    schema = adapter.json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


def telemetry_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a v1 telemetry record (see docs/schema/)."""
    return published_schema(telemetry_adapter, "linepulse telemetry v1")
