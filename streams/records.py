"""Output records: KPI records (topic ``kpis``) and alert records (topic ``alerts``), version 1.

Both are keyed ``"{tenant}/{machine}"``. A KPI record is emitted when the machine's event time
passes the window's end (``revision: 0``); a late event within the plant's ``allowed_lateness_s``
that changes the window's totals emits it again with the next revision, and the highest revision
wins. ``analyze`` also writes the still-open windows at the end of a file, marked
``complete: false``. Alert records carry a stable ``id``: an alert is emitted when it opens and
again, with the same id, when it resolves.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from models.alert_rules import AlertChange
from models.calendar import PlantCalendar
from models.machine_state import MachineState
from models.plant import MachineSpec
from models.timemodel import WindowAccumulator

__all__ = ["AlertRecord", "KpiRecord", "LineKpiRecord", "alert_record", "kpi_record", "record_bytes"]


class KpiRecord(BaseModel):
    """One machine's KPIs over one window (ISO 22400-2 time model; seconds, units, ratios)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    tenant: str
    site: str
    line: str
    machine: str
    window: Literal["hour", "shift", "day"]
    shift: str | None = Field(description="The shift's name when window is 'shift'.")
    start: str = Field(description="Window start, RFC 3339 in the local offset of the machine's site.")
    end: str = Field(
        description="Window end (exclusive), RFC 3339 in the local offset of its machine's site."
    )
    start_ms: int
    end_ms: int
    complete: bool = Field(description="False only for a window still open when analyze reached the end.")
    revision: int = Field(
        default=0, description="0 when first emitted; +1 each time a late event corrects the window."
    )
    config_version: str = Field(description="Hash of the plant configuration the record was computed with.")
    planned_s: float = Field(description="Planned busy time: actual production time + availability losses.")
    run_s: float = Field(
        description="Actual production time (running, plus states classified as performance)."
    )
    availability_loss_s: float
    performance_loss_s: float | None = Field(
        description="Actual production time minus ideal production time."
    )
    unknown_s: float = Field(description="Scheduled time without data (lost coverage).")
    planned_stop_s: float
    unscheduled_s: float = Field(description="Time outside every shift that was not production.")
    ideal_s: float
    good: int
    scrap: int
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None = Field(description="availability x performance x quality; null when any is undefined.")
    coverage: float | None = Field(description="Share of scheduled time with data.")
    cycles: int
    mean_cycle_s: float | None
    late_events: int = Field(description="Events beyond the allowed lateness: counted, not merged.")
    losses_s: dict[str, float] = Field(description="Seconds lost per 'state/reason'.")
    big_losses_s: dict[str, float | None] = Field(
        description=(
            "The six big losses in seconds: unplanned_stops, setup_adjustments, small_stops, "
            "slow_cycles, startup_rejects and production_rejects (rejects as ideal time of the scrap; "
            "null without an ideal cycle)."
        )
    )
    top_losses: list[dict[str, Any]] = Field(
        description="The largest OEE time losses: state, reason, category, big_loss, seconds (at most 5)."
    )
    micro_stops: int = Field(description="Unplanned stops shorter than micro_stop_s, started in the window.")
    scrap_by_reason: dict[str, int]
    teep: float | None = Field(description="OEE x planned busy time / window time.")
    throughput_per_h: float | None = Field(description="Good units per hour of actual production time.")
    scrap_ratio: float | None = Field(description="scrap / (good + scrap).")
    setup_ratio: float | None = Field(description="Seconds in state setup / planned busy time.")
    failures: int = Field(description="Breakdowns (entries into state down) that started in the window.")
    mtbf_s: float | None = Field(description="Actual production time / failures.")
    mttr_s: float | None = Field(description="Seconds in state down / failures.")
    cycle_time: dict[str, dict[str, float | int | None]] = Field(
        description=(
            "Per product ('-' when none was given): count, mean_s, std_s, p50_s, p95_s, p99_s "
            "(within 1 %), ideal_s and speed_loss_s = sum of (cycle - ideal). The window's first 64 "
            "products each; the cycles of any further product together under '*' (ideal_s null)."
        )
    )


