"""Temperature drift detection on the simulator, with the causes of its difficulty off one at a time.

The demo plant's temperatures have a daily ambient swing and a thermal lag after every stop. This
experiment runs the drift/SPC defaults for temperatures on the temperatures only (every other
signal dropped from the simulated profiles), with the simulator's temperature profiles changed
for the run (ambient amplitude and lag time constant scaled), judged as the residual from the
expected level (``expected level`` cases, the default) or as the raw level (``level`` cases, as
before the model), and reports per case the false alarms per signal-day in normal runs and the
detection of one 6 sigma ramp (1-3 h) per machine on its temperature, also by the day the ramp
starts on (the expected level's ambient profile needs a day). For each missed ramp it says
whether the temperature's drift alert was already open when the ramp began, and for the normal
runs the share of time such an alert was open. Figures in docs/drift-and-spc.md ("Temperatures").

    .venv/bin/python -m benchmarks.temperature_causes --days 2 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from benchmarks.drift_quality import DAY_MS, START_MS, _simulate
from models.monitoring_config import MonitoringConfig
from models.plant import PlantConfig
from service.simulator import Fault, FaultKind, load_demo_plant, profiles
from service.simulator.faults import _resolve

__all__ = ["CASES", "main", "run_case"]

# Only temperatures are simulated, so every sensor alert is on one (cycle-time and quality alerts
# are other series and not counted).
# The temperatures as judged before the expected-level model: the raw level against a fixed
# baseline, running readings only, from 2 min after a start.
LEVEL: Mapping[str, Any] = {"expected_level": "none", "only_running": True, "settle_s": 120.0}
# name: (lag time-constant scale, ambient amplitude scale, temperature settings that differ)
CASES: Mapping[str, tuple[float, float, dict[str, Any]]] = {
    "expected level (default), as simulated": (1.0, 1.0, {}),
    # The first day (the profile needs a day): an interim ambient estimate with time constant T.
    "expected level, interim mean 30 min": (
        1.0,
        1.0,
        {"ambient_interim_s": 1_800, "ambient_interim_trend": False},
    ),
    "expected level, interim mean 1 h": (
        1.0,
        1.0,
        {"ambient_interim_s": 3_600, "ambient_interim_trend": False},
    ),
    "expected level, interim mean 2 h": (
        1.0,
        1.0,
        {"ambient_interim_s": 7_200, "ambient_interim_trend": False},
    ),
    "expected level, interim trend 30 min": (
        1.0,
        1.0,
        {"ambient_interim_s": 1_800, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 35 min": (
        1.0,
        1.0,
        {"ambient_interim_s": 2_100, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 40 min": (
        1.0,
        1.0,
        {"ambient_interim_s": 2_400, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 45 min": (
        1.0,
        1.0,
        {"ambient_interim_s": 2_700, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 1 h": (
        1.0,
        1.0,
        {"ambient_interim_s": 3_600, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 2 h": (
        1.0,
        1.0,
        {"ambient_interim_s": 7_200, "ambient_interim_trend": True},
    ),
    "expected level, interim trend 4 h": (
        1.0,
        1.0,
        {"ambient_interim_s": 14_400, "ambient_interim_trend": True},
    ),
    "expected level, ambient swing only": (0.0, 1.0, {}),
    "expected level, thermal lag only": (1.0, 0.0, {}),
    "expected level, neither": (0.0, 0.0, {}),
    "level, as simulated": (1.0, 1.0, {**LEVEL}),
    "level, ambient swing only": (0.0, 1.0, {**LEVEL}),
    "level, thermal lag only": (1.0, 0.0, {**LEVEL}),
    "level, neither": (0.0, 0.0, {**LEVEL}),
    "level, as simulated, baseline 4 h": (1.0, 1.0, {**LEVEL, "baseline_n": 14_400}),
    "level, thermal lag only, settle 30 min": (1.0, 0.0, {**LEVEL, "settle_s": 1_800}),
}


def _is_temperature(name: str) -> bool:
    return name.endswith("_temp") or name == "temperature"


@contextmanager
def _temperatures_only(lag_scale: float, ambient_scale: float) -> Iterator[None]:
    """The simulator's profiles with only their temperature, scaled; restored on exit."""

    def scaled(profile: profiles.MachineProfile) -> profiles.MachineProfile:
        signals = tuple(
            dataclasses.replace(
                s, tau_s=s.tau_s * lag_scale, daily_amplitude=s.daily_amplitude * ambient_scale
            )
            for s in profile.signals
            if _is_temperature(s.name)
        )
        return dataclasses.replace(profile, signals=signals)

    keywords, generic = profiles._KEYWORDS, profiles._GENERIC
    profiles._KEYWORDS = tuple((words, scaled(p)) for words, p in keywords)
    profiles._GENERIC = scaled(generic)
    try:
        yield
    finally:
        profiles._KEYWORDS, profiles._GENERIC = keywords, generic


def _plant(settings: dict[str, Any]) -> PlantConfig:
    """The demo plant with temperatures monitored by the temperature defaults (plus ``settings``)."""
    plant = load_demo_plant()
    monitoring = plant.monitoring.model_dump()
    monitoring["overrides"] = {}
    monitoring["temperatures"] = {**monitoring["temperatures"], **settings}
    return plant.model_copy(update={"monitoring": MonitoringConfig.model_validate(monitoring)})


