"""``linepulse kafka fetch`` and ``linepulse kafka start``: a local Apache Kafka without Docker."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from service.brokers.apache_kafka import KafkaCluster
from service.brokers.exceptions import BrokerError
from service.brokers.jars import fetch_jars

__all__ = ["register"]


def _fetch(args: argparse.Namespace) -> int:
    try:
        print(fetch_jars())
    except BrokerError as exc:
        print(f"linepulse kafka fetch: {exc}", file=sys.stderr)
        return 1
    return 0


def _start(args: argparse.Namespace) -> int:
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    # SIGTERM (systemd, docker stop) gets the same clean shutdown as Ctrl-C.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with KafkaCluster(args.brokers, base_dir=args.dir) as cluster:
            print(cluster.bootstrap_servers, flush=True)
            print(f"{args.brokers} broker(s) running; Ctrl-C stops them.", file=sys.stderr, flush=True)
            stop_requested.wait()
            print("stopping...", file=sys.stderr, flush=True)
    except BrokerError as exc:
        print(f"linepulse kafka start: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``kafka`` command group to the ``linepulse`` CLI."""
    kafka = subparsers.add_parser("kafka", help="local Apache Kafka (KRaft) for development and tests")
    actions = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")

    fetch = actions.add_parser("fetch", help="download the Kafka jars into the cache; prints the libs dir")
    fetch.set_defaults(handler=_fetch)

    start = actions.add_parser("start", help="run a KRaft cluster on 127.0.0.1 until Ctrl-C")
    start.add_argument("--brokers", type=int, choices=(1, 3), default=1, help="number of nodes")
    start.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="keep data, ports and cluster id here across restarts (default: a temporary directory)",
    )
    start.set_defaults(handler=_start)
