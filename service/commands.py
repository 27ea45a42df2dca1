"""Sub-commands of the service itself: ``worker``, ``run``, ``analyze``, ``schema``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from service.cli_args import int_at_least, positive_float, positive_int
from service.exceptions import ConfigError
from service.output_file import print_output
from service.plant_file import load_plant
from service.settings import Settings, load_settings
from service.worker import add_common_arguments

__all__ = ["register"]


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        plant_config=getattr(args, "plant_config", None),
        web_port=getattr(args, "web_port", None),
        partitions=getattr(args, "partitions", None),
        app_id=getattr(args, "app_id", None),
        model_registry=getattr(args, "model_registry", None),
        **extra,
    )


def _worker(args: argparse.Namespace) -> int:
    from service.worker import run_worker

    settings = _settings(args)
    if settings.bootstrap_servers is None:
        raise ConfigError(
            "bootstrap_servers: the worker needs --bootstrap-servers or LINEPULSE_BOOTSTRAP_SERVERS"
        )
    return run_worker(settings, load_plant(settings.plant_config), settings.bootstrap_servers)


def _run(args: argparse.Namespace) -> int:
    from service.run import run_all

    return run_all(_settings(args), speed=args.speed, seed=args.seed, view=not args.no_view)


def _analyze(args: argparse.Namespace) -> int:
    from service.analyze import analyze_file, parse_received_at
    from service.baseline import parse_scheduled_reset

    settings = _settings(args)
    plant = load_plant(settings.plant_config)
    resets = [parse_scheduled_reset(plant, text) for text in args.baseline_reset]
    received_at = None if args.received_at is None else parse_received_at(args.received_at)
    summary = analyze_file(args.telemetry, plant, args.out, settings, resets, received_at)
    print_output(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode(), "the summary to")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from service.schemas import write_schemas

    print_output("\n".join(str(path) for path in write_schemas(args.out)), "the schema list to")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser("worker", help="run the stream worker against a Kafka cluster")
    add_common_arguments(worker)
    worker.set_defaults(handler=_worker)

    run = subparsers.add_parser(
        "run",
        help="all in one: embedded broker (unless --bootstrap-servers), simulated plant, worker, live view",
    )
    add_common_arguments(run)
    run.add_argument(
        "--speed", type=positive_float, default=60.0, help="simulated seconds per real second (default 60)"
    )
    # The simulator's own argument type: run passes the seed on to its simulate child, which would
    # refuse a negative one only after the broker and the worker had started.
    run.add_argument("--seed", type=int_at_least(0), default=7, help="simulator seed")
    run.add_argument("--no-view", action="store_true", help="no live terminal table")
    run.set_defaults(handler=_run)

    analyze = subparsers.add_parser("analyze", help="run the stream's models over a telemetry JSONL file")
    analyze.add_argument("telemetry", type=Path, metavar="TELEMETRY.jsonl")
    analyze.add_argument(
        "--config", dest="plant_config", metavar="PLANT.yaml", help="plant configuration file"
    )
    analyze.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    analyze.add_argument(
        "--model-registry", type=Path, metavar="DIR", help="score anomalies with this model registry's models"
    )
    analyze.add_argument(
        "--baseline-reset",
        action="append",
        default=[],
        metavar="[TENANT/]MACHINE[:NAME]@TIME",
        help="recompute drift/SPC baselines (one signal or characteristic, or all) once the machine's "
        "telemetry reaches TIME (RFC 3339 with offset, or epoch ms); repeatable",
    )
    analyze.add_argument(
        "--received-at",
        metavar="TIME",
        help="when the file's records were received (RFC 3339 with offset, or epoch ms): event times "
        "more than max_future_s after it or max_past_s before it are dead-lettered, as the worker "
        "judges them against each "
        "message's Kafka timestamp; without it, files have no such time and no line is judged",
    )
    analyze.add_argument(
        "--partitions",
        type=positive_int,
        metavar="N",
        help="partitions of the telemetry topic the file comes from (default: the partitions setting): "
        "stream time is kept per partition and tenant, as the worker keeps it, with each line on its "
        "key's partition",
    )
    analyze.set_defaults(handler=_analyze)

    schema = subparsers.add_parser("schema", help="write the JSON Schemas of the topics' records")
    schema.add_argument("--out", type=Path, default=Path("docs/schema"), metavar="DIR")
    schema.set_defaults(handler=_schema)
