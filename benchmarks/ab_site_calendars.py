"""A/B of what per-site calendars cost the worker's path: the same telemetry through
:class:`~streams.processing.TelemetryProcessor`, CPU time per record, rounds interleaved (the order
swapped every other round), median and min of the rounds.

    .venv/bin/python -m benchmarks.ab_site_calendars --rounds 9
    .venv/bin/python -m benchmarks.ab_site_calendars --rounds 9 --base-tree /tmp/base

In-process variants of this tree: ``plant`` (the demo plant, no ``sites``: the path every existing
plant file takes) and ``site`` (the same plant with a ``sites`` entry for its one site, same
calendar: each event looks its site's calendar up). With ``--base-tree`` (e.g. ``git archive main |
tar -x -C /tmp/base``) each round also runs ``plant`` in a subprocess from that tree and from this
one, the same way: base against head before sites existed. Both variants must give the same
records; the script checks it.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.machine_state import MachineState
    from models.plant import PlantConfig

__all__ = ["main"]

_START_MS = 1_795_392_000_000  # Monday 2026-11-23 09:00 in Seoul, mid day shift
_HOUR_MS = 3_600_000


def _records(count: int) -> list[bytes]:
    import orjson

    from service.plant_file import load_demo_plant
    from service.simulator import PlantSimulator

    simulator = PlantSimulator(load_demo_plant(), seed=5, start_ms=_START_MS)
    values = []
    for record in simulator.events(_START_MS + 48 * _HOUR_MS):
        values.append(orjson.dumps(record))
        if len(values) == count:
            break
    return values


def _plant(variant: str) -> PlantConfig:
    from service.plant_file import load_demo_plant

    plant = load_demo_plant()
    if variant == "plant":
        return plant
    from models.plant import SiteCalendar

    site = SiteCalendar(tenant="demo", site="p1", timezone=plant.timezone)
    return type(plant).model_validate({**plant.model_dump(), "sites": [site.model_dump()]})


def _run(variant: str, values: list[bytes]) -> tuple[float, str]:
    """CPU seconds to process ``values`` with a fresh processor, and a digest of its records."""
    import orjson

    from streams.processing import Applied, TelemetryProcessor

    plant = _plant(variant)
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    outcomes = []
    started = time.process_time()
    for offset, value in enumerate(values):
        record = orjson.loads(value)
        key = f"{record['tenant']}/{record['machine']}".encode()
        outcome = processor.process(
            key,
            value,
            timestamp_ms=None,
            load_state=states.get,
            source="t:0",
            offset=offset,
        )
        if isinstance(outcome, Applied):
            states[outcome.state.key] = outcome.state
        outcomes.append(outcome)
    elapsed = time.process_time() - started
    digest = hashlib.sha256()
    for outcome in outcomes:
        if isinstance(outcome, Applied):
            for kpi in outcome.kpis:
                digest.update(orjson.dumps({**kpi.model_dump(mode="json"), "config_version": None}))
            for alert in outcome.alerts:
                digest.update(orjson.dumps(alert.model_dump(mode="json")))
    return elapsed, digest.hexdigest()


def _subprocess_run(tree: Path, count: int) -> float:
    """CPU µs per record of the ``plant`` variant run from ``tree``'s sources."""
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), "--records", str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output.split()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_site_calendars", description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--base-tree", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        sys.path.insert(0, str(args.child))
        values = _records(args.records)
        _run("plant", values[:2000])  # compile and warm up outside the timing
        print(_run("plant", values)[0] / len(values) * 1e6)
        return 0
    values = _records(args.records)
    _run("plant", values[:2000])
    _run("site", values[:2000])
    timings: dict[str, list[float]] = {"plant": [], "site": []}
    digests: set[str] = set()
    trees = {"base": args.base_tree, "head": Path(__file__).resolve().parents[1]} if args.base_tree else {}
    for name in trees:
        timings[name] = []
    for round_ in range(args.rounds):
        order = ["plant", "site", *trees]
        for variant in order if round_ % 2 == 0 else reversed(order):
            if variant in trees:
                timings[variant].append(_subprocess_run(trees[variant], args.records))
                continue
            seconds, digest = _run(variant, values)
            digests.add(digest)
            timings[variant].append(seconds / len(values) * 1e6)
    if len(digests) != 1:
        raise SystemExit("the variants gave different records")
    for name, runs in timings.items():
        print(
            f"{name:6s} µs CPU/record: median {statistics.median(runs):.2f}  min {min(runs):.2f}  "
            f"runs {' '.join(f'{run:.2f}' for run in runs)}"
        )
    for new, old in [("site", "plant"), ("head", "base")] if trees else [("site", "plant")]:
        ratio = statistics.median(timings[new]) / statistics.median(timings[old])
        print(f"{new}/{old} ratio: median {ratio:.3f}  min {min(timings[new]) / min(timings[old]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
