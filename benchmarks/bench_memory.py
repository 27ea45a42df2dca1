"""Memory: bytes of state per machine and signal, after a realistic day of the simulated demo plant."""

from __future__ import annotations

import sys
import time
from typing import Any, Final

import numpy as np
import orjson

from benchmarks.results import Figure, cost_figure
from benchmarks.simulated_plant import simulated_states
from models.machine_state import MachineState
from service.plant_file import load_demo_plant
from streams.processing import encode_state

__all__ = ["NOTES", "TITLE", "figures"]

TITLE: Final = "Memory (state per machine and signal)"
NOTES: Final = """\
The demo plant's simulator (shifts, stops, cycles, counts, quality checks, 1 Hz sensors sent in
10 s batches) runs through the real `TelemetryProcessor` for a simulated 26 h (4 h in the quick run),
so states hold open hour/shift/day windows, closed-window history, alerts and signal statistics.
Per machine, **whole state ÷ series** spreads everything a machine keeps (windows, alerts, applied
offsets) over its monitored series (sensor signals, quality characteristics, cycle time). **Stored**
bytes are what the Faust table and its changelog hold (`streams.processing.encode_state`: the JSON,
zlib level 1): the figure the 2 KB goal bounds. **JSON** bytes are the same state uncompressed.
**Signal entry** is one signal's own share (its statistics and any drift/SPC monitor vector, as
JSON); in-memory bytes count numpy arrays and their dict keys (`sys.getsizeof`). The worst machine
is reported; the ratio is the 2 KB budget over the measured value."""

_BUDGET: Final = 2048.0
_HOUR_MS: Final = 3_600_000


def _run_plant(hours: float) -> dict[str, MachineState]:
    now = int(time.time() * 1000)
    return simulated_states(load_demo_plant(), seed=7, start_ms=now - int(hours * _HOUR_MS), end_ms=now)


def _json(state: MachineState) -> bytes:
    return orjson.dumps(state.to_dict())


def _monitor_keys(state: MachineState, name: str) -> list[str]:
    # Drift/SPC monitors are keyed "<family>:<series>" (e.g. "signals:oil_temp"), or by the bare name.
    monitors: dict[str, Any] = getattr(state, "monitors", {})
    return [key for key in monitors if key == name or key.endswith(":" + name)]


def _series(state: MachineState) -> int:
    """Monitored series of a machine: its signals and whatever else carries a monitor (cycle time, ...)."""
    monitors: dict[str, Any] = getattr(state, "monitors", {})
    return len(set(state.signals) | {key.split(":", 1)[-1] for key in monitors})


def _signal_json_bytes(state: MachineState, name: str) -> int:
    own: dict[str, Any] = state.to_dict()
    entry: dict[str, Any] = {"signals": {name: own["signals"][name]}}
    keys = _monitor_keys(state, name)
    if keys:
        entry["monitors"] = {key: own["monitors"][key] for key in keys}
    if name in own.get("expected", {}):  # a temperature's expected-level model
        entry["expected"] = {name: own["expected"][name]}
    return len(orjson.dumps(entry)) - len(orjson.dumps({"signals": {}}))


def _signal_memory_bytes(state: MachineState, name: str) -> int:
    # The array object with its data, its dict key, and a dict slot (~3 pointers) per dict holding it.
    monitors: dict[str, Any] = getattr(state, "monitors", {})
    owned = [(name, state.signals[name])] + [(key, monitors[key]) for key in _monitor_keys(state, name)]
    expected: dict[str, Any] = getattr(state, "expected", {})
    if name in expected:
        owned.append((name, expected[name]))
    return sum(
        sys.getsizeof(vector) + sys.getsizeof(key) + 24
        for key, vector in owned
        if isinstance(vector, np.ndarray)
    )


def figures(quick: bool) -> list[Figure]:
    states = _run_plant(4.0 if quick else 26.0)
    with_signals = [s for s in states.values() if s.signals]
    if not with_signals:
        raise RuntimeError("the simulated plant produced no sensor signals")
    stored_per_signal = max(len(encode_state(s)) / _series(s) for s in with_signals)
    per_signal = max(len(_json(s)) / _series(s) for s in with_signals)
    machine = max(len(_json(s)) for s in states.values())
    machine_stored = max(len(encode_state(s)) for s in states.values())
    entry_json = max(_signal_json_bytes(s, name) for s in with_signals for name in s.signals)
    entry_mem = max(_signal_memory_bytes(s, name) for s in with_signals for name in s.signals)
    signals = max(_series(s) for s in with_signals)
    return [
        cost_figure("memory.state_stored_per_signal", stored_per_signal, _BUDGET, "bytes",
                    what="whole machine state as stored (compressed JSON) ÷ its monitored series, "
                         "worst machine", vs="2 KB budget"),
        cost_figure("memory.state_json_per_signal", per_signal, _BUDGET, "bytes",
                    what="whole machine state (JSON) ÷ its monitored series, worst machine",
                    vs="2 KB budget"),
        cost_figure("memory.signal_entry_json", entry_json, _BUDGET, "bytes",
                    what="one signal's own entries in the state JSON", vs="2 KB budget"),
        cost_figure("memory.signal_entry_in_memory", entry_mem, _BUDGET, "bytes",
                    what="one signal's arrays and keys in memory", vs="2 KB budget"),
        Figure("memory.machine_state_json", machine, "bytes", None, None,
               what=f"largest whole machine state (JSON; up to {signals} monitored series)"),
        Figure("memory.machine_state_stored", machine_stored, "bytes", None, None,
               what=f"largest whole machine state as stored (up to {signals} monitored series)"),
    ]  # fmt: skip
