"""``machine_stopped`` alerts: a stop in an availability-loss state that lasts ``down_after_s``.

Judged on the machine's own time as its events come, and on its partition's stream time
(:meth:`StopAlerts.on_stream_time`), because PLCs often report only state changes and a stopped
machine's own time stands still. One stop is one alert, updated when its state or reason changes
and resolved, with the whole stop's length, when the machine leaves it.
"""

from __future__ import annotations

from typing import Any

from models import alert_book
from models.accounting import EngineOutput
from models.alert_rules import AlertState
from models.bounded_cache import bounded
from models.machine_state import MachineState
from models.monitoring_config import CACHE_LIMIT
from models.plant import LossCategory, MachineSpec, PlantConfig

__all__ = ["StopAlerts"]


class StopAlerts:
    """The ``machine_stopped`` alerts of every machine of a plant (the state is each machine's)."""

    def __init__(self, plant: PlantConfig) -> None:
        self._plant = plant
        self._down_after_ms = int(plant.alerts.down_after_s * 1000)
        self._state_timeout_ms = int(plant.state_timeout_s * 1000)
        self._categories: dict[tuple[str | None, str | None], LossCategory] = {}

    def check(
        self, state: MachineState, spec: MachineSpec, out: EngineOutput, stream_ms: int | None = None
    ) -> None:
        """Judge the current stop on the machine's own time (its cursor), or on ``stream_ms``, the
        partition's stream time (:meth:`on_stream_time`)."""
        key = "machine_stopped"
        state_reason = state.ledger.state_reason
        category = self._category(state_reason)
        if (
            category is not LossCategory.AVAILABILITY
            or state.state_since_ms is None
            or state.cursor_ms is None
        ):
            if key in state.alerts:  # rarely: read the cursor only then
                self._resolve(state, spec, out, state.cursor_ms or 0)
            return
        now_ms = state.cursor_ms if stream_ms is None else stream_ms
        last_seen = state.last_seen_ms
        if last_seen is not None and now_ms > last_seen + self._state_timeout_ms:
            # A tick accounts a silent machine's time past its newest telemetry, where its stop is
            # no longer believed (that time is unknown): judge the stop as far as it is believed,
            # as on_stream_time does.
            now_ms = last_seen + self._state_timeout_ms
        stopped_ms = now_ms - state.state_since_ms
        open_alert = state.alerts.get(key)
        if open_alert is None and stopped_ms < self._down_after_ms:
            return
        self._publish(
            state, spec, out, open_alert, now_ms, "machine_time" if stream_ms is None else "stream_time"
        )

    def _publish(
        self,
        state: MachineState,
        spec: MachineSpec,
        out: EngineOutput,
        open_alert: AlertState | None,
        now_ms: int,
        measured_on: str,
    ) -> None:
        """Open the stop's alert, or update it when the stop's state or reason changed (one stop,
        one alert: idle for want of material, then down for a breakdown, is one stop)."""
        state_reason = state.ledger.state_reason
        if open_alert is not None and (
            open_alert.evidence.get("state"),
            open_alert.evidence.get("reason"),
        ) == tuple(state_reason):
            return  # the same stop goes on: nothing a manager acts on changed (no record)
        assert state.state_since_ms is not None
        since_ms = state.state_since_ms if open_alert is None else open_alert.started_ms
        stopped_ms = now_ms - since_ms
        # A breakdown during the stop makes it critical until it ends (escalation, never back).
        critical = state.state == "down" or (open_alert is not None and open_alert.severity == "critical")
        self._open(
            state,
            spec,
            out,
            (state.state, state.reason),
            at_ms=state.state_since_ms,
            stopped_ms=stopped_ms,
            critical=critical,
            still_stopped=open_alert is not None,
            evidence={"measured_on": measured_on},
        )

    def _open(
        self,
        state: MachineState,
        spec: MachineSpec,
        out: EngineOutput,
        stop: tuple[str | None, str | None],
        *,
        at_ms: int,
        stopped_ms: int,
        critical: bool,
        still_stopped: bool,
        evidence: dict[str, Any],
    ) -> None:
        """Open (or update, when ``still_stopped``) the ``machine_stopped`` alert of a stop in
        state ``stop`` (state, reason code) that has lasted ``stopped_ms``."""
        stopped, reason = stop
        name, what, lasted = (
            spec.name or spec.id,
            f"{stopped} ({reason or 'no reason code'})",
            _duration(stopped_ms),
        )
        alert_book.open_alert(
            state,
            out,
            "machine_stopped",
            kind="machine_stopped",
            subject=spec.id,
            severity="critical" if critical else "warning",
            at_ms=at_ms,
            message=f"{name} now {what}, stopped for {lasted}"
            if still_stopped
            else f"{name} {what} for {lasted}",
            evidence={"state": stopped, "reason": reason, "stopped_s": stopped_ms / 1000.0, **evidence},
        )

    def _category(self, state_reason: tuple[str | None, str | None]) -> LossCategory:
        category = self._categories.get(state_reason)
        if category is None:  # the plant is frozen: classify (a rule search) once per state and reason
            category = self._plant.classify(*state_reason)
            bounded(self._categories, CACHE_LIMIT)[state_reason] = category
        return category

    def deadline(self, state: MachineState) -> int | None:
        """The stream time at which the machine's current stop becomes a ``machine_stopped`` alert:
        its start plus ``down_after_s``. None when it is not in an availability-loss state, or its
        alert is open already."""
        since = state.state_since_ms
        if since is None or "machine_stopped" in state.alerts:
            return None
        if self._category(state.ledger.state_reason) is not LossCategory.AVAILABILITY:
            return None
        return since + self._down_after_ms

    def on_stream_time(self, state: MachineState, spec: MachineSpec, stream_ms: int) -> EngineOutput:
        """The machine's partition reached ``stream_ms`` (its newest event time, any machine's):
        open ``machine_stopped`` if the machine's current stop has lasted ``down_after_s`` by then.

        PLCs often report only state changes, so a stopped machine's own time stands still while
        its stop goes on; the stop is therefore judged on the partition's stream time, the Kafka
        Streams way (:mod:`streams.stop_watch`). Nothing is accounted: the machine's time moves only
        with its own events and ticks, so its KPI records do not depend on other machines. The
        stop counts only while its state is believed: up to ``state_timeout_s`` after the
        machine's newest telemetry (beyond that its time is ``unknown``, not down).
        """
        out = EngineOutput()
        deadline = self.deadline(state)
        if deadline is None or stream_ms < deadline:
            return out
        last_seen = state.last_seen_ms
        if last_seen is None or last_seen + self._state_timeout_ms < deadline:
            return out
        self.check(state, spec, out, stream_ms)  # it caps the stop at the state's belief
        return out

    def check_ended(
        self,
        state: MachineState,
        spec: MachineSpec,
        out: EngineOutput,
        before: tuple[tuple[str | None, str | None], int | None],
    ) -> None:
        """A state event ended a stop no one had alerted on (no stream time passed its
        ``down_after_s`` before the machine's own next event, as with a stop then ``offline``):
        if it lasted ``down_after_s``, its alert opens now, with the stop's start and length;
        :meth:`check` resolves it at once unless the next state is a stop as well."""
        (stopped, reason), since = before
        end = state.state_since_ms
        if since is None or end is None or end <= since or "machine_stopped" in state.alerts:
            return
        stopped_ms = end - since
        if stopped_ms < self._down_after_ms:
            return
        if self._category((stopped, reason)) is not LossCategory.AVAILABILITY:
            return
        self._open(
            state,
            spec,
            out,
            (stopped, reason),
            at_ms=since,
            stopped_ms=stopped_ms,
            critical=stopped == "down",
            still_stopped=False,
            evidence={"measured_on": "machine_time", "ended_ms": end},
        )

    def _resolve(self, state: MachineState, spec: MachineSpec, out: EngineOutput, at_ms: int) -> None:
        """Resolve the stop's alert with its final figures: how long the whole stop lasted."""
        alert = state.alerts["machine_stopped"]
        stopped_ms = max(at_ms - alert.started_ms, 0)
        last = f"{alert.evidence.get('state')} ({alert.evidence.get('reason') or 'no reason code'})"
        alert_book.resolve_alert(
            state,
            out,
            "machine_stopped",
            at_ms,
            {"by": "state_change", "state": state.state, "reason": state.reason},
            message=f"{spec.name or spec.id} was stopped for {_duration(stopped_ms)} (last {last})",
            evidence={**alert.evidence, "stopped_s": stopped_ms / 1000.0},
        )


def _duration(ms: int) -> str:
    """A stop's length as a manager reads it: "41 min", "2 h 05 min"."""
    minutes = ms // 60_000
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
