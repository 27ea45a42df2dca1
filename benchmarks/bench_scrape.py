"""One /metrics scrape of a worker: ``service.exposition.render`` vs ``prometheus_client.generate_latest``.

A worker renders its scrape on its event loop, so a scrape's cost is a pause of the stream. The
states are the demo plant's five machines repeated (``_COPIES`` times), simulated for half an hour
of event time through the worker's processor: every machine with its hour, shift and day windows,
losses, cycle times, alerts, capability and sensor signals, as a worker's registry collects them.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import generate_latest

from benchmarks.results import Figure, best_rates, rate_figure
from benchmarks.simulated_plant import simulated_states
from models.plant import PlantConfig
from service.exposition import render
from service.metrics import build_registry
from service.plant_file import load_demo_plant
from streams.live import LiveMachines

__all__ = ["NOTES", "TITLE", "figures"]

TITLE: Final = "/metrics scrape (series/s, one worker's registry)"
NOTES: Final = (
    "The demo plant's five machines repeated (20 machines in the quick run, 100 in the full one), "
    "half an hour of simulated telemetry through the worker's processor, then the worker's whole "
    "registry scraped: its collectors read the live states and the text format is written. "
    "`scrape.vs_generate_latest` is `service.exposition.render` (what /metrics serves) against "
    "`prometheus_client.generate_latest` on the same registry, rounds interleaved; both give the "
    "same bytes (tests/unit/test_exposition.py). A scrape runs on the worker's event loop: its "
    "time is a pause of the stream."
)
_START_MS: Final = 1_795_000_000_000


def _plant(copies: int) -> PlantConfig:
    demo = load_demo_plant()
    machines = [
        spec.model_copy(update={"id": f"{spec.id}x{copy}"})
        for copy in range(copies)
        for spec in demo.machines
    ]
    return PlantConfig.model_validate({**demo.model_dump(), "machines": [m.model_dump() for m in machines]})


def figures(quick: bool) -> list[Figure]:
    plant = _plant(4 if quick else 20)
    live = LiveMachines({spec.key for spec in plant.machines})
    for state in simulated_states(plant, seed=5, start_ms=_START_MS, end_ms=_START_MS + 30 * 60_000).values():
        live.update(state)
    registry, _ = build_registry(live, plant)
    series = generate_latest(registry).count(b"\n") - 2 * sum(1 for _ in registry.collect())
    rates = best_rates(
        {"render": lambda: render(registry), "generate_latest": lambda: generate_latest(registry)},
        series,
        min_time_s=0.2 if quick else 0.5,
    )
    return [
        rate_figure(
            "scrape.vs_generate_latest",
            rates["render"],
            rates["generate_latest"],
            "series/s",
            what=f"a worker's /metrics, {len(plant.machines)} machines, {series} series",
            vs="prometheus_client.generate_latest",
        )
    ]
