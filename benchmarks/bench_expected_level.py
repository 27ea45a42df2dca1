"""Speed of the temperatures' expected-level model, with the drift monitor it feeds as the baseline.

One model state (trained, with a day of ambient profile), 300k readings (60k in the quick run) in
batches of 10, 500 and 100k, best of 5 rounds; the signal monitor with the temperature defaults on
the same batches, its rounds interleaved with the model's. Figures in docs/drift-and-spc.md
("Temperatures", cost).

    .venv/bin/python -m benchmarks.bench_expected_level
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from benchmarks.results import Figure, best_rates, cost_figure
from models import expected_level, signal_monitor
from models.monitoring_config import MonitoringConfig

__all__ = ["NOTES", "TITLE", "figures", "main", "measure"]

TITLE = "Expected level of temperatures (ns per reading, one signal)"
NOTES = (
    "A temperature is judged as its residual from an expected level (thermal lag driven by the "
    "machine state, plus the ambient by local hour: `models.expected_level`). One trained model "
    "state (a day of ambient profile learnt) takes 300,000 readings (60,000 in the quick run) in "
    "batches of 10, 500 and 100,000, best of 5 rounds; the baseline is the drift monitor with the "
    "temperature defaults on the same batches, its rounds interleaved with the model's, which the "
    "residuals then feed. "
    "ratio = monitor ns / model ns: above 1, the model costs less than the monitor it feeds. "
    "`training` is the cost per reading while the lag is learnt (first hours of a signal)."
)

_T0 = 1_790_000_000_000
_N = 400_000
_FROM = 100_000


def _best_ns(run: Callable[[], None], readings: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        tic = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - tic) / readings * 1e9)
    return best


def _compared_ns(
    model: Callable[[], None], monitor: Callable[[], None], readings: int, quick: bool
) -> tuple[float, float]:
    """ns per reading of both, their rounds interleaved (benchmarks.results.best_rates): measured
    one after the other, a burst of load from a neighbour landed on one side only, and the quick
    run's b500 ratio swung from 0.68 to 1.28 between runs of the same code."""
    rates = best_rates(
        {"model": model, "monitor": monitor}, readings, min_time_s=0.05 if quick else 0.2, repeat=5
    )
    return 1e9 / rates["model"], 1e9 / rates["monitor"]


def measure(quick: bool = False) -> dict[str, float]:
    n = _FROM + (60_000 if quick else _N - _FROM)
    times = _T0 + np.arange(n, dtype=np.int64) * 1000
    values = np.random.default_rng(0).normal(30.0, 0.2, n)
    params = expected_level.ThermalParams(train_s=3_600, min_flips=0).vector()
    trained = expected_level.new_state()
    for lo, hi in ((0, 8_000), (8_000, _FROM)):  # training, then a day of ambient profile
        expected_level.update(
            trained, times[lo:hi], values[lo:hi], params, running_since_ms=_T0, running=True, utc_offset_ms=0
        )
    monitor_params = MonitoringConfig().temperatures.params()
    monitor_vector = monitor_params.vector()
    out: dict[str, float] = {}
    for batch in (10, 500, 100_000):
        starts = range(_FROM, n, batch)

        def model(batch: int = batch, starts: range = starts) -> None:
            state = trained.copy()
            for lo in starts:
                expected_level.update(
                    state,
                    times[lo : lo + batch],
                    values[lo : lo + batch],
                    params,
                    running_since_ms=int(times[lo]),
                    running=(lo // 3_000) % 2 == 1,
                    utc_offset_ms=0,
                )

        def monitor(batch: int = batch, starts: range = starts) -> None:
            state = signal_monitor.new_state(monitor_params)
            for lo in starts:
                signal_monitor.update(state, values[lo : lo + batch], monitor_vector)

        model_ns, monitor_ns = _compared_ns(model, monitor, n - _FROM, quick)
        out[f"expected_level.b{batch}.ns"] = round(model_ns, 1)
        out[f"monitor_temperatures.b{batch}.ns"] = round(monitor_ns, 1)

    def training() -> None:
        state = expected_level.new_state()
        expected_level.update(
            state, times[:3_000], values[:3_000], params, running_since_ms=0, running=True, utc_offset_ms=0
        )

    training()
    out["expected_level.training.b3000.ns"] = round(_best_ns(training, 3_000), 1)
    return out


def figures(quick: bool) -> list[Figure]:
    measured = measure(quick)
    out = [
        cost_figure(
            f"expected_level.b{batch}.vs_monitor",
            measured[f"expected_level.b{batch}.ns"],
            measured[f"monitor_temperatures.b{batch}.ns"],
            "ns/reading",
            what=f"expected_level.update, trained, batches of {batch}",
            vs="the drift monitor with the temperature defaults, same batches",
        )
        for batch in (10, 500, 100_000)
    ]
    out.append(
        Figure(
            "expected_level.training.b3000",
            measured["expected_level.training.b3000.ns"],
            "ns/reading",
            None,
            None,
            what="expected_level.update while the lag is learnt, batches of 3000",
        )
    )
    return out


def main() -> None:
    print(json.dumps(measure(), indent=2))


if __name__ == "__main__":
    main()
