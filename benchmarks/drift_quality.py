"""Detection quality of the drift/SPC defaults on the simulator: delay on injected drifts, false alarms.

Runs the plant simulator (``service.simulator``) through the same processor as the stream and
``analyze``, twice per seed:

- **normal operation**: no faults; every ``drift`` alert opened on a sensor signal after the
  baseline is a false alarm (the simulator injects no drift), counted per machine-signal and day;
- **injected drifts**: one ``sensor_drift`` fault per machine (6 sigma linear ramp over 1-3 h, on a
  random signal); the delay is from the fault's start to the first ``drift`` alert naming that
  signal on that machine, and a drift missed until its end counts as missed.

    .venv/bin/python -m benchmarks.drift_quality --days 2 --seeds 3

Prints a JSON summary and, with ``--results benchmarks/RESULTS.md``, writes its ``drift-quality`` section.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks.results import write_markdown_section
from models.plant import PlantConfig
from service.plant_file import load_plant
from service.simulator import Fault, FaultKind, PlantSimulator, load_demo_plant
from service.simulator.faults import _resolve
from service.simulator.profiles import profile_for
from streams.processing import Applied, TelemetryProcessor

__all__ = ["main", "render", "run_quality"]

DAY_MS = 86_400_000
START_MS = 1_790_000_000_000  # a fixed Monday-ish epoch: runs are deterministic per seed


def _simulate(
    seed: int, days: float, faults: Sequence[Fault], plant: PlantConfig | None = None
) -> list[dict[str, Any]]:
    """Alert records (as dicts) of the whole run, in order (on the demo plant unless given one)."""
    plant = plant if plant is not None else load_demo_plant()
    sim = PlantSimulator(plant, seed=seed, start_ms=START_MS, faults=faults)
    processor = TelemetryProcessor(plant, max_payload_bytes=8 << 20, max_future_ms=10**12)
    states: dict[str, Any] = {}
    alerts: list[dict[str, Any]] = []
    for record in sim.events(START_MS + int(days * DAY_MS)):
        ts = record["ts"]
        assert isinstance(ts, int), "the simulator's default timestamps are epoch ms"
        outcome = processor.process(
            None,
            orjson.dumps(record),
            timestamp_ms=ts,
            load_state=states.get,
            require_key=False,
        )
        if not isinstance(outcome, Applied):
            continue
        state = outcome.state
        states[state.key] = state
        alerts.extend(a.model_dump() if hasattr(a, "model_dump") else dict(a) for a in outcome.alerts)
    return alerts


def _drift_faults(seed: int, days: float, plant: PlantConfig) -> list[Fault]:
    rng = random.Random(seed)
    faults = []
    for machine in plant.machines:
        signal = rng.choice(profile_for(machine).signals).name
        length = rng.randint(60, 180) * 60_000
        # After the first 4 h (baselines learnt), well before the end, so the whole ramp is seen.
        begin = START_MS + rng.randint(
            4 * 3_600_000, max(4 * 3_600_000, int(days * DAY_MS) - length - 3_600_000)
        )
        faults.append(_resolve(FaultKind.SENSOR_DRIFT, machine, signal, begin, begin + length))
    return faults


def _slow_cycle_faults(seed: int, days: float, plant: PlantConfig) -> list[Fault]:
    rng = random.Random(seed + 1000)
    faults = []
    for machine in plant.machines:
        length = rng.randint(60, 180) * 60_000
        begin = START_MS + rng.randint(
            4 * 3_600_000, max(4 * 3_600_000, int(days * DAY_MS) - length - 3_600_000)
        )
        faults.append(_resolve(FaultKind.SLOW_CYCLES, machine, None, begin, begin + length))
    return faults


def _is_cycle_alert(alert: dict[str, Any]) -> bool:
    return (
        alert["status"] == "open"
        and alert["kind"] in ("drift", "spc")
        and alert["evidence"]["series"] == "cycle_time"
    )


def run_quality(days: float, seeds: Sequence[int], plant: PlantConfig | None = None) -> dict[str, Any]:
    plant = plant if plant is not None else load_demo_plant()
    false_alarms = 0
    by_detector: dict[str, int] = {}
    by_signal: dict[str, int] = {}
    series = 0
    delays: list[float] = []
    missed = 0
    first_detector: dict[str, int] = {}
    cycle_false: dict[str, int] = {}
    cycle_delays: list[float] = []
    cycle_missed = 0
    for seed in seeds:
        normal = _simulate(seed, days, [], plant)
        for alert in normal:
            if _is_cycle_alert(alert):
                det = alert["evidence"]["detector"]
                cycle_false[det] = cycle_false.get(det, 0) + 1
        slow = _slow_cycle_faults(seed, days, plant)
        slowed = _simulate(seed, days, slow, plant)
        for fault in slow:
            cycle_hits = [
                a["evidence"]["last_ts_ms"]
                for a in slowed
                if _is_cycle_alert(a)
                and a["machine"] == fault.machine
                and fault.start_ms <= a["evidence"]["last_ts_ms"] < fault.end_ms + 3_600_000
            ]
            if cycle_hits:
                cycle_delays.append((min(cycle_hits) - fault.start_ms) / 60_000)
            else:
                cycle_missed += 1
        series += sum(len(profile_for(m).signals) for m in plant.machines)
        for alert in normal:
            if (
                alert["status"] == "open"
                and alert["kind"] == "drift"
                and alert["evidence"]["series"] == "signals"
            ):
                false_alarms += 1
                det = alert["evidence"]["detector"]
                by_detector[det] = by_detector.get(det, 0) + 1
                sig = alert["evidence"]["signal"]
                by_signal[sig] = by_signal.get(sig, 0) + 1
        faults = _drift_faults(seed, days, plant)
        drifted = _simulate(seed, days, faults, plant)
        for fault in faults:
            hits = [
                a
                for a in drifted
                if a["status"] == "open"
                and a["kind"] == "drift"
                and a["machine"] == fault.machine
                and a["evidence"].get("signal") == fault.signal
                and fault.start_ms <= a["evidence"]["last_ts_ms"] < fault.end_ms + 3_600_000
            ]
            if not hits:
                missed += 1
                continue
            first = min(hits, key=lambda a: a["evidence"]["last_ts_ms"])
            delays.append((first["evidence"]["last_ts_ms"] - fault.start_ms) / 60_000)
            det = first["evidence"]["detector"]
            first_detector[det] = first_detector.get(det, 0) + 1
    signal_days = series * days
    return {
        "days_per_seed": days,
        "seeds": list(seeds),
        "signal_days": signal_days,
        "false_alarms": false_alarms,
        "false_alarms_per_signal_day": round(false_alarms / signal_days, 3),
        "false_alarms_by_detector": by_detector,
        "false_alarms_by_signal": by_signal,
        "drifts": len(delays) + missed,
        "missed": missed,
        "delay_min_median": round(statistics.median(delays), 1) if delays else None,
        "delay_min_p90": round(sorted(delays)[int(0.9 * (len(delays) - 1))], 1) if delays else None,
        "first_detector": first_detector,
        "machine_days": len(plant.machines) * days * len(seeds),
        "cycle_false_alarms": sum(cycle_false.values()),
        "cycle_false_alarms_by_detector": cycle_false,
        "slow_cycle_faults": len(cycle_delays) + cycle_missed,
        "slow_cycle_missed": cycle_missed,
        "slow_cycle_delay_min_median": round(statistics.median(cycle_delays), 1) if cycle_delays else None,
        "slow_cycle_delay_min_max": round(max(cycle_delays), 1) if cycle_delays else None,
    }


def render(summary: dict[str, Any]) -> str:
    """The RESULTS.md section of a summary."""
    by_signal = summary["false_alarms_by_signal"]
    lag_free = sum(v for k, v in by_signal.items() if not k.endswith("_temp"))
    temps = sum(v for k, v in by_signal.items() if k.endswith("_temp"))
    days = summary["days_per_seed"] * len(summary["seeds"])
    # Demo plant: 5 machines, each with one temperature and two lag-free signals.
    lag_free_days, temp_days = 10 * days, 5 * days
    detected = summary["drifts"] - summary["missed"]
    return (
        "## Drift detection quality (simulator, default settings)\n\n"
        f"`python -m benchmarks.drift_quality --days {summary['days_per_seed']:g} "
        f"--seeds {len(summary['seeds'])}`: demo plant, {days:g} simulated days of normal operation "
        "and as many with one `sensor_drift` (6 sigma ramp over 1-3 h) per machine.\n\n"
        "| figure | value |\n|---|---:|\n"
        f"| drifts detected | {detected} of {summary['drifts']} |\n"
        f"| detection delay, median | {summary['delay_min_median']} min |\n"
        f"| detection delay, p90 | {summary['delay_min_p90']} min |\n"
        f"| false alarms per signal-day, all signals | {summary['false_alarms_per_signal_day']} |\n"
        f"| false alarms per signal-day, lag-free signals (vibration, current) | "
        f"{lag_free / lag_free_days:.2f} |\n"
        f"| false alarms per signal-day, temperatures (judged against their expected level) | "
        f"{temps / temp_days:.2f} |\n\n"
        f"False alarms by detector: {json.dumps(summary['false_alarms_by_detector'])}; first detector "
        f"on each detected drift: {json.dumps(summary['first_detector'])}. See docs/drift-and-spc.md.\n"
        + _cycle_markdown(summary)
    )


def _cycle_markdown(summary: dict[str, Any]) -> str:
    if "cycle_false_alarms" not in summary:
        return ""
    detected = summary["slow_cycle_faults"] - summary["slow_cycle_missed"]
    per_day = summary["cycle_false_alarms"] / summary["machine_days"]
    return (
        "\nCycle time (the same normal runs, and a run per seed with one `slow_cycles` fault, cycle "
        "times x1.5 for 1-3 h, per machine; judged as the ratio to the ideal cycle, alerting past a "
        "45 % speed loss):\n\n"
        "| figure | value |\n|---|---:|\n"
        f"| cycle-time false alarms per machine-day (per 8 h shift) | {per_day:.2f} ({per_day / 3:.2f}) |\n"
        f"| slow-cycle faults detected | {detected} of {summary['slow_cycle_faults']} |\n"
        f"| detection delay, median / max | {summary['slow_cycle_delay_min_median']} min / "
        f"{summary['slow_cycle_delay_min_max']} min |\n\n"
        f"Cycle-time false alarms by detector: {json.dumps(summary['cycle_false_alarms_by_detector'])}.\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--results", type=Path, help="write the summary into this RESULTS.md's section")
    parser.add_argument("--from-json", type=Path, help="render a saved summary instead of running")
    parser.add_argument(
        "--config", type=Path, help="plant file with the same machines as the demo plant (other monitoring)"
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        summary = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        plant = load_plant(args.config) if args.config is not None else None
        summary = run_quality(args.days, range(args.seeds), plant)
    print(json.dumps(summary, indent=2))
    if args.results is not None:
        write_markdown_section(args.results, "drift-quality", render(summary))


if __name__ == "__main__":
    main()
