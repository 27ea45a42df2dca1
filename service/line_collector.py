"""Per-line KPIs of the newest complete window, from the line view this worker folds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.machine_collector import RATIOS
from streams.records import LineKpiRecord

__all__ = ["LineCollector"]


class LineCollector(Collector):
    """Per-line KPIs of the line record shown for each window kind (the newest complete window, before
    the first one the newest: :func:`streams.lines.supersedes`), for the lines this worker folds.

    Each line is folded on exactly one worker of the group (its ``kpis-by-line`` partition), so
    summing over workers never counts a line twice. These are closed windows; the open windows'
    line figures come from the machine series through the recording rules.
    """

    def __init__(self, lines: Iterable[LineKpiRecord]) -> None:
        self.lines = lines

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ("tenant", "site", "line", "window")
        ratios = {
            name: GaugeMetricFamily(
                f"linepulse_line_{name}_ratio",
                f"Line {name} of the newest complete window (time-weighted over the line's machines).",
                labels=labels,
            )
            for name in RATIOS[:4]
        }
        end = GaugeMetricFamily(
            "linepulse_line_window_end_seconds",
            "End of the window these line figures are of (Unix s).",
            labels=labels,
        )
        complete = GaugeMetricFamily(
            "linepulse_line_complete",
            "1 when every machine of the line reported the window (0 only before the line's first).",
            labels=labels,
        )
        held = GaugeMetricFamily(
            "linepulse_line_held_by_seconds",
            "Own stop seconds of the machine that held the line in the newest complete window.",
            labels=(*labels, "machine", "state", "reason"),
        )
        for record in self.lines:
            values = [record.tenant, record.site, record.line, record.window]
            for name, family in ratios.items():
                value = getattr(record, name)
                if value is not None:
                    family.add_metric(values, value)
            end.add_metric(values, record.end_ms / 1000.0)
            complete.add_metric(values, 1.0 if record.complete else 0.0)
            if record.held_by is not None:
                by = record.held_by
                held.add_metric(
                    [*values, by["machine"], by["state"] or "-", by["reason"] or "-"], by["stop_s"]
                )
        yield from ratios.values()
        yield from (end, complete, held)
