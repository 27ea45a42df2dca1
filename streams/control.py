"""Control commands: operator requests to the worker on the control topic, version 1.

One JSON object per Kafka message, keyed ``"{tenant}/{machine}"`` like telemetry. The control topic
has as many partitions as the telemetry topic (:func:`streams.topics.ensure_topics` creates it so),
so a machine's commands land on the partition number of its telemetry and go to the worker that
holds the machine's state, which is where they are applied.

Commands:

- ``baseline_reset``: the machine's drift/SPC monitors of one series (``series`` and/or ``name``;
  all when both are missing) forget their baseline and learn a new one, with new SPC limits, from
  the next readings (see :meth:`models.machine.MachineEngine.reset_baselines`). With ``at_ms``
  (event time, epoch milliseconds) it waits in the machine's state until the machine's telemetry
  reaches that time, and is applied there exactly as ``analyze --baseline-reset`` applies it
  (:mod:`models.pending_resets`); if the machine is already past it, it is applied at once.

Validation is as strict as telemetry's: an unknown field, a wrong type, a key that does not match
the record or a machine the plant does not know is a rejection naming the field, which the worker
sends to the dead-letter topic like bad telemetry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from models.monitoring_config import CYCLE_TIME_SIGNAL, SeriesKind
from models.plant import MachineSpec, PlantConfig
from streams.contract import ID_PATTERN, Version, _parse_timestamp, published_schema
from streams.decode import Rejection
from streams.json_keys import REPEATED_KEY_REASON, model_keys, repeated_key

__all__ = [
    "BaselineReset",
    "ControlCommand",
    "ControlDecoder",
    "control_json_schema",
    "control_value",
]

Id = Annotated[str, Field(pattern=ID_PATTERN)]
# Control messages are small; a big one is a mistake or an attack, not a command.
MAX_CONTROL_BYTES = 4096
_CONTROL_CHARACTER = r"[\x00-\x1f\x7f-\x9f]"  # C0, DEL and C1
_PRINTABLE = f"^[^{_CONTROL_CHARACTER[1:-1]}]+$"


class BaselineReset(BaseModel):
    """Recompute the SPC limits and drift baselines of a machine's series from their next readings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    v: Version
    command: Literal["baseline_reset"]
    tenant: Id
    machine: Id
    series: SeriesKind | None = Field(
        default=None, description="signals, characteristics or cycle_time; all series when missing."
    )
    name: Id | None = Field(
        default=None,
        description="Signal or characteristic name (cycle_time_s for cycle time); all when missing.",
    )
    ts: int = Field(description="When the reset was requested: RFC 3339 with offset, or epoch milliseconds.")
    at_ms: int | None = Field(
        default=None,
        description=(
            "Event time (epoch milliseconds) to apply the reset at: right after the machine's first "
            "telemetry message that reaches it. Missing: at once, where the machine's stream is."
        ),
    )
    # Free text, but logged: a line break or a terminal escape would forge or hide log lines. The
    # pattern puts the rule into the published schema for producers; _printable, which runs first,
    # words the error a dead letter carries (the pattern's own would quote the regex).
    requested_by: Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)] | None = None

    @field_validator("requested_by", "reason", mode="before")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        if isinstance(value, str) and re.search(_CONTROL_CHARACTER, value):
            raise ValueError("must not contain control characters (a line break, a tab, a terminal escape)")
        return value

    @field_validator("name")
    @classmethod
    def _name_fits_series(cls, name: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("series") == "cycle_time" and name not in (None, CYCLE_TIME_SIGNAL):
            raise ValueError(f"the cycle_time series has one name, {CYCLE_TIME_SIGNAL}, not {name!r}")
        return name

    @field_validator("ts", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> int:
        return _parse_timestamp(value)

    @field_validator("at_ms", mode="before")
    @classmethod
    def _event_time(cls, value: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("must be integer epoch milliseconds")
        return _parse_timestamp(value)  # the range telemetry's event times must lie in

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.machine}"


ControlCommand = Annotated[BaselineReset, Field(discriminator="command")]
_adapter: TypeAdapter[BaselineReset] = TypeAdapter(ControlCommand)


def control_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a v1 control record (see docs/schema/)."""
    return published_schema(_adapter, "linepulse control v1")


def control_value(command: BaselineReset) -> bytes:
    """The message value of a command (what ``linepulse baseline reset`` sends)."""
    return orjson.dumps(command.model_dump(exclude_none=True))


@dataclass(frozen=True, slots=True)
class AcceptedCommand:
    command: BaselineReset
    spec: MachineSpec


class ControlDecoder:
    """Control message bytes to a validated command for a configured machine, or a Rejection."""

    def __init__(self, plant: PlantConfig) -> None:
        self.plant = plant

    def decode(
        self, key: bytes | None, value: bytes | None, *, require_key: bool = True
    ) -> AcceptedCommand | Rejection:
        if not value:
            return Rejection("empty", "value", "empty message")
        if len(value) > MAX_CONTROL_BYTES:
            return Rejection(
                "too_large", "value", f"{len(value)} bytes exceeds {MAX_CONTROL_BYTES} for a command"
            )
        try:
            command = _adapter.validate_json(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] in ("json_invalid", "json_type"):
                return Rejection("invalid_json", "value", f"not valid JSON: {first['msg']}")
            loc = [str(part) for part in first["loc"] if part != "baseline_reset"]
            return Rejection("invalid_schema", ".".join(loc) or "command", str(first["msg"]))
        repeated = repeated_key(value, model_keys(command))
        if repeated is not None:
            return Rejection("invalid_schema", repeated, REPEATED_KEY_REASON)
        if require_key and (key is None or key != command.key.encode()):
            shown = "none" if key is None else repr(key[:80].decode("utf-8", "replace"))
            return Rejection("key_mismatch", "key", f"must be {command.key!r} (tenant/machine), got {shown}")
        spec = self.plant.machine(command.tenant, command.machine)
        if spec is None:
            return Rejection("unknown_machine", "machine", f"{command.key} is not in the plant configuration")
        return AcceptedCommand(command, spec)
