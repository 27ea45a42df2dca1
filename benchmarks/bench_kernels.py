"""Kernels: the numba signal statistics against a pure-Python reference and against river, readings/s."""

from __future__ import annotations

from typing import Final

import numpy as np

from benchmarks.messages import READINGS_PER_BATCH
from benchmarks.peers import PythonSignalStats, RiverSignalStats
from benchmarks.results import Figure, best_rate, rate_figure
from models import signal_stats

__all__ = ["NOTES", "TITLE", "figures"]

TITLE: Final = "Kernels (readings/s, one signal)"
NOTES: Final = (
    "Batches of 500 readings (one frame's worth) through `models.signal_stats.update`, against the "
    "same statistics (count, mean, variance, min, max, last, EW mean and variance, sum) updated one "
    "reading at a time in plain Python and with river's `stats` objects. The batch of 1 row shows the "
    "per-call overhead that makes the hot path batch."
)


def _batch_figures(batch: int, rng: np.random.Generator, min_time: float) -> list[Figure]:
    alpha = signal_stats.DEFAULT_ALPHA
    ts = np.arange(batch, dtype=np.int64) + 1_700_000_000_000
    values = rng.normal(50.0, 5.0, batch)
    state = signal_stats.new_state()
    ours = best_rate(lambda: signal_stats.update(state, ts, values, alpha), batch, min_time_s=min_time)
    reference = PythonSignalStats(alpha)
    python = best_rate(lambda: reference.update_many(ts, values), batch, min_time_s=min_time)
    peer = RiverSignalStats(alpha)
    river = best_rate(lambda: peer.update_many(ts, values), batch, min_time_s=min_time)
    what = f"signal_stats.update, batches of {batch}"
    return [
        rate_figure(f"kernels.signal_stats.b{batch}.vs_python", ours, python, "readings/s",
                    what=what, vs="pure-Python Welford + EW"),
        rate_figure(f"kernels.signal_stats.b{batch}.vs_river", ours, river, "readings/s",
                    what=what, vs="river stats.Var/Min/Max/Sum/EWMean/EWVar"),
    ]  # fmt: skip


def figures(quick: bool) -> list[Figure]:
    rng = np.random.default_rng(5)
    min_time = 0.1 if quick else 0.3
    return [figure for batch in (READINGS_PER_BATCH, 1) for figure in _batch_figures(batch, rng, min_time)]
