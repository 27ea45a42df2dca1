"""What linepulse is compared with: a pure-Python reference of the signal statistics, and river's.

Both keep the statistics :mod:`models.signal_stats` keeps (count, mean, variance, min, max, last,
exponentially weighted mean and variance, sum), one reading at a time, which is how a user of river
or of plain Python would write it. :class:`RiverSignalStats` can also run the drift detectors
linepulse's sensor monitors run (:class:`DriftMonitor`: a frozen baseline, then river's PageHinkley
and ADWIN and a plain-Python CUSUM and EWMA chart on the standardised readings). This module imports
only numpy and river, so the Quix Streams pipeline (:mod:`benchmarks.quix_pipeline`, run in its own
virtualenv) uses the very same peer code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["DriftMonitor", "DriftParams", "PythonSignalStats", "RiverSignalStats"]

_SETTLED = 2.0**-54  # models.drift.ewma_chart.SETTLED (this module cannot import linepulse)


def _as_list(column: Any) -> list[Any]:
    # .tolist() gives Python floats at once; iterating an array would box numpy scalars one by one.
    return column.tolist() if hasattr(column, "tolist") else list(column)


class PythonSignalStats:
    """Welford's update plus the EW recurrences, per reading, in plain Python: the slow reference."""

    __slots__ = ("alpha", "count", "ew_mean", "ew_var", "last", "last_ts", "m2", "max", "mean", "min", "sum")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = math.nan
        self.last_ts = -1
        self.ew_mean = math.nan
        self.ew_var = 0.0
        self.sum = 0.0

    def update(self, ts_ms: int, x: float) -> None:
        if not math.isfinite(x):
            raise ValueError(f"{x} is not finite")
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)
        self.sum += x
        if ts_ms >= self.last_ts:
            self.last, self.last_ts = x, ts_ms
        if self.count == 1:
            self.ew_mean = x
        else:
            d = x - self.ew_mean
            self.ew_mean += self.alpha * d
            self.ew_var = (1.0 - self.alpha) * (self.ew_var + self.alpha * d * d)

    def update_many(self, ts_ms: Any, values: Any) -> None:
        """Readings from numpy arrays or lists, one at a time."""
        for t, x in zip(_as_list(ts_ms), _as_list(values), strict=True):
            self.update(t, x)


