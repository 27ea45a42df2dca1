"""Streaming drift detectors: Page-Hinkley, two-sided CUSUM, an EWMA chart and ADWIN, as numba kernels.

Each module keeps its detector's state in a slice of a float64 vector (so several detectors share one
vector that serialises into a machine's table state) and exposes:

- a private ``@kernel`` step function over that slice, which :mod:`models.signal_monitor` calls for
  every reading inside its single pass;
- a small public class with river's shape (``update(x)``, ``drift_detected``) and a batch ``detect``.
"""

from __future__ import annotations

from models.drift.adwin import ADWIN
from models.drift.cusum import Cusum
from models.drift.ewma_chart import EwmaChart
from models.drift.page_hinkley import PageHinkley

__all__ = ["ADWIN", "Cusum", "EwmaChart", "PageHinkley"]
