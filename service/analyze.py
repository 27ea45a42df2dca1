"""``linepulse analyze``: the stream's processing over a telemetry file, with the same outputs.

Every line goes through the same :class:`~streams.processing.TelemetryProcessor` as the Faust
agent, so the KPI records of a complete window are identical to those on the ``kpis`` topic. Lines
carry no Kafka key, so the key check is skipped. Nor do they carry a Kafka timestamp, the time the
worker judges "event time too far in the future" against (:mod:`streams.decode`): a line is judged
against ``received_at_ms`` (``--received-at``: when the file's records were received, as if each had
that Kafka timestamp), and not judged without it. Never against the clock of the analysis, so
analysing a file again next year gives the same results. Windows still open at the end of the
file are written too, marked ``complete: false``. ``capability.json`` (and the summary) hold each
machine's Cp/Cpk/Pp/Ppk per characteristic, product and shift at the end of the file, and
``signals.json`` each machine's sensor signals' statistics (:mod:`service.signal_view`).
"""

from __future__ import annotations

import base64
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from models.calendar import PlantCalendar
from models.machine_state import MachineState
from models.pending_resets import PendingReset, take_due
from models.plant import PlantConfig
from service.anomaly_models import anomaly_models
from service.anomaly_view import anomaly_view
from service.baseline import ScheduledReset
from service.capability_view import capability_by_shift_rows, capability_rows
from service.exceptions import ConfigError, OutputError
from service.output_dir import output_dir
from service.output_file import OutputFile, write_output
from service.settings import Settings
from service.signal_view import signal_view
from service.telemetry_file import FileRecord, TelemetryRecords, check_telemetry_file, open_records
from streams.contract import _parse_timestamp
from streams.decode import Accepted, Rejection
from streams.frames import FRAME_MAGIC
from streams.lines import LineAggregator, line_key
from streams.partitioning import key_partition
from streams.processing import Applied, AppliedReset, TelemetryProcessor
from streams.records import record_bytes
from streams.stream_steps import StepKind, StreamSteps
from streams.stream_time import Clock

__all__ = ["analyze_file", "dead_letter_line", "parse_received_at"]


SUMMARY: Final = "summary.json"  # what analyze prints, written to --out last
_OUTPUT_FILES: Final = frozenset(
    {
        "kpis.jsonl",
        "alerts.jsonl",
        "dead_letters.jsonl",
        "line_kpis.jsonl",
        "capability.json",
        "capability_by_shift.json",
        "signals.json",
        SUMMARY,
    }
)


