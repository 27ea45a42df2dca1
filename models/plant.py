"""The plant's configuration as pure, validated data: calendar, machines and loss classification.

Loading it from YAML (and naming the file in errors) is :mod:`service.plant_file`'s job; this
module only says what a valid plant is, so the stream, ``analyze`` and the simulator agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, time
from enum import StrEnum
from typing import Annotated, Final, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from models.config_numbers import Count, Number
from models.monitoring_config import CAPABILITY_MIN_PARTS, MonitoringConfig

__all__ = [
    "MAX_NAMES_LIMIT",
    "WEEKDAYS",
    "AlertRules",
    "BigLoss",
    "LossCategory",
    "LossRule",
    "MachineSpec",
    "PlantConfig",
    "Shift",
    "SiteCalendar",
    "SiteCalendarSettings",
    "Weekday",
]

_ID = r"^[A-Za-z0-9_.-]{1,64}$"
Id = Annotated[str, Field(pattern=_ID)]
PositiveSeconds = Annotated[Number, Field(gt=0, le=86_400, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[Number, Field(ge=0, le=86_400, allow_inf_nan=False)]


class LossCategory(StrEnum):
    """Where a second of machine time goes in the ISO 22400 time model."""

    PRODUCTION = "production"  # actual production time
    PERFORMANCE = "performance"  # inside production time but not producing at ideal speed (micro-stops)
    AVAILABILITY = "availability"  # planned busy time lost to stops
    PLANNED = "planned"  # leaves planned busy time (breaks, planned maintenance)
    UNKNOWN = "unknown"  # no data: lost coverage, never counted as running


class BigLoss(StrEnum):
    """The six big losses (TPM), so a manager sees where a shift's time and units went.

    Availability: unplanned stops and setup/adjustments. Performance: small stops and slow cycles.
    Quality: startup rejects and production rejects.
    """

    UNPLANNED_STOPS = "unplanned_stops"
    SETUP_ADJUSTMENTS = "setup_adjustments"
    SMALL_STOPS = "small_stops"
    SLOW_CYCLES = "slow_cycles"
    STARTUP_REJECTS = "startup_rejects"
    PRODUCTION_REJECTS = "production_rejects"


_TIME_BIG_LOSSES = {
    LossCategory.AVAILABILITY: (BigLoss.UNPLANNED_STOPS, BigLoss.SETUP_ADJUSTMENTS),
    LossCategory.PERFORMANCE: (BigLoss.SMALL_STOPS, BigLoss.SLOW_CYCLES),
}


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# In date.weekday() order.
WEEKDAYS: Final[tuple[Weekday, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_clock(value: object) -> time:
    if isinstance(value, time):
        return value
    # YAML 1.1 reads an unquoted 06:00 as the sexagesimal integer 360 (minutes).
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return time(int(value[:2]), int(value[3:]))
    raise ValueError("must be a local clock time 'HH:MM', e.g. '06:00'")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shift(_Frozen):
    name: Id
    start: time
    end: time
    days: Annotated[tuple[Weekday, ...], Field(min_length=1)] | None = Field(
        default=None,
        description=(
            "Local weekdays the shift starts on, e.g. [mon, tue, wed, thu, fri]; default: every day. "
            "A night shift belongs to the day it starts, so a Friday night shift runs into Saturday."
        ),
    )

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: object) -> time:
        return _parse_clock(value)

    @field_validator("days")
    @classmethod
    def _each_day_once(cls, days: tuple[Weekday, ...] | None) -> tuple[Weekday, ...] | None:
        if days is not None and len(set(days)) != len(days):
            raise ValueError(f"a weekday is listed twice: {list(days)}")
        return days

    def starts_on_weekday_of(self, day: date) -> bool:
        """Whether the shift starts on ``day``'s weekday (holidays are the calendar's business)."""
        return self.days is None or WEEKDAYS[day.weekday()] in self.days

    @model_validator(mode="after")
    def _not_empty(self) -> Shift:
        if self.start == self.end:
            raise ValueError(
                "start and end are equal; a shift must last more than zero and less than 24 hours"
            )
        return self

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


def _known_zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata directory ("Asia")
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
    return value


def _unique_shift_names(shifts: list[Shift]) -> list[Shift]:
    names = [shift.name for shift in shifts]
    if len(names) != len(set(names)):
        raise ValueError(f"shift names must be unique, got {names}")
    return shifts


class SiteCalendar(_Frozen):
    """One site's own calendar: what it leaves out (null) is the plant's top-level setting."""

    tenant: Id
    site: Id
    timezone: str | None = Field(
        default=None, description="IANA time zone of the site's local calendar (null: the plant's)."
    )
    shifts: list[Shift] | None = Field(
        default=None, description="The site's shifts (null: the plant's; an empty list: no shifts)."
    )
    day_start: time | None = Field(
        default=None,
        description=(
            "Local time the site's production day starts (null: the plant's day_start, else the "
            "first of the site's shifts' start)."
        ),
    )
    holidays: list[date] | None = Field(
        default=None,
        description="Local dates on which none of the site's shifts starts (null: the plant's holidays).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _known_zone_name(value)

    @field_validator("shifts")
    @classmethod
    def _unique_shifts(cls, value: list[Shift] | None) -> list[Shift] | None:
        return None if value is None else _unique_shift_names(value)

    @field_validator("day_start", mode="before")
    @classmethod
    def _day_start_clock(cls, value: object) -> time | None:
        return None if value is None else _parse_clock(value)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.site)


class SiteCalendarSettings(NamedTuple):
    """A site's calendar with the plant's fallbacks applied: what :class:`PlantCalendar` is built from."""

    zone: ZoneInfo
    shifts: tuple[Shift, ...]
    day_start: time
    holidays: tuple[date, ...]


class MachineSpec(_Frozen):
    tenant: Id
    site: Id
    line: Id
    id: Id
    ideal_cycle_s: PositiveSeconds | None = Field(
        default=None, description="Ideal cycle time in seconds for products without their own entry."
    )
    products: dict[Annotated[str, Field(pattern=_ID)], PositiveSeconds] = Field(
        default_factory=dict, description="Ideal cycle time in seconds per product."
    )
    name: str | None = Field(default=None, max_length=128, description="Display name on dashboards.")
    type: Id | None = Field(
        default=None,
        description="Machine type, e.g. a press model: an anomaly model can be trained and served per type.",
    )

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.id}"

    def ideal_cycle_for(self, product: str | None) -> float | None:
        if product is not None and product in self.products:
            return self.products[product]
        return self.ideal_cycle_s


class LossRule(_Frozen):
    """Maps a machine state, optionally narrowed to one reason code, to a loss category."""

    state: str = Field(pattern=r"^(running|idle|down|setup|planned_stop|offline)$")
    reason: Id | None = None
    category: LossCategory
    big_loss: BigLoss | None = Field(
        default=None,
        description=(
            "Which of the six big losses this time is; default: setup -> setup_adjustments, other "
            "availability -> unplanned_stops, performance -> small_stops."
        ),
    )

    @model_validator(mode="after")
    def _big_loss_fits(self) -> LossRule:
        if self.big_loss is None:
            return self
        allowed = _TIME_BIG_LOSSES.get(self.category, ())
        if self.big_loss not in allowed:
            names = ", ".join(loss.value for loss in allowed) or "none (not an OEE loss)"
            raise ValueError(
                f"big_loss {self.big_loss.value!r} does not fit category {self.category.value!r}; "
                f"allowed: {names}"
            )
        return self


def _classification(rule: LossRule) -> str:
    text = f"category {rule.category.value!r}"
    return text + (f", big_loss {rule.big_loss.value!r}" if rule.big_loss is not None else "")


DEFAULT_LOSS_RULES: tuple[LossRule, ...] = (
    LossRule(state="running", category=LossCategory.PRODUCTION),
    LossRule(state="idle", category=LossCategory.AVAILABILITY),
    LossRule(state="down", category=LossCategory.AVAILABILITY),
    LossRule(state="setup", category=LossCategory.AVAILABILITY),
    LossRule(state="planned_stop", category=LossCategory.PLANNED),
    LossRule(state="offline", category=LossCategory.UNKNOWN),
)


OUT_OF_SPEC_CRITICAL_AFTER: Final = 3


class AlertRules(_Frozen):
    down_after_s: PositiveSeconds = Field(
        default=300.0,
        description=(
            "Raise machine_stopped after an availability-loss state lasts this long, judged on the "
            "partition's stream time (docs/kpis.md, Machine stopped alerts)."
        ),
    )
    oee_below: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        default=0.45,
        description=(
            "Raise oee_low when a closed shift's OEE (a production day's, at a site without shifts) is "
            "below this (null: off)."
        ),
    )
    in_spec_to_resolve: Annotated[Count, Field(ge=1, le=1000)] = Field(
        default=5,
        description=(
            "Resolve a quality_out_of_spec alert after this many consecutive in-spec parts of its "
            "characteristic and product (fewer makes one failing part in every few a flood of alerts)."
        ),
    )
    out_of_spec_critical_after: Annotated[Count, Field(ge=1, le=1000)] | None = Field(
        default=OUT_OF_SPEC_CRITICAL_AFTER,
        description=(
            "A quality_out_of_spec alert turns critical (the people on shift) once this many parts of "
            "its characteristic and product have failed while it is open; the first are warnings "
            "(null: always warning)."
        ),
    )


# The most either per-machine limit may be: 4,096 monitored series of ~1.3 KB as stored are ~5 MB,
# inside the 8 MiB record the worker's producer may send (streams.topics.MAX_MESSAGE_BYTES). A stock
# broker's changelog takes 1 MB, ~800 series (docs/telemetry.md, "How many signals and characteristics").
MAX_NAMES_LIMIT: Final = 4096
MAX_SIGNALS_DEFAULT: Final = 256
MAX_CHARACTERISTICS_DEFAULT: Final = 256


class PlantConfig(_Frozen):
    timezone: str = Field(
        description="IANA time zone of the plant's local calendar (sites without their own), e.g. Asia/Seoul."
    )
    shifts: list[Shift] = Field(default_factory=list)
    holidays: list[date] = Field(
        default_factory=list,
        description=(
            "Local dates on which no shift starts (public holidays, plant shutdowns), e.g. "
            "[2026-12-25]: their time is unscheduled, as between shifts. A night shift that started "
            "the evening before still ends as usual."
        ),
    )
    day_start: time | None = Field(
        default=None, description="Local time the production day starts; default: the first shift's start."
    )
    machines: list[MachineSpec] = Field(min_length=1)
    losses: list[LossRule] = Field(
        default_factory=list, description="Extra state/reason rules; defaults apply to states not listed."
    )
    state_timeout_s: PositiveSeconds = Field(
        default=900.0,
        description="How long a state is believed without telemetry from the machine; then time is unknown.",
    )
    micro_stop_s: PositiveSeconds | None = Field(
        default=None,
        description=(
            "Unplanned stops shorter than this are small stops: performance loss inside actual "
            "production time, not availability loss (null: off)."
        ),
    )
    startup_s: PositiveSeconds | None = Field(
        default=None,
        description=(
            "Scrap within this many seconds after running resumes from setup, down or a planned stop "
            "is a startup reject (null: every reject is a production reject)."
        ),
    )
    allowed_lateness_s: NonNegativeSeconds = Field(
        default=0.0,
        description=(
            "Events up to this much older than the machine's newest event still correct their "
            "windows (revised KPI records); older ones are only counted as too late."
        ),
    )
    close_silent_after_s: PositiveSeconds | None = Field(
        default=900.0,
        description=(
            "When the newest event time of the machine's tenant on its partition (or file) is this "
            "far past the machine's own, its time is accounted up to there (unknown after "
            "state_timeout_s) and its ended windows close, so a silent machine still gets its records "
            "(null: wait for the machine's next event)."
        ),
    )
    max_signals_per_machine: Count = Field(
        default=MAX_SIGNALS_DEFAULT,
        ge=1,
        le=MAX_NAMES_LIMIT,
        description=(
            "Distinct sensor signals a machine may send: telemetry that would add one more is "
            "dead-lettered (too_many_signals). Each signal keeps ~1-2 KB of state that is written to the "
            "changelog with the machine's state, so a gateway inventing names cannot grow a state past "
            "what the topic takes and stall its partition."
        ),
    )
    max_characteristics_per_machine: Count = Field(
        default=MAX_CHARACTERISTICS_DEFAULT,
        ge=1,
        le=MAX_NAMES_LIMIT,
        description=(
            "Distinct quality characteristics a machine may send, for the same reason: a measurement "
            "of one more is dead-lettered (too_many_characteristics)."
        ),
    )
    line_wait_reasons: list[Id] = Field(
        default_factory=lambda: ["no_material", "starved", "blocked"],
        description="Stop reasons that mean a machine waited for another one: never what held the line.",
    )
    alerts: AlertRules = Field(default_factory=AlertRules)
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Drift detection and SPC per signal and characteristic."
    )
    sites: list[SiteCalendar] = Field(
        default_factory=list,
        description=(
            "Sites (tenant and site id of their machines) with their own timezone, shifts or day_start; "
            "other sites use the top-level ones."
        ),
    )

    _by_key: dict[str, MachineSpec] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _known_zone_name(value)

    @field_validator("losses")
    @classmethod
    def _no_contradicting_rules(cls, rules: list[LossRule]) -> list[LossRule]:
        # Lookup takes the first rule for a state and reason, so a later one that says otherwise
        # would be ignored without a word; an identical repeat is harmless and allowed.
        first: dict[tuple[str, str | None], int] = {}
        for index, rule in enumerate(rules):
            key = (rule.state, rule.reason)
            earlier = first.setdefault(key, index)
            if earlier == index:
                continue
            other = rules[earlier]
            if (other.category, other.big_loss) != (rule.category, rule.big_loss):
                what = f"state {rule.state!r}" + (f", reason {rule.reason!r}" if rule.reason else "")
                raise ValueError(
                    f"losses[{index}] repeats losses[{earlier}] ({what}) with another classification "
                    f"({_classification(rule)} instead of {_classification(other)}); only one can "
                    "apply, so remove one"
                )
        return rules

    @field_validator("day_start", mode="before")
    @classmethod
    def _day_start_clock(cls, value: object) -> time | None:
        return None if value is None else _parse_clock(value)

    @model_validator(mode="after")
    def _consistent(self) -> PlantConfig:
        _unique_shift_names(self.shifts)
        keys = [machine.key for machine in self.machines]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"machines listed twice (tenant/id): {duplicates}")
        # The line view folds a line's machines by tenant and line id (the key of kpis-by-line and
        # line-kpis): two sites' lines with one id would silently become one line.
        sites: dict[tuple[str, str], set[str]] = {}
        for machine in self.machines:
            sites.setdefault((machine.tenant, machine.line), set()).add(machine.site)
        shared = sorted((key, sorted(names)) for key, names in sites.items() if len(names) > 1)
        if shared:
            (tenant, line), names = shared[0]
            raise ValueError(
                f"line {line!r} of tenant {tenant!r} is in sites {names}: a line id must be unique within "
                f"its tenant (a line's KPIs are keyed by tenant and line), so give each site's line its own "
                f"id, e.g. {names[0] + '-' + line!r}"
            )
        self._check_sites()
        ids = {machine.id for machine in self.machines}
        unknown = sorted(set(self.monitoring.machines) - ids)
        if unknown:
            raise ValueError(f"monitoring.machines names machines the plant does not have: {unknown}")
        if self.micro_stop_s is not None and self.micro_stop_s >= self.state_timeout_s:
            # A stop is decided before its state stops being believed, so no window waits forever.
            raise ValueError(
                f"micro_stop_s ({self.micro_stop_s:g}) must be shorter than state_timeout_s "
                f"({self.state_timeout_s:g})"
            )
        return self

    def _check_sites(self) -> None:
        known = {(machine.tenant, machine.site) for machine in self.machines}
        seen: dict[tuple[str, str], int] = {}
        for index, site in enumerate(self.sites):
            name = f"{site.tenant}/{site.site}"
            if site.key not in known:
                # A typo here would silently leave the site on the plant's calendar.
                listed = sorted(f"{tenant}/{site_id}" for tenant, site_id in known)
                raise ValueError(
                    f"sites[{index}] ({name}): no machine of the plant is in tenant {site.tenant!r}, "
                    f"site {site.site!r}; the machines' sites (tenant/site) are {listed}"
                )
            earlier = seen.setdefault(site.key, index)
            if earlier != index:
                raise ValueError(
                    f"sites[{index}] ({name}) repeats sites[{earlier}]; give each site one entry"
                )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def site_calendar(self, tenant: str, site: str) -> SiteCalendarSettings:
        """The calendar of a site: its own settings where it has them, the plant's otherwise."""
        # Asked once per calendar built, so a scan (no cache a model_copy could leave stale).
        own = next((entry for entry in self.sites if entry.key == (tenant, site)), None)
        if own is None:
            return SiteCalendarSettings(
                self.zone, tuple(self.shifts), self.production_day_start, tuple(self.holidays)
            )
        shifts = self.shifts if own.shifts is None else own.shifts
        day_start = own.day_start if own.day_start is not None else self.day_start
        if day_start is None:
            day_start = shifts[0].start if shifts else time(0, 0)
        zone = self.zone if own.timezone is None else ZoneInfo(own.timezone)
        holidays = self.holidays if own.holidays is None else own.holidays
        return SiteCalendarSettings(zone, tuple(shifts), day_start, tuple(holidays))

    @property
    def production_day_start(self) -> time:
        if self.day_start is not None:
            return self.day_start
        return self.shifts[0].start if self.shifts else time(0, 0)

    def model_post_init(self, context: object, /) -> None:
        self._by_key = {machine.key: machine for machine in self.machines}

    def machine(self, tenant: str, machine_id: str) -> MachineSpec | None:
        return self._by_key.get(f"{tenant}/{machine_id}")

    def _rule_for(self, state: str, reason: str | None) -> LossRule | None:
        """The most specific rule for a state and reason: an exact reason first, then the first
        rule for the state without a reason (configured rules before the defaults)."""
        fallback: LossRule | None = None
        for rule in (*self.losses, *DEFAULT_LOSS_RULES):
            if rule.state != state:
                continue
            if rule.reason is not None and rule.reason == reason:
                return rule
            if rule.reason is None and fallback is None:
                fallback = rule
        return fallback

    def classify(self, state: str | None, reason: str | None) -> LossCategory:
        """The loss category of a state (and reason): the most specific configured rule wins."""
        rule = None if state is None else self._rule_for(state, reason)
        return LossCategory.UNKNOWN if rule is None else rule.category

    def big_loss(self, state: str | None, reason: str | None) -> BigLoss | None:
        """Which big loss a state's time counts as; None when it is no OEE loss (production,
        planned stops, no data)."""
        rule = None if state is None else self._rule_for(state, reason)
        if rule is None or rule.category not in _TIME_BIG_LOSSES:
            return None
        if rule.big_loss is not None:
            return rule.big_loss
        if rule.category is LossCategory.PERFORMANCE:
            return BigLoss.SMALL_STOPS
        return BigLoss.SETUP_ADJUSTMENTS if state == "setup" else BigLoss.UNPLANNED_STOPS

    @property
    def version(self) -> str:
        """A short content hash: every KPI record names the configuration it was computed with."""
        content = self.model_dump(mode="json")
        # Left out while unset, as before they existed: an upgrade must not change the version of
        # an unchanged plant file (records would claim a configuration change that never happened).
        for added in ("holidays", "sites"):
            if not content[added]:
                del content[added]
        for shift in content["shifts"]:
            if shift["days"] is None:
                del shift["days"]
        if content["alerts"]["out_of_spec_critical_after"] == OUT_OF_SPEC_CRITICAL_AFTER:
            del content["alerts"]["out_of_spec_critical_after"]
        if content["monitoring"]["capability_min_parts"] == CAPABILITY_MIN_PARTS:
            del content["monitoring"]["capability_min_parts"]
        for limit, default in (
            ("max_signals_per_machine", MAX_SIGNALS_DEFAULT),
            ("max_characteristics_per_machine", MAX_CHARACTERISTICS_DEFAULT),
        ):
            if content[limit] == default:
                del content[limit]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]
