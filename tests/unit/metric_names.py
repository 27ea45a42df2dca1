"""The sample names linepulse's /metrics really exposes, and the metric names a PromQL text uses.

Shared by the Grafana dashboard and Prometheus rules tests so that renaming a metric of the registry
service/metrics.py assembles breaks them instead of leaving a panel or an alert silently empty.
"""

from __future__ import annotations

import re
import time
from functools import cache

import numpy as np
import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.anomaly.scoring import AnomalyWindow
from models.machine_state import MachineState
from models.monitoring_config import CAPABILITY_MIN_PARTS
from service.metrics import build_registry
from service.plant_file import load_demo_plant
from streams.lines import LineAggregator
from streams.live import LiveLines, LiveMachines
from streams.processing import Applied, TelemetryProcessor

__all__ = ["exposed_sample_names", "metric_names_in"]

# Everything between quotes or braces is a label value or matcher, never a metric name.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w$:])[A-Za-z_:][\w:]*")


def _events(now_ms: int) -> list[dict[str, object]]:
    base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}
    minute = 60_000
    hour = 60 * minute
    # Inside one clock hour, which is inside one hour, shift and day window of the demo plant (its
    # shifts start on the hour): events straddling a boundary left every open window without the
    # count, so OEE was undefined and its family empty in the quarter hour after such a boundary.
    start = now_ms // hour * hour - hour + 5 * minute
    return [
        {**base, "ts": start, "kind": "state", "state": "running"},
        {**base, "ts": start + minute, "kind": "count", "good": 5, "scrap": 1},
        {**base, "ts": start + 2 * minute, "kind": "cycle", "seconds": 6.5},
        {**base, "ts": start + 3 * minute, "kind": "sensor", "signal": "force", "value": 1.5},
        # Down for 10 minutes (a loss with a reason) opens machine_down; out of spec opens another alert.
        {**base, "ts": start + 4 * minute, "kind": "state", "state": "down", "reason": "jam"},
        {**base, "ts": start + 14 * minute, "kind": "quality", "characteristic": "d", "value": 9, "usl": 5},
        # More parts: capability indices need monitoring.capability_min_parts.
        *(
            {
                **base,
                "ts": start + 15 * minute + part,
                "kind": "quality",
                "characteristic": "d",
                "value": 4.5 - part / 100,
                "usl": 5,
            }
            for part in range(CAPABILITY_MIN_PARTS)
        ),
    ]


@cache
def exposed_sample_names() -> frozenset[str]:
    """Scrape a registry assembled as ``build_worker`` does, with one machine that has seen everything.

    Sample names, not family names: counters appear as ``*_total`` (and ``*_created``), which is
    what PromQL queries name. Fails if any declared family came out empty, so the set is complete.
    """
    plant = load_demo_plant()
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    live = LiveMachines({machine.key for machine in plant.machines})
    lines = LiveLines()
    states: dict[str, MachineState] = {}
    registry, metrics = build_registry(live, plant, lines)
    metrics.ready.set(1)
    now_ms = int(time.time() * 1000)
    for offset, event in enumerate(_events(now_ms)):
        key = f"{event['tenant']}/{event['machine']}".encode()
        outcome = processor.process(
            key, orjson.dumps(event), timestamp_ms=now_ms, load_state=states.get, source="t:0", offset=offset
        )
        assert isinstance(outcome, Applied), outcome
        states[outcome.state.key] = outcome.state
        live.update(outcome.state)
        metrics.on_outcome(outcome)
    # An anomaly model that serves the machine but lacks its signal (models.anomaly.scoring, Unscored).
    states["demo/M01"].anomaly = AnomalyWindow(
        model="demo.M01@v1",
        signals=("current",),
        history=np.empty((0, 1)),
        hold=np.full(1, np.nan),
        hold_ts=np.full(1, -1, dtype=np.int64),
        unscored=("current",),
    )
    metrics.on_rebalance()
    metrics.on_send_failed("kpis")
    metrics.on_batch_fenced("telemetry")
    # The line view folds closed windows; fold the open ones as if they had closed.
    aggregator = LineAggregator(plant, processor.config_version)
    for state in states.values():
        for record in processor.open_window_records(state):
            _, line_record = aggregator.apply(None, {**record.model_dump(mode="json"), "complete": True})
            assert line_record is not None
            lines.update(line_record)
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        samples = {sample.name for sample in family.samples}
        assert samples, f"{family.name} exposed no sample: extend the events above"
        names |= samples
    return frozenset(names)


def metric_names_in(promql: str) -> set[str]:
    """Metric names (plain and recorded, i.e. with ``:``) a PromQL expression selects.

    Conservative: strings, label matchers and range selectors are dropped first, then every word
    that looks like ``linepulse_*`` or contains ``:`` is taken as a metric name.
    """
    text = _QUOTED.sub(" ", promql)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.startswith("linepulse_") or ":" in name}
