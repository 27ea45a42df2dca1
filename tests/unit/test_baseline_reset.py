"""Baselines recomputed on demand: the engine, the control record's validation, exactly-once, ``analyze``."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import PlantConfig
from service.analyze import analyze_file
from service.baseline import parse_scheduled_reset, reset_command
from service.cli import main
from service.exceptions import ConfigError
from service.machine_refs import machine_option
from service.plant_file import load_demo_plant
from service.settings import load_settings
from streams.control import control_value
from streams.decode import Rejection
from streams.processing import Applied, TelemetryProcessor

T0 = 1_790_000_000_000
SIGNAL = "vibration_rms"  # a signal without an expected-level model (temperatures have one)


@pytest.fixture
def plant() -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [
                {"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10},
                {"tenant": "beta", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10},
                {"tenant": "acme", "site": "p1", "line": "L1", "id": "M02", "ideal_cycle_s": 10},
            ],
            "monitoring": {"signals": {"baseline_n": 300, "settle_s": 0}},
        }
    )


def _batch(batch: int, shifted_from: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """10 readings at 1 Hz; from batch ``shifted_from`` on, the level is 6 sigma higher."""
    times = T0 + 1000 * (np.arange(10, dtype=np.int64) + 10 * batch + 1)
    values = 40.0 + rng.normal(0.0, 0.2, 10)
    if shifted_from is not None and batch >= shifted_from:
        values += 1.2
    return times, values


def _feed(
    engine: MachineEngine, plant: PlantConfig, state: MachineState, batches: range, rng: np.random.Generator
) -> list[Any]:
    spec = plant.machines[0]
    changes = []
    for batch in batches:
        times, values = _batch(batch, 60, rng)
        out = engine.on_samples(state, spec, int(times[-1]), [(SIGNAL, times, values)])
        changes.extend(out.alerts)
    return changes


def test_reset_resolves_the_alert_and_learns_the_new_level(plant: PlantConfig) -> None:
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(5)
    before = _feed(engine, plant, state, range(120), rng)
    assert any(c.status == "open" and c.alert.kind == "drift" for c in before), "the shift must be detected"
    assert f"signals:{SIGNAL}" in state.monitors

    out, dropped = engine.reset_baselines(state, T0 + 1_200_000, "signals", SIGNAL)
    assert dropped == [f"signals:{SIGNAL}"]
    assert f"signals:{SIGNAL}" not in state.monitors
    resolved = {c.alert.kind for c in out.alerts if c.status == "resolved"}
    assert "drift" in resolved and f"drift/{SIGNAL}" not in state.alerts
    # The shifted level is the new normal: an hour more of it raises nothing.
    after = _feed(engine, plant, state, range(120, 480), rng)
    assert [c for c in after if c.status == "open" and c.alert.kind in ("drift", "spc")] == []
    # A reset of another series or a name that has no monitor drops nothing.
    assert engine.reset_baselines(state, T0, "characteristics", None)[1] == []
    assert engine.reset_baselines(state, T0, None, "other")[1] == []


def test_without_the_reset_the_shift_keeps_alerting(plant: PlantConfig) -> None:
    """The control for the test above: the same data with no reset keeps its drift condition open."""
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(5)
    _feed(engine, plant, state, range(480), rng)
    assert f"drift/{SIGNAL}" in state.alerts


def _processor(plant: PlantConfig) -> TelemetryProcessor:
    return TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)


def _command(**fields: Any) -> bytes:
    base = {"v": 1, "command": "baseline_reset", "tenant": "acme", "machine": "M01", "ts": T0}
    return orjson.dumps({**base, **fields})


@pytest.mark.parametrize(
    ("key", "value", "code", "field"),
    [
        (b"acme/M01", b"", "empty", "value"),
        (b"acme/M01", b"{not json", "invalid_json", "value"),
        (b"acme/M01", _command(series="signal"), "invalid_schema", "series"),
        (b"acme/M01", _command(name="a b"), "invalid_schema", "name"),
        (b"acme/M01", _command(command="reboot"), "invalid_schema", "command"),
        (b"acme/M01", _command(extra=1), "invalid_schema", "extra"),
        (b"acme/M01", _command(v=True), "invalid_schema", "v"),  # true == 1 in Python, not in the schema
        # Logged: a line break would forge a log line, an escape would hide one.
        (b"acme/M01", _command(reason="probe\nERROR worker crashed"), "invalid_schema", "reason"),
        (b"acme/M01", _command(requested_by="\x1b[31manna"), "invalid_schema", "requested_by"),
        (b"acme/M01", _command(series="cycle_time", name=SIGNAL), "invalid_schema", "name"),
        (b"acme/M01", b'{"machine":"M02",' + _command()[1:], "invalid_schema", "machine"),
        (b"acme/M01", _command(v=2), "invalid_schema", "v"),
        (b"acme/M01", _command(ts="yesterday"), "invalid_schema", "ts"),
        (b"acme/M02", _command(), "key_mismatch", "key"),
        (None, _command(), "key_mismatch", "key"),
        (b"acme/M09", _command(machine="M09"), "unknown_machine", "machine"),
        (b"acme/M01", b" " * 5000, "too_large", "value"),
    ],
)
def test_bad_control_messages_are_rejected_naming_the_field(
    plant: PlantConfig, key: bytes | None, value: bytes, code: str, field: str
) -> None:
    outcome = _processor(plant).process_control(key, value, load_state=lambda _: None)
    assert isinstance(outcome, Rejection)
    assert (outcome.code, outcome.field) == (code, field), outcome


def test_a_redelivered_reset_is_not_applied_twice(plant: PlantConfig) -> None:
    processor = _processor(plant)
    states: dict[str, MachineState] = {}
    spec = plant.machines[0]
    state = states[spec.key] = processor.engine.new_state(spec)
    processor.engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(1)
    for batch in range(40):
        times, values = _batch(batch, None, rng)
        processor.engine.on_samples(state, spec, int(times[-1]), [(SIGNAL, times, values)])
    assert f"signals:{SIGNAL}" in state.monitors
    value = _command(name=SIGNAL, reason="probe recalibrated", requested_by="ops")
    first = processor.process_control(b"acme/M01", value, load_state=states.get, source="control:0", offset=7)
    assert isinstance(first, Applied) and not first.duplicate
    assert f"signals:{SIGNAL}" not in state.monitors
    # Readings after the reset start a new baseline; a redelivery of offset 7 must not drop it.
    times, values = _batch(41, None, rng)
    processor.engine.on_samples(state, spec, int(times[-1]), [(SIGNAL, times, values)])
    again = processor.process_control(b"acme/M01", value, load_state=states.get, source="control:0", offset=7)
    assert isinstance(again, Applied) and again.duplicate
    assert f"signals:{SIGNAL}" in state.monitors


def test_machine_targets_and_scheduled_resets_are_checked(plant: PlantConfig) -> None:
    assert machine_option(plant, "acme/M01", "--machine").tenant == "acme"
    assert machine_option(plant, "M02", "--machine").key == "acme/M02"
    with pytest.raises(ConfigError, match=r"^--machine: machine 'M01' exists for several tenants"):
        machine_option(plant, "M01", "--machine")
    with pytest.raises(ConfigError, match=r"^--machine: machine 'acme/M77' is not in the plant"):
        machine_option(plant, "acme/M77", "--machine")
    with pytest.raises(ConfigError, match=r"^--baseline-reset: machine 'M09' is not in the plant"):
        parse_scheduled_reset(plant, "M09@2026-11-25T08:00:00+09:00")
    reset = parse_scheduled_reset(plant, f"acme/M01:{SIGNAL}@2026-11-25T06:00:00+01:00")
    assert (reset.spec.key, reset.name, reset.at_ms) == ("acme/M01", SIGNAL, 1_795_582_800_000)
    assert parse_scheduled_reset(plant, f"M02@{T0}").at_ms == T0
    for bad in ("acme/M01", "acme/M01@tomorrow", "acme/M01:a b@1790000000000", "@1790000000000"):
        with pytest.raises(ConfigError, match="--baseline-reset"):
            parse_scheduled_reset(plant, bad)
    with pytest.raises(ConfigError, match="series"):
        reset_command(machine_option(plant, "M02", "--machine"), series="everything")


def _telemetry_file(path: Path, batches: int) -> None:
    rng = np.random.default_rng(5)
    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    lines = [orjson.dumps({**base, "ts": T0, "kind": "state", "state": "running"})]
    for batch in range(batches):
        times, values = _batch(batch, 60, rng)
        lines.append(
            orjson.dumps(
                {
                    **base,
                    "ts": int(times[-1]),
                    "kind": "samples",
                    "signals": [{"signal": SIGNAL, "ts": times.tolist(), "values": values.tolist()}],
                }
            )
        )
    for i in range(30):
        value = 25.0 + 0.004 * math.sin(i)
        lines.append(
            orjson.dumps(
                {
                    **base,
                    "ts": T0 + 1000 * i,
                    "kind": "quality",
                    "characteristic": "diameter_mm",
                    "value": value,
                    "lsl": 24.97,
                    "usl": 25.03,
                    "product": "P1",
                }
            )
        )
    path.write_bytes(b"\n".join(lines) + b"\n")


def _alerts(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]


def test_analyze_applies_a_scheduled_reset_and_reports_capability(plant: PlantConfig, tmp_path: Path) -> None:
    source = tmp_path / "telemetry.jsonl"
    _telemetry_file(source, 480)
    settings = load_settings()
    plain = analyze_file(source, plant, tmp_path / "plain", settings)
    assert plain["baseline_resets"] == 0
    drift = [a for a in _alerts(tmp_path / "plain") if a["kind"] == "drift"]
    assert drift and drift[-1]["status"] == "open", "without a reset the drift stays open"

    reset = parse_scheduled_reset(plant, f"acme/M01:{SIGNAL}@{T0 + 1_200_000}")
    late = parse_scheduled_reset(plant, f"acme/M01@{T0 + 10 * 86_400_000}")
    typo = parse_scheduled_reset(plant, f"acme/M01:no_such_signal@{T0 + 1_200_000}")
    summary = analyze_file(source, plant, tmp_path / "reset", settings, [reset, late, typo])
    assert summary["baseline_resets"] == 1  # the typo is not counted as applied: it is listed
    # As --baseline-reset takes them, the time in RFC 3339 with the site's offset (UTC here).
    assert summary["baseline_resets_matched_nothing"] == ["acme/M01:no_such_signal@2026-09-21T14:33:20+00:00"]
    assert summary["baseline_resets_not_reached"] == ["acme/M01@2026-10-01T14:13:20+00:00"]
    for label in [*summary["baseline_resets_matched_nothing"], *summary["baseline_resets_not_reached"]]:
        assert parse_scheduled_reset(plant, label).at_ms in (T0 + 1_200_000, T0 + 10 * 86_400_000)
    drift = [a for a in _alerts(tmp_path / "reset") if a["kind"] == "drift"]
    assert drift[-1]["status"] == "resolved"
    first_resolved = [a["status"] for a in drift].index("resolved")
    assert [a for a in drift[first_resolved:] if a["status"] == "open"] == [], "nothing new after the reset"
    # Capability per characteristic, product and shift, in the summary and in capability.json.
    rows = summary["capability"]["acme/M01"]
    assert rows[0]["characteristic"] == "diameter_mm" and rows[0]["product"] == "P1"
    assert rows[0]["n"] == 30 and rows[0]["cpk"] is not None and rows[0]["lsl"] == 24.97
    assert orjson.loads((tmp_path / "reset" / "capability.json").read_bytes()) == summary["capability"]


def test_cli_baseline_reset_needs_a_broker_and_a_known_machine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINEPULSE_BOOTSTRAP_SERVERS", raising=False)
    assert main(["baseline", "reset", "--machine", "M01"]) == 2
    assert "bootstrap_servers" in capsys.readouterr().err
    code = main(["baseline", "reset", "--machine", "nope", "--bootstrap-servers", "127.0.0.1:1"])
    assert (
        code == 2 and "--machine: machine 'nope' is not in the plant configuration" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["baseline", "reset", "--machine", "M01", "--series", "all"])
    assert "--series" in capsys.readouterr().err
    # Each refusal of the command's fields under the option the user typed, before any broker.
    for extra, said in [
        (["--by", ""], "--by: String should have at least 1 character"),
        (["--reason", "probe\nERROR x"], "--reason: must not contain control characters"),
        (["--series", "cycle_time", "--signal", "vib"], "--signal: the cycle_time series has one name"),
    ]:
        argv = ["baseline", "reset", "--machine", "demo/M01", "--bootstrap-servers", "127.0.0.1:1", *extra]
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(f"linepulse: error: {said}"), extra


def test_control_value_round_trips(plant: PlantConfig) -> None:
    command = reset_command(
        machine_option(plant, "M02", "--machine"), name=SIGNAL, ts_ms=T0, reason="new probe"
    )
    decoded = _processor(plant).control.decode(b"acme/M02", control_value(command))
    assert not isinstance(decoded, Rejection) and decoded.command == command


def test_the_reset_line_gives_the_event_time_in_the_sites_offset(caplog: pytest.LogCaptureFixture) -> None:
    """What the operator copies into --at or --baseline-reset, written as the machine's records
    write time (the demo plant is in Asia/Seoul), not in UTC."""
    plant = load_demo_plant()
    spec = machine_option(plant, "demo/M01", "--machine")
    command = reset_command(spec, ts_ms=1_767_571_200_000, reason="new probe")  # 09:00 +09:00
    with caplog.at_level(logging.WARNING, logger="streams.processing"):
        outcome = _processor(plant).process_control(
            b"demo/M01", control_value(command), load_state=lambda _: None
        )
    assert isinstance(outcome, Applied)
    [line] = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("baseline reset on demo/M01")
    ]
    assert "at event time 2026-01-05T09:00:00+09:00 " in line, line
