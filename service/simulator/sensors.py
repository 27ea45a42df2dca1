"""One machine's sensors: state-dependent levels, thermal lag, a daily ambient swing, AR(1) noise, faults.

Readings are produced a batch at a time (numpy over the batch) and returned in the contract's
columnar ``samples`` form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from models.arrays import FloatArray
from service.simulator.faults import Fault, FaultKind
from service.simulator.profiles import SignalSpec

__all__ = ["SensorBank"]


_DRIFT_SIGMAS = 6.0  # how far a sensor_drift fault has moved the mean by its end
_BURST_PROBABILITY = 0.3  # share of readings inside an anomaly_burst window that are outliers
_BURST_SIGMAS = (5.0, 9.0)
_AR = 0.6  # noise autocorrelation between consecutive readings: real sensors are not white
_ZERO = timedelta(0)


def _first_order(inputs: FloatArray, gain: float, decay: float, state: float) -> tuple[list[float], float]:
    """``y[k] = decay * y[k-1] + gain * x[k]``, the recursion behind both thermal lag and AR(1) noise."""
    out: list[float] = []
    for value in inputs.tolist():
        state = decay * state + gain * value
        out.append(state)
    return out, state


class SensorBank:
    def __init__(
        self,
        signals: Sequence[SignalSpec],
        faults: Sequence[Fault],
        zone: ZoneInfo,
        seed: int,
        sample_period_ms: int,
    ) -> None:
        self._signals = tuple(signals)
        self._drifts = tuple(f for f in faults if f.kind is FaultKind.SENSOR_DRIFT)
        self._bursts = tuple(f for f in faults if f.kind is FaultKind.ANOMALY_BURST)
        self._zone = zone
        self._rng = np.random.default_rng(seed)
        self._period = sample_period_ms
        self._levels = [spec.idle for spec in self._signals]
        self._noise = [0.0 for _ in self._signals]
        self._alphas = [
            1.0 if spec.tau_s <= 0 else 1.0 - math.exp(-sample_period_ms / 1000 / spec.tau_s)
            for spec in self._signals
        ]
        self._innovation = math.sqrt(1.0 - _AR * _AR)

    def sample_times(self, after_ms: int, until_ms: int) -> list[int]:
        """Reading times on the sampling grid in ``(after_ms, until_ms]``."""
        first = (after_ms // self._period + 1) * self._period
        return list(range(first, until_ms + 1, self._period))

    def batch(self, times: Sequence[int], running: Sequence[bool]) -> list[dict[str, object]]:
        """The ``signals`` of a samples record; ``running[i]``: did the machine run at ``times[i]``."""
        if not times:
            return []
        stamps = np.asarray(times, dtype=np.float64)
        is_running = np.asarray(running, dtype=bool)
        utc = datetime.fromtimestamp(times[0] / 1000, tz=UTC)
        offset_h = (self._zone.utcoffset(utc) or _ZERO).total_seconds() / 3600
        local_hour = (stamps / 3_600_000 + offset_h) % 24
        ambient = np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)  # peaks around 15:00 local time
        shocks = self._rng.standard_normal((len(self._signals), len(times)))
        burst = self._burst_mask(stamps)
        columns: list[dict[str, object]] = []
        for index, spec in enumerate(self._signals):
            targets = np.where(is_running, spec.running, spec.idle)
            alpha = self._alphas[index]
            levels, self._levels[index] = _first_order(targets, alpha, 1.0 - alpha, self._levels[index])
            noise, self._noise[index] = _first_order(
                shocks[index], self._innovation * spec.noise, _AR, self._noise[index]
            )
            values = np.asarray(levels) + np.asarray(noise) + spec.daily_amplitude * ambient
            values += self._drift(spec, stamps)
            if burst is not None:
                signs = self._rng.choice((-1.0, 1.0), size=len(times))
                sizes = self._rng.uniform(*_BURST_SIGMAS, size=len(times))
                values += burst * signs * sizes * spec.noise
            columns.append(
                {
                    "signal": spec.name,
                    "unit": spec.unit,
                    "ts": list(times),
                    "values": np.round(values, spec.decimals).tolist(),
                }
            )
        return columns

    def _drift(self, spec: SignalSpec, stamps: FloatArray) -> FloatArray | float:
        shift: FloatArray | float = 0.0
        for fault in self._drifts:
            if fault.signal == spec.name and fault.start_ms <= stamps[-1] and stamps[0] < fault.end_ms:
                inside = (stamps >= fault.start_ms) & (stamps < fault.end_ms)
                progress = (stamps - fault.start_ms) / (fault.end_ms - fault.start_ms)
                shift = shift + np.where(inside, _DRIFT_SIGMAS * spec.noise * progress, 0.0)
        return shift

    def _burst_mask(self, stamps: FloatArray) -> FloatArray | None:
        """1.0 where a reading is an outlier: the same readings across all signals (multivariate)."""
        inside = np.zeros(len(stamps), dtype=bool)
        for fault in self._bursts:
            inside |= (stamps >= fault.start_ms) & (stamps < fault.end_ms)
        if not inside.any():
            return None
        chosen = inside & (self._rng.random(len(stamps)) < _BURST_PROBABILITY)
        return chosen.astype(np.float64)
