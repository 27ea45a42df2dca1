"""``simulate`` and ``train`` follow the LINEPULSE_* settings as the other commands do; flags win.

The settings table in the README promises "environment variables or flags" for every command.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import orjson
import pytest

from service.cli import main
from service.settings import unknown_variables_problem

START = "2026-11-25T00:00:00Z"


def berlin_plant(tmp_path: Path) -> Path:
    """The demo plant under another tenant and time zone, so its records cannot pass for the demo's."""
    text = resources.files("service.plants").joinpath("demo.yaml").read_text(encoding="utf-8")
    text = text.replace("tenant: demo", "tenant: berlin").replace("Asia/Seoul", "Europe/Berlin")
    path = tmp_path / "berlin.yaml"
    path.write_text(text)
    return path


def simulate(out: Path, *extra: str) -> int:
    argv = ["simulate", "--start", START, "--duration", "90m", "--as-fast-as-possible", "--seed", "3"]
    return main([*argv, "--out", str(out), *extra])


def tenants(path: Path) -> set[str]:
    return {orjson.loads(line)["tenant"] for line in path.read_bytes().splitlines()}


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PLANT_CONFIG", "BOOTSTRAP_SERVERS", "TOPIC_TELEMETRY"):
        monkeypatch.delenv(f"LINEPULSE_{name}", raising=False)


def test_simulate_uses_the_plant_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEPULSE_PLANT_CONFIG", str(berlin_plant(tmp_path)))
    out = tmp_path / "t.jsonl"
    assert simulate(out) == 0
    assert tenants(out) == {"berlin"}


def test_simulate_config_flag_overrides_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEPULSE_PLANT_CONFIG", str(tmp_path / "missing.yaml"))
    out = tmp_path / "t.jsonl"
    assert simulate(out, "--config", str(berlin_plant(tmp_path))) == 0
    assert tenants(out) == {"berlin"}


def test_simulate_out_overrides_the_bootstrap_servers_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens there: had simulate chosen Kafka, it could not have written the file.
    monkeypatch.setenv("LINEPULSE_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    out = tmp_path / "t.jsonl"
    assert simulate(out) == 0
    assert tenants(out) == {"demo"}
    assert f"into {out}" in capsys.readouterr().err


def test_simulate_topic_without_kafka_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(tmp_path / "t.jsonl", "--topic", "x") == 2
    assert "--topic" in capsys.readouterr().err


def test_train_uses_the_plant_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant = berlin_plant(tmp_path)
    history = tmp_path / "history.jsonl"
    assert simulate(history, "--config", str(plant)) == 0
    monkeypatch.setenv("LINEPULSE_PLANT_CONFIG", str(plant))
    registry = tmp_path / "registry"
    argv = ["train", "--telemetry", str(history), "--machine", "M01", "--registry", str(registry)]
    assert main(argv) == 0
    manifest = json.loads((registry / "berlin.M01" / "manifest.json").read_text())
    assert manifest["versions"][0]["metadata"]["machines"] == ["berlin/M01"]


def test_train_needs_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--machine", "M01", "--registry", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--telemetry" in err and "LINEPULSE_BOOTSTRAP_SERVERS" in err


@pytest.mark.parametrize(
    ("variable", "meant"),
    [("LINEPULSE_WEBPORT", "LINEPULSE_WEB_PORT"), ("linepulse_plant_confg", "LINEPULSE_PLANT_CONFIG")],
)
def test_a_misspelt_setting_stops_every_command_and_names_what_was_meant(
    variable: str,
    meant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was ignored without a word: the worker then served the default port, or the demo plant."""
    monkeypatch.setenv(variable, "1")
    out = tmp_path / "t.jsonl"
    assert simulate(out) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert err == (
        f"linepulse: error: unknown setting {variable} (did you mean {meant}?): no LINEPULSE_* variable "
        "of that name (README, Configuration)"
    )


def test_the_variables_read_besides_the_settings_are_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEPULSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LINEPULSE_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv("LINEPULSE_FETCH_WAIT_S", "0.05")
    assert simulate(tmp_path / "t.jsonl") == 0


def test_kubernetes_service_variables_of_a_service_named_linepulse_are_not_refused() -> None:
    """Kubernetes gives every pod of the namespace these for a Service named linepulse (or
    linepulse-worker): refusing them would keep the worker from starting beside its own Service."""
    service_links = {
        "LINEPULSE_SERVICE_HOST": "10.0.0.5",
        "LINEPULSE_SERVICE_PORT": "6066",
        "LINEPULSE_SERVICE_PORT_WEB": "6066",
        "LINEPULSE_PORT": "tcp://10.0.0.5:6066",
        "LINEPULSE_PORT_6066_TCP": "tcp://10.0.0.5:6066",
        "LINEPULSE_PORT_6066_TCP_PROTO": "tcp",
        "LINEPULSE_PORT_6066_TCP_PORT": "6066",
        "LINEPULSE_PORT_6066_TCP_ADDR": "10.0.0.5",
        "LINEPULSE_WORKER_SERVICE_HOST": "10.0.0.6",
        "LINEPULSE_WORKER_PORT": "tcp://10.0.0.6:6066",
    }
    assert unknown_variables_problem(service_links) is None
    # A port given by hand under a wrong name is still a misspelt setting.
    assert unknown_variables_problem({**service_links, "LINEPULSE_PORT": "6067"}) == (
        "unknown setting LINEPULSE_PORT (did you mean LINEPULSE_WEB_PORT?): no LINEPULSE_* variable "
        "of that name (README, Configuration)"
    )


def test_a_bad_option_value_names_the_option_and_a_bad_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_bytes(b"")
    analyze = ["analyze", str(telemetry), "--out", str(tmp_path / "s.json")]
    assert main([*analyze, "--partitions", "99999999"]) == 2
    assert "partitions (--partitions): Input should be less than or equal to" in capsys.readouterr().err
    monkeypatch.setenv("LINEPULSE_PARTITIONS", "0")
    assert main(analyze) == 2
    assert "partitions (LINEPULSE_PARTITIONS): Input should be greater than" in capsys.readouterr().err
