"""A line's view of one window: line OEE from its machines' records, and which machine held it.

ISO 22400 defines OEE per work unit. For a line, linepulse weights each machine by its planned busy
time, the way the Prometheus recording rule ``line:linepulse_oee_ratio:time_weighted`` does:

- availability = Σ APT / Σ PBT
- performance  = Σ (performance × APT) / Σ APT   (each machine's capped ideal time)
- quality      = Σ fully productive time / Σ (performance × APT)
- OEE          = availability × performance × quality = Σ fully productive time / Σ PBT

where a machine's fully productive time is its OEE × PBT. The product telescopes, so the line's OEE is
exactly A × P × Q, like a machine's.

"Held the line": the machine whose own stops (availability losses) were longest. Stops whose reason
says the machine only waited for another one (starved, blocked, no material) are left out: they are
the effect, not the cause.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from math import fsum
from typing import Any

__all__ = ["LineFigures", "MachineWindow", "line_figures"]

_STOP_LOSSES = ("unplanned_stops", "setup_adjustments")


@dataclass(frozen=True, slots=True)
class MachineWindow:
    """What the line view needs of one machine's KPI record for the window."""

    machine: str
    revision: int
    planned_s: float
    run_s: float
    performance: float | None
    oee: float | None
    good: int
    scrap: int
    stop_s: float  # availability loss: unplanned stops and setups
    losses_s: dict[str, float]  # "state/reason" -> seconds
    top_losses: list[dict[str, Any]]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MachineWindow:
        big = record["big_losses_s"]
        return cls(
            machine=record["machine"],
            revision=record["revision"],
            planned_s=record["planned_s"],
            run_s=record["run_s"],
            performance=record["performance"],
            oee=record["oee"],
            good=record["good"],
            scrap=record["scrap"],
            stop_s=sum(big[name] or 0.0 for name in _STOP_LOSSES),
            losses_s=dict(record["losses_s"]),
            top_losses=[dict(loss) for loss in record["top_losses"]],
        )


@dataclass(frozen=True, slots=True)
class LineFigures:
    machines: tuple[str, ...]
    planned_s: float
    run_s: float
    fully_productive_s: float | None
    good: int
    scrap: int
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    held_by: dict[str, Any] | None  # machine, stop_s, state, reason, big_loss


def line_figures(machines: Collection[MachineWindow], wait_reasons: Collection[str]) -> LineFigures:
    # fsum: exactly rounded, so the figures do not depend on the order the machines' records were
    # folded in (the stream's arrival order, analyze's file order); a running sum would.
    planned = fsum(m.planned_s for m in machines)
    run = fsum(m.run_s for m in machines)
    measurable = all(m.performance is not None or m.run_s == 0 for m in machines)
    ideal = fsum((m.performance or 0.0) * m.run_s for m in machines) if measurable else None
    fully_productive = None
    if measurable and all(m.oee is not None or m.planned_s == 0 or m.run_s == 0 for m in machines):
        fully_productive = fsum((m.oee or 0.0) * m.planned_s for m in machines)
    availability = run / planned if planned > 0 else None
    performance = ideal / run if ideal is not None and run > 0 else None
    # At most 1: Σ OEE x planned and Σ performance x run differ by rounding alone when nothing was
    # scrapped, and a line showed 1.0000000000000002.
    quality = min(1.0, fully_productive / ideal) if fully_productive is not None and ideal else None
    oee = None
    if availability is not None and performance is not None and quality is not None:
        oee = availability * performance * quality
    return LineFigures(
        machines=tuple(sorted(m.machine for m in machines)),
        planned_s=planned,
        run_s=run,
        fully_productive_s=fully_productive,
        good=sum(m.good for m in machines),
        scrap=sum(m.scrap for m in machines),
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
        held_by=_held_by(machines, frozenset(wait_reasons)),
    )


def _held_by(machines: Collection[MachineWindow], wait_reasons: frozenset[str]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for m in sorted(machines, key=lambda m: m.machine):
        waiting = sum(seconds for key, seconds in m.losses_s.items() if key.partition("/")[2] in wait_reasons)
        own = max(0.0, m.stop_s - waiting)
        if own <= 0 or (best is not None and own <= best["stop_s"]):
            continue
        top = next(
            (
                loss
                for loss in m.top_losses
                if loss["big_loss"] in _STOP_LOSSES and loss["reason"] not in wait_reasons
            ),
            None,
        )
        best = {
            "machine": m.machine,
            "stop_s": own,
            "state": None if top is None else top["state"],
            "reason": None if top is None else top["reason"],
            "big_loss": None if top is None else top["big_loss"],
        }
    return best
