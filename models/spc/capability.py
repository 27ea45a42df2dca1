"""Process capability (Cp, Cpk) and performance (Pp, Ppk) of one characteristic, accumulated streaming.

Following AIAG's SPC manual: Cp and Cpk use the *within* sigma (``MR-bar / d2`` from consecutive
parts, short-term variation); Pp and Ppk use the *overall* sample standard deviation (long-term,
including shifts between lots). ``Cp = (USL - LSL) / 6 sigma``, ``Cpk = min(USL - mean,
mean - LSL) / 3 sigma``; with one limit only, Cp/Pp are undefined and Cpk/Ppk use that side.

One accumulator per (characteristic, product, shift) lives in the machine's state as a short list.

>>> stats = CapabilityStats()
>>> for v in (10.0, 10.2, 9.9, 10.1, 9.8):
...     stats.update(v)
>>> cap = stats.indices(lsl=9.0, usl=11.0)
>>> (cap.n, round(cap.mean, 3), round(cap.cp or 0, 3), round(cap.ppk or 0, 3))
(5, 10.0, 1.504, 2.108)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.json_floats import decode_float, encode_float
from models.spc.charts import D2

__all__ = ["Capability", "CapabilityStats"]


@dataclass(frozen=True, slots=True)
class Capability:
    n: int
    mean: float | None
    sigma_within: float | None
    sigma_overall: float | None
    lsl: float | None
    usl: float | None
    cp: float | None
    cpk: float | None
    pp: float | None
    ppk: float | None


def _indices(
    mean: float, sigma: float | None, lsl: float | None, usl: float | None
) -> tuple[float | None, float | None]:
    if sigma is None or sigma <= 0.0:
        return None, None
    spread = None if lsl is None or usl is None else (usl - lsl) / (6.0 * sigma)
    sides = [
        v
        for v in ((usl - mean) if usl is not None else None, (mean - lsl) if lsl is not None else None)
        if v is not None
    ]
    return spread, (min(sides) / (3.0 * sigma) if sides else None)


class CapabilityStats:
    """Welford moments plus the sum of moving ranges, of parts judged against one pair of spec limits."""

    __slots__ = ("lsl", "m2", "mean", "mr_n", "mr_sum", "n", "prev", "usl")

    def __init__(self) -> None:
        self._start(None, None)

    def _start(self, lsl: float | None, usl: float | None) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.mr_sum = 0.0
        self.mr_n = 0
        self.prev: float | None = None
        self.lsl = lsl
        self.usl = usl

    def update(self, value: float, lsl: float | None = None, usl: float | None = None) -> None:
        """Add a part judged against ``lsl``/``usl`` (both None: it came without limits, and counts
        against the row's). A part with other limits than the row's (a drawing revision, a limit no
        longer sent) starts the row afresh: its indices are against one spec, never a mix."""
        if not math.isfinite(value):
            raise ValueError(f"value: must be finite, got {value!r}")
        if (lsl is not None or usl is not None) and (lsl, usl) != (self.lsl, self.usl):
            if self.lsl is None and self.usl is None:
                self.lsl, self.usl = lsl, usl  # the first limits of parts measured without any
            else:
                self._start(lsl, usl)
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        if self.prev is not None:
            self.mr_sum += abs(value - self.prev)
            self.mr_n += 1
        self.prev = value

    def indices(
        self, lsl: float | None = None, usl: float | None = None, *, min_parts: int = 2
    ) -> Capability:
        """Indices against ``lsl``/``usl`` if given, else against the row's; none from fewer than
        ``min_parts`` parts (two parts gave Cp 376), though the mean and sigmas are given."""
        lsl = self.lsl if lsl is None else lsl
        usl = self.usl if usl is None else usl
        if self.n == 0:
            return Capability(0, None, None, None, lsl, usl, None, None, None, None)
        within = (self.mr_sum / self.mr_n) / D2 if self.mr_n else None
        overall = math.sqrt(self.m2 / (self.n - 1)) if self.n >= 2 else None
        if self.n < min_parts:
            return Capability(self.n, self.mean, within, overall, lsl, usl, None, None, None, None)
        cp, cpk = _indices(self.mean, within, lsl, usl)
        pp, ppk = _indices(self.mean, overall, lsl, usl)
        return Capability(self.n, self.mean, within, overall, lsl, usl, cp, cpk, pp, ppk)

    def to_list(self) -> list[float | str | None]:
        # Values near the float maximum overflow the sums to infinity (or NaN): spelt out, so a
        # state read back is the live one (JSON's null read as 0.0 changed the indices).
        return [
            float(self.n),
            encode_float(self.mean),
            encode_float(self.m2),
            encode_float(self.mr_sum),
            float(self.mr_n),
            self.prev,
            _optional(self.lsl),
            _optional(self.usl),
        ]

    @classmethod
    def from_list(cls, values: list[float | str | None]) -> CapabilityStats:
        if not isinstance(values, list) or len(values) != 8:
            raise ValueError("values: expected a list of 8 numbers, nulls or 'inf'")
        n, mean, m2, mr_sum, mr_n, prev, lsl, usl = values
        stats = cls()
        # null: what states written before non-finite sums were spelt out hold there
        stats.n, stats.mean, stats.m2 = int(n or 0), _sum(mean), _sum(m2)
        stats.mr_sum, stats.mr_n = _sum(mr_sum), int(mr_n or 0)
        stats.prev = None if prev is None else decode_float(prev)
        stats.lsl = None if lsl is None else decode_float(lsl)
        stats.usl = None if usl is None else decode_float(usl)
        return stats


def _optional(value: float | None) -> float | str | None:
    return None if value is None else encode_float(value)


def _sum(value: object) -> float:
    return 0.0 if value is None else decode_float(value)
