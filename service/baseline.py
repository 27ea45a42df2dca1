"""``linepulse baseline reset``: ask the workers to recompute a machine's SPC limits and drift baselines.

The command is a control record (:mod:`streams.control`) sent to the control topic, keyed by the
machine, and acknowledged by the broker before this returns. The worker holding the machine applies
it in order with the machine's other commands: the matching monitors forget their baseline and learn
a new one from their next readings, and their open drift/SPC alerts are resolved.

With ``--at TIME`` the command carries the event time ``at_ms``: the worker keeps it waiting in the
machine's state and applies it right after the machine's first telemetry message that reaches
``TIME``, which is where ``analyze --baseline-reset [TENANT/]MACHINE[:NAME]@TIME`` applies the same
request, by the same rule (:mod:`models.pending_resets`). A replay of a stream on the worker then
repeats a reset exactly, if the command is sent before the replay gets to ``TIME``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson

from models.monitoring_config import SERIES_KINDS
from models.pending_resets import PendingReset
from models.plant import MachineSpec, PlantConfig
from service.exceptions import ConfigError
from service.machine_refs import machine_option
from streams.contract import ID_PATTERN, _parse_timestamp
from streams.control import BaselineReset, control_value

__all__ = [
    "ScheduledReset",
    "parse_event_time",
    "parse_scheduled_reset",
    "register",
    "send_reset",
]

_ID = ID_PATTERN.strip("^$")
# An --at further ahead than this gets a note: it is probably planned, but may be a wrong offset.
FUTURE_NOTE_S: Final = 3600.0


def reset_command(
    spec: MachineSpec,
    *,
    series: str | None = None,
    name: str | None = None,
    ts_ms: int | None = None,
    at_ms: int | None = None,
    requested_by: str | None = None,
    reason: str | None = None,
) -> BaselineReset:
    """The validated command (a ConfigError names the bad field)."""
    from pydantic import ValidationError

    data: dict[str, Any] = {
        "v": 1,
        "command": "baseline_reset",
        "tenant": spec.tenant,
        "machine": spec.id,
        "series": series,
        "name": name,
        "ts": int(time.time() * 1000) if ts_ms is None else ts_ms,
        "at_ms": at_ms,
        "requested_by": requested_by,
        "reason": reason,
    }
    try:
        return BaselineReset.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "command"
        # Named as the user typed it (the command's fields are those options, under other names).
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{_OPTIONS.get(field, field)}: {message}") from None


_OPTIONS = {
    "name": "--signal",
    "series": "--series",
    "requested_by": "--by",
    "reason": "--reason",
    "at_ms": "--at",
}


def send_reset(
    bootstrap_servers: str, topic: str, command: BaselineReset, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send the command keyed ``tenant/machine`` and wait for the broker's acknowledgement."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","), acks="all", client_id="linepulse-control"
    )
    try:
        # The default partitioner hashes the key as telemetry producers do: the same partition
        # number as the machine's telemetry, hence the worker holding its state.
        future = producer.send(topic, key=command.key.encode(), value=control_value(command))
        meta = future.get(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    return {
        "topic": meta.topic,
        "partition": meta.partition,
        "offset": meta.offset,
        **command.model_dump(exclude_none=True),
    }


@dataclass(frozen=True, slots=True)
class ScheduledReset:
    """An ``analyze`` reset: applied once the machine's telemetry in the file reaches ``at_ms``."""

    spec: MachineSpec
    name: str | None
    at_ms: int

    def pending(self) -> PendingReset:
        """As a machine's state keeps it until its telemetry gets there."""
        return PendingReset(self.at_ms, name=self.name, requested_by="analyze")


