"""``linepulse analyze`` says which machine its anomaly model cannot score (the audit's setup).

A CNC type model trained on the demo plant; a sixth machine of type ``cnc`` that is a press (the
simulator gives it press signals: current and vibration_rms as the model's, oil_temp instead of its
spindle_temp) with an anomaly burst. Before, analyze scored 0
rows for it and said nothing: no alert, nothing on stderr, nothing in the summary.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from service.cli import main
from service.plant_file import load_plant
from service.simulator.engine import PlantSimulator
from service.simulator.faults import FaultKind, FaultSpec, resolve_faults

START_MS = 1_767_564_000_000  # 2026-01-05T07:00+09:00, a Monday day shift of the demo plant
HOUR_MS = 3_600_000
DEMO = Path(__file__).parents[2] / "service" / "plants" / "demo.yaml"


def _simulate(
    plant_file: Path | None, path: Path, start_ms: int, hours: int, faults: list[FaultSpec]
) -> None:
    plant = load_plant(plant_file)
    simulator = PlantSimulator(
        plant, seed=6, start_ms=start_ms, faults=resolve_faults(faults, plant, start_ms)
    )
    path.write_bytes(
        b"\n".join(orjson.dumps(r) for r in simulator.events(start_ms + hours * HOUR_MS)) + b"\n"
    )


def test_analyze_names_the_machine_its_type_model_cannot_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    history, registry = tmp_path / "history.jsonl", tmp_path / "registry"
    _simulate(None, history, START_MS, 2, [])
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(
        DEMO.read_text().replace(
            "\nlosses:",
            "\n  - {tenant: demo, site: p1, line: L2, id: M06, name: Press 6, type: cnc, ideal_cycle_s: 6.0}"
            "\n\nlosses:",
            1,
        )
    )
    config = ["--config", str(plant_file)]
    train = ["train", "--telemetry", str(history), "--registry", str(registry), "--machine-type", "cnc"]
    assert main([*train, *config]) == 0
    capsys.readouterr()
    day2, telemetry, out = START_MS + 24 * HOUR_MS, tmp_path / "day2.jsonl", tmp_path / "out"
    burst = FaultSpec(FaultKind.ANOMALY_BURST, "M06", None, HOUR_MS + 10 * 60_000, 10 * 60_000)
    _simulate(plant_file, telemetry, day2, 3, [burst])
    analyze = ["analyze", str(telemetry), "--out", str(out), "--model-registry", str(registry), *config]
    assert main(analyze) == 0
    captured = capsys.readouterr()
    summary = orjson.loads(captured.out)
    missing = ["spindle_temp"]
    # Only M06: M02 and M04, which the model learnt from, are scored.
    assert list(summary["anomaly_unscored"]) == ["demo/M06"]
    unscored = summary["anomaly_unscored"]["demo/M06"]
    assert unscored["model"] == "demo.cnc@v1" and unscored["unscored"]["missing_signals"] == missing
    since_ms = datetime.fromisoformat(unscored["unscored"]["since"]).timestamp() * 1000
    assert day2 <= since_ms <= day2 + 60_000  # from its first readings on
    # On stderr from the command line (logging's last resort); pytest takes the records instead.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"anomaly model demo.cnc@v1 cannot score demo/M06: no reading of {missing}")
