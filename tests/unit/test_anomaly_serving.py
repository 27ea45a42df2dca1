"""Anomaly scoring in the engine: train from a simulated file, then an anomaly_burst raises an alert."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.machine_state import MachineState
from service.anomaly_models import RegistryModels
from service.cli import main
from service.model_registry import ModelRegistry
from service.plant_file import load_plant
from service.simulator.engine import PlantSimulator
from service.simulator.faults import FaultKind, FaultSpec, resolve_faults
from streams.decode import Rejection
from streams.processing import TelemetryProcessor
from streams.records import record_bytes

START_MS = 1_767_564_000_000  # 2026-01-05T06:00+09:00, a Monday day shift of the demo plant
HOUR_MS = 3_600_000


def _write(
    path: Path, start_ms: int, hours: int, seed: int, faults: list[FaultSpec] | None = None
) -> list[bytes]:
    plant = load_plant(None)
    resolved = resolve_faults(faults or [], plant, start_ms)
    simulator = PlantSimulator(plant, seed=seed, start_ms=start_ms, faults=resolved)
    lines = [orjson.dumps(record) for record in simulator.events(start_ms + hours * HOUR_MS)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anomaly")
    history = root / "history.jsonl"
    _write(history, START_MS, 6, seed=3)
    args = ["train", "--telemetry", str(history), "--registry", str(root / "registry"), "--machine", "M01"]
    assert main(args) == 0
    return root / "registry"


def test_train_writes_a_versioned_model_with_metadata(registry: Path) -> None:
    manifest = json.loads((registry / "demo.M01" / "manifest.json").read_text())
    assert manifest["latest"] == "v1"
    metadata = manifest["versions"][0]["metadata"]
    assert metadata["machines"] == ["demo/M01"]
    assert metadata["training"]["rows"] > 10_000 and metadata["training"]["start_ms"] >= START_MS
    assert metadata["features"][0].endswith(":mean") and metadata["threshold"] > 0
    assert set(metadata["calibration"]) == {"false_alarm_rate", "margin", "training_alarm_rate"}


def _run(
    lines: list[bytes],
    models: RegistryModels,
    after_line: Callable[[list[dict[str, Any]]], RegistryModels | None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, MachineState]]:
    """The anomaly alert records of ``lines``; ``after_line`` sees those so far after each line, and
    may restart the worker by returning the models it starts with (the states restored from JSON)."""

    def processor() -> TelemetryProcessor:
        return TelemetryProcessor(
            load_plant(None), max_payload_bytes=1 << 20, max_future_ms=HOUR_MS, anomaly_models=models
        )

    worker = processor()
    states: dict[str, MachineState] = {}
    alerts: list[dict[str, Any]] = []
    for line in lines:
        outcome = worker.process(
            None, line, timestamp_ms=START_MS + 1000 * HOUR_MS, load_state=states.get, require_key=False
        )
        assert not isinstance(outcome, Rejection)
        states[outcome.state.key] = outcome.state
        alerts += [orjson.loads(record_bytes(a)) for a in outcome.alerts if a.kind == "anomaly"]
        restarted = None if after_line is None else after_line(alerts)
        if restarted is not None:
            models = restarted
            worker = processor()
            states = {key: _restored(state) for key, state in states.items()}
    return alerts, states


def _restored(state: MachineState) -> MachineState:
    """``state`` as a restarted worker reads it back from the table's changelog."""
    return MachineState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))


def _day2_with_burst(tmp_path: Path, machine: str) -> list[bytes]:
    """3 hours of day 2 with a 10-minute anomaly burst on ``machine`` after 2 h."""
    burst = FaultSpec(FaultKind.ANOMALY_BURST, machine, None, 2 * HOUR_MS, 10 * 60_000)
    return _write(tmp_path / "day2.jsonl", START_MS + 24 * HOUR_MS, 3, seed=4, faults=[burst])


def _burst_alerts(
    registry: Path, tmp_path: Path, machine: str
) -> tuple[list[dict[str, Any]], dict[str, MachineState]]:
    """Anomaly alerts of :func:`_day2_with_burst`; every alert opened must lie inside the burst (no
    false alarm in 3 hours) and carry its evidence."""
    day2 = START_MS + 24 * HOUR_MS
    alerts, states = _run(_day2_with_burst(tmp_path, machine), RegistryModels(registry))
    opened = [a for a in alerts if a["status"] == "open"]
    assert opened, "the burst raised no anomaly alert"
    burst_start, burst_end = day2 + 2 * HOUR_MS, day2 + 2 * HOUR_MS + 10 * 60_000
    for alert in opened:
        assert alert["machine"] == machine
        started = datetime.fromisoformat(str(alert["started_at"])).timestamp() * 1000
        assert burst_start <= started <= burst_end
        evidence = alert["evidence"]
        assert isinstance(evidence, dict)
        assert evidence["model_version"] == "v1" and evidence["score"] > evidence["threshold"]
        assert len(evidence["top_features"]) == 3
    for alert in alerts:
        assert isinstance(alert["evidence"], dict)
    return opened, states


