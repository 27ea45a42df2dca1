"""ISO 22400-2 time model of one machine over one window: accumulate milliseconds and units, derive KPIs.

Time is kept in integer milliseconds so splitting a window and adding the parts gives exactly the
whole. Ratios follow ISO 22400-2:

- planned busy time (PBT) = actual production time + availability losses
- availability = APT / PBT
- performance = ideal production time / APT, where ideal time = Σ ideal cycle(product) × produced
- quality = good / produced
- OEE = availability × performance × quality (the product, never computed separately)

Planned stops leave PBT; time without data is ``unknown`` (lost coverage), never running. Outside
the configured shifts only production is counted (overtime); other time there is unscheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.cycle_stats import CycleStats
from models.plant import LossCategory

__all__ = ["CATEGORIES", "WindowAccumulator", "WindowFigures", "ratio"]

CATEGORIES: tuple[LossCategory, ...] = tuple(LossCategory)
_INDEX = {category: index for index, category in enumerate(CATEGORIES)}
_PRODUCTION = _INDEX[LossCategory.PRODUCTION]
_PERFORMANCE = _INDEX[LossCategory.PERFORMANCE]
_AVAILABILITY = _INDEX[LossCategory.AVAILABILITY]
_PLANNED = _INDEX[LossCategory.PLANNED]
_UNKNOWN = _INDEX[LossCategory.UNKNOWN]
_OPERATING = (LossCategory.PRODUCTION, LossCategory.PERFORMANCE)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when undefined: never NaN, never an invented 0 or 1."""
    return numerator / denominator if denominator > 0 else None


def _per_hour(units: int, duration_ms: int) -> float | None:
    return units * 3_600_000 / duration_ms if duration_ms > 0 else None


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """The KPIs of one window, in seconds, units and ratios."""

    window_s: float
    planned_s: float  # planned busy time (PBT)
    run_s: float  # actual production time (APT)
    availability_loss_s: float
    performance_loss_s: float | None  # APT - ideal time; None when some product has no ideal cycle
    unknown_s: float
    planned_stop_s: float
    unscheduled_s: float
    ideal_s: float
    good: int
    scrap: int
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    coverage: float | None
    losses_s: dict[str, float]  # "state/reason" -> seconds, losses only
    teep: float | None  # OEE x planned busy time / window time
    throughput_per_h: float | None  # good units per hour of actual production time
    scrap_ratio: float | None  # scrap / produced
    setup_ratio: float | None  # setup seconds / planned busy time
    failures: int  # breakdowns (entries into state down) that started in the window
    mtbf_s: float | None  # actual production time / failures
    mttr_s: float | None  # seconds down / failures


