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

Losses are also grouped into the six big losses (:class:`models.plant.BigLoss`): stop time by the
bucket its loss rule names, slow cycles as the performance loss beyond small stops, and rejects as
the ideal time of the scrapped units, so that PBT = fully productive time + the six losses whenever
no cycle ran faster than its ideal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.calendar import WindowKind
from models.cycle_stats import CycleStats, stats_of
from models.plant import BigLoss, LossCategory

__all__ = [
    "CATEGORIES",
    "NO_DATA_KEY",
    "STARTUP_AFTER",
    "WINDOW_KINDS",
    "WindowAccumulator",
    "WindowFigures",
    "loss_key",
    "ratio",
]

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


def loss_key(category: LossCategory, big_loss: BigLoss | None, state: str, reason: str | None) -> str:
    """How a window keys lost time: "category|big loss|state/reason" ("-" for no big loss/reason)."""
    return f"{category.value}|{big_loss.value if big_loss is not None else '-'}|{state}/{reason or '-'}"


# Every machine keeps one open window of each kind; records and metrics carry the kind's name.
WINDOW_KINDS: tuple[WindowKind, ...] = ("hour", "shift", "day")
# Where time without telemetry goes (past state_timeout_s): an unknown loss, not availability.
NO_DATA_KEY = loss_key(LossCategory.UNKNOWN, None, "no_data", None)
# Running again after these states: the first units of the run are startup production.
STARTUP_AFTER = frozenset({"setup", "down", "planned_stop"})


def _split_key(key: str) -> tuple[str, str, str]:
    category, big_loss, state_reason = key.split("|", 2)
    return category, big_loss, state_reason


