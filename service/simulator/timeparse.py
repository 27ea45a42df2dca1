"""Parsing the simulator's human time values (``8h``, ``-24h``, RFC 3339) and formatting timestamps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from service.simulator.exceptions import SpecError

__all__ = ["StartTime", "format_duration", "format_rfc3339", "parse_duration_ms", "parse_start"]

_UNIT_MS = MappingProxyType({"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000})
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?([Zz]|[+-]\d\d:\d\d)")


def parse_duration_ms(text: str, *, allow_zero: bool = False) -> int:
    """``"1h30m"`` -> 5_400_000. Units ms, s, m, h, d; parts may be combined, largest first or not."""
    value = text.strip()
    if value == "0" and allow_zero:
        return 0
    position, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        raise SpecError(f"{text!r} is not a duration; use e.g. 90s, 30m, 8h, 1h30m or 2d")
    if total > _LONGEST_MS:  # (hundreds of digits reach infinity, which round() cannot convert)
        raise SpecError(f"{_shown(text)} is longer than 100 years")
    millis = round(total)
    if millis < 0 or (millis == 0 and not allow_zero):
        raise SpecError(f"{text!r} must be longer than zero")
    return millis


_LONGEST_MS = 100 * 365 * 86_400_000  # longer than the telemetry contract's whole range


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:37]!r}..."


def format_duration(millis: int) -> str:
    """The inverse of :func:`parse_duration_ms`, largest units first: 5_400_000 -> ``"1h30m"``."""
    if millis == 0:
        return "0"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, millis = divmod(millis, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class StartTime:
    """Either an absolute instant or an offset from "now"; resolved when the run starts, not when parsed."""

    absolute_ms: int | None = None
    relative_ms: int = 0

    def resolve(self, now_ms: int) -> int:
        return self.absolute_ms if self.absolute_ms is not None else now_ms + self.relative_ms


def parse_start(text: str) -> StartTime:
    """``now``, a relative offset (``-24h``, ``now-24h``, ``+10m``) or RFC 3339 with an offset.

    ``now-24h`` exists because argparse reads ``--start -24h`` as two options (``--start=-24h`` works).
    """
    value = text.strip()
    if value.startswith("now") and len(value) > 3:
        value = value[3:]
    if value == "now":
        return StartTime()
    if value[:1] in "+-" and len(value) > 1:
        sign = -1 if value[0] == "-" else 1
        return StartTime(relative_ms=sign * parse_duration_ms(value[1:], allow_zero=True))
    if _RFC3339.fullmatch(value):
        text_utc = value[:-1] + "+00:00" if value[-1] in "Zz" else value
        try:
            return StartTime(absolute_ms=round(datetime.fromisoformat(text_utc).timestamp() * 1000))
        except ValueError as exc:
            raise SpecError(f"{text!r} is not a valid date/time: {exc}") from None
    raise SpecError(
        f"{text!r} is neither RFC 3339 with an offset (2026-11-25T06:00:00+09:00) nor relative (-24h)"
    )


def format_rfc3339(millis: int, zone: ZoneInfo) -> str:
    """Epoch milliseconds as RFC 3339 in a zone's local offset, e.g. ``2026-11-25T06:00:00.000+09:00``."""
    return datetime.fromtimestamp(millis / 1000, tz=zone).isoformat(timespec="milliseconds")