def parse_scheduled_reset(plant: PlantConfig, text: str) -> ScheduledReset:
    """``[TENANT/]MACHINE[:NAME]@TIME``, TIME in RFC 3339 with an offset or epoch milliseconds."""
    target, sep, when = text.rpartition("@")
    if not sep or not target or not when:
        raise ConfigError(f"--baseline-reset: {text!r} is not [TENANT/]MACHINE[:NAME]@TIME")
    machine, _, name = target.partition(":")
    spec = machine_option(plant, machine, "--baseline-reset")
    if name and not _matches_id(name):
        raise ConfigError(f"--baseline-reset: name {name!r} is not an id ({ID_PATTERN})")
    return ScheduledReset(spec, name or None, parse_event_time(when, "--baseline-reset"))


def parse_event_time(text: str, option: str) -> int:
    """TIME as ``--baseline-reset``'s ``@TIME`` and ``--at`` take it: RFC 3339 with an offset, or
    epoch milliseconds (a ConfigError names ``option``)."""
    try:
        return _parse_timestamp(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise ConfigError(f"{option}: time {text!r}: {exc}") from None


def _matches_id(text: str) -> bool:
    return re.fullmatch(_ID, text) is not None


def _reset(args: argparse.Namespace) -> int:
    from service.plant_file import load_plant
    from service.settings import load_settings
    from streams.topics import ensure_topics, topic_specs

    settings = load_settings(bootstrap_servers=args.bootstrap_servers, plant_config=args.plant_config)
    if settings.bootstrap_servers is None:
        raise ConfigError(
            "bootstrap_servers: baseline reset needs --bootstrap-servers or LINEPULSE_BOOTSTRAP_SERVERS"
        )
    plant = load_plant(settings.plant_config)
    command = reset_command(
        machine_option(plant, args.machine, "--machine"),
        series=args.series,
        name=args.signal,
        at_ms=None if args.at is None else parse_event_time(args.at, "--at"),
        requested_by=args.requested_by,
        reason=args.reason,
    )
    # Creates the control topic (co-partitioned with telemetry) if no worker has yet. The configs
    # checked (dead-letter size, telemetry timestamps) are the worker's concern, and its log says.
    ensure_topics(
        settings.bootstrap_servers,
        topic_specs(settings.topics, settings.partitions, settings.replication_factor),
        check_configs=False,
    )
    sent = send_reset(settings.bootstrap_servers, settings.topic_control, command)
    print(orjson.dumps(sent, option=orjson.OPT_INDENT_2).decode())
    ahead_s = (command.at_ms or 0) / 1000 - time.time()
    if ahead_s > FUTURE_NOTE_S:
        # A wrong offset in TIME would otherwise only show when the reset fires, hours later.
        print(
            f"linepulse: note: --at is {ahead_s / 3600:.1f} h ahead of this computer's clock; the reset "
            "waits in the machine's state until its telemetry gets there (baseline_resets_waiting "
            "in /api/machines)",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    baseline = subparsers.add_parser("baseline", help="drift/SPC baselines: recompute them on demand")
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    reset = actions.add_parser(
        "reset",
        help="the machine's monitors learn a new baseline (and SPC limits) from their next readings",
    )
    reset.add_argument("--machine", required=True, metavar="[TENANT/]MACHINE")
    reset.add_argument(
        "--signal", metavar="NAME", help="one signal or characteristic (cycle_time_s for cycle time)"
    )
    reset.add_argument("--series", choices=SERIES_KINDS, help="only this kind of series")
    reset.add_argument(
        "--at",
        metavar="TIME",
        help="apply it at this event time (RFC 3339 with offset, or epoch ms) instead of at once: right "
        "after the machine's first message that reaches it, as analyze --baseline-reset does (for replays)",
    )
    reset.add_argument("--reason", help="why (kept in the worker's log), e.g. 'probe recalibrated'")
    reset.add_argument(
        "--by", dest="requested_by", metavar="WHO", help="who asked (kept in the worker's log)"
    )
    reset.add_argument("--config", dest="plant_config", metavar="PLANT.yaml", help="plant configuration file")
    reset.add_argument("--bootstrap-servers", help="Kafka bootstrap servers, comma separated")
    reset.set_defaults(handler=_reset)
