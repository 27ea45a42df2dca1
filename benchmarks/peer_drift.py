"""Which drift detection the Quix + river peer runs per signal: linepulse's own settings, mapped.

The peer (:mod:`benchmarks.peers`, :mod:`benchmarks.quix_pipeline`) cannot import linepulse, so the
benchmark driver maps the plant's monitoring configuration here and hands the result over as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.peers import DriftParams
from models.monitoring_config import MonitoringConfig

__all__ = ["drift_by_signal", "drift_json"]

# Beyond these, a signal's detectors are Nelson rules, which the peer does not run.
_PEER_DETECTORS = frozenset(("page_hinkley", "cusum", "ewma", "adwin"))


def drift_by_signal(config: MonitoringConfig, signals: Iterable[str]) -> dict[str, DriftParams | None]:
    """Per signal, the sensor monitor's settings the peer judges it with (plant-wide, no machine's).

    None for a signal linepulse judges as the residual from its thermal expected level
    (temperatures): that model has no river equivalent, so the peer keeps only the statistics of
    such a signal. Raises ValueError for a configuration the peer cannot follow (Nelson rules on,
    residual mode), rather than silently comparing with less than it claims.
    """
    out: dict[str, DriftParams | None] = {}
    for name in signals:
        settings = config.settings_for("signals", name)
        if settings.expected_level != "none":
            out[name] = None
            continue
        extra = set(settings.detectors) - _PEER_DETECTORS
        if extra or settings.mode != "level":
            raise ValueError(f"{name}: the peer runs no {sorted(extra) or settings.mode!r}")
        out[name] = DriftParams.from_settings(settings)
    return out


def drift_json(config: MonitoringConfig, signals: Iterable[str]) -> dict[str, Any]:
    """:func:`drift_by_signal` as the ``--drift`` argument of :mod:`benchmarks.quix_pipeline` takes it."""
    return {
        name: None if params is None else params.to_dict()
        for name, params in drift_by_signal(config, signals).items()
    }
