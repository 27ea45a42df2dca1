"""``linepulse simulate``: a deterministic plant simulator writing telemetry to a file or Kafka."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from zoneinfo import ZoneInfo

from service.cli_args import int_at_least, positive_float
from service.exceptions import ConfigError, OutputError
from service.plant_file import load_plant
from service.settings import Settings, load_settings
from service.simulator.clock import SystemClock
from service.simulator.engine import PlantSimulator, SimOptions
from service.simulator.exceptions import SpecError
from service.simulator.faults import FaultSpec, parse_fault_spec, random_faults, resolve_faults
from service.simulator.runner import run
from service.simulator.sinks import JsonlSink, KafkaSink, Sink, require_topic
from service.simulator.timeparse import (
    StartTime,
    format_duration,
    format_rfc3339,
    parse_duration_ms,
    parse_start,
)
from streams.contract import TELEMETRY_MAX_MS, TELEMETRY_MIN_MS

__all__ = ["register"]

_PROG_ERROR = "linepulse: error:"  # as every other command's one-line errors
_RANDOM_FAULT_HORIZON_MS = 8 * 3_600_000  # where --random-faults go when the run has no --duration


def _argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Turns a parser raising SpecError into an argparse type: argparse then names the option."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _host_port(text: str) -> str:
    for server in text.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise argparse.ArgumentTypeError(f"{server!r} is not HOST:PORT (comma-separate several)")
    return text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a plant's telemetry (deterministic per seed) into a file or Kafka",
        description=(
            "Simulate machines (states, cycles, counts, batched sensor samples, quality checks) in event "
            "time. Faster than real time until it reaches 'now', then live; never in the future."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="PLANT.yaml",
        help="plant file (default: LINEPULSE_PLANT_CONFIG, else the built-in demo plant)",
    )
    parser.add_argument("--seed", type=int_at_least(0), default=1, help="random seed (default 1)")
    parser.add_argument(
        "--speed", type=positive_float, default=60.0, help="simulated seconds per real second (default 60)"
    )
    parser.add_argument(
        "--start",
        type=_argument_type(parse_start),
        default=StartTime(relative_ms=-3_600_000),
        help="RFC 3339 with offset, 'now', or relative: now-24h or --start=-24h (default -1h)",
    )
    parser.add_argument(
        "--duration",
        type=_argument_type(parse_duration_ms),
        help="simulated time to cover, e.g. 8h (default: run until stopped)",
    )
    parser.add_argument("--max-events", type=int_at_least(1), metavar="N", help="stop after N records")
    sink = parser.add_mutually_exclusive_group()
    sink.add_argument(
        "--out",
        metavar="FILE.jsonl",
        help="write JSON Lines to a file ('-': stdout, the default without LINEPULSE_BOOTSTRAP_SERVERS)",
    )
    sink.add_argument(
        "--bootstrap-servers",
        type=_host_port,
        metavar="HOST:PORT",
        help="produce to Kafka (default: LINEPULSE_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument("--topic", help="Kafka topic (default: LINEPULSE_TOPIC_TELEMETRY, else telemetry)")
    parser.add_argument(
        "--linger-ms", type=int_at_least(0), default=20, help="Kafka producer linger.ms (default 20)"
    )
    parser.add_argument(
        "--fault",
        type=_argument_type(parse_fault_spec),
        action="append",
        default=[],
        metavar="KIND@MACHINE@START+DURATION",
        help=(
            "inject a fault, e.g. stoppage@M02@2h+30m; kinds: stoppage, slow_cycles, sensor_drift "
            "(MACHINE:SIGNAL picks the signal), anomaly_burst, scrap_spike; repeatable"
        ),
    )
    parser.add_argument(
        "--random-faults", type=int_at_least(0), default=0, metavar="N", help="also place N random faults"
    )
    parser.add_argument("--truth", metavar="FILE.jsonl", help="write the faults' ground truth here")
    parser.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="do not pace (timestamps still never pass the real 'now')",
    )
    parser.add_argument(
        "--ts-format",
        choices=("epoch_ms", "rfc3339"),
        default="epoch_ms",
        help="record timestamps as epoch milliseconds (default) or RFC 3339 in each machine's site offset",
    )
    parser.set_defaults(handler=_simulate)


def _fail(message: str) -> int:
    print(f"{_PROG_ERROR} {message}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (how `linepulse run` stops its children) ends the run like Ctrl-C: flushed, exit 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _destination(args: argparse.Namespace, settings: Settings) -> str:
    servers = None if args.out is not None else settings.bootstrap_servers
    if servers is not None:
        return f"Kafka topic {args.topic or settings.topic_telemetry!r} at {servers}"
    return "stdout" if args.out in (None, "-") else str(args.out)


def _open_sink(args: argparse.Namespace, settings: Settings) -> Sink:
    servers = None if args.out is not None else settings.bootstrap_servers
    if servers is not None:
        from kafka.errors import KafkaError

        topic = args.topic or settings.topic_telemetry
        try:
            require_topic(servers, topic)
            return KafkaSink(servers, topic, linger_ms=args.linger_ms)
        except KafkaError as exc:
            raise SpecError(f"--bootstrap-servers: cannot connect to {servers}: {exc}") from None
    return JsonlSink(args.out or "-", "--out")


def _instant_text(millis: int, zone: ZoneInfo) -> str:
    """An instant as RFC 3339, or in epoch ms where that has no year from 1 to 9999."""
    try:
        return format_rfc3339(millis, zone)
    except (ValueError, OverflowError):
        return f"{millis} ms after 1970-01-01T00:00:00Z"


def _fault_text(spec: FaultSpec) -> str:
    machine = spec.machine if spec.signal is None else f"{spec.machine}:{spec.signal}"
    return (
        f"{spec.kind.value}@{machine}@{format_duration(spec.offset_ms)}+{format_duration(spec.duration_ms)}"
    )


def _simulate(args: argparse.Namespace) -> int:
    # The plant file, brokers and topic follow the LINEPULSE_* settings like every other command's;
    # a flag overrides its variable, and --out (a file or '-') overrides LINEPULSE_BOOTSTRAP_SERVERS.
    try:
        settings = load_settings(plant_config=args.config, bootstrap_servers=args.bootstrap_servers)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.topic is not None and (args.out is not None or settings.bootstrap_servers is None):
        return _fail("--topic: only meaningful with --bootstrap-servers (or LINEPULSE_BOOTSTRAP_SERVERS)")
    try:
        plant = load_plant(settings.plant_config)
    except ConfigError as exc:
        return _fail(str(exc))  # names the file (from --config or LINEPULSE_PLANT_CONFIG)
    clock = SystemClock()
    start_ms: int = args.start.resolve(clock.wall_ms())
    if not TELEMETRY_MIN_MS <= start_ms < TELEMETRY_MAX_MS:
        # Checked after resolving, so a relative start (--start=-30000d) is held to it too.
        return _fail(
            f"--start: {_instant_text(start_ms, plant.zone)} is outside the telemetry contract's "
            "range (2000-01-01 to 2100-01-01); a decoder would dead-letter every record"
        )
    specs: list[FaultSpec] = args.fault
    if args.duration is not None:
        late = [spec for spec in specs if spec.offset_ms >= args.duration]
        if late:
            return _fail(
                f"--fault: {_fault_text(late[0])} starts at or after the end of the run "
                f"(--duration {format_duration(args.duration)}), so it would never happen"
            )
    try:
        faults = resolve_faults(specs, plant, start_ms)
    except SpecError as exc:
        return _fail(f"--fault: {exc}")
    if args.random_faults:
        horizon = args.duration or _RANDOM_FAULT_HORIZON_MS
        faults += random_faults(plant, args.seed, start_ms, horizon, args.random_faults)
    sim = PlantSimulator(plant, args.seed, start_ms, faults, SimOptions(ts_format=args.ts_format))
    try:
        sink = _open_sink(args, settings)
        truth = JsonlSink(args.truth, "--truth") if args.truth else None
    except (SpecError, OutputError) as exc:
        return _fail(str(exc))
    end_ms = start_ms + args.duration if args.duration else None
    try:
        with _sigterm_as_interrupt():
            stats = run(
                sim,
                sink,
                speed=None if args.as_fast_as_possible else args.speed,
                end_ms=end_ms,
                max_events=args.max_events,
                truth=truth,
                clock=clock,
            )
    finally:
        sink.close()
        if truth is not None:
            truth.close()
    until = "-" if stats.last_ms is None else format_rfc3339(stats.last_ms, plant.zone)
    print(
        f"linepulse simulate: {stats.events} records from {format_rfc3339(start_ms, plant.zone)} "
        f"to {until} into {_destination(args, settings)} ({stats.stopped}); {stats.faults} fault(s) started",
        file=sys.stderr,
    )
    return 0
