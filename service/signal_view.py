"""A machine's sensor signals as JSON, for ``/api/machines`` and ``analyze``'s ``signals.json``.

Per signal the statistics the worker keeps in the machine's state (:mod:`models.signal_stats`): the
newest reading and when it was taken (site time), the exponentially weighted mean and standard
deviation (half-life 50 readings: the signal's level now), and the count, mean, standard
deviation, minimum and maximum since the machine was first seen. ``null`` where a statistic is not
defined yet (a standard deviation needs two readings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models import signal_stats
from models.calendar import PlantCalendar
from models.machine_state import MachineState

__all__ = ["signal_view"]


def signal_view(
    state: MachineState, calendar: PlantCalendar, readings: Mapping[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """``readings``: the counts to show instead of the state's (the worker's, as last written to
    the changelog: :class:`streams.live.Counters`, which the metrics show too)."""
    view = {}
    for name, vector in sorted(state.signals.items()):
        summary = signal_stats.summarize(vector)
        view[name] = {
            "last": summary.last,
            "last_at": None if summary.last_ts_ms is None else calendar.local_isoformat(summary.last_ts_ms),
            "ew_mean": summary.ew_mean,
            "ew_std": summary.ew_std,
            # null: first read in a batch whose changelog write is not acknowledged yet
            "readings": summary.count if readings is None else readings.get(name),
            "mean": summary.mean,
            "std": summary.std,
            "min": summary.min,
            "max": summary.max,
        }
    return view