def test_an_anomaly_burst_raises_one_anomaly_alert_with_evidence(registry: Path, tmp_path: Path) -> None:
    opened, states = _burst_alerts(registry, tmp_path, "M01")
    assert len(opened) <= 3
    assert states["demo/M01"].anomaly is not None
    # The state, including the feature window, survives the table's JSON round trip.
    restored = MachineState.from_dict(orjson.loads(orjson.dumps(states["demo/M01"].to_dict())))
    assert (
        restored.anomaly is not None
        and restored.anomaly.history.shape == states["demo/M01"].anomaly.history.shape
    )


def test_analyze_scores_with_the_registry(registry: Path, tmp_path: Path) -> None:
    day2 = START_MS + 24 * HOUR_MS
    burst = FaultSpec(FaultKind.ANOMALY_BURST, "M01", None, HOUR_MS, 10 * 60_000)
    _write(tmp_path / "t.jsonl", day2, 2, seed=5, faults=[burst])
    out = tmp_path / "out"
    assert (
        main(["analyze", str(tmp_path / "t.jsonl"), "--out", str(out), "--model-registry", str(registry)])
        == 0
    )
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a["kind"] == "anomaly" and a["evidence"]["model"] == "demo.M01" for a in alerts)


def test_train_per_machine_type_learns_every_machine_of_the_type(
    registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    history = registry.parent / "history.jsonl"
    by_type = tmp_path / "registry"
    # The demo plant and a sixth CNC machine that has no history yet.
    plant_file = tmp_path / "plant.yaml"
    demo_yaml = (Path(__file__).parents[2] / "service" / "plants" / "demo.yaml").read_text()
    plant_file.write_text(
        demo_yaml.replace(
            "\nlosses:",
            "\n  - {tenant: demo, site: p1, line: L2, id: M06, name: CNC lathe 6, type: cnc, "
            "ideal_cycle_s: 40.0}\n\nlosses:",
            1,
        )
    )
    base = ["train", "--telemetry", str(history), "--registry", str(by_type), "--config", str(plant_file)]
    assert main([*base, "--machine-type", "cnc"]) == 0
    out = capsys.readouterr()
    assert (
        "registered demo.cnc v1" in out.out
        and "skipped demo/M06 (no readings of ['current', 'spindle_temp'" in out.err
    )
    assert _threshold(by_type, "demo.cnc") < 2 * _threshold(registry, "demo.M01")  # no window spans machines
    metadata = json.loads((by_type / "demo.cnc" / "manifest.json").read_text())["versions"][0]["metadata"]
    assert (
        metadata["machines"] == [] and metadata["machine_types"] == ["cnc"] and metadata["tenant"] == "demo"
    )
    assert metadata["training"]["machines"] == ["demo/M02", "demo/M04"]
    plant = load_plant(plant_file)
    served = {
        m.id: (model.name if (model := RegistryModels(by_type).model_for(m)) else None)
        for m in plant.machines
    }
    assert served == {
        "M01": None,
        "M02": "demo.cnc",
        "M03": None,
        "M04": "demo.cnc",
        "M05": None,
        "M06": "demo.cnc",
    }
    opened, _ = _burst_alerts(by_type, tmp_path, "M02")
    assert {alert["evidence"]["model"] for alert in opened} == {"demo.cnc"}  # type: ignore[index]
    # A machine's own model beats its type's, whatever the names.
    assert main([*base, "--machine", "M02"]) == 0
    served = {
        m.id: (model.name if (model := RegistryModels(by_type).model_for(m)) else None)
        for m in plant.machines
    }
    assert served["M02"] == "demo.M02" and served["M04"] == "demo.cnc"
    # A reused --name never takes a model away from what it serves.
    assert main([*base, "--machine", "M04", "--name", "demo.cnc"]) == 2
    err = capsys.readouterr().err
    assert "--name demo.cnc: its versions serve types ['cnc'] of tenant demo; this one would serve" in err
    # Two models equally specific for a machine: refused, naming the other and how to go on.
    assert main([*base, "--machine", "M02", "--machine", "M04", "--name", "cnc-cell"]) == 2
    err = capsys.readouterr().err
    assert "model demo.M02 already serves demo/M02" in err and "linepulse models remove demo.M02" in err
    registry_args = ["--registry", str(by_type)]
    assert main(["models", "remove", "demo.M02", *registry_args]) == 0
    assert main([*base, "--machine", "M02", "--machine", "M04", "--name", "cnc-cell"]) == 0
    capsys.readouterr()
    assert main(["models", "list", *registry_args]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["cnc-cell", "demo.cnc"]
    assert "serves machines ['demo/M02', 'demo/M04']" in listing[0]
    assert "serves types ['cnc'] of tenant demo" in listing[1]
    # A copied model directory ties with its original, which train would have refused: list says so.
    shutil.copytree(by_type / "cnc-cell", by_type / "cnc-copy")
    assert main(["models", "list", *registry_args]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["cnc-cell", "cnc-copy", "demo.cnc", "TIE"]
    assert listing[3].startswith(
        "TIE  cnc-cell and cnc-copy both serve demo/M02, demo/M04: workers serve cnc-cell"
    )
    m02 = plant.machine("demo", "M02")
    assert m02 is not None
    with caplog.at_level(logging.WARNING, logger="service.anomaly_models"):
        served = RegistryModels(by_type).model_for(m02)
    assert served is not None and served.name == "cnc-cell"
    assert "anomaly models tie: cnc-cell and cnc-copy both serve demo/M02, demo/M04" in caplog.text
    # A copy none of whose versions verifies serves nothing: no tie, and the listing says so.
    for artifact in (by_type / "cnc-copy").glob("v*.skops"):
        artifact.write_bytes(artifact.read_bytes()[::-1])
    assert main(["models", "list", *registry_args]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["cnc-cell", "cnc-copy", "demo.cnc"]
    assert listing[1].endswith("; workers serve none of its versions")


def test_an_isolation_forest_with_its_defaults_raises_the_burst(registry: Path, tmp_path: Path) -> None:
    """Its scores never exceed 1: with T²+Q's margin of 3 no row could reach the threshold, and with
    the window means its splits isolated start-ups rather than the burst (docs/anomaly.md)."""
    history = registry.parent / "history.jsonl"
    forest = tmp_path / "forest"
    args = ["train", "--telemetry", str(history), "--registry", str(forest), "--machine", "M01"]
    assert main([*args, "--detector", "isolation_forest", "--margin", "3", "--false-alarm-rate", "0"]) == 2
    assert main([*args, "--detector", "isolation_forest"]) == 0
    assert _threshold(forest, "demo.M01") < 1
    opened, _ = _burst_alerts(forest, tmp_path, "M01")
    assert {alert["evidence"]["model"] for alert in opened} == {"demo.M01"}  # type: ignore[index]


def _threshold(registry: Path, name: str) -> float:
    manifest = json.loads((registry / name / "manifest.json").read_text())
    return float(manifest["versions"][-1]["metadata"]["threshold"])


def test_train_refuses_an_unknown_machine_type(
    registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = registry.parent / "history.jsonl"
    args = ["train", "--telemetry", str(history), "--registry", str(tmp_path), "--machine-type", "robot"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "--machine-type: no machine of the plant has type 'robot'" in error
    assert "['assembly', 'cnc', 'press']" in error


def test_train_names_a_machine_the_plant_does_not_have(
    registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = registry.parent / "history.jsonl"
    args = ["train", "--telemetry", str(history), "--registry", str(tmp_path), "--machine", "M42"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "--machine: machine 'M42' is not in the plant configuration (it has demo/M01, demo/M02" in error


def test_train_refuses_machines_of_two_tenants(
    registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One model serving several tenants' machines would make one tenant's readings another's normal
    (as --machine-type already refused)."""
    history = registry.parent / "history.jsonl"
    plant_file = tmp_path / "plant.yaml"
    demo_yaml = (Path(__file__).parents[2] / "service" / "plants" / "demo.yaml").read_text()
    plant_file.write_text(
        demo_yaml.replace(
            "\nlosses:",
            "\n  - {tenant: beta, site: p9, line: L1, id: M01, type: cnc, ideal_cycle_s: 40.0}\n\nlosses:",
            1,
        )
    )
    out = tmp_path / "registry"
    base = ["train", "--telemetry", str(history), "--registry", str(out), "--config", str(plant_file)]
    assert main([*base, "--machine", "demo/M01", "--machine", "beta/M01", "--name", "pooled"]) == 2
    assert "--machine: machines of tenants ['beta', 'demo']; a model learns from one tenant's" in (
        capsys.readouterr().err
    )
    assert not (out / "pooled").exists()


def test_removing_the_model_resolves_its_open_episode(registry: Path, tmp_path: Path) -> None:
    """`linepulse models remove` while the machine's anomaly alert is open: the episode ends at the
    machine's next sensor batch, naming the model, rather than staying open for ever."""
    own = tmp_path / "registry"
    shutil.copytree(registry, own)
    now = [0.0]
    removed_after: list[int] = []

    def remove_once_open(alerts: list[dict[str, Any]]) -> None:
        if not removed_after and any(alert["status"] == "open" for alert in alerts):
            ModelRegistry(own).remove("demo.M01")
            now[0] = 5.0  # the next check finds it gone
            removed_after.append(len(alerts))

    models = RegistryModels(own, reload_interval_s=1.0, clock=lambda: now[0])
    alerts, states = _run(_day2_with_burst(tmp_path, "M01"), models, remove_once_open)
    assert removed_after == [1], "the burst opened no anomaly alert"
    opened, resolved = alerts
    assert resolved["id"] == opened["id"] and resolved["status"] == "resolved"
    assert resolved["resolution"]["by"] == "model_removed"
    assert resolved["resolution"]["model"] == "demo.M01@v1"
    assert states["demo/M01"].anomaly is None


class _ListingFails(ModelRegistry):
    """A registry whose directory cannot be listed while ``failing`` is set (a share not mounted yet,
    a permission taken away: the tests run as root, so a mode cannot deny it)."""

    failing = True

    def names(self) -> list[str]:
        if self.failing:
            raise PermissionError(13, "Permission denied", str(self.root))
        return super().names()


def test_a_worker_started_while_the_registry_is_unreadable_keeps_the_open_episode(
    registry: Path, tmp_path: Path
) -> None:
    """A restart with the registry unreadable knows of no model, but that is not a removal: the open
    episode stays open (no `model_removed`) and ends as usual once the registry reads again."""
    unreadable = _ListingFails(registry)
    now = [0.0]
    lines_since_restart: list[int] = []

    def restart_once_open(alerts: list[dict[str, Any]]) -> RegistryModels | None:
        if lines_since_restart:
            lines_since_restart[0] += 1
            if lines_since_restart[0] == 500:  # ~10 minutes of the plant's lines (~50 a minute)
                unreadable.failing, now[0] = False, 5.0
            return None
        if any(alert["status"] == "open" for alert in alerts):
            lines_since_restart.append(0)
            return RegistryModels(unreadable, reload_interval_s=1.0, clock=lambda: now[0])
        return None

    alerts, states = _run(_day2_with_burst(tmp_path, "M01"), RegistryModels(registry), restart_once_open)
    assert lines_since_restart and lines_since_restart[0] > 500, "the burst opened no anomaly alert"
    opened, resolved = alerts
    assert resolved["id"] == opened["id"] and resolved["status"] == "resolved"
    assert resolved["resolution"]["by"] == "scores_normal"
    assert states["demo/M01"].anomaly is not None and states["demo/M01"].anomaly.model == "demo.M01@v1"


def test_train_learns_to_hold_a_slow_signal_between_its_readings(tmp_path: Path) -> None:
    """oil_temp thinned to one reading per 15 minutes (a lab value): held for twice that, so every
    row of the history is still learnt (the shortest bound lost a third of them, without a word),
    and the bound is in the model and its manifest."""
    from service.train import collect, file_records

    full = _write(tmp_path / "full.jsonl", START_MS, 3, seed=3)
    thinned, last = [], -HOUR_MS
    for line in full:
        record = orjson.loads(line)
        if record.get("kind") == "samples" and record["machine"] == "M01":
            signals = []
            for block in record["signals"]:
                if block["signal"] == "oil_temp":
                    if block["ts"][0] < last + 15 * 60_000:
                        continue
                    last = block["ts"][0]
                    signals.append({**block, "ts": block["ts"][:1], "values": block["values"][:1]})
                else:
                    signals.append(block)
            record["signals"] = signals
        thinned.append(orjson.dumps(record))
    (tmp_path / "thinned.jsonl").write_bytes(b"\n".join(thinned) + b"\n")
    plant = load_plant(None)
    [m01] = [machine for machine in plant.machines if machine.id == "M01"]

    def collected(name: str) -> Any:
        records = file_records(tmp_path / name)
        return collect(
            records, plant, (m01,), signals=None, start_ms=None, end_ms=None, max_future_ms=HOUR_MS
        )

    data, reference = collected("thinned.jsonl"), collected("full.jsonl")
    assert data.signals == ("current", "oil_temp", "vibration_rms")
    assert data.hold_ms is not None and reference.hold_ms == (600_000,) * 3
    assert (data.hold_ms[0], data.hold_ms[2]) == (600_000, 600_000)
    assert 30 * 60_000 <= data.hold_ms[1] <= 31 * 60_000
    assert data.row_count >= reference.row_count - 60  # rows before the first oil_temp differ
    registry = ModelRegistry(tmp_path / "registry")
    assert main(["train", "--telemetry", str(tmp_path / "thinned.jsonl"), "--registry", str(registry.root),
                 "--machine", "M01"]) == 0  # fmt: skip
    manifest = json.loads((registry.root / "demo.M01" / "manifest.json").read_text())
    assert manifest["versions"][0]["metadata"]["hold_ms"]["oil_temp"] == data.hold_ms[1]
    assert registry.load("demo.M01")[0].hold_ms == data.hold_ms
