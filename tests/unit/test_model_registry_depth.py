"""Model files nested deeper than Python's recursion limit, and any other surprise reading the
registry: refused with the file named (``models list`` without a traceback), and never a telemetry
message dead-lettered because the registry check ran while it was processed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest

from models.anomaly.training import ModelConfig, fit_model
from models.plant import MachineSpec
from service.anomaly_models import RegistryModels
from service.cli import main
from service.exceptions import ModelFileError
from service.model_registry import ModelRegistry, ModelVersion
from service.plant_file import load_demo_plant
from streams.decode import Rejection
from streams.processing import TelemetryProcessor

DEEP = b"[" * 100_000 + b"]" * 100_000
M01 = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")


def _register(registry: ModelRegistry, name: str, machine: str) -> None:
    rows = np.random.default_rng(0).normal(size=(300, 3))
    fitted = fit_model(rows, ("a", "b", "c"), ModelConfig(window=5), name=name)
    registry.register(fitted.model, {"machines": [machine]})


def _deep_schema(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path)
    _register(registry, "bad.M02", "demo/M02")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", DEEP)
    data = buffer.getvalue()
    (tmp_path / "bad.M02" / "v1.skops").write_bytes(data)
    manifest_path = tmp_path / "bad.M02" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    return registry


def test_a_deeply_nested_manifest_is_refused_naming_the_file(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _register(registry, "bad.M02", "demo/M02")
    (tmp_path / "bad.M02" / "manifest.json").write_bytes(DEEP)
    with pytest.raises(ModelFileError, match=r"bad\.M02/manifest\.json: unreadable manifest \(nested too"):
        registry.versions("bad.M02")


def test_a_deeply_nested_artifact_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    registry = _deep_schema(tmp_path)
    with pytest.raises(ModelFileError, match=r"v1\.skops: refused: schema\.json is nested too deeply"):
        registry.load("bad.M02")


def test_models_list_reports_deep_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deep_schema(tmp_path)
    other = ModelRegistry(tmp_path)
    _register(other, "deep.M03", "demo/M03")
    (tmp_path / "deep.M03" / "manifest.json").write_bytes(DEEP)
    assert main(["models", "list", "--registry", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FAILS VERIFICATION" in out and "schema.json is nested too deeply" in out, out
    assert "deep.M03  refused:" in out and "nested too deeply" in out, out


def test_a_valid_message_for_another_machine_is_processed_while_a_deep_manifest_is_refused(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path)
    _register(registry, "bad.M02", "demo/M02")
    (tmp_path / "bad.M02" / "manifest.json").write_bytes(DEEP)
    processor = TelemetryProcessor(
        load_demo_plant(),
        max_payload_bytes=1 << 20,
        max_future_ms=300_000,
        anomaly_models=RegistryModels(registry),
    )
    now = int(time.time() * 1000)
    message = {
        "v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "ts": now, "kind": "samples",
        "signals": [{"signal": "spindle_temp_c", "ts": [now - 2000, now - 1000], "values": [1.0, 2.0]}],
    }  # fmt: skip
    outcome = processor.process(
        b"demo/M01", orjson.dumps(message), timestamp_ms=now, load_state=lambda _: None
    )
    assert not isinstance(outcome, Rejection), outcome


def test_an_unforeseen_failure_reading_one_model_leaves_the_others_serving(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _register(registry, "a.M02", "demo/M02")
    _register(registry, "b.M01", "demo/M01")

    class Broken(ModelRegistry):
        def snapshot(self, name: str) -> tuple[list[ModelVersion], ModelVersion]:
            if name == "a.M02":
                raise MemoryError("what no refusal foresaw")
            return super().snapshot(name)

    models = RegistryModels(Broken(tmp_path))
    served = models.model_for(M01)
    assert served is not None and served.name == "b.M01"
    assert any("MemoryError: what no refusal foresaw" in error for error in models.errors)


class FlakyRegistry(ModelRegistry):
    """A registry with one model whose directory listing fails while ``failing`` is set, checked
    by ``models`` every second of the settable clock ``now``."""

    def __init__(self, root: Path, *, failing: bool) -> None:
        super().__init__(root)
        self.failing = False
        _register(self, "b.M01", "demo/M01")
        self.failing = failing
        self.now = 0.0
        self.models = RegistryModels(self, reload_interval_s=1.0, clock=lambda: self.now)

    def names(self) -> list[str]:
        if self.failing:
            raise PermissionError(13, "Permission denied", str(self.root))
        return super().names()


def test_a_registry_that_cannot_be_listed_keeps_serving_what_was_loaded(tmp_path: Path) -> None:
    registry = FlakyRegistry(tmp_path, failing=False)
    models = registry.models
    assert models.model_for(M01) is not None
    registry.failing, registry.now = True, 2.0
    served = models.model_for(M01)
    assert served is not None and served.name == "b.M01"
    assert any("Permission denied" in error for error in models.errors)


def test_a_registry_that_stays_unreadable_is_logged_once_until_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = FlakyRegistry(tmp_path, failing=True)
    models = registry.models
    with caplog.at_level(logging.INFO, logger="service.anomaly_models"):
        for check in range(5):  # five checks, 1 s apart: the same failure each time
            registry.now = float(check)
            models.model_for(M01)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "Permission denied" in errors[0].getMessage()
        registry.failing, registry.now = False, 10.0
        assert models.model_for(M01) is not None
        assert any("readable again" in r.getMessage() for r in caplog.records)
        registry.failing, registry.now = True, 20.0
        models.model_for(M01)  # failing again after a recovery is news again
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


def test_a_registry_directory_that_goes_away_keeps_its_models_serving(tmp_path: Path) -> None:
    """Moved, or its share unmounted while the worker runs: an empty listing would have read as
    every model removed (each open episode ended as model_removed), with nothing logged."""
    registry = FlakyRegistry(tmp_path / "registry", failing=False)
    models = registry.models
    assert models.model_for(M01) is not None
    (tmp_path / "registry").rename(tmp_path / "moved")
    registry.now = 2.0
    served = models.model_for(M01)
    assert served is not None and served.name == "b.M01"
    assert any("the registry directory is gone" in error for error in models.errors)