@dataclass(slots=True)
class WindowAccumulator:
    """Running totals of one open window (hour, shift or day) of one machine."""

    kind: str
    shift: str | None
    start_ms: int
    end_ms: int
    category_ms: list[int] = field(default_factory=lambda: [0] * len(CATEGORIES))
    unscheduled_ms: int = 0
    loss_ms: dict[str, int] = field(default_factory=dict)
    good: int = 0
    scrap: int = 0
    ideal_ms: float = 0.0
    units_without_ideal: int = 0
    scrap_by_reason: dict[str, int] = field(default_factory=dict)
    cycles: int = 0
    cycle_sum_s: float = 0.0
    late_events: int = 0
    failures: int = 0
    cycle_products: dict[str, CycleStats] = field(default_factory=dict)  # "-" when no product given

    def add_time(
        self, duration_ms: int, category: LossCategory, scheduled: bool, loss_key: str | None
    ) -> None:
        """Book ``duration_ms`` of one state. ``scheduled`` is False outside every shift."""
        if not scheduled and category not in _OPERATING:
            self.unscheduled_ms += duration_ms
            return
        self.category_ms[_INDEX[category]] += duration_ms
        if loss_key is not None and category is not LossCategory.PRODUCTION:
            self.loss_ms[loss_key] = self.loss_ms.get(loss_key, 0) + duration_ms

    def add_units(self, good: int, scrap: int, ideal_cycle_s: float | None, scrap_reason: str | None) -> None:
        self.good += good
        self.scrap += scrap
        produced = good + scrap
        if ideal_cycle_s is None:
            self.units_without_ideal += produced
        else:
            self.ideal_ms += ideal_cycle_s * 1000.0 * produced
        if scrap:
            reason = scrap_reason or "unspecified"
            self.scrap_by_reason[reason] = self.scrap_by_reason.get(reason, 0) + scrap

    def add_cycle(
        self, seconds: float, product: str | None = None, ideal_cycle_s: float | None = None
    ) -> None:
        self.cycles += 1
        self.cycle_sum_s += seconds
        stats = self.cycle_products.get(product or "-")
        if stats is None:
            stats = self.cycle_products[product or "-"] = CycleStats(ideal_s=ideal_cycle_s)
        stats.add(seconds)

    def contains(self, ts_ms: int) -> bool:
        return self.start_ms <= ts_ms < self.end_ms

    def figures(self) -> WindowFigures:
        ms = self.category_ms
        run_ms = ms[_PRODUCTION] + ms[_PERFORMANCE]
        planned_busy_ms = run_ms + ms[_AVAILABILITY]
        scheduled_ms = planned_busy_ms + ms[_PLANNED] + ms[_UNKNOWN]
        produced = self.good + self.scrap
        availability = ratio(run_ms, planned_busy_ms)
        performance: float | None = None
        if self.units_without_ideal == 0 and run_ms > 0:
            # Faster than ideal means the configured ideal cycle is wrong; cap so OEE stays a ratio.
            performance = min(1.0, self.ideal_ms / run_ms)
        quality = ratio(self.good, produced)
        oee = None
        if availability is not None and performance is not None and quality is not None:
            oee = availability * performance * quality
        window_ms = self.end_ms - self.start_ms
        down_ms = sum(value for key, value in self.loss_ms.items() if key.startswith("down/"))
        setup_ms = sum(value for key, value in self.loss_ms.items() if key.startswith("setup/"))
        return WindowFigures(
            window_s=(self.end_ms - self.start_ms) / 1000.0,
            planned_s=planned_busy_ms / 1000.0,
            run_s=run_ms / 1000.0,
            availability_loss_s=ms[_AVAILABILITY] / 1000.0,
            performance_loss_s=(
                max(0.0, run_ms - self.ideal_ms) / 1000.0 if self.units_without_ideal == 0 else None
            ),
            unknown_s=ms[_UNKNOWN] / 1000.0,
            planned_stop_s=ms[_PLANNED] / 1000.0,
            unscheduled_s=self.unscheduled_ms / 1000.0,
            ideal_s=self.ideal_ms / 1000.0,
            good=self.good,
            scrap=self.scrap,
            availability=availability,
            performance=performance,
            quality=quality,
            oee=oee,
            coverage=ratio(scheduled_ms - ms[_UNKNOWN], scheduled_ms),
            losses_s={key: value / 1000.0 for key, value in sorted(self.loss_ms.items())},
            teep=oee * planned_busy_ms / window_ms if oee is not None and window_ms > 0 else None,
            throughput_per_h=_per_hour(self.good, run_ms),
            scrap_ratio=ratio(self.scrap, produced),
            setup_ratio=ratio(setup_ms, planned_busy_ms),
            failures=self.failures,
            mtbf_s=run_ms / 1000.0 / self.failures if self.failures else None,
            mttr_s=down_ms / 1000.0 / self.failures if self.failures else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["cycle_products"] = {product: stats.to_dict() for product, stats in self.cycle_products.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowAccumulator:
        products = {
            name: CycleStats.from_dict(stats) for name, stats in data.get("cycle_products", {}).items()
        }
        return cls(**{**data, "cycle_products": products})
