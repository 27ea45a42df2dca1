"""What an alert is about, when that is a signal or characteristic of one product: built and read
back here only, so the metric that must leave products out (their ids come from telemetry and are
unbounded) cannot miss a form another module invents.

Two forms, both kept as they are stored in table states and alert ids:

- a monitored series of one product (drift and SPC alerts, the monitors' keys): ``"bore@P1"``;
- the parts of one product out of spec (``quality_out_of_spec``): ``"bore|P1"``.

Telemetry ids never contain ``@`` or ``|`` (``streams.contract.ID_PATTERN``), so the name before
either is the series' own.

>>> series_of("bore", "P1"), parts_of("bore", "P1"), series_name("bore|P1"), series_name("vibration")
('bore@P1', 'bore|P1', 'bore', 'vibration')
"""

from __future__ import annotations

from typing import Final

__all__ = ["PARTS_SEPARATOR", "SERIES_SEPARATOR", "parts_of", "series_name", "series_of"]

SERIES_SEPARATOR: Final = "@"
PARTS_SEPARATOR: Final = "|"


def series_of(name: str, product: str | None) -> str:
    """The series of ``name`` for ``product`` (``name`` itself without one)."""
    return name if product is None else f"{name}{SERIES_SEPARATOR}{product}"


def parts_of(characteristic: str, product: str | None) -> str:
    """The subject of the out-of-spec alert of ``characteristic`` on ``product``'s parts."""
    return characteristic if product is None else f"{characteristic}{PARTS_SEPARATOR}{product}"


def series_name(subject: str) -> str:
    """The signal or characteristic of a subject of either form, its product left out."""
    return subject.partition(PARTS_SEPARATOR)[0].partition(SERIES_SEPARATOR)[0]