_AVAILABILITY_NAME = LossCategory.AVAILABILITY.value
_SMALL_STOP_PREFIX = f"{LossCategory.PERFORMANCE.value}|{BigLoss.SMALL_STOPS.value}|"
TOP_LOSSES = 5


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
    big_losses_s: dict[str, float | None]  # the six big losses in seconds (None: no ideal cycle)
    top_losses: list[dict[str, Any]]  # largest OEE time losses: state, reason, category, big_loss, seconds
    micro_stops: int  # unplanned stops shorter than micro_stop_s that started in the window
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
    scrap_ideal_ms: float = 0.0  # ideal time of the scrapped units: the quality loss in time
    startup_scrap: int = 0
    startup_scrap_ideal_ms: float = 0.0
    micro_stops: int = 0
    # A stop shorter than micro_stop_s so far: its time waits here (by loss key) until the stop
    # either ends (a small stop: performance) or reaches the threshold (availability).
    pending_ms: dict[str, int] = field(default_factory=dict)
    pending_started: bool = False  # the undecided stop started in this window
    pending_failures: int = 0  # breakdowns inside the undecided stop that started in this window

    def add_time(self, duration_ms: int, category: LossCategory, scheduled: bool, key: str | None) -> None:
        """Book ``duration_ms`` of one state. ``scheduled`` is False outside every shift."""
        if not scheduled and category not in _OPERATING:
            self.unscheduled_ms += duration_ms
            return
        self.category_ms[_INDEX[category]] += duration_ms
        if key is not None and category is not LossCategory.PRODUCTION:
            self.loss_ms[key] = self.loss_ms.get(key, 0) + duration_ms

    def add_pending(self, duration_ms: int, key: str) -> None:
        """Book time of a stop whose category is not decided yet (see :meth:`settle_stop`)."""
        self.pending_ms[key] = self.pending_ms.get(key, 0) + duration_ms

    @property
    def has_pending(self) -> bool:
        return bool(self.pending_ms) or self.pending_started or self.pending_failures > 0

    def settle_stop(self, small_stop: bool) -> None:
        """Book the undecided stop: as a small stop (performance loss) or as availability loss."""
        for pending_key, duration_ms in self.pending_ms.items():
            key = pending_key
            if small_stop:
                key = _SMALL_STOP_PREFIX + _split_key(pending_key)[2]
                self.category_ms[_PERFORMANCE] += duration_ms
            else:
                self.category_ms[_AVAILABILITY] += duration_ms
            self.loss_ms[key] = self.loss_ms.get(key, 0) + duration_ms
        if small_stop:
            self.micro_stops += int(self.pending_started)
        else:
            self.failures += self.pending_failures
        self.pending_ms = {}
        self.pending_started = False
        self.pending_failures = 0

    def add_units(
        self,
        good: int,
        scrap: int,
        ideal_cycle_s: float | None,
        scrap_reason: str | None,
        startup: bool = False,
    ) -> None:
        self.good += good
        self.scrap += scrap
        produced = good + scrap
        if ideal_cycle_s is None:
            self.units_without_ideal += produced
        else:
            self.ideal_ms += ideal_cycle_s * 1000.0 * produced
            self.scrap_ideal_ms += ideal_cycle_s * 1000.0 * scrap
            if startup:
                self.startup_scrap_ideal_ms += ideal_cycle_s * 1000.0 * scrap
        if scrap:
            if startup:
                self.startup_scrap += scrap
            reason = scrap_reason or "unspecified"
            self.scrap_by_reason[reason] = self.scrap_by_reason.get(reason, 0) + scrap

    def add_cycle(
        self, seconds: float, product: str | None = None, ideal_cycle_s: float | None = None
    ) -> None:
        self.cycles += 1
        self.cycle_sum_s += seconds
        stats_of(self.cycle_products, product or "-", ideal_cycle_s).add(seconds)

    def merge(self, other: WindowAccumulator) -> None:
        """Add another window's totals (e.g. the hours of a shift): every count and duration adds.

        The result covers both spans, so only adjacent windows should be merged; late events and
        undecided stop time are per-window bookkeeping and add like the rest.
        """
        self.start_ms = min(self.start_ms, other.start_ms)
        self.end_ms = max(self.end_ms, other.end_ms)
        self.category_ms = [
            mine + theirs for mine, theirs in zip(self.category_ms, other.category_ms, strict=True)
        ]
        for name in (
            "unscheduled_ms", "good", "scrap", "ideal_ms", "units_without_ideal", "cycles", "cycle_sum_s",
            "late_events", "failures", "scrap_ideal_ms", "startup_scrap", "startup_scrap_ideal_ms",
            "micro_stops", "pending_failures",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.loss_ms, other.loss_ms), (self.pending_ms, other.pending_ms)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for reason, count in other.scrap_by_reason.items():
            self.scrap_by_reason[reason] = self.scrap_by_reason.get(reason, 0) + count
        for product, stats in other.cycle_products.items():
            stats_of(self.cycle_products, product, stats.ideal_s).merge(stats)
        self.pending_started = self.pending_started or other.pending_started

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
        by_state_reason: dict[str, int] = {}
        by_big_loss: dict[str, int] = {}
        down_ms = setup_ms = 0
        for key, value in self.loss_ms.items():
            category, big_loss, state_reason = _split_key(key)
            by_state_reason[state_reason] = by_state_reason.get(state_reason, 0) + value
            by_big_loss[big_loss] = by_big_loss.get(big_loss, 0) + value
            if category == _AVAILABILITY_NAME:  # a short down is a small stop, not repair time
                down_ms += value if state_reason.startswith("down/") else 0
                setup_ms += value if state_reason.startswith("setup/") else 0
        performance_loss_ms = max(0.0, run_ms - self.ideal_ms) if self.units_without_ideal == 0 else None
        return WindowFigures(
            window_s=(self.end_ms - self.start_ms) / 1000.0,
            planned_s=planned_busy_ms / 1000.0,
            run_s=run_ms / 1000.0,
            availability_loss_s=ms[_AVAILABILITY] / 1000.0,
            performance_loss_s=None if performance_loss_ms is None else performance_loss_ms / 1000.0,
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
            losses_s={key: value / 1000.0 for key, value in sorted(by_state_reason.items())},
            big_losses_s=self._big_losses(by_big_loss, performance_loss_ms),
            # Planned stops and missing data are no OEE losses, so they are not among the top losses.
            top_losses=[loss for loss in self.loss_entries() if loss["big_loss"] is not None][:TOP_LOSSES],
            micro_stops=self.micro_stops,
            teep=oee * planned_busy_ms / window_ms if oee is not None and window_ms > 0 else None,
            throughput_per_h=_per_hour(self.good, run_ms),
            scrap_ratio=ratio(self.scrap, produced),
            setup_ratio=ratio(setup_ms, planned_busy_ms),
            failures=self.failures,
            mtbf_s=run_ms / 1000.0 / self.failures if self.failures else None,
            mttr_s=down_ms / 1000.0 / self.failures if self.failures else None,
        )

    def _big_losses(
        self, by_big_loss: dict[str, int], performance_loss_ms: float | None
    ) -> dict[str, float | None]:
        small_stops_ms = by_big_loss.get(BigLoss.SMALL_STOPS.value, 0)
        known_ideal = self.units_without_ideal == 0
        return {
            BigLoss.UNPLANNED_STOPS.value: by_big_loss.get(BigLoss.UNPLANNED_STOPS.value, 0) / 1000.0,
            BigLoss.SETUP_ADJUSTMENTS.value: by_big_loss.get(BigLoss.SETUP_ADJUSTMENTS.value, 0) / 1000.0,
            BigLoss.SMALL_STOPS.value: small_stops_ms / 1000.0,
            # Slow cycles: the performance loss that is not stop time inside production time.
            BigLoss.SLOW_CYCLES.value: (
                None
                if performance_loss_ms is None
                else max(0.0, performance_loss_ms - small_stops_ms) / 1000.0
            ),
            BigLoss.STARTUP_REJECTS.value: self.startup_scrap_ideal_ms / 1000.0 if known_ideal else None,
            BigLoss.PRODUCTION_REJECTS.value: (
                (self.scrap_ideal_ms - self.startup_scrap_ideal_ms) / 1000.0 if known_ideal else None
            ),
        }

    def loss_entries(self) -> list[dict[str, Any]]:
        """Every loss of the window, largest first: state, reason, category, big_loss, seconds."""
        entries: list[dict[str, Any]] = []
        for key, value in sorted(self.loss_ms.items(), key=lambda item: (-item[1], item[0])):
            category, big_loss, state_reason = _split_key(key)
            state, _, reason = state_reason.partition("/")
            entries.append(
                {
                    "state": state,
                    "reason": None if reason == "-" else reason,
                    "category": category,
                    "big_loss": None if big_loss == "-" else big_loss,
                    "seconds": value / 1000.0,
                }
            )
        return entries

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
