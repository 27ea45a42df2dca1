"""``linepulse train``: fit an anomaly model on a machine's telemetry history and register it.

The history comes from a telemetry JSONL file or from a time range of a Kafka topic. Either way each
record is decoded by the stream's own decoder and the readings are aligned into rows by the stream's
own :func:`models.anomaly.scoring.align_rows`, so the model sees exactly the rows the worker will
score. The fitted model goes into the registry as the next version ``vN`` with its metadata:
features, training range, threshold and calibration, training metrics, hyper-parameters and the
machines it serves.

Kafka time ranges use ``offsets_for_times`` (the broker's message timestamps) to find where to start
reading, then filter on event time. Tansu has known faults with offsets-by-timestamp: with Tansu,
read from the beginning (``--start`` omitted) or use a file.

An event time too far in the future is judged as the worker and ``analyze`` judge it, never against
the clock of the training run: a Kafka record against its message's Kafka timestamp, a file's
records against ``--received-at`` (when they were received), and not at all without it. So the same
history trains the same model whenever it is read.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.anomaly.row_alignment import hold_bounds
from models.anomaly.scoring import align_rows
from models.anomaly.training import ModelConfig, fit_model
from models.plant import MachineSpec, PlantConfig
from service.analyze import parse_received_at
from service.cli_args import add_model_options, model_config
from service.exceptions import ConfigError
from service.machine_refs import machine_option
from service.model_coverage import Coverage, check_no_tie, check_same_coverage
from service.model_registry import ModelRegistry, ModelVersion
from service.plant_file import load_plant
from service.settings import bootstrap_servers_problem, load_settings
from service.simulator.exceptions import SpecError
from service.simulator.timeparse import parse_start
from service.telemetry_file import read_records
from streams.contract import SensorEvent
from streams.decode import Decoded, Rejection, TelemetryDecoder
from streams.frames import Frame
from streams.processing import Series, event_samples

__all__ = ["TrainingData", "collect", "kafka_records", "register", "train"]

_BOOTSTRAP_TIMEOUT_MS = 10_000  # a reachable broker answers in far less; kafka-python waits 30 s


@dataclass(frozen=True, slots=True)
class TrainingData:
    signals: tuple[str, ...]
    series: tuple[np.ndarray, ...]  # each machine's rows in time order, machines as in ``machines``
    start_ms: int
    end_ms: int
    machines: tuple[str, ...]
    records: int
    skipped: tuple[str, ...] = ()  # machines without complete rows, and the signals they lack
    hold_ms: tuple[int, ...] | None = None  # per signal, as the rows were aligned (hold_bounds)

    @property
    def row_count(self) -> int:
        return sum(rows.shape[0] for rows in self.series)


def _series(event: Decoded) -> Series:
    return event_samples(event)[1] if isinstance(event, Frame | SensorEvent) else []


def collect(
    records: Iterable[tuple[bytes, int | None]],
    plant: PlantConfig,
    machines: tuple[MachineSpec, ...],
    *,
    signals: tuple[str, ...] | None,
    start_ms: int | None,
    end_ms: int | None,
    max_future_ms: int,
    skip_incomplete: bool = False,
    max_past_ms: int | None = None,
) -> TrainingData:
    """Decode ``records`` and align the chosen machines' readings in ``[start_ms, end_ms)`` into rows.

    Each record is its value and the Kafka timestamp it is judged against (the message's own, or a
    file's ``--received-at``; None: not judged): an event time more than ``max_future_ms`` after it
    is skipped, as the worker dead-letters it.

    A machine without complete rows is an error, unless ``skip_incomplete`` (a machine type's model
    learns from the machines of the type that have history, and serves the others too)."""
    decoder = TelemetryDecoder(
        plant, max_payload_bytes=8 * 1024 * 1024, max_future_ms=max_future_ms, max_past_ms=max_past_ms
    )
    wanted = {m.key for m in machines}
    buffered: dict[str, list[list[tuple[str, np.ndarray, np.ndarray]]]] = {key: [] for key in wanted}
    seen_signals: set[str] = set()
    count = 0
    for raw, timestamp_ms in records:
        accepted = decoder.decode(None, raw, timestamp_ms, require_key=False)
        if isinstance(accepted, Rejection) or accepted.spec.key not in wanted:
            continue
        series = []
        for name, ts, values in _series(accepted.event):
            keep = np.ones(ts.shape[0], dtype=bool)
            if start_ms is not None:
                keep &= ts >= start_ms
            if end_ms is not None:
                keep &= ts < end_ms
            if keep.any():
                series.append((name, np.ascontiguousarray(ts[keep]), np.ascontiguousarray(values[keep])))
                seen_signals.add(name)
        if series:
            buffered[accepted.spec.key].append(series)
            count += 1
    chosen = signals or tuple(sorted(seen_signals))
    if not chosen:
        raise ConfigError("no sensor readings of the chosen machines in the training range")
    missing = sorted(set(chosen) - seen_signals)
    if missing:
        raise ConfigError(f"--signals: no readings of {missing} in the training range")
    all_ts: list[np.ndarray] = []
    machine_rows: list[np.ndarray] = []
    learnt: list[str] = []
    incomplete: list[str] = []
    # Each signal's readings are held as long as its own rhythm in this history says (a lab value
    # every 15 minutes, a sensor every second): serving aligns with the same bounds.
    index = {name: s for s, name in enumerate(chosen)}
    times: list[list[np.ndarray]] = [[] for _ in chosen]
    for key in sorted(wanted):
        per_signal: list[list[np.ndarray]] = [[] for _ in chosen]
        for batch in buffered[key]:
            for name, ts, _ in batch:
                if name in index:
                    per_signal[index[name]].append(ts)
        for s, parts_of_signal in enumerate(per_signal):
            if parts_of_signal:
                times[s].append(np.concatenate(parts_of_signal))
    hold_ms = hold_bounds(times)
    max_age = np.array(hold_ms, dtype=np.int64)
    for key in sorted(wanted):
        hold, hold_ts = np.full(len(chosen), np.nan), np.full(len(chosen), -1, dtype=np.int64)
        parts = [align_rows(chosen, batch, hold, hold_ts, max_age) for batch in buffered[key]]
        rows = np.concatenate([r for _, r in parts]) if parts else np.empty((0, len(chosen)))
        if rows.shape[0] == 0:
            seen = {name for batch in buffered[key] for name, _, _ in batch}
            missing = sorted(set(chosen) - seen)
            incomplete.append(
                f"{key} (no readings of {missing})"
                if missing
                else f"{key} (no reading of {chosen[0]} with one of every other signal at most its "
                f"hold bound before it: {dict(zip(chosen, hold_ms, strict=True))} ms)"
            )
            continue
        all_ts += [ts for ts, _ in parts]
        machine_rows.append(np.ascontiguousarray(rows))
        learnt.append(key)
    if incomplete and (not skip_incomplete or not machine_rows):
        # A model's machines must send every one of its signals: rows are aligned across all of them.
        raise ConfigError(
            f"no complete rows (every signal of {list(chosen)} seen) for {', '.join(incomplete)}; "
            "choose machines with the same signals, or --signals"
        )
    ts_all = np.concatenate(all_ts)
    return TrainingData(
        signals=chosen,
        series=tuple(machine_rows),
        start_ms=int(ts_all.min()),
        end_ms=int(ts_all.max()),
        machines=tuple(learnt),
        records=count,
        skipped=tuple(incomplete),
        hold_ms=hold_ms,
    )


def file_records(path: Path, received_at_ms: int | None = None) -> Iterator[tuple[bytes, int | None]]:
    """The records of a telemetry file (JSON lines and binary frames, :mod:`service.telemetry_file`),
    each with ``received_at_ms``: a file carries no Kafka timestamps."""
    for record in read_records(path):
        if record.unreadable is not None:
            raise ConfigError(
                f"{path}: record {record.number} at offset {record.offset}: {record.unreadable}; "
                "the frame's size cannot be read, so the rest of the file cannot be"
            )
        yield record.raw, received_at_ms


def kafka_records(
    bootstrap_servers: str, topic: str, start_ms: int | None, end_ms: int | None, idle_timeout_s: float = 5.0
) -> Iterator[tuple[bytes, int | None]]:
    """Values of ``topic``, each with its Kafka timestamp, from the first offset at or after
    ``start_ms`` (broker time) to the end offsets as they were at the start, or until idle; the
    range's end is applied to event times by :func:`collect` (broker time says nothing of event
    time: a backfilled history carries the time it was produced, so stopping on it once read
    nothing at all)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=int(idle_timeout_s * 1000),
            max_partition_fetch_bytes=8 * 1024 * 1024,
            bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise ConfigError(f"--bootstrap-servers {bootstrap_servers}: no broker reachable ({exc})") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ConfigError(f"--topic: {topic!r} does not exist on {bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = consumer.end_offsets(assigned)
        if start_ms is None:
            consumer.seek_to_beginning(*assigned)
        else:
            found = consumer.offsets_for_times(dict.fromkeys(assigned, start_ms))
            for tp in assigned:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        done = {tp for tp in assigned if consumer.position(tp) >= ends[tp]}
        while len(done) < len(assigned):
            batch = consumer.poll(timeout_ms=int(idle_timeout_s * 1000))
            if not batch:
                break
            for tp, messages in batch.items():
                for message in messages:
                    if message.value is not None:
                        # -1: a message without a timestamp (the broker's "none"), not judged.
                        yield message.value, (message.timestamp if message.timestamp >= 0 else None)
                    if message.offset + 1 >= ends[tp]:
                        done.add(tp)
                if tp in done:
                    consumer.pause(tp)
    finally:
        consumer.close()


def _machines(plant: PlantConfig, refs: list[str]) -> tuple[MachineSpec, ...]:
    machines = tuple(machine_option(plant, ref, "--machine") for ref in refs)
    tenants = sorted({m.tenant for m in machines})
    if len(tenants) > 1:
        # As for --machine-type: one tenant's telemetry must not become another's normal.
        raise ConfigError(
            f"--machine: machines of tenants {tenants}; a model learns from one tenant's machines only"
        )
    return machines


def _machines_of_type(plant: PlantConfig, machine_type: str, tenant: str | None) -> tuple[MachineSpec, ...]:
    matches = tuple(
        m for m in plant.machines if m.type == machine_type and (tenant is None or m.tenant == tenant)
    )
    if not matches:
        known = sorted({m.type for m in plant.machines if m.type is not None})
        where = f" of tenant {tenant!r}" if tenant is not None else ""
        raise ConfigError(
            f"--machine-type: no machine{where} of the plant has type {machine_type!r} "
            f"(types: {known or 'none'})"
        )
    tenants = sorted({m.tenant for m in matches})
    if len(tenants) > 1:
        # A model learnt from one tenant's telemetry must not score (or reveal) another's.
        raise ConfigError(
            f"--machine-type: machines of tenants {tenants} have type {machine_type!r}; "
            "choose one with --tenant"
        )
    return matches


def _model_name(args: argparse.Namespace, machines: tuple[MachineSpec, ...]) -> str:
    if args.name is not None:
        return str(args.name)  # the registry refuses a name it cannot store
    if args.machine_type:
        # Tenants may share type names: one tenant's type model must not replace another's.
        return f"{machines[0].tenant}.{args.machine_type}"
    if len(machines) == 1:
        return machines[0].key.replace("/", ".")
    raise ConfigError("--name: required when a model serves several machines")


def train(
    data: TrainingData,
    config: ModelConfig,
    registry: ModelRegistry,
    name: str,
    source: str,
    machine_type: tuple[str, str] | None = None,
) -> ModelVersion:
    """Fit and register ``name``'s next version. It serves ``data.machines``, or with
    ``machine_type`` (tenant, type) every machine of that tenant and type, including machines of the
    type added to the plant later; a machine's own model still wins over its type's."""
    try:
        fitted = fit_model(data.series, data.signals, config, name=name, hold_ms=data.hold_ms)
    except ValueError as exc:  # e.g. every feature constant: the options chose nothing to learn
        raise ConfigError(f"training: {exc}") from None
    model = fitted.model
    if config.detector == "isolation_forest" and model.threshold >= 1.0:
        raise ConfigError(
            f"--margin/--false-alarm-rate: threshold {model.threshold:.4g} is above the isolation "
            "forest's largest possible score (1): no row could ever be flagged"
        )
    served: dict[str, Any] = (
        {"machines": [], "machine_types": [machine_type[1]], "tenant": machine_type[0]}
        if machine_type is not None
        else {"machines": list(data.machines), "machine_types": []}
    )
    coverage = Coverage.of(served)
    check_no_tie(registry, name, coverage)
    metadata: dict[str, Any] = {
        "detector": config.detector,
        **served,
        "signals": list(data.signals),
        **({"hold_ms": dict(zip(data.signals, data.hold_ms, strict=True))} if data.hold_ms else {}),
        "features": list(model.features.names),
        "training": {
            "source": source,
            "start_ms": data.start_ms,
            "end_ms": data.end_ms,
            "rows": fitted.training_rows,
            "records": data.records,
            "machines": list(data.machines),
        },
        "threshold": model.threshold,
        "calibration": {
            "false_alarm_rate": fitted.calibration.false_alarm_rate,
            "margin": fitted.calibration.margin,
            "training_alarm_rate": fitted.calibration.training_alarm_rate,
        },
        "metrics": fitted.metrics,
        "config": config.to_dict(),
    }
    return registry.register(
        model, metadata, check=lambda existing: check_same_coverage(name, coverage, existing)
    )


def _servers(text: str) -> str:
    problem = bootstrap_servers_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _range_time(text: str) -> int:
    """An argparse type: epoch milliseconds, or what ``linepulse simulate --start`` accepts."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(parse_start(text).resolve(int(time.time() * 1000)))
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _train(args: argparse.Namespace) -> int:
    # The plant file, topic and brokers follow the LINEPULSE_* settings like every other command's;
    # a flag overrides its variable.
    settings = load_settings(plant_config=args.config, bootstrap_servers=args.bootstrap_servers)
    plant = load_plant(settings.plant_config)
    if args.machine_type:
        machines = _machines_of_type(plant, args.machine_type, args.tenant)
    elif args.tenant is not None:
        raise ConfigError("--tenant: only with --machine-type (--machine takes TENANT/ID)")
    else:
        machines = _machines(plant, args.machine)
    start_ms, end_ms = args.start, args.end
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ConfigError("--end: must be after --start")
    if args.telemetry is None and args.received_at is not None:
        raise ConfigError(
            "--received-at: only with --telemetry (Kafka history is judged against each message's "
            "Kafka timestamp)"
        )
    if args.telemetry is not None:
        received_at = None if args.received_at is None else parse_received_at(args.received_at)
        records: Iterable[tuple[bytes, int | None]] = file_records(args.telemetry, received_at)
        source = str(args.telemetry)
    elif settings.bootstrap_servers is not None:
        topic = args.topic or settings.topic_telemetry
        records = kafka_records(settings.bootstrap_servers, topic, start_ms, end_ms)
        source = f"kafka:{topic}"
    else:
        raise ConfigError(
            "history: give --telemetry FILE.jsonl, or --bootstrap-servers (or LINEPULSE_BOOTSTRAP_SERVERS)"
        )
    if args.telemetry is not None and args.topic is not None:
        raise ConfigError("--topic: only with Kafka history, not with --telemetry")
    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip()) if args.signals else None
    if signals is not None and len(set(signals)) != len(signals):
        raise ConfigError(f"--signals: a signal is listed twice in {list(signals)}")
    data = collect(
        records,
        plant,
        machines,
        signals=signals,
        start_ms=start_ms,
        end_ms=end_ms,
        max_future_ms=int(settings.max_future_s * 1000),
        skip_incomplete=bool(args.machine_type),
        max_past_ms=int(settings.max_past_s * 1000),
    )
    config = model_config(args)
    name = _model_name(args, machines)
    for skipped in data.skipped:
        print(f"linepulse train: note: skipped {skipped}", file=sys.stderr)
    served = (machines[0].tenant, args.machine_type) if args.machine_type else None
    entry = train(data, config, ModelRegistry(args.registry), name, source, machine_type=served)
    print(
        f"registered {name} {entry.version}: {data.row_count} rows, "
        f"threshold {entry.metadata['threshold']:.4g}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("train", help="fit an anomaly model on telemetry history and register it")
    # Neither given: Kafka history from LINEPULSE_BOOTSTRAP_SERVERS, if set.
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--telemetry", type=Path, metavar="FILE.jsonl", help="telemetry JSON Lines file")
    source.add_argument(
        "--bootstrap-servers",
        type=_servers,
        metavar="HOST:PORT",
        help="read history from Kafka (default: LINEPULSE_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument("--topic", help="Kafka topic (default: LINEPULSE_TOPIC_TELEMETRY, else telemetry)")
    parser.add_argument(
        "--config",
        metavar="PLANT.yaml",
        help="plant file (default: LINEPULSE_PLANT_CONFIG, else the demo plant)",
    )
    parser.add_argument(
        "--registry", type=Path, required=True, metavar="DIR", help="model registry directory"
    )
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--machine", action="append", default=[], metavar="ID", help="machine(s) to learn; repeatable"
    )
    chosen.add_argument(
        "--machine-type",
        metavar="TYPE",
        help="learn every machine of this type (plant file `type`); the model serves the type",
    )
    parser.add_argument("--tenant", help="with --machine-type: the tenant whose machines to learn")
    parser.add_argument(
        "--name",
        help="model name (default: TENANT.TYPE with --machine-type, else TENANT.ID of the single machine)",
    )
    parser.add_argument("--signals", help="comma-separated signals (default: every signal seen)")
    parser.add_argument(
        "--start",
        type=_range_time,
        help="training range start: RFC 3339 with offset, epoch ms, or relative: now-24h or --start=-24h",
    )
    parser.add_argument("--end", type=_range_time, help="training range end (exclusive), as --start")
    parser.add_argument(
        "--received-at",
        metavar="TIME",
        help="with --telemetry: when the file's records were received (RFC 3339 with offset, or epoch "
        "ms); event times more than max_future_s after it or max_past_s before it are skipped, as the "
        "worker dead-letters them "
        "(judged against each message's Kafka timestamp, as Kafka history is here); without it, no "
        "line is judged",
    )
    add_model_options(parser)
    parser.set_defaults(handler=_train)