def _ramps(plant: PlantConfig, seed: int, days: float) -> list[Fault]:
    rng = random.Random(seed)
    faults = []
    for machine in plant.machines:
        signal = next(s.name for s in profiles.profile_for(machine).signals if _is_temperature(s.name))
        length = rng.randint(60, 180) * 60_000
        begin = START_MS + rng.randint(
            4 * 3_600_000, max(4 * 3_600_000, int(days * DAY_MS) - length - 3_600_000)
        )
        faults.append(_resolve(FaultKind.SENSOR_DRIFT, machine, signal, begin, begin + length))
    return faults


def _at_ms(alert: dict[str, Any]) -> int:
    if alert["status"] == "open":
        return int(alert["evidence"]["last_ts_ms"])
    return int(datetime.fromisoformat(alert["updated_at"]).timestamp() * 1000)


def _on_temperature(alert: dict[str, Any], machine: str | None = None) -> bool:
    """A drift alert on a temperature signal (of ``machine``)."""
    return (
        alert["kind"] == "drift"
        and alert["evidence"]["series"] == "signals"
        and (machine is None or alert["machine"] == machine)
    )


def _open_at(alerts: Sequence[dict[str, Any]], machine: str, at_ms: int) -> bool:
    """Was a temperature drift alert of ``machine`` open at ``at_ms``?"""
    open_ids: set[str] = set()
    for alert in sorted((a for a in alerts if _on_temperature(a, machine)), key=_at_ms):
        if _at_ms(alert) >= at_ms:
            break
        (open_ids.add if alert["status"] == "open" else open_ids.discard)(alert["id"])
    return bool(open_ids)


def _open_share(alerts: Sequence[dict[str, Any]], machine: str, end_ms: int) -> float:
    """Share of the run's time during which a temperature drift alert of ``machine`` was open."""
    open_ms = 0
    since: int | None = None
    for alert in sorted((a for a in alerts if _on_temperature(a, machine)), key=_at_ms):
        if alert["status"] == "open" and since is None:
            since = _at_ms(alert)
        elif alert["status"] != "open" and since is not None:
            open_ms += _at_ms(alert) - since
            since = None
    if since is not None:
        open_ms += end_ms - since
    return open_ms / (end_ms - START_MS)


def run_case(name: str, days: float, seeds: Sequence[int]) -> dict[str, Any]:
    lag_scale, ambient_scale, settings = CASES[name]
    plant = _plant(settings)
    false_alarms = 0
    delays: list[float] = []
    missed_open = missed_quiet = 0
    shares: list[float] = []
    # Ramps by the day of the run they start in: the expected level's ambient profile needs a day
    # of history, so on day 1 a temperature is not judged yet.
    per_day: dict[int, list[int]] = {}
    # False alarms by the day they opened on: [all, judged against the interim ambient].
    false_by_day: dict[str, list[int]] = {}
    by_day_delays: dict[str, list[float]] = {}
    with _temperatures_only(lag_scale, ambient_scale):
        for seed in seeds:
            normal = _simulate(seed, days, [], plant)
            opened = [a for a in normal if a["status"] == "open" and _on_temperature(a)]
            false_alarms += len(opened)
            for alert in opened:
                on_day = false_by_day.setdefault(f"day {(_at_ms(alert) - START_MS) // DAY_MS + 1}", [0, 0])
                on_day[0] += 1
                on_day[1] += alert["evidence"].get("expected_from") == "interim"
            end_ms = START_MS + int(days * DAY_MS)
            shares.extend(_open_share(normal, m.id, end_ms) for m in plant.machines)
            ramps = _ramps(plant, seed, days)
            drifted = _simulate(seed, days, ramps, plant)
            for ramp in ramps:
                hits = [
                    _at_ms(a)
                    for a in drifted
                    if a["status"] == "open"
                    and _on_temperature(a, ramp.machine)
                    and ramp.start_ms <= _at_ms(a) < ramp.end_ms + 3_600_000
                ]
                start_day = int((ramp.start_ms - START_MS) // DAY_MS) + 1
                day = per_day.setdefault(start_day, [0, 0, 0])
                day[0] += 1
                if hits:
                    day[1] += 1
                    delays.append(round((min(hits) - ramp.start_ms) / 60_000, 1))
                    by_day_delays.setdefault(f"day {start_day}", []).append(delays[-1])
                    # A first alert after the ramp's end is the sensor's step back, not the ramp.
                    day[2] += min(hits) < ramp.end_ms
                elif _open_at(drifted, ramp.machine, ramp.start_ms):
                    missed_open += 1
                else:
                    missed_quiet += 1
    signal_days = len(plant.machines) * days * len(seeds)
    return {
        "case": name,
        "false_alarms_per_signal_day": round(false_alarms / signal_days, 2),
        "false_alarms_by_day_all_interim": dict(sorted(false_by_day.items())),
        "share_of_time_alert_open": round(statistics.fmean(shares), 3),
        "ramps": len(delays) + missed_open + missed_quiet,
        "detected": len(delays),
        "missed_alert_already_open": missed_open,
        "missed_no_detection": missed_quiet,
        "detected_by_start_day": {f"day {d}": f"{n[1]}/{n[0]}" for d, n in sorted(per_day.items())},
        "detected_before_ramp_end_by_start_day": {
            f"day {d}": f"{n[2]}/{n[0]}" for d, n in sorted(per_day.items())
        },
        "delay_min_median": statistics.median(delays) if delays else None,
        "delays_min": sorted(delays),
        "delays_min_by_start_day": {d: sorted(v) for d, v in sorted(by_day_delays.items())},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: all")
    args = parser.parse_args(argv)
    for name in args.case or list(CASES):
        print(json.dumps(run_case(name, args.days, range(args.seeds))), flush=True)


if __name__ == "__main__":
    main()
