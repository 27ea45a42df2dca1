"""Behaviour profiles: how a press, a CNC machine or an assembly cell fails, sounds and measures.

The profile is picked from keywords in the machine's type, display name or id ("press",
"cnc"/"lathe"/"mill", "assembly"/"pack"); anything else gets the generic profile.
All numbers are plausible orders of magnitude, not data from a real plant.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.plant import MachineSpec

__all__ = ["MachineProfile", "QualitySpec", "SignalSpec", "StopSpec", "profile_for"]


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One sensor. ``tau_s`` > 0 makes the level follow the state with a first-order lag (temperatures)."""

    name: str
    unit: str
    idle: float
    running: float
    noise: float  # standard deviation of the (AR(1)) noise; faults are sized in multiples of it
    tau_s: float = 0.0
    daily_amplitude: float = 0.0  # ambient swing, peaking mid-afternoon local time
    decimals: int = 3


@dataclass(frozen=True, slots=True)
class StopSpec:
    """A stop that interrupts running, as a competing risk: ``per_hour`` events, exponential duration."""

    state: str
    reason: str
    per_hour: float
    mean_s: float
    min_s: float


@dataclass(frozen=True, slots=True)
class QualitySpec:
    """A measured characteristic; the nominal moves by ``product_step`` per product and by tool wear."""

    characteristic: str
    nominal: float
    tolerance: float
    sigma: float
    every_s: float = 300.0  # roughly one part measured per this much production time
    product_step: float = 0.0
    wear_per_cycle: float = 0.0  # mean shift per cycle since the last tool change
    decimals: int = 4


@dataclass(frozen=True, slots=True)
class MachineProfile:
    name: str
    signals: tuple[SignalSpec, ...]
    stops: tuple[StopSpec, ...]
    scrap_rate: float
    scrap_reasons: tuple[str, ...]
    quality: QualitySpec | None = None
    lot_cycles: tuple[int, int] = (300, 900)  # parts per lot before a changeover (multi-product only)
    changeover_mean_s: float = 1_200.0
    slow_probability: float = 0.15  # share of running periods at reduced speed
    cycle_jitter: float = 0.03


_COMMON_STOPS = (
    StopSpec("idle", "micro_stop", per_hour=4.0, mean_s=35.0, min_s=5.0),
    StopSpec("idle", "no_material", per_hour=0.4, mean_s=360.0, min_s=60.0),
    StopSpec("down", "jam", per_hour=0.25, mean_s=240.0, min_s=60.0),
    StopSpec("down", "tool_break", per_hour=0.05, mean_s=1_200.0, min_s=300.0),
    StopSpec("down", "electrical", per_hour=0.03, mean_s=2_100.0, min_s=300.0),
    StopSpec("offline", "comm_loss", per_hour=0.02, mean_s=240.0, min_s=30.0),
)

_PRESS = MachineProfile(
    name="press",
    signals=(
        SignalSpec(
            "oil_temp", "degC", idle=34.0, running=46.0, noise=0.2, tau_s=1_200.0, daily_amplitude=2.5
        ),
        SignalSpec("vibration_rms", "mm/s", idle=0.5, running=4.5, noise=0.3),
        SignalSpec("current", "A", idle=3.0, running=28.0, noise=1.2, decimals=2),
    ),
    stops=_COMMON_STOPS,
    scrap_rate=0.01,
    scrap_reasons=("burr", "crack", "dimension"),
    quality=QualitySpec("thickness_mm", nominal=2.0, tolerance=0.05, sigma=0.01, every_s=600.0),
)

_CNC = MachineProfile(
    name="cnc",
    signals=(
        SignalSpec(
            "spindle_temp", "degC", idle=31.0, running=47.0, noise=0.15, tau_s=900.0, daily_amplitude=2.0
        ),
        SignalSpec("vibration_rms", "mm/s", idle=0.3, running=2.2, noise=0.12),
        SignalSpec("current", "A", idle=1.5, running=11.0, noise=0.4, decimals=2),
    ),
    stops=_COMMON_STOPS,
    scrap_rate=0.02,
    scrap_reasons=("dimension", "surface", "chatter"),
    quality=QualitySpec(
        "diameter_mm", nominal=25.0, tolerance=0.03, sigma=0.006, product_step=7.0, wear_per_cycle=0.000_02
    ),
    lot_cycles=(150, 400),
)

_ASSEMBLY = MachineProfile(
    name="assembly",
    signals=(
        SignalSpec(
            "motor_temp", "degC", idle=28.0, running=36.0, noise=0.2, tau_s=600.0, daily_amplitude=2.0
        ),
        SignalSpec("vibration_rms", "mm/s", idle=0.2, running=1.1, noise=0.08),
        SignalSpec("current", "A", idle=0.8, running=5.5, noise=0.25, decimals=2),
    ),
    stops=_COMMON_STOPS,
    scrap_rate=0.015,
    scrap_reasons=("missing_part", "torque_fail", "cosmetic"),
)

_GENERIC = MachineProfile(
    name="generic",
    signals=(
        SignalSpec(
            "temperature", "degC", idle=30.0, running=40.0, noise=0.2, tau_s=900.0, daily_amplitude=2.0
        ),
        SignalSpec("vibration_rms", "mm/s", idle=0.3, running=2.0, noise=0.1),
        SignalSpec("current", "A", idle=1.0, running=8.0, noise=0.3, decimals=2),
    ),
    stops=_COMMON_STOPS,
    scrap_rate=0.015,
    scrap_reasons=("defect",),
)

_KEYWORDS: tuple[tuple[tuple[str, ...], MachineProfile], ...] = (
    (("press", "stamp"), _PRESS),
    (("cnc", "lathe", "mill"), _CNC),
    (("assembl", "pack"), _ASSEMBLY),
)


def profile_for(machine: MachineSpec) -> MachineProfile:
    text = f"{machine.type or ''} {machine.name or ''} {machine.id}".lower()
    for keywords, profile in _KEYWORDS:
        if any(keyword in text for keyword in keywords):
            return profile
    return _GENERIC
