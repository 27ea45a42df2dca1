"""One machine's state as the Faust table keeps it: accounting, totals, signals, monitors, alerts.

A plain dataclass that serialises to JSON (:meth:`MachineState.to_dict`) and back; the engine
(:mod:`models.machine`) and the accounting (:mod:`models.accounting`) change it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import expected_level, signal_monitor, signal_stats, time_kernel
from models.alert_rules import AlertState
from models.anomaly.scoring import AnomalyWindow
from models.lateness import LatenessLog
from models.pending_resets import PendingReset
from models.spc.capability import CapabilityStats
from models.time_ledger import TimeLedger, ledger_from_parts
from models.timemodel import WindowAccumulator

__all__ = ["LifetimeTotals", "MachineState"]


@dataclass(slots=True)
class LifetimeTotals:
    """Totals since the machine was first seen; the exactly-once test compares these."""

    events: int = 0
    readings: int = 0
    good: int = 0
    scrap: int = 0
    run_ms: int = 0
    late_events: int = 0  # beyond the allowed lateness: counted, not merged

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class MachineState:
    tenant: str
    site: str
    line: str
    machine: str
    # Time accounting (models.time_ledger): windows, state, stop and startup clocks, as kernel arrays.
    ledger: TimeLedger = field(default_factory=TimeLedger)
    totals: LifetimeTotals = field(default_factory=LifetimeTotals)
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> last applied offset
    # Drift/SPC monitor state per monitored series (sensor signal, characteristic, cycle time).
    monitors: dict[str, np.ndarray] = field(default_factory=dict)
    # Expected-level models (models.expected_level) per signal judged as a residual (temperatures).
    expected: dict[str, np.ndarray] = field(default_factory=dict)
    # Capability accumulators per "characteristic|product|shift" ("-" where there is none).
    capability: dict[str, CapabilityStats] = field(default_factory=dict)
    # The same per shift as it took place, "characteristic|product|start_ms|shift" (a local day where
    # the plant has no shifts), the newest CAPABILITY_SHIFTS_KEPT of each characteristic and product.
    capability_shifts: dict[str, CapabilityStats] = field(default_factory=dict)
    # Anomaly scoring: the model's feature-window history, so a restart scores exactly as before.
    anomaly: AnomalyWindow | None = None
    lateness: LatenessLog | None = None  # log and snapshots, only with allowed_lateness_s > 0
    # The newest check interval of its clock's stream time (streams.silence) already decided for
    # it: the one it was last ticked for, or the one under way when it joined the clock. A
    # restarted worker checks the interval it resumes in again; this keeps it from ticking there a
    # machine the uninterrupted worker let wait for the next one.
    silence_interval: int | None = None
    # Operator resets waiting for the machine's telemetry to reach their time (models.pending_resets).
    pending_resets: list[PendingReset] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.machine}"

    # -- the accounting's view, read-only (models.accounting changes it) --------------------------

    @property
    def cursor_ms(self) -> int | None:
        """Machine time is accounted up to here."""
        return self.ledger.get(time_kernel.S_CURSOR)

    @property
    def last_seen_ms(self) -> int | None:
        """The newest event time of any telemetry."""
        return self.ledger.get(time_kernel.S_LAST_SEEN)

    @property
    def state(self) -> str | None:
        return self.ledger.state_reason[0]

    @property
    def reason(self) -> str | None:
        return self.ledger.state_reason[1]

    @property
    def state_since_ms(self) -> int | None:
        return self.ledger.get(time_kernel.S_STATE_SINCE)

    @property
    def windows(self) -> dict[str, WindowAccumulator]:
        """The open hour, shift and day windows, built from the ledger (only the accounting changes them)."""
        return self.ledger.windows()

    @property
    def closing(self) -> list[WindowAccumulator]:
        """Windows that ended during an undecided stop and wait for its decision."""
        return self.ledger.closing()

    def sync_totals(self) -> None:
        """Copy the accounting's lifetime run time and too-late count into ``totals``."""
        self.totals.run_ms = int(self.ledger.scalars[time_kernel.S_RUN_MS])
        self.totals.late_events = int(self.ledger.scalars[time_kernel.S_LATE])

    def to_dict(self) -> dict[str, Any]:
        accounting = self.ledger.to_parts()
        totals = self.totals.to_dict()
        del accounting["run_ms"], accounting["late_events"]  # stored in totals
        return {
            "tenant": self.tenant,
            "site": self.site,
            "line": self.line,
            "machine": self.machine,
            **accounting,
            "totals": totals,
            "signals": {name: signal_stats.to_list(vector) for name, vector in self.signals.items()},
            "alerts": {key: alert.to_dict() for key, alert in self.alerts.items()},
            "applied": dict(self.applied),
            "monitors": {name: signal_monitor.to_list(vector) for name, vector in self.monitors.items()},
            "expected": {name: expected_level.to_list(vector) for name, vector in self.expected.items()},
            "capability": {key: stats.to_list() for key, stats in self.capability.items()},
            **(
                {"capability_shifts": {key: stats.to_list() for key, stats in self.capability_shifts.items()}}
                if self.capability_shifts
                else {}  # a machine without quality data keeps the state it had before shifts were kept
            ),
            "anomaly": None if self.anomaly is None else self.anomaly.to_dict(),
            "lateness": None if self.lateness is None else self.lateness.to_dict(),
            "silence_interval": self.silence_interval,
            **(
                {"pending_resets": [reset.to_dict() for reset in self.pending_resets]}
                if self.pending_resets
                else {}  # the usual machine: its state stays as it was before resets could wait
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineState:
        totals = LifetimeTotals(**data["totals"])
        return cls(
            tenant=data["tenant"],
            site=data["site"],
            line=data["line"],
            machine=data["machine"],
            ledger=ledger_from_parts({**data, "run_ms": totals.run_ms, "late_events": totals.late_events}),
            totals=totals,
            signals={name: signal_stats.from_list(values) for name, values in data["signals"].items()},
            alerts={key: AlertState.from_dict(a) for key, a in data["alerts"].items()},
            applied=dict(data["applied"]),
            # .get: states written before drift monitoring existed still load.
            monitors=_load_vectors(data.get("monitors", {}), signal_monitor.from_list),
            expected=_load_vectors(data.get("expected", {}), expected_level.from_list),
            capability={key: CapabilityStats.from_list(v) for key, v in data.get("capability", {}).items()},
            capability_shifts={
                key: CapabilityStats.from_list(v) for key, v in data.get("capability_shifts", {}).items()
            },
            anomaly=AnomalyWindow.from_dict(data["anomaly"]) if data.get("anomaly") else None,
            lateness=LatenessLog.from_dict(data["lateness"]) if data.get("lateness") else None,
            silence_interval=data.get("silence_interval"),  # None in states written before it
            pending_resets=[PendingReset.from_dict(reset) for reset in data.get("pending_resets", ())],
        )


def _load_vectors(stored: dict[str, Any], from_list: Callable[[Any], np.ndarray]) -> dict[str, np.ndarray]:
    """Per-series state vectors (drift monitors, expected-level models) in the current layout; one
    stored in another layout (an older version, a changed ADWIN row cap) is dropped, so that series
    learns again instead of the whole machine state failing to load."""
    vectors = {}
    for name, values in stored.items():
        try:
            vectors[name] = from_list(values)
        except ValueError:
            continue
    return vectors
