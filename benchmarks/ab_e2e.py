"""Same-session A/B of the end-to-end frames figure: source trees interleaved against an empty agent.

``python -m benchmarks.ab_e2e --broker tansu --variant base=/tmp/base --variant head=. --rounds 5``

One broker and one topic of frames (:func:`benchmarks.messages.frames`, a ``running`` state per
machine first), then, round after round, each variant's linepulse worker and the empty Faust agent
read all of it (the order reversed every other round, so neither always goes first). A variant is
a source tree, e.g. ``git archive <commit> | tar -x -C /tmp/base``: the worker runs from it with this
virtualenv (``python -m`` takes the packages from the working directory first). Prints µs of CPU
per message per run and each variant's median, and the wall time per message (throughput: a change
that waits, e.g. for acknowledgements, shows there and not in the CPU); on two shared cores single
runs move by ±25 %.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks import e2e
from benchmarks.messages import SIGNALS, frames

__all__ = ["main"]


def _variant(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or name == "empty" or not (Path(path) / "streams").is_dir():
        raise argparse.ArgumentTypeError(f"expected NAME=SOURCE_TREE (not 'empty'), got {text!r}")
    return name, Path(path).resolve()


def _us_per_message(
    kind: e2e.ConsumerKind, checkout: Path, bootstrap: str, topic: str, expect: int, per_message: int
) -> tuple[float, float]:
    """µs of CPU and of wall time per message."""
    with tempfile.TemporaryDirectory(prefix="linepulse-ab-") as tmp:
        consumer = e2e.start_consumer(
            kind, bootstrap, topic, expect, Path(tmp), readings_per_message=per_message, checkout=checkout
        )
        timing = e2e.wait_result(consumer, 400)
    if timing.rejected:
        raise RuntimeError(f"{kind} from {checkout}: {timing.rejected} messages were dead-lettered")
    return timing.cpu_s / timing.messages * 1e6, timing.wall_s / timing.messages * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_e2e", description=__doc__)
    parser.add_argument("--broker", choices=("tansu", "apache-kafka"), default="tansu")
    parser.add_argument("--variant", type=_variant, action="append", required=True)
    parser.add_argument("--frames", type=int, default=8_000)
    parser.add_argument("--per-signal", type=int, default=100, help="readings per signal and frame")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    broker: e2e.BrokerName = args.broker
    runs: list[tuple[str, Path]] = [*args.variant, ("empty", e2e.REPO)]
    per_message = len(SIGNALS) * args.per_signal
    cpu: dict[str, list[float]] = {name: [] for name, _ in runs}
    wall: dict[str, list[float]] = {name: [] for name, _ in runs}
    with e2e.running_broker(broker) as bootstrap:
        messages = frames(args.frames, per_signal=args.per_signal, running=True)
        topic = e2e.create_topic(bootstrap, "ab")
        e2e.produce(bootstrap, topic, messages)
        for round_ in range(args.rounds):
            for name, checkout in runs if round_ % 2 == 0 else runs[::-1]:
                kind: e2e.ConsumerKind = "empty" if name == "empty" else "linepulse"
                us, wall_us = _us_per_message(kind, checkout, bootstrap, topic, len(messages), per_message)
                cpu[name].append(us)
                wall[name].append(wall_us)
                line = f"round {round_} {name:>10}: {us:7.1f} us CPU, {wall_us:7.1f} us wall per message"
                print(line, flush=True)
    empty = statistics.median(cpu["empty"])
    for name, values in cpu.items():
        median = statistics.median(values)
        ratio = empty / median
        print(f"{name:>10}: median {median:7.1f} us, min {min(values):7.1f} us, vs empty {ratio:.3f}x")
    for name, values in wall.items():
        print(f"{name:>10}: wall median {statistics.median(values):7.1f} us per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
