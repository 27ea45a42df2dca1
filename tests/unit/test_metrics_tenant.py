"""/metrics?tenant=ID: one tenant's machine and line series, none of another's, none of the worker's."""

from __future__ import annotations

from prometheus_client import generate_latest

from models.machine import MachineEngine
from models.plant import PlantConfig
from service.metrics import TenantCollectors, build_registry
from streams.lines import LineAggregator
from streams.live import LiveLines, LiveMachines
from streams.processing import TelemetryProcessor


def test_one_tenants_series_only() -> None:
    plant = PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "machines": [
                {"tenant": tenant, "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0}
                for tenant in ("acme", "beta")
            ],
        }
    )
    engine = MachineEngine(plant)
    live = LiveMachines({machine.key for machine in plant.machines})
    lines = LiveLines()
    aggregator = LineAggregator(plant, "v1")
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=1 << 40)
    start = 1_795_000_000_000
    for spec in plant.machines:
        state = engine.new_state(spec)
        engine.on_state(state, spec, start, "running", None)
        engine.on_count(state, spec, start + 600_000, 7, 1, None, None)
        engine.on_state(state, spec, start + 7_200_000, "idle", None)  # the first hour closes
        live.update(state)
        line_state = None
        for record in processor.open_window_records(state):
            closed = {**record.model_dump(mode="json"), "complete": True}
            line_state, line_record = aggregator.apply(line_state, closed)
            if line_record is not None:
                lines.update(line_record)
    registry, _ = build_registry(live, plant, lines)
    everyone = generate_latest(registry).decode()
    assert 'linepulse_line_oee_ratio{line="L1",site="p1",tenant="beta"' in everyone
    assert "linepulse_messages_total" in everyone
    acme = generate_latest(TenantCollectors(live, plant, lines, "acme")).decode()  # type: ignore[arg-type]
    assert 'linepulse_good_units_total{line="L1",machine="M01",site="p1",tenant="acme"} 7.0' in acme
    assert 'linepulse_line_oee_ratio{line="L1",site="p1",tenant="acme"' in acme
    assert 'tenant="beta"' not in acme and "linepulse_messages_total" not in acme
    # The same families as the whole scrape, less the worker's own: a tenant's dashboard works alike.
    assert {line.split()[2] for line in acme.splitlines() if line.startswith("# TYPE")} < {
        line.split()[2] for line in everyone.splitlines() if line.startswith("# TYPE")
    }
