"""Configuration of drift detection and SPC: defaults per kind of series, overrides per name.

Three kinds of series are monitored, with different defaults because they differ in rate and in
autocorrelation (the trade-offs are in ``docs/drift-and-spc.md``):

- ``signals``: high-rate sensor readings (1 Hz or more, autocorrelated). Thresholds are set for few
  false alarms per day; the textbook run rules would fire on autocorrelated readings all day, so
  none is on by default (rule 1 can be switched on per signal; it judges against the overall sigma).
- ``characteristics``: measured quality characteristics (one part every few minutes, close to
  independent): the classical I-MR chart with all eight Nelson rules.
- ``cycle_time``: cycle times, monitored as the pseudo-signal ``cycle_time_s``.
- ``temperatures``: sensor signals whose name matches ``temperature_signals`` (``*_temp``,
  ``temperature``, ...): the signal defaults, judged as the residual from an expected level (a
  thermal lag driven by the machine state plus the ambient, :mod:`models.expected_level`) on every
  reading, running or not.

A kind's block (a mapping, as in a plant file) changes only the fields it names; the rest keep that
kind's defaults.
``overrides`` maps a signal or characteristic name to the fields that differ from its kind's
defaults, e.g. ``{"spindle_temp": {"cusum_h": 40}}``. ``machines`` does the same for one machine
id, over the plant-wide overrides: ``{"press-2": {"cycle_time_s": {"min_shift": 0.6}}}`` for a
machine whose ideal cycle is optimistic.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from models.bounded_cache import bounded
from models.config_numbers import Count, Number
from models.expected_level import ThermalParams
from models.signal_monitor import DETECTORS, Detector, MonitorParams

__all__ = [
    "CACHE_LIMIT",
    "CAPABILITY_MIN_PARTS",
    "CYCLE_TIME_SIGNAL",
    "SERIES_KINDS",
    "TEMPERATURE_SIGNALS",
    "MonitorSettings",
    "MonitoringConfig",
    "SeriesKind",
]

CYCLE_TIME_SIGNAL = "cycle_time_s"
# Caches keyed by names that come from telemetry (signals, reason codes) are emptied when they reach
# this size, so a producer minting names cannot grow the worker's memory without bound.
CACHE_LIMIT = 4096
CAPABILITY_MIN_PARTS = 25
SeriesKind = Literal["signals", "characteristics", "cycle_time"]
SERIES_KINDS: tuple[SeriesKind, ...] = get_args(SeriesKind)
Positive = Annotated[Number, Field(gt=0, allow_inf_nan=False)]
# Signal names judged with the temperatures' defaults (fnmatch patterns, case-sensitive).
TEMPERATURE_SIGNALS = ("*_temp", "*_temperature", "temperature", "temp")


class MonitorSettings(BaseModel):
    """Everything that tunes one series' monitor. Parameters of the drift detectors are in sigma units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_n: Count = Field(
        default=1800, ge=2, le=1_000_000, description="Readings that define mean and sigma."
    )
    # No Nelson rule by default for sensor readings: at 1 Hz they are autocorrelated, and rule 1 alone
    # (a point beyond 3 sigma) fires by chance dozens of times a day; the drift detectors judge
    # sustained shifts instead.
    detectors: tuple[Detector, ...] = Field(default=("page_hinkley", "cusum", "ewma", "adwin"))
    mode: Literal["level", "residual"] = Field(
        default="level",
        description=(
            "level: judge readings against the frozen baseline. residual: judge each reading's "
            "difference from an exponentially weighted reference of the readings before it, for "
            "signals whose level wanders slowly by design (temperatures: ambient swing, thermal lag)."
        ),
    )
    reference_half_life: Number = Field(
        default=600.0,
        ge=1,
        le=10_000_000,
        description="residual mode: half-life of the reference, in readings.",
    )
    relative_to_ideal: bool = Field(
        default=False,
        description=(
            "cycle_time only: judge each cycle as its ratio to the product's ideal cycle (seconds / "
            "ideal), so product changes are no shift and min_shift is a speed loss. A machine "
            "without any ideal cycle is judged in seconds; a product without one is not judged."
        ),
    )
    max_ratio: Number = Field(
        default=2.0,
        gt=1,
        allow_inf_nan=False,
        description=(
            "relative_to_ideal: a cycle counts as at most this many ideal cycles, so one jammed "
            "cycle moves the smoothed level by at most ewma_lambda x max_ratio."
        ),
    )
    min_shift: Number = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "A detection opens an alert only while the EWMA estimate of the level differs from the "
            "reference by at least this fraction of it (the ideal cycle with relative_to_ideal, "
            "else the baseline mean); such an alert also resolves once the level is back within "
            "half of it. 0: off."
        ),
    )
    expected_level: Literal["none", "thermal"] = Field(
        default="none",
        description=(
            "thermal: judge reading - expected, the expected level being a first-order lag driven "
            "by the machine state (time constant and gain learnt from the first thermal_train_s) "
            "plus the ambient (ambient_signal, else a profile by local hour learnt over days). "
            "Readings without an expected level yet are not judged."
        ),
    )
    ambient_signal: str | None = Field(
        default=None,
        min_length=1,
        description="thermal: the machine's ambient (hall) temperature signal, if it sends one.",
    )
    thermal_train_s: Number = Field(
        default=10_800.0,
        ge=600,
        le=7 * 86_400,
        description="thermal: machine time of readings the lag's time constant and gain are learnt from.",
    )
    thermal_min_stops: Count = Field(
        default=6,
        ge=0,
        description=(
            "thermal: training also waits for this many starts and stops (the lag is seen only "
            "in them), but at most 4 x thermal_train_s."
        ),
    )
    ambient_alpha_day: Number = Field(
        default=0.25,
        gt=0,
        le=1,
        description="thermal, no ambient_signal: weight of a new day in each hour's ambient profile.",
    )
    ambient_clip_sigma: Positive = Field(
        default=3.0,
        description=(
            "thermal, no ambient_signal: an hour's profile moves by at most this many residual "
            "sigmas a day, so a drift cannot teach itself to the profile."
        ),
    )
    ambient_interim_s: Number = Field(
        default=2_100.0,
        ge=0,
        le=86_400,
        description=(
            "thermal, no ambient_signal: until the profile has both hours around a reading (a day "
            "after training), judge it against an exponentially weighted estimate of the ambient "
            "over this time constant (evidence expected_from: interim). Longer: more of a first-day "
            "drift seen, more false alarms from the ambient's curvature. 0: not judged until then."
        ),
    )
    ambient_interim_trend: bool = Field(
        default=True,
        description=(
            "thermal: the interim estimate follows the ambient's slope (double smoothing); false: "
            "its mean, which lags the ambient by slope x ambient_interim_s (many false alarms)."
        ),
    )
    rules_sigma: Literal["moving_range", "overall"] = "overall"
    only_running: bool = Field(default=True, description="Judge sensor readings only while the machine runs.")
    settle_s: Number = Field(
        default=120.0,
        ge=0,
        le=86_400,
        description="With only_running: skip readings this long after a start.",
    )
    ph_min_instances: Count = Field(default=30, ge=1)
    ph_delta: Number = Field(default=0.5, ge=0, allow_inf_nan=False)
    ph_threshold: Positive = 600.0
    ph_alpha: Number = Field(default=1.0, gt=0, le=1)
    ph_mode: Literal["both", "up", "down"] = "both"
    cusum_k: Number = Field(default=1.0, ge=0, allow_inf_nan=False)
    cusum_h: Positive = 60.0
    ewma_lambda: Number = Field(default=0.005, gt=0, le=1)
    ewma_L: Positive = 12.0
    adwin_delta: Number = Field(default=1e-9, gt=0, lt=1)
    adwin_clock: Count = Field(default=128, ge=1)
    adwin_max_buckets: Count = Field(default=5, ge=2, le=64)
    adwin_min_window_length: Count = Field(default=60, ge=1)
    adwin_grace_period: Count = Field(default=600, ge=0)
    resolve_after: Count = Field(
        default=900, ge=1, description="Quiet readings before a drift alert resolves."
    )
    resolve_band: Positive = Field(
        default=1.0, description="...and the EWMA shift back within this many sigma."
    )
    lsl: Number | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Spec limits for capability when telemetry has none.",
    )
    usl: Number | None = Field(default=None, allow_inf_nan=False)

    @field_validator("usl")
    @classmethod
    def _above_lsl(cls, usl: float | None, info: ValidationInfo) -> float | None:
        lsl = info.data.get("lsl")
        if usl is not None and lsl is not None and lsl >= usl:
            raise ValueError(f"must be above lsl ({lsl!r}): every part would be out of spec")
        return usl

    def spec_limits(self, lsl: float | None, usl: float | None) -> tuple[float | None, float | None]:
        """A part's limits: its own, else these (a limit the part does not carry)."""
        return (self.lsl if lsl is None else lsl, self.usl if usl is None else usl)

    def params(self) -> MonitorParams:
        enabled = 0
        for name in self.detectors:
            enabled |= 1 << DETECTORS.index(name)
        return MonitorParams(
            baseline_n=self.baseline_n,
            enabled=enabled,
            rules_use_moving_range=self.rules_sigma == "moving_range",
            ph_min_instances=self.ph_min_instances,
            ph_delta=self.ph_delta,
            ph_threshold=self.ph_threshold,
            ph_alpha=self.ph_alpha,
            ph_mode=self.ph_mode,
            cusum_k=self.cusum_k,
            cusum_h=self.cusum_h,
            ewma_lambda=self.ewma_lambda,
            ewma_L=self.ewma_L,
            adwin_delta=self.adwin_delta,
            adwin_clock=self.adwin_clock,
            adwin_max_buckets=self.adwin_max_buckets,
            adwin_min_window_length=self.adwin_min_window_length,
            adwin_grace_period=self.adwin_grace_period,
            resolve_after=self.resolve_after,
            resolve_band=self.resolve_band,
            mode=self.mode,
            reference_half_life=self.reference_half_life,
        )

    def thermal_params(self) -> ThermalParams:
        return ThermalParams(
            train_s=self.thermal_train_s,
            min_flips=2 * self.thermal_min_stops,
            alpha_day=self.ambient_alpha_day,
            clip_sigma=self.ambient_clip_sigma,
            interim_s=self.ambient_interim_s,
            interim_trend=self.ambient_interim_trend,
        )