def dead_letter_line(
    line_number: int, raw: bytes, rejection: Rejection, offset: int | None = None
) -> dict[str, Any]:
    """A dead letter in a file: the reason and the original bytes (as text when they are UTF-8).

    ``line_number``: the record's number in the file (its line number in JSON Lines); ``offset``: of
    its first byte."""
    entry: dict[str, Any] = {
        "line": line_number,
        **({} if offset is None else {"offset": offset}),
        "code": rejection.code,
        "field": rejection.field,
        "reason": rejection.reason,
    }
    try:
        entry["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return entry


def parse_received_at(text: str) -> int:
    """``--received-at``: RFC 3339 with an offset or epoch milliseconds."""
    try:
        return _parse_timestamp(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise ConfigError(f"--received-at: time {text!r}: {exc}") from None


def _outputs(telemetry: Path, out_dir: Path) -> None:
    """Create ``out_dir``, refusing what would fail half-way or overwrite the input, and remove an
    earlier run's results from it: a run that fails or is interrupted must not leave its partial
    files among the complete ones of another (``summary.json``, written last, marks a finished run)."""
    check_telemetry_file(telemetry)
    source = telemetry.resolve()
    if any((out_dir / name).resolve() == source for name in _OUTPUT_FILES):
        # The file itself, or a link to it among the results: it would be emptied, then written.
        raise ConfigError(
            f"{telemetry}: is one of the files analyze writes to --out {out_dir}; choose another --out"
        )
    output_dir(out_dir)
    for name in sorted(_OUTPUT_FILES):
        path = out_dir / name
        try:
            if path.is_symlink():
                # The user's link elsewhere: kept and written through, so the file it points to is
                # emptied instead (a linked summary.json would mark a failed run as finished). A
                # pipe or a device is left alone: opening a pipe would end its reader's input.
                if path.exists() and stat.S_ISREG(path.stat().st_mode):
                    path.open("wb").close()
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(
                f"--out {out_dir / name}: cannot remove the earlier result ({exc.strerror})"
            ) from None


def _unreadable(record: FileRecord) -> Rejection:
    assert record.unreadable is not None
    error = record.unreadable
    reason = (
        f"{error.reason}; the frame's size cannot be read, so the rest of the file "
        f"({record.rest_bytes} bytes from offset {record.offset}) is not read"
    )
    return Rejection("invalid_frame", error.field, reason)


def _decoded_records(
    records: TelemetryRecords, processor: TelemetryProcessor, received_at_ms: int | None
) -> Iterator[tuple[FileRecord, bytes, Accepted | Rejection]]:
    """Each record of the file with its bytes and its decoding (an unreadable frame's: not decoded,
    it ends the file). A frame that fails to decode and has a whole record starting inside it was
    cut short, its declared size taking the records after it: it is the bytes before that record,
    and reading goes on from there (:meth:`TelemetryRecords.read_on_within`)."""
    for record in records:
        if record.unreadable is not None:
            yield record, record.raw, _unreadable(record)
            return
        decoded = processor.decode(None, record.raw, timestamp_ms=received_at_ms, require_key=False)
        raw = record.raw
        if isinstance(decoded, Rejection) and raw.startswith(FRAME_MAGIC):
            cut = records.read_on_within(record)
            if cut is not None:
                raw = raw[:cut].rstrip(b"\r\n")
                decoded = Rejection(
                    decoded.code,
                    decoded.field,
                    f"the frame was cut short: its header declares {len(record.raw)} bytes, but a "
                    f"whole record starts {cut} bytes in, and the file is read on from there "
                    f"(decoded at its declared size: {decoded.reason})",
                )
        yield record, raw, decoded


class _KeyPartitions:
    """The partition of a machine key on a topic of ``count`` partitions, remembered per key."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._known: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        partition = self._known.get(key)
        if partition is None:
            partition = self._known[key] = key_partition(key, self._count)
        return partition


def _waiting_resets(resets: Sequence[ScheduledReset]) -> dict[str, list[PendingReset]]:
    """Each machine's resets in the order a state keeps them: by time, equal times as given."""
    waiting: dict[str, list[PendingReset]] = {}
    for reset in sorted(resets, key=lambda reset: reset.at_ms):  # a stable sort
        waiting.setdefault(reset.spec.key, []).append(reset.pending())
    return waiting


def _hand_over(due: list[PendingReset], state: MachineState, newest_ms: int) -> None:
    """Move the resets the machine's next line can make due (:func:`models.pending_resets.is_due`
    after it) from ``due`` into its state, where they are applied by the worker's rule. The rest
    wait here, not in the state: analyze takes any number of resets, while a worker's state holds
    at most ``MAX_PENDING_RESETS`` of a machine's."""
    seen = newest_ms if state.last_seen_ms is None else max(newest_ms, state.last_seen_ms)
    state.pending_resets.extend(take_due(due, seen))


def _label(key: str, reset: PendingReset, calendar: PlantCalendar) -> str:
    """A reset as ``--baseline-reset`` takes it: ``tenant/machine[:name]@TIME``, TIME in RFC 3339 with
    the machine's site offset, as its records show time (exact to the millisecond)."""
    name = "" if reset.name is None else f":{reset.name}"
    return f"{key}{name}@{calendar.local_isoformat(reset.at_ms)}"


class _FileMachines:
    """The states as the stream-time steps see them (:mod:`streams.stream_steps`): no readings wait
    to be applied here, and a step's records are written right after the line that made it."""

    def __init__(
        self,
        states: dict[str, MachineState],
        write: Callable[[Applied], None],
        resets: Callable[[MachineState, list[AppliedReset]], None],
    ) -> None:
        self._states = states
        self._write = write
        self._resets = resets

    def load(self, key: str) -> MachineState | None:
        return self._states.get(key)  # None: dropped after a processing error

    settle = load

    def stepped(
        self, clock: Clock, kind: StepKind, ms: int, state: MachineState, outcome: Applied | None
    ) -> None:
        if outcome is not None:
            self._write(outcome)

    def reset(self, clock: Clock, state: MachineState, done: list[AppliedReset]) -> None:
        self._resets(state, done)


def analyze_file(
    telemetry: Path,
    plant: PlantConfig,
    out_dir: Path,
    settings: Settings,
    resets: Sequence[ScheduledReset] = (),
    received_at_ms: int | None = None,
) -> dict[str, Any]:
    """``resets``: baseline resets applied, through the worker's own control path, right after the
    line that brings the machine's telemetry to their time (or never, if it does not get there).
    ``received_at_ms``: the Kafka timestamp every line is judged as having (None: no line is
    judged as too far in the future). Stream time is kept per partition of a telemetry topic of
    ``settings.partitions`` partitions."""
    # Each machine's resets wait in its state from its first line on, where the worker keeps the
    # resets `baseline reset --at` sends it, and are applied by the same rule (models.pending_resets).
    waiting = _waiting_resets(resets)
    _outputs(telemetry, out_dir)
    processor = TelemetryProcessor(
        plant,
        max_payload_bytes=settings.max_payload_bytes,
        max_future_ms=int(settings.max_future_s * 1000),
        max_past_ms=int(settings.max_past_s * 1000),
        anomaly_models=anomaly_models(settings),
    )
    states: dict[str, MachineState] = {}
    lines = LineAggregator(plant, processor.config_version)
    line_states: dict[bytes, dict[str, Any]] = {}
    counts = {
        "lines": 0,
        "applied": 0,
        "dead_letters": 0,
        "kpis": 0,
        "alerts": 0,
        "readings": 0,
        "too_late": 0,
        "line_kpis": 0,
        "baseline_resets": 0,
    }
    # Stream time is per partition and tenant in the worker (the stops, the silence ticks): each
    # line goes to the partition its key would have on the telemetry topic, so a dump of a topic
    # (its partitions interleaved in any way) gives the stream's records.
    partition_of = _KeyPartitions(settings.partitions)
    steps = StreamSteps(processor)
    matched_nothing: list[str] = []
    with (
        OutputFile(out_dir / "kpis.jsonl", "--out") as kpis,
        OutputFile(out_dir / "alerts.jsonl", "--out") as alerts,
        OutputFile(out_dir / "dead_letters.jsonl", "--out") as dead_letters,
        OutputFile(out_dir / "line_kpis.jsonl", "--out") as line_kpis,
        open_records(telemetry) as records,
    ):

        def write(outcome: Applied) -> None:
            """The outcome's KPI records (and the line records they complete) and alerts."""
            for kpi in outcome.kpis:
                kpis.write(record_bytes(kpi) + b"\n")
                record = kpi.model_dump(mode="json")
                key = line_key(record)
                line_states[key], line_record = lines.apply(line_states.get(key), record)
                if line_record is not None:
                    line_kpis.write(record_bytes(line_record) + b"\n")
                    counts["line_kpis"] += 1
            for alert in outcome.alerts:
                alerts.write(record_bytes(alert) + b"\n")
            counts["kpis"] += len(outcome.kpis)
            counts["alerts"] += len(outcome.alerts)

        def resets_applied(state: MachineState, done: list[AppliedReset]) -> None:
            for reset in done:
                if isinstance(reset.outcome, Rejection):  # pragma: no cover - a bug, logged
                    raise ConfigError(f"--baseline-reset: {reset.outcome}")
                if reset.dropped:
                    counts["baseline_resets"] += 1
                else:  # no such series on the machine (yet): a typo must not look applied
                    matched_nothing.append(
                        _label(state.key, reset.reset, processor.engine.calendar_for(state))
                    )
                write(reset.outcome)

        machines = _FileMachines(states, write, resets_applied)

        def on_stream_time(key: str, tenant: str, newest_ms: int, applied: MachineState | None) -> None:
            """After a line of machine ``key`` (``applied``: its state, None when processing it
            failed) with newest event time ``newest_ms``: what its clock's stream time does, right
            after that line, as in the worker (streams.batch), so the records are the same."""
            clock = (partition_of(key), tenant)
            if applied is not None:
                steps.schedule(clock, applied)
            steps.after_message(clock, key, newest_ms, machines)

        for record, raw, decoded in _decoded_records(records, processor, received_at_ms):
            counts["lines"] += 1
            if record.unreadable is not None:
                assert isinstance(decoded, Rejection)
                unreadable = decoded
                counts["dead_letters"] += 1
                counts["unread_bytes"] = record.rest_bytes
                dead_letters.write(
                    orjson.dumps(dead_letter_line(record.number, record.raw, unreadable, record.offset))
                    + b"\n"
                )
                break
            if not isinstance(decoded, Rejection) and decoded.spec.key in waiting:
                due = waiting[decoded.spec.key]
                if due[0].at_ms <= decoded.newest_ms or decoded.spec.key in states:
                    if decoded.spec.key not in states:
                        states[decoded.spec.key] = processor.engine.new_state(decoded.spec)
                    _hand_over(due, states[decoded.spec.key], decoded.newest_ms)
                    if not due:
                        del waiting[decoded.spec.key]
            outcome = (
                decoded
                if isinstance(decoded, Rejection)
                else processor.process_decoded(decoded, load_state=states.get)
            )
            if isinstance(outcome, Rejection):
                if outcome.machine_key is not None:
                    # A processing bug may have half-updated the state; without a stored copy to
                    # return to (the worker has its table), start that machine afresh, with the
                    # resets it was still waiting for.
                    dropped = states.pop(outcome.machine_key, None)
                    if dropped is not None and dropped.pending_resets:
                        later = waiting.get(outcome.machine_key, [])
                        waiting[outcome.machine_key] = dropped.pending_resets + later
                counts["dead_letters"] += 1
                entry = dead_letter_line(record.number, raw, outcome, record.offset)
                dead_letters.write(orjson.dumps(entry) + b"\n")
                if not isinstance(decoded, Rejection):
                    # Refused after decoding (a processing error, too many signals): the line's event
                    # time is valid and moves stream time, as in the worker (docs/kpis.md, "Silent
                    # machines").
                    on_stream_time(decoded.spec.key, decoded.spec.tenant, decoded.newest_ms, None)
                continue
            states[outcome.state.key] = outcome.state
            counts["applied"] += 1
            counts["readings"] += outcome.readings
            counts["too_late"] += outcome.too_late  # applied, counted, in no window (allowed_lateness_s)
            write(outcome)
            if outcome.newest_ms is not None:
                on_stream_time(outcome.state.key, outcome.state.tenant, outcome.newest_ms, outcome.state)
        for state in states.values():
            for kpi in processor.open_window_records(state):
                kpis.write(record_bytes(kpi) + b"\n")
                counts["kpis"] += 1
    totals = {key: state.totals.to_dict() for key, state in sorted(states.items())}
    capability = {
        key: rows
        for key, state in sorted(states.items())
        if (rows := capability_rows(processor.engine, state))
    }
    write_output(
        out_dir / "capability.json", orjson.dumps(capability, option=orjson.OPT_INDENT_2) + b"\n", "--out"
    )
    signals = {
        key: by_signal
        for key, state in sorted(states.items())
        if (by_signal := signal_view(state, processor.engine.calendar_for(state)))
    }
    write_output(out_dir / "signals.json", orjson.dumps(signals, option=orjson.OPT_INDENT_2) + b"\n", "--out")
    by_shift = {
        key: rows
        for key, state in sorted(states.items())
        if (rows := capability_by_shift_rows(processor.engine, state))
    }
    write_output(
        out_dir / "capability_by_shift.json",
        orjson.dumps(by_shift, option=orjson.OPT_INDENT_2) + b"\n",
        "--out",
    )
    summary: dict[str, Any] = {
        "input": str(telemetry),
        "out": str(out_dir),
        **counts,
        "machines": totals,
        "capability": capability,
    }
    # Machines the model serving them cannot score (it lacks their signals): else silent.
    unscored = {
        key: view
        for key, state in sorted(states.items())
        if (view := anomaly_view(state, processor.engine.calendar_for(state))) is not None
        and view["unscored"]
    }
    if unscored:
        summary["anomaly_unscored"] = unscored
    never_seen = [(key, reset) for key, due in waiting.items() for reset in due]
    specs = {spec.key: spec for spec in plant.machines}
    not_reached = [
        _label(key, reset, processor.engine.calendar_for(specs[key]))
        for key, reset in sorted(
            never_seen + [(key, reset) for key, state in states.items() for reset in state.pending_resets],
            key=lambda item: item[1].at_ms,
        )
    ]
    if not_reached:
        summary["baseline_resets_not_reached"] = not_reached
    if matched_nothing:
        summary["baseline_resets_matched_nothing"] = matched_nothing
    write_output(out_dir / SUMMARY, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n", "--out")
    return summary
