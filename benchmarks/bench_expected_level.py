"""Speed of the temperatures' expected-level model, with the drift monitor it feeds as the baseline.

One model state (trained, with a day of ambient profile), 300k readings in batches of 10, 500 and
100k, best of 3 rounds; the signal monitor with the temperature defaults on the same batches in
the same run. Figures in docs/drift-and-spc.md ("Temperatures", cost).

    .venv/bin/python -m benchmarks.bench_expected_level
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from models import expected_level, signal_monitor
from models.monitoring_config import MonitoringConfig

__all__ = ["main", "measure"]

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


def measure() -> dict[str, float]:
    times = _T0 + np.arange(_N, dtype=np.int64) * 1000
    values = np.random.default_rng(0).normal(30.0, 0.2, _N)
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
        starts = range(_FROM, _N, batch)

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

        model()  # compile
        monitor()
        out[f"expected_level.b{batch}.ns"] = round(_best_ns(model, _N - _FROM), 1)
        out[f"monitor_temperatures.b{batch}.ns"] = round(_best_ns(monitor, _N - _FROM), 1)

    def training() -> None:
        state = expected_level.new_state()
        expected_level.update(
            state, times[:3_000], values[:3_000], params, running_since_ms=0, running=True, utc_offset_ms=0
        )

    training()
    out["expected_level.training.b3000.ns"] = round(_best_ns(training, 3_000), 1)
    return out


def main() -> None:
    print(json.dumps(measure(), indent=2))


if __name__ == "__main__":
    main()