_CHARACTERISTIC_DEFAULTS = MonitorSettings(
    baseline_n=25,
    detectors=tuple(DETECTORS),
    rules_sigma="moving_range",
    only_running=False,
    ph_min_instances=10,
    ph_delta=0.5,
    ph_threshold=8.0,
    cusum_k=0.5,
    cusum_h=5.0,
    ewma_lambda=0.2,
    ewma_L=3.0,
    adwin_delta=0.002,
    adwin_clock=1,
    adwin_min_window_length=5,
    adwin_grace_period=10,
    resolve_after=25,
)
_CYCLE_DEFAULTS = _CHARACTERISTIC_DEFAULTS.model_copy(
    update={
        "baseline_n": 100,
        # Single long cycles are normal (a jam, a micro-stop); only sustained shifts matter.
        "detectors": ("page_hinkley", "cusum", "ewma", "adwin"),
        "rules_sigma": "overall",
        # Cycle times are judged as the ratio to the product's ideal cycle, and only cycles
        # sustainedly >= 1.45x the ideal (speed <= 69 %) open an alert: designed slow runs (up to 1.4x in the
        # simulator, a 5-13 sigma shift) are performance losses the OEE already shows, not drift.
        # Measured trade-off (lambda, gate) in docs/drift-and-spc.md.
        "relative_to_ideal": True,
        "min_shift": 0.45,
        "max_ratio": 2.0,
        "ewma_lambda": 0.15,
        "cusum_h": 8.0,
        "ph_threshold": 15.0,
        "ewma_L": 3.5,
        "adwin_delta": 1e-4,
        "adwin_clock": 8,
        "resolve_after": 100,
    }
)


