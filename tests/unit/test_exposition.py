"""service.exposition.render writes exactly what prometheus_client.generate_latest writes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from models.machine import MachineEngine
from models.plant import PlantConfig
from service.exposition import render
from service.metrics import build_registry
from streams.live import LiveMachines

HOSTILE = ["plain", "back\\slash", 'quo"te', "new\nline", "ünïcode ✓", "", "a,b=c", "{}", "\\n"]


class Collected:
    """A collector of families already built."""

    def __init__(self, families: Iterable[Any]) -> None:
        self.families = list(families)

    def collect(self) -> list[Any]:
        return self.families


def test_the_workers_registry_with_machines_renders_as_prometheus_client_does() -> None:
    plant = PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "machines": [
                {"tenant": "acme", "site": "p1", "line": "L1", "id": f"M0{i}", "ideal_cycle_s": 10.0}
                for i in range(1, 4)
            ],
            "micro_stop_s": 60,
            "state_timeout_s": 3600,
        }
    )
    engine = MachineEngine(plant)
    live = LiveMachines({machine.key for machine in plant.machines})
    start = 1_795_000_000_000
    for index, spec in enumerate(plant.machines):
        state = engine.new_state(spec)
        engine.on_state(state, spec, start, "running", None)
        engine.on_state(state, spec, start + 60_000, "down", 'jam "left"\\bay')  # telemetry's own text
        engine.on_state(state, spec, start + 120_000, "running", None)
        for second in range(1, 30):
            engine.on_cycle(state, spec, start + 120_000 + second * 10_000, 9.5 + index, "P\n1")
        engine.on_count(state, spec, start + 500_000, 29, 1, "P\n1", "burr ✓")
        live.update(state)
    registry, metrics = build_registry(live, plant)
    metrics.on_rebalance()
    metrics.on_send_failed("linepulse.alerts")
    exposed = generate_latest(registry)
    assert b"linepulse_oee_ratio{" in exposed and b'reason="jam \\"left\\"\\\\bay"' in exposed
    assert render(registry) == exposed


def test_every_metric_type_timestamps_and_hostile_labels() -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Counter("c_plain", "counter\\with\nhelp", ["a"], registry=registry).labels(a='x"y').inc(3)
    Gauge("g_plain", "gauge", ["b", "a"], registry=registry).labels(b="2", a="1").set(-0.0)
    Histogram("h_seconds", "histogram", ["le_not"], registry=registry).labels(le_not="z").observe(0.3)
    Summary("s_seconds", "summary", registry=registry).observe(7)
    Info("build", "info", registry=registry).info({"version": "1\n2", "commit": 'ab"c'})
    Enum("phase", "enum", states=["a", "b"], registry=registry).state("b")
    families: list[Any] = []
    counter = CounterMetricFamily("fam_events", "counted", labels=["zone", "Äcute"], created=12.5)
    counter.add_metric(["a\\b", "x"], 1, created=1.25, timestamp=1700000000.123)
    families.append(counter)
    gauge = GaugeMetricFamily("fam.dotted:name", "dots", labels=["odd.label", "ok"])
    for value in (0.0, -0.0, 1, 1e21, 123456789.0, 1.5e-300, math.inf, -math.inf, math.nan):
        gauge.add_metric([repr(value), "v"], value)
    families.append(gauge)
    families.append(GaugeMetricFamily("no_labels", "a gauge without labels", value=42))
    summary = SummaryMetricFamily("fam_summary", "sum", labels=["q"])
    summary.add_metric(["1"], count_value=3, sum_value=4.5)
    families.append(summary)
    histogram = HistogramMetricFamily("fam_hist", "hist", labels=["w"])
    histogram.add_metric(["1"], buckets=[("0.5", 1), ("+Inf", 3)], sum_value=2.0)
    families.append(histogram)
    gauge_histogram = GaugeHistogramMetricFamily("fam_ghist", "ghist", labels=["w"])
    gauge_histogram.add_metric(["1"], buckets=[("1.0", 2), ("+Inf", 4)], gsum_value=3.0)
    families.append(gauge_histogram)
    info = InfoMetricFamily("fam_info", "info", labels=["w"])
    info.add_metric(["1"], {"k": "v\\"})
    families.append(info)
    stateset = StateSetMetricFamily("fam_states", "states", labels=["w"])
    stateset.add_metric(["1"], {"on": True, "off": False})
    families.append(stateset)
    unknown = UnknownMetricFamily("fam_unknown", "unknown", labels=["w"])
    unknown.add_metric(["1"], 2.0)
    families.append(unknown)
    for collected in (registry, Collected(families)):
        expected = generate_latest(collected)  # type: ignore[arg-type]
        assert expected  # the renderer is compared with something
        assert render(collected) == expected  # type: ignore[arg-type]


label_texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**53), max_value=2**53)
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(label_texts, label_texts, values, st.none() | st.floats(0, 2e9)), min_size=0, max_size=12
    ),
    counter=st.booleans(),
)
def test_random_families_render_as_prometheus_client_does(
    rows: list[tuple[str, str, float, float | None]], counter: bool
) -> None:
    family_type = CounterMetricFamily if counter else GaugeMetricFamily
    family = family_type("random_family", "random\\ help\n", labels=["b", "a"])
    for b, a, value, timestamp in rows:
        family.add_metric([b, a], value, timestamp=timestamp)
    same_labels_twice = GaugeMetricFamily("second", "the same values again", labels=["a", "b"])
    for b, a, value, _ in rows:
        same_labels_twice.add_metric([a, b], value)
    collected = Collected([family, same_labels_twice])
    assert render(collected) == generate_latest(collected)  # type: ignore[arg-type]
