"""Saying that a machine's anomaly model cannot score it (:mod:`models.anomaly.scoring`, "Unscored").

Without it such a machine looks exactly like a healthy one: no alert, no error, just nothing. A
WARNING names the machine, the model version and the signals it lacks, once per machine and model
version in this process (a restarted worker says it again, from the stored state); an INFO line when
the machine is scored again. Per message the cost is one attribute test, and a set lookup while
some machine is unscored.
"""

from __future__ import annotations

import logging

from models.anomaly.scoring import UNSCORED_AFTER_MS
from models.machine_state import MachineState

__all__ = ["UnscoredLog"]

_log = logging.getLogger(__name__)


class UnscoredLog:
    def __init__(self) -> None:
        self._warned: set[tuple[str, str]] = set()  # (machine key, model label)
        self._open: set[str] = set()  # machines unscored now

    def observe(self, state: MachineState) -> None:
        window = state.anomaly
        if window is not None and window.unscored:
            key = state.key
            self._open.add(key)
            if (key, window.model) in self._warned:
                return
            self._warned.add((key, window.model))
            _log.warning(
                "anomaly model %s cannot score %s: no reading of %s since it began serving the machine "
                "or for %g minutes, while %d readings of other signals came; the machine gets no anomaly "
                "alerts until it sends them",
                window.model,
                key,
                list(window.unscored),
                UNSCORED_AFTER_MS / 60_000,
                window.unseen_readings,
            )
        elif self._open and state.key in self._open:
            self._open.discard(state.key)
            model = window.model if window is not None else "-"
            # Either it sent the missing signals or another model (or none) serves it now.
            _log.info("%s is no longer left unscored by anomaly model %s", state.key, model)