# Temperatures: the expected-level model explains the thermal lag and the daily ambient swing, so
# every reading with an expected level is judged (idle ones too: cooling is part of the model), from
# the first one (no settle time). What it leaves are errors of the learnt lag after long stops
# (0.05-0.2 degC for tens of minutes, up to ~1 sigma), which the sensor defaults' EWMA limit (0.6
# sigma) and Page-Hinkley took for drifts: hence a 2 h baseline of residuals, an EWMA limit of
# ~1.2 sigma, CUSUM h=120 and no Page-Hinkley. Measured trade-off in docs/drift-and-spc.md
# ("Temperatures").
_TEMPERATURE_DEFAULTS = MonitorSettings(
    expected_level="thermal",
    only_running=False,
    settle_s=0.0,
    baseline_n=7_200,
    detectors=("cusum", "ewma", "adwin"),
    ewma_L=24.0,
    cusum_h=120.0,
)


# What a kind's block in a plant file starts from: the fields it names replace these, as an
# override's do (``characteristics: {baseline_n: 30}`` keeps the eight Nelson rules). A MonitorSettings
# object given in code is taken as it is.
_KIND_DEFAULTS: dict[str, MonitorSettings] = {
    "signals": MonitorSettings(),
    "characteristics": _CHARACTERISTIC_DEFAULTS,
    "cycle_time": _CYCLE_DEFAULTS,
    "temperatures": _TEMPERATURE_DEFAULTS,
}


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    signals: MonitorSettings = Field(default_factory=MonitorSettings)
    characteristics: MonitorSettings = Field(default=_CHARACTERISTIC_DEFAULTS)
    cycle_time: MonitorSettings = Field(default=_CYCLE_DEFAULTS)
    temperatures: MonitorSettings = Field(default=_TEMPERATURE_DEFAULTS)
    capability_min_parts: int = Field(
        default=CAPABILITY_MIN_PARTS,
        ge=2,
        le=100_000,
        description=(
            "Parts a capability row needs before it gives Cp/Cpk/Pp/Ppk (AIAG: about 25 at least; "
            "two parts gave Cp 376); fewer give the count, mean and sigmas only."
        ),
    )
    temperature_signals: tuple[str, ...] = Field(
        default=TEMPERATURE_SIGNALS,
        description="Signal names (fnmatch patterns) that use the temperatures' defaults.",
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per signal/characteristic name: fields that differ from the defaults.",
    )

    machines: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description=(
            "Per machine id: like overrides, for that machine only (over the plant-wide overrides)."
        ),
    )

    _cache: dict[tuple[str, str, str | None], MonitorSettings] = PrivateAttr(default_factory=dict)

    @field_validator("signals", "characteristics", "cycle_time", "temperatures", mode="before")
    @classmethod
    def _over_kind_defaults(cls, value: object, info: ValidationInfo) -> object:
        # A block used to replace its kind's defaults: `temperatures: {ambient_signal: hall_temp}`
        # turned the thermal expected level off, and the baseline, detectors and limits with it.
        if isinstance(value, dict) and info.field_name is not None:
            return {**_KIND_DEFAULTS[info.field_name].model_dump(), **value}
        return value

    def model_post_init(self, context: object, /) -> None:
        # Validate every override now, so a bad plant file fails at load, not at the first reading.
        for name, fields in self.overrides.items():
            self._check(f"overrides.{name}", fields, name, None)
        for machine, by_name in self.machines.items():
            for name, fields in by_name.items():
                self._check(f"machines.{machine}.{name}", fields, name, machine)

    def _check(self, where: str, fields: object, name: str, machine: str | None) -> None:
        if not isinstance(fields, dict):
            raise ValueError(f"{where} must be a mapping of settings")
        try:
            for kind in SERIES_KINDS:
                self.settings_for(kind, name, machine)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{where}.{field}: {first['msg'].removeprefix('Value error, ')}") from None

    def settings_for(
        self,
        kind: SeriesKind,
        name: str,
        machine: str | None = None,
    ) -> MonitorSettings:
        """The settings of series ``name`` of ``kind``, on ``machine`` (None: plant-wide)."""
        key = (kind, name, machine)
        found = self._cache.get(key)
        if found is None:
            base: MonitorSettings = getattr(self, kind)
            if kind == "signals" and any(fnmatchcase(name, p) for p in self.temperature_signals):
                base = self.temperatures
            override = {**self.overrides.get(name, {}), **self.machines.get(machine or "", {}).get(name, {})}
            found = (
                base if not override else MonitorSettings.model_validate({**base.model_dump(), **override})
            )
            bounded(self._cache, CACHE_LIMIT)[key] = found
        return found