@dataclass(frozen=True, slots=True)
class DriftParams:
    """One series' drift detection, in sigma units of its baseline.

    The field names are :class:`models.monitoring_config.MonitorSettings`' (this module cannot import
    linepulse: it also runs in the Quix virtualenv), so :meth:`from_settings` copies a monitor's
    settings field by field and a JSON object carries them to the Quix pipeline.
    """

    baseline_n: int
    detectors: tuple[str, ...]
    ph_min_instances: int
    ph_delta: float
    ph_threshold: float
    ph_alpha: float
    ph_mode: str
    cusum_k: float
    cusum_h: float
    ewma_lambda: float
    ewma_L: float
    adwin_delta: float
    adwin_clock: int
    adwin_max_buckets: int
    adwin_min_window_length: int
    adwin_grace_period: int

    @classmethod
    def from_settings(cls, settings: Any) -> DriftParams:
        """The fields of a ``MonitorSettings`` (or anything with its attribute names)."""
        return cls.from_dict({f.name: getattr(settings, f.name) for f in fields(cls)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftParams:
        return cls(**{**data, "detectors": tuple(data["detectors"])})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def page_hinkley_kwargs(self) -> dict[str, Any]:
        """river's PageHinkley arguments: linepulse's Page-Hinkley takes the same five, on z."""
        return {
            "min_instances": self.ph_min_instances,
            "delta": self.ph_delta,
            "threshold": self.ph_threshold,
            "alpha": self.ph_alpha,
            "mode": self.ph_mode,
        }

    def adwin_kwargs(self) -> dict[str, Any]:
        """river's ADWIN arguments: linepulse's ADWIN takes the same five, on z (plus a row cap)."""
        return {
            "delta": self.adwin_delta,
            "clock": self.adwin_clock,
            "max_buckets": self.adwin_max_buckets,
            "min_window_length": self.adwin_min_window_length,
            "grace_period": self.adwin_grace_period,
        }


class DriftMonitor:
    """A series' drift detectors as a river user writes them, per reading.

    The first ``baseline_n`` readings give the mean and the sample standard deviation (Welford;
    sigma floored at 1e-9 of the mean, as linepulse does, so a constant baseline cannot divide by
    zero); every later reading is judged as ``z = (x - mean) / sigma`` by river's ``PageHinkley``
    and ``ADWIN`` and by a two-sided tabular CUSUM (restarting after a signal) and an EWMA chart
    with exact limits, which river does not have and are written here in plain Python with the
    state in locals. ``detections`` counts each detector's signals and ``last_detection`` holds the
    reading number of the latest; nothing else is done with them (no alerts).
    """

    __slots__ = (
        "_adwin_update",
        "_baseline_m2",
        "_baseline_mean",
        "_ph_update",
        "adwin",
        "baseline_n",
        "cusum",
        "cusum_hi",
        "cusum_lo",
        "detections",
        "ewma",
        "ewma_decay",
        "ewma_w",
        "inv_sigma",
        "last_detection",
        "mu0",
        "n",
        "page_hinkley",
        "params",
    )

    def __init__(self, params: DriftParams) -> None:
        from river import drift as river_drift

        # Any: river ships no type hints for its detectors.
        drift: Any = river_drift
        self.params = params
        self.baseline_n = params.baseline_n
        self.n = 0
        self._baseline_mean = 0.0
        self._baseline_m2 = 0.0
        self.mu0 = math.nan
        self.inv_sigma = math.nan
        on = set(params.detectors)
        self.page_hinkley: Any = (
            drift.PageHinkley(**params.page_hinkley_kwargs()) if "page_hinkley" in on else None
        )
        self.adwin: Any = drift.ADWIN(**params.adwin_kwargs()) if "adwin" in on else None
        self._ph_update: Any = self.page_hinkley.update if self.page_hinkley is not None else None
        self._adwin_update: Any = self.adwin.update if self.adwin is not None else None
        self.cusum = "cusum" in on
        self.ewma = "ewma" in on
        self.cusum_hi = 0.0
        self.cusum_lo = 0.0
        self.ewma_w = 0.0
        self.ewma_decay = 1.0
        self.detections = dict.fromkeys(("page_hinkley", "cusum", "ewma", "adwin"), 0)
        self.last_detection = dict.fromkeys(("page_hinkley", "cusum", "ewma", "adwin"), -1)

    def update(self, x: float) -> None:
        # One code path for both: ~0.6 µs a reading dearer than a method of its own, which no figure
        # pays (the events kind gives a series 1,600 readings, all inside its 1,800-reading baseline).
        self.update_many((x,))

    def update_many(self, values: Iterable[float]) -> None:
        """Readings (Python floats, oldest first)."""
        readings = values if isinstance(values, list | tuple) else list(values)
        start = 0
        if self.n < self.baseline_n:
            start = self._fold_baseline(readings)
        if start < len(readings):
            self._judge(readings, start)

    def _fold_baseline(self, readings: list[float] | tuple[float, ...]) -> int:
        n, mean, m2 = self.n, self._baseline_mean, self._baseline_m2
        take = min(len(readings), self.baseline_n - n)
        for x in readings[:take]:
            n += 1
            d = x - mean
            mean += d / n
            m2 += d * (x - mean)
        self.n, self._baseline_mean, self._baseline_m2 = n, mean, m2
        if n == self.baseline_n:
            self.mu0 = mean
            self.inv_sigma = 1.0 / max(math.sqrt(m2 / (n - 1)), 1e-9 * max(1.0, abs(mean)))
        return take

    def _judge(self, readings: list[float] | tuple[float, ...], start: int) -> None:
        p = self.params
        mu0, inv_sigma = self.mu0, self.inv_sigma
        ph_update, ph = self._ph_update, self.page_hinkley
        adwin_update, adwin = self._adwin_update, self.adwin
        cusum, k, h, hi, lo = self.cusum, p.cusum_k, p.cusum_h, self.cusum_hi, self.cusum_lo
        ewma, lam, w, decay = self.ewma, p.ewma_lambda, self.ewma_w, self.ewma_decay
        keep = 1.0 - lam
        # |w| > L * sqrt(lam / (2 - lam) * (1 - decay)), compared as squares (no sqrt per reading);
        # the operations in linepulse's order, so that a test can compare detections exactly.
        limit2 = p.ewma_L * p.ewma_L * (lam / (2.0 - lam))
        hits: list[tuple[str, int]] = []
        n = self.n
        for x in readings[start:] if start else readings:
            n += 1
            z = (x - mu0) * inv_sigma
            if ph_update is not None:
                ph_update(z)
                if ph.drift_detected:
                    hits.append(("page_hinkley", n))
            if adwin_update is not None:
                adwin_update(z)
                if adwin.drift_detected:
                    hits.append(("adwin", n))
            if cusum:
                hi = hi + z - k
                hi = max(hi, 0.0)
                lo = lo - z - k
                lo = max(lo, 0.0)
                if hi > h:
                    hits.append(("cusum", n))
                    hi = 0.0
                elif lo > h:
                    hits.append(("cusum", n))
                    lo = 0.0
            if ewma:
                w = lam * z + keep * w
                if decay:
                    # Settled at 0 as linepulse settles it (1 - decay is exactly 1 from 2**-54):
                    # a subnormal decay would cost this peer a microcode assist a reading on Intel.
                    decay = decay * keep * keep
                    if decay <= _SETTLED:
                        decay = 0.0
                if w * w > limit2 * (1.0 - decay):
                    hits.append(("ewma", n))
        self.n, self.cusum_hi, self.cusum_lo, self.ewma_w, self.ewma_decay = n, hi, lo, w, decay
        for name, at in hits:
            self.detections[name] += 1
            self.last_detection[name] = at


class RiverSignalStats:
    """The same statistics from river's ``stats`` objects; with ``drift``, a :class:`DriftMonitor` too."""

    __slots__ = ("drift", "ew_mean", "ew_var", "last", "last_ts", "max", "min", "sum", "var")

    def __init__(self, alpha: float, *, drift: DriftParams | None = None) -> None:
        from river import stats

        self.var = stats.Var()  # holds the count and the mean too
        self.min = stats.Min()
        self.max = stats.Max()
        self.sum = stats.Sum()
        self.ew_mean = stats.EWMean(fading_factor=alpha)
        self.ew_var = stats.EWVar(fading_factor=alpha)
        self.drift = DriftMonitor(drift) if drift is not None else None
        self.last = math.nan
        self.last_ts = -1

    def update(self, ts_ms: int, x: float) -> None:
        self._update_stats(ts_ms, x)
        if self.drift is not None:
            self.drift.update(x)

    def _update_stats(self, ts_ms: int, x: float) -> None:
        self.var.update(x)
        self.min.update(x)
        self.max.update(x)
        self.sum.update(x)
        self.ew_mean.update(x)
        self.ew_var.update(x)
        if ts_ms >= self.last_ts:
            self.last, self.last_ts = x, ts_ms

    def update_many(self, ts_ms: Any, values: Any) -> None:
        """Readings from numpy arrays or lists, one at a time."""
        readings = _as_list(values)
        for t, x in zip(_as_list(ts_ms), readings, strict=True):
            self._update_stats(t, x)
        if self.drift is not None:
            self.drift.update_many(readings)
