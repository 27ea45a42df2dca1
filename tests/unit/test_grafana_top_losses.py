"""The dashboard's "Top losses" panel shows the losses a KPI record's ``top_losses`` counts, no others.

Its query is evaluated by promtool (Prometheus's own PromQL engine) on the series a real worker
registry exposes for a machine whose hour holds a breakdown, a planned break and time without
telemetry. Before, the panel left out only ``planned_stop``: an hour of missing data (``no_data``),
which is no OEE loss and which the record leaves out, topped the panel.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.machine_state import MachineState
from service.metrics import build_registry
from service.plant_file import load_demo_plant
from streams.live import LiveMachines
from streams.processing import Applied, TelemetryProcessor
from tests.integration.observability import promtool_verdict

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards" / "linepulse.json"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def _panel_expr(window: str) -> str:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    (panel,) = [p for p in panels if p["title"] == "Top losses this $window"]
    expr: str = panel["targets"][0]["expr"]
    for variable in ("tenant", "site", "line", "machine"):
        expr = expr.replace(f"${variable}", ".*")  # "All"
    return expr.replace("$window", window)


def _machine_hour() -> tuple[str, list[dict[str, object]]]:
    """A's open hour: running, 10 min down (jam), a 5 min break, a 1 min and a 10 min idle (a small
    and an unplanned stop of one state and reason), then 20 min without telemetry. Returns the
    exposition and the record's losses that are OEE losses (those with a big loss)."""
    plant = load_demo_plant()
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}
    hour = 1_767_571_200_000  # 2026-01-05 09:00 +09:00, inside the demo's day shift
    minutes = [
        (0, {"kind": "state", "state": "running"}),
        (1, {"kind": "count", "good": 5, "scrap": 0}),
        (5, {"kind": "state", "state": "down", "reason": "jam"}),
        (15, {"kind": "state", "state": "running"}),
        (16, {"kind": "count", "good": 5, "scrap": 0}),
        (20, {"kind": "state", "state": "planned_stop", "reason": "break"}),
        (25, {"kind": "state", "state": "running"}),
        (26, {"kind": "state", "state": "idle"}),
        (27, {"kind": "state", "state": "running"}),
        (28, {"kind": "state", "state": "idle"}),
        (38, {"kind": "state", "state": "running"}),
        (39, {"kind": "count", "good": 5, "scrap": 0}),
        # silent from here: past state_timeout_s the time is no_data
        (59, {"kind": "count", "good": 5, "scrap": 0}),
    ]
    states: dict[str, MachineState] = {}
    state: MachineState | None = None
    for offset, (minute, body) in enumerate(minutes):
        event = {**base, "ts": hour + minute * MINUTE_MS, **body}
        outcome = processor.process(
            b"demo/M01",
            orjson.dumps(event),
            timestamp_ms=hour + HOUR_MS,
            load_state=states.get,
            source="t:0",
            offset=offset,
        )
        assert isinstance(outcome, Applied), outcome
        state = states[outcome.state.key] = outcome.state
    assert state is not None
    live = LiveMachines({machine.key for machine in plant.machines})
    live.update(state)
    registry, _ = build_registry(live, plant)
    (record,) = [r for r in processor.open_window_records(state) if r.window == "hour"]
    entries = state.windows["hour"].loss_entries()
    assert {e["state"] for e in entries} >= {"down", "planned_stop", "no_data"}, entries
    oee_losses = [e for e in entries if e["big_loss"] is not None]
    assert [(e["big_loss"], e["state"], e["reason"]) for e in record.top_losses] == [
        (e["big_loss"], e["state"], e["reason"]) for e in oee_losses
    ]
    idle = sorted((e["big_loss"], e["seconds"]) for e in oee_losses if e["state"] == "idle")
    assert idle == [("small_stops", 60.0), ("unplanned_stops", 600.0)], idle
    return generate_latest(registry).decode(), oee_losses


def _series(exposition: str) -> list[dict[str, str]]:
    found = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "linepulse_loss_seconds":
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                found.append({"series": f"linepulse_loss_seconds{{{labels}}}", "values": f"{sample.value}x3"})
    return found


def _panel_evaluates_to(
    tmp_path: Path, exposition: str, samples: list[dict[str, object]]
) -> subprocess.CompletedProcess[str]:
    """promtool's verdict on the panel's hour query over ``exposition``'s loss series, expecting
    exactly ``samples`` (``{"labels": ..., "value": ...}``)."""
    return promtool_verdict(tmp_path, _series(exposition), _panel_expr("hour"), "2m", samples)


def test_the_top_losses_panel_shows_exactly_the_records_oee_losses(tmp_path: Path) -> None:
    exposition, oee_losses = _machine_hour()
    expected: dict[tuple[str, str, str], float] = {}
    for loss in oee_losses:
        key = (str(loss["big_loss"]), str(loss["state"]), str(loss["reason"] or "-"))
        expected[key] = expected.get(key, 0.0) + float(str(loss["seconds"]))
    assert expected and not [key for key in expected if key[1] == "no_data"]
    samples: list[dict[str, object]] = [
        {"labels": f'{{big_loss="{big}",reason="{reason}",state="{state}",tenant="demo"}}', "value": seconds}
        for (big, state, reason), seconds in sorted(expected.items())
    ]
    result = _panel_evaluates_to(tmp_path, exposition, samples)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_says_no_when_the_panel_would_show_missing_data(tmp_path: Path) -> None:
    """The check above can fail: the same evaluation expecting no_data among the losses."""
    exposition, _ = _machine_hour()
    missing_data: list[dict[str, object]] = [
        {"labels": '{big_loss="-",reason="-",state="no_data",tenant="demo"}', "value": 1}
    ]
    result = _panel_evaluates_to(tmp_path, exposition, missing_data)
    assert result.returncode != 0