class LineKpiRecord(BaseModel):
    """One line's KPIs over one window, from its machines' KPI records (topic ``line-kpis``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    tenant: str
    site: str
    line: str
    window: Literal["hour", "shift", "day"]
    shift: str | None
    start: str
    end: str
    start_ms: int
    end_ms: int
    revision: int = Field(description="Counts up each time the line's figures change; the highest wins.")
    complete: bool = Field(description="True once every machine of the line in the plant file has reported.")
    machines: list[str] = Field(description="Machines whose records are included.")
    machines_expected: list[str] = Field(description="The line's machines in the plant file.")
    config_version: str
    planned_s: float = Field(description="Σ planned busy time of the machines.")
    run_s: float = Field(description="Σ actual production time.")
    fully_productive_s: float | None = Field(description="Σ OEE × planned busy time.")
    good: int
    scrap: int
    availability: float | None = Field(description="Σ APT / Σ PBT.")
    performance: float | None = Field(description="Σ (performance × APT) / Σ APT.")
    quality: float | None = Field(description="Σ fully productive time / Σ (performance × APT).")
    oee: float | None = Field(description="availability × performance × quality = Σ FPT / Σ PBT.")
    held_by: dict[str, Any] | None = Field(
        description=(
            "The machine whose own stops were longest (waiting for material or another machine "
            "excluded): machine, stop_s, and its largest stop's state, reason and big_loss."
        )
    )


class AlertRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    id: str
    tenant: str
    site: str
    line: str
    machine: str
    kind: str = Field(description="machine_stopped, oee_low, quality_out_of_spec, ...")
    severity: Literal["info", "warning", "critical"]
    status: Literal["open", "resolved"]
    started_at: str
    updated_at: str
    message: str
    evidence: dict[str, Any]
    resolution: dict[str, Any] | None = Field(
        default=None,
        description=(
            "resolved records: how the alert ended (`by`: state_change, next_shift, in_spec_parts, "
            "back_within_gate, detectors_quiet, baseline_reset, scores_normal, with its figures); "
            "null while open"
        ),
    )


def kpi_record(
    spec: MachineSpec,
    window: WindowAccumulator,
    calendar: PlantCalendar,
    config_version: str,
    *,
    complete: bool = True,
    revision: int = 0,
) -> KpiRecord:
    figures = window.figures()
    return KpiRecord(
        tenant=spec.tenant,
        site=spec.site,
        line=spec.line,
        machine=spec.id,
        window=window.kind,
        shift=window.shift,
        start=calendar.local_isoformat(window.start_ms),
        end=calendar.local_isoformat(window.end_ms),
        start_ms=window.start_ms,
        end_ms=window.end_ms,
        complete=complete,
        revision=revision,
        config_version=config_version,
        planned_s=figures.planned_s,
        run_s=figures.run_s,
        availability_loss_s=figures.availability_loss_s,
        performance_loss_s=figures.performance_loss_s,
        unknown_s=figures.unknown_s,
        planned_stop_s=figures.planned_stop_s,
        unscheduled_s=figures.unscheduled_s,
        ideal_s=figures.ideal_s,
        good=figures.good,
        scrap=figures.scrap,
        availability=figures.availability,
        performance=figures.performance,
        quality=figures.quality,
        oee=figures.oee,
        coverage=figures.coverage,
        cycles=window.cycles,
        mean_cycle_s=window.cycle_sum_s / window.cycles if window.cycles else None,
        late_events=window.late_events,
        losses_s=figures.losses_s,
        big_losses_s=figures.big_losses_s,
        top_losses=figures.top_losses,
        micro_stops=figures.micro_stops,
        scrap_by_reason=dict(sorted(window.scrap_by_reason.items())),
        teep=figures.teep,
        throughput_per_h=figures.throughput_per_h,
        scrap_ratio=figures.scrap_ratio,
        setup_ratio=figures.setup_ratio,
        failures=figures.failures,
        mtbf_s=figures.mtbf_s,
        mttr_s=figures.mttr_s,
        cycle_time={product: stats.figures() for product, stats in sorted(window.cycle_products.items())},
    )


def alert_record(state: MachineState, change: AlertChange, calendar: PlantCalendar) -> AlertRecord:
    alert = change.alert
    return AlertRecord(
        id=alert.id,
        tenant=state.tenant,
        site=state.site,
        line=state.line,
        machine=state.machine,
        kind=alert.kind,
        severity=alert.severity,
        status=change.status,
        started_at=calendar.local_isoformat(alert.started_ms),
        updated_at=calendar.local_isoformat(change.at_ms),
        message=alert.message,
        evidence=alert.evidence,
        resolution=change.resolution,
    )


def record_bytes(record: BaseModel) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))
