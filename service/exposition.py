"""/metrics in Prometheus' text format, byte for byte what ``prometheus_client.generate_latest`` writes.

Why not ``generate_latest`` itself: a worker renders a scrape on its event loop, and per sample
prometheus-client validates every label name with a regular expression, escapes every label value
and sorts the labels, ~15 us a sample on these machines, ~2 ms a machine of the demo plant (about
130 series each): a worker with a few hundred machines stopped its stream for most of a second at
every scrape. The machines' series repeat the same few label names and values (tenant, site, line,
machine, window), so this renderer judges each distinct name and value once per scrape and each
label order once per family; everything else follows ``generate_latest`` line by line (type munging,
HELP escaping, OpenMetrics ``_created``/``_gsum``/``_gcount`` samples as gauges after their family),
and a test holds the two to the same bytes over every metric type and hostile label values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["render"]

_OM_SUFFIXES: Final = ("_created", "_gsum", "_gcount")
_TYPE_NAMES: Final = {
    "counter": "counter",
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
    "unknown": "untyped",
}
_NAME_SUFFIXES: Final = {"counter": "_total", "info": "_info"}


def _escape_value(value: str) -> str:
    """A label value as the text format quotes it (always UTF-8; backslash, newline and quote escaped)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(documentation: str) -> str:
    return documentation.replace("\\", r"\\").replace("\n", r"\n")


class _Memo(dict[str, str]):
    """``memo[key]`` computes ``function(key)`` the first time only (a scrape's names and values repeat)."""

    def __init__(self, function: Callable[[str], str]) -> None:
        super().__init__()
        self._function = function

    def __missing__(self, key: str) -> str:
        result = self[key] = self._function(key)
        return result


def render(registry: Collector) -> bytes:
    """``generate_latest(registry)`` (the default text format 0.0.4, names escaped to underscores)."""
    metric_names = _Memo(openmetrics.escape_metric_name)
    label_names = _Memo(openmetrics.escape_label_name)
    label_values = _Memo(_escape_value)
    output: list[str] = []
    for metric in registry.collect():
        try:
            om_samples = _family(metric, metric_names, label_names, label_values, output)
        except Exception as exception:
            exception.args = (exception.args or ("",)) + (metric,)
            raise
        for suffix, lines in sorted(om_samples.items()):
            name = metric_names[metric.name + suffix]
            output.append(f"# HELP {name} {_help(metric.documentation)}\n")
            output.append(f"# TYPE {name} gauge\n")
            output.extend(lines)
    return "".join(output).encode("utf-8")


def _family(
    metric: Any,
    metric_names: _Memo,
    label_names: _Memo,
    label_values: _Memo,
    output: list[str],
) -> dict[str, list[str]]:
    """One family's HELP, TYPE and sample lines into ``output``; its OpenMetrics-only samples returned."""
    mtype = metric.type
    name = metric_names[metric.name + _NAME_SUFFIXES.get(mtype, "")]
    output.append(f"# HELP {name} {_help(metric.documentation)}\n")
    output.append(f"# TYPE {name} {_TYPE_NAMES.get(mtype, mtype)}\n")
    om_names = {metric.name + suffix: suffix for suffix in _OM_SUFFIXES}
    om_samples: dict[str, list[str]] = {}
    # Per distinct label-name tuple (one or two per family): the names in sorted order, escaped.
    orders: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for sample in metric.samples:
        labels = sample.labels
        if labels:
            keys = tuple(labels)
            order = orders.get(keys)
            if order is None:
                order = orders[keys] = [(key, label_names[key]) for key in sorted(keys)]
            labelstr = (
                "{" + ",".join([f'{escaped}="{label_values[labels[key]]}"' for key, escaped in order]) + "}"
            )
        else:
            labelstr = ""
        timestamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
        value = floatToGoString(sample.value)  # type: ignore[no-untyped-call]  # prometheus_client's own
        line = f"{metric_names[sample.name]}{labelstr} {value}{timestamp}\n"
        suffix = om_names.get(sample.name)
        if suffix is None:
            output.append(line)
        else:
            om_samples.setdefault(suffix, []).append(line)
    return om_samples
