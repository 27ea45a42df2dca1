"""A machine's anomaly scoring as JSON, for ``analyze``'s summary and ``/api/machines``.

``null`` until a model has served the machine; else the model version and ``unscored``: null while
the model scores the machine, or the signals of the model the machine has not sent, how many
readings of other signals came meanwhile and since when (:mod:`models.anomaly.scoring`, "Unscored").
"""

from __future__ import annotations

from typing import Any

from models.calendar import PlantCalendar
from models.machine_state import MachineState

__all__ = ["anomaly_view"]


def anomaly_view(state: MachineState, calendar: PlantCalendar) -> dict[str, Any] | None:
    window = state.anomaly
    if window is None:
        return None
    unscored = None
    if window.unscored:
        unscored = {
            "missing_signals": list(window.unscored),
            "readings_without_them": window.unseen_readings,
            "since": calendar.local_isoformat(window.unseen_from_ms),
        }
    return {"model": window.model, "unscored": unscored}
