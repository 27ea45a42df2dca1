"""The model registry: round trip, refusals (tampered, pickle, untrusted types) and hot reload."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio

from models.anomaly.training import ModelConfig, fit_model
from models.plant import MachineSpec
from service import model_registry
from service.anomaly_models import RegistryModels, anomaly_models
from service.exceptions import ConfigError, ModelFileError
from service.model_registry import ModelRegistry, model_to_artifact
from service.settings import Settings

SIGNALS = ("a", "b", "c")
PROBE = np.random.default_rng(9).normal(size=(5, 6))


class Untrusted:
    """Stands for any type a model artifact must never construct."""

    def __init__(self) -> None:
        self.payload = "would run on load"


def _fitted(detector: str = "pca_t2q", seed: int = 0, name: str = "demo.M01"):  # type: ignore[no-untyped-def]
    rows = np.random.default_rng(seed).normal(size=(300, 3))
    config = ModelConfig(detector=detector, window=5, n_estimators=20)  # type: ignore[arg-type]
    return fit_model(rows, SIGNALS, config, name=name)


@pytest.mark.parametrize("detector", ["pca_t2q", "isolation_forest"])
def test_round_trip_gives_identical_scores(tmp_path: Path, detector: str) -> None:
    registry = ModelRegistry(tmp_path)
    fitted = _fitted(detector)
    entry = registry.register(fitted.model, {"machines": ["demo/M01"], "threshold": fitted.model.threshold})
    assert entry.version == "v1" and (tmp_path / "demo.M01" / "v1.skops").is_file()
    manifest = json.loads((tmp_path / "demo.M01" / "manifest.json").read_text())
    assert manifest["latest"] == "v1"
    data = (tmp_path / "demo.M01" / "v1.skops").read_bytes()
    assert manifest["versions"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    loaded, got = registry.load("demo.M01")
    assert got.version == "v1" and loaded.version == "v1"
    assert np.array_equal(loaded.detector.score(PROBE), fitted.model.detector.score(PROBE))
    assert loaded.threshold == fitted.model.threshold and loaded.features == fitted.model.features
    assert registry.register(fitted.model, {}).version == "v2"
    assert registry.load("demo.M01", "v1")[1].version == "v1"


def test_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {})
    path = tmp_path / "demo.M01" / "v1.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"v1\.skops: refused: SHA-256 mismatch"):
        registry.load("demo.M01")


def test_models_list_marks_a_latest_version_that_fails_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {"machines": ["demo/M01"], "threshold": 1.0})
    registry.register(_fitted(seed=1).model, {"machines": ["demo/M01"], "threshold": 1.0})
    assert main(["models", "list", "--registry", str(tmp_path)]) == 0
    assert "FAILS VERIFICATION" not in capsys.readouterr().out
    path = tmp_path / "demo.M01" / "v2.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["models", "list", "--registry", str(tmp_path)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("demo.M01  v2 of 2") and "FAILS VERIFICATION" in line
    assert "v2.skops: refused: SHA-256 mismatch" in line and line.endswith("; workers serve v1")


def test_models_list_shows_a_hand_edited_threshold_instead_of_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest threshold that is not a number (informational: workers use the artifact's) was
    a traceback that hid every other model of the registry."""
    from service.cli import main

    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {"machines": ["demo/M01"], "threshold": 1.0})
    registry.register(_fitted(name="demo.M02").model, {"machines": ["demo/M02"], "threshold": 2.5})
    manifest_path = tmp_path / "demo.M01" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for edited, shown in (("0.5", "threshold '0.5' (not a number)"), (None, "threshold ?")):
        manifest["versions"][0]["metadata"]["threshold"] = edited
        manifest_path.write_text(json.dumps(manifest))
        assert main(["models", "list", "--registry", str(tmp_path)]) == 0
        first, second = capsys.readouterr().out.splitlines()
        assert first.startswith("demo.M01  v1 of 1") and shown in first, first
        assert second.startswith("demo.M02  v1 of 1") and "threshold 2.5" in second, second


def _swap_in(tmp_path: Path, data: bytes) -> ModelRegistry:
    """Replace v1's bytes and fix up the manifest hash: what an attacker with the manifest could do."""
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {})
    (tmp_path / "demo.M01" / "v1.skops").write_bytes(data)
    manifest_path = tmp_path / "demo.M01" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    return registry


def test_a_pickle_is_refused_even_with_a_matching_hash(tmp_path: Path) -> None:
    registry = _swap_in(tmp_path, pickle.dumps(model_to_artifact(_fitted().model)))
    with pytest.raises(ModelFileError, match="refused: the file is a pickle"):
        registry.load("demo.M01")


def test_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    artifact = model_to_artifact(_fitted().model)
    artifact["detector"]["extra"] = Untrusted()
    registry = _swap_in(tmp_path, sio.dumps(artifact))
    with pytest.raises(
        ModelFileError, match=r"refused: untrusted types \['tests\.unit\.test_model_registry\.Untrusted'\]"
    ):
        registry.load("demo.M01")


def test_types_skops_trusts_by_default_are_still_refused(tmp_path: Path) -> None:
    from sklearn.preprocessing import StandardScaler

    artifact = model_to_artifact(_fitted().model)
    artifact["detector"]["scaler"] = StandardScaler()
    registry = _swap_in(tmp_path, sio.dumps(artifact))
    with pytest.raises(ModelFileError, match="StandardScaler"):
        registry.load("demo.M01")


def test_malformed_content_and_paths_are_refused(tmp_path: Path) -> None:
    registry = _swap_in(tmp_path, sio.dumps({"format": "something else"}))
    with pytest.raises(ModelFileError, match="malformed model artifact"):
        registry.load("demo.M01")
    manifest_path = tmp_path / "demo.M01" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"][0]["file"] = "../../etc/passwd.skops"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="not a plain"):
        registry.load("demo.M01")
    with pytest.raises(ModelFileError, match="model name"):
        registry.load("../x")


def test_hot_reload_picks_up_a_new_version_without_restart(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted(seed=1).model, {"machines": ["demo/M01"]})
    now = [0.0]
    models = RegistryModels(registry, reload_interval_s=5.0, clock=lambda: now[0])
    machine = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    other = MachineSpec(tenant="demo", site="p1", line="L1", id="M02")
    first = models.model_for(machine)
    assert first is not None and first.version == "v1"
    assert models.model_for(other) is None
    registry.register(_fitted(seed=2).model, {"machines": ["demo/M01", "*"], "tenant": "demo"})
    now[0] = 1.0
    assert models.model_for(machine) is first  # not yet due
    now[0] = 6.0
    second = models.model_for(machine)
    assert second is not None and second.version == "v2"
    assert models.model_for(other) is second  # the wildcard now serves M02 too
    # A broken v3 is refused and logged; v2 keeps serving.
    registry.register(_fitted(seed=3).model, {"machines": ["demo/M01"]})
    (tmp_path / "demo.M01" / "v3.skops").write_bytes(b"PK\x03\x04 not really")
    now[0] = 12.0
    assert models.model_for(machine) is second
    assert any("v3.skops" in error for error in models.errors)


def test_the_most_specific_model_serves_a_machine_then_its_type_then_every_machine(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted(name="all").model, {"machines": ["*"], "tenant": "demo"})
    # What `linepulse train --machine-type cnc` writes: the type, its tenant, and no machine keys.
    type_model = {"machines": [], "machine_types": ["cnc"], "tenant": "demo"}
    registry.register(_fitted(name="a.cnc").model, type_model)  # sorts before the machine's own
    registry.register(_fitted(name="demo.M04").model, {"machines": ["demo/M04"]})
    models = RegistryModels(registry)

    def served_by(machine_id: str, machine_type: str | None, tenant: str = "demo") -> str | None:
        spec = MachineSpec(tenant=tenant, site="p1", line="L1", id=machine_id, type=machine_type)
        model = models.model_for(spec)
        return None if model is None else model.name

    assert served_by("M02", "cnc") == "a.cnc"
    assert served_by("M07", "cnc") == "a.cnc"  # a machine of the type added after training
    assert served_by("M04", "cnc") == "demo.M04"  # its own model beats its type's
    assert served_by("M01", "press") == "all"
    assert served_by("M03", None) == "all"
    # Another tenant's machines: neither the type's model nor the one for every machine of demo's.
    assert served_by("M02", "cnc", tenant="other") is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["versions"][0].update(metadata="x"), "versions[0].metadata: expected an object"),
        (
            lambda m: m["versions"][0]["metadata"].update(machines="demo/M01"),
            "versions[0].metadata.machines: expected a list of strings",
        ),
        (lambda m: m["versions"][0].update(sha256=7), "versions[0].sha256: expected a string"),
        (lambda m: m.update(versions={"v1": {}}), "versions: expected a list"),
        (lambda m: m["versions"].__setitem__(0, "v1"), "versions[0]: expected an object"),
    ],
    ids=["metadata", "machines", "sha256", "versions", "entry"],
)
def test_a_malformed_manifest_is_refused_naming_the_field_and_other_models_still_serve(
    tmp_path: Path, edit: Any, field: str
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted(name="demo.M01").model, {"machines": ["demo/M01"]})
    registry.register(_fitted(name="zzz.M03").model, {"machines": ["demo/M03"]})
    manifest_path = tmp_path / "demo.M01" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=re.escape(field)):
        registry.load("demo.M01")
    models = RegistryModels(registry)
    m01 = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    m03 = MachineSpec(tenant="demo", site="p1", line="L1", id="M03")
    assert models.model_for(m01) is None
    served = models.model_for(m03)
    assert served is not None and served.name == "zzz.M03"
    assert any(field in error for error in models.errors)


def test_after_a_restart_a_refused_latest_version_falls_back_to_the_newest_that_verifies(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path)
    for seed in (1, 2, 3):
        registry.register(_fitted(seed=seed).model, {"machines": ["demo/M01"]})
    v3 = tmp_path / "demo.M01" / "v3.skops"
    tampered = bytearray(v3.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    v3.write_bytes(bytes(tampered))
    machine = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    served = RegistryModels(registry).model_for(machine)  # a fresh process: nothing loaded before
    assert served is not None and served.version == "v2"
    assert np.array_equal(served.detector.score(PROBE), _fitted(seed=2).model.detector.score(PROBE))


def test_a_registry_directory_that_does_not_exist_is_a_settings_error(tmp_path: Path) -> None:
    settings = Settings(model_registry=tmp_path / "modles")
    with pytest.raises(ConfigError, match=r"model_registry .*modles: no such directory"):
        anomaly_models(settings)


def test_a_registry_that_cannot_be_written_is_a_model_file_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the registry's directory should be
    with pytest.raises(ModelFileError, match="cannot write the model's directory"):
        ModelRegistry(blocked).register(_fitted().model, {"machines": ["demo/M01"]})


def test_a_manifest_replaced_while_it_is_read_never_breaks_serving(tmp_path: Path) -> None:
    """The worker reads a manifest while `linepulse train` may replace it: one read per refresh."""
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted(seed=1).model, {"machines": ["demo/M01"]})
    manifest = tmp_path / "demo.M01" / "manifest.json"
    before = manifest.read_bytes()
    registry.register(_fitted(seed=2).model, {"machines": ["demo/M01"]})
    after = manifest.read_bytes()
    manifest.write_bytes(before)

    class Racing(ModelRegistry):
        def manifest(self, name: str) -> dict[str, Any]:
            data = super().manifest(name)
            manifest.write_bytes(after)  # the trainer's replacement lands right after the read
            return data

    served = RegistryModels(Racing(tmp_path)).model_for(
        MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    )
    assert served is not None and served.version == "v1"


def test_row_counts_a_model_sets_are_bounded(tmp_path: Path) -> None:
    fitted = _fitted()
    with pytest.raises(ValueError, match="consecutive and resolve_after"):
        dataclasses.replace(fitted.model, consecutive=10**20)


def _crafted_forest(edit: Any) -> bytes:
    """A real forest artifact of trusted types whose first tree ``edit`` rewrites."""
    artifact = model_to_artifact(_fitted("isolation_forest").model)
    tree = artifact["detector"]["estimator"].estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    edit(nodes, state)
    state["nodes"] = nodes
    tree.__setstate__(state)
    return bytes(sio.dumps(artifact))


def _set_max_depth(nodes: Any, state: Any) -> None:
    state["max_depth"] = 1


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda nodes, _: nodes["left_child"].__setitem__(0, 10**6),
            "child index out of order or out of range",
        ),
        (
            lambda nodes, _: nodes["left_child"].__setitem__(0, 0),
            "a child index out of order or out of range",
        ),
        (lambda nodes, _: nodes["feature"].__setitem__(0, 10**6), "a split on a column outside"),
        (lambda nodes, _: nodes["right_child"].__setitem__(0, -1), "a node with one child"),
        (_set_max_depth, "max_depth 1 is not the tree's depth"),
        (lambda nodes, _: nodes["threshold"].__setitem__(0, np.nan), "a split threshold that is not finite"),
        (lambda nodes, _: nodes["n_node_samples"].__setitem__(1, -5), "or a node without samples"),
    ],
    ids=["child-out-of-range", "cycle", "feature", "one-child", "max-depth", "nan-threshold", "samples"],
)
def test_a_crafted_forest_of_trusted_types_is_refused_before_any_tree_is_walked(
    tmp_path: Path, edit: Any, reason: str
) -> None:
    """With its hash fixed in the manifest: out-of-range children made scikit-learn's own depth
    computation segfault, and a cycle made the walk loop forever."""
    registry = _swap_in(tmp_path, _crafted_forest(edit))
    with pytest.raises(ModelFileError, match=f"malformed model artifact .*tree 0: .*{re.escape(reason)}"):
        registry.load("demo.M01")


def test_an_artifact_of_the_wrong_shape_is_refused_whatever_breaks(tmp_path: Path) -> None:
    artifact = model_to_artifact(_fitted().model)
    artifact["detector"] = []
    registry = _swap_in(tmp_path, bytes(sio.dumps(artifact)))
    with pytest.raises(ModelFileError, match="malformed model artifact"):
        registry.load("demo.M01")


def test_hold_bounds_round_trip_and_malformed_ones_are_refused_naming_the_field(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(300, 3))
    config = ModelConfig(detector="pca_t2q", window=5)
    model = fit_model(rows, SIGNALS, config, name="demo.M01", hold_ms=(600_000, 1_800_000, 600_000)).model
    registry = ModelRegistry(tmp_path)
    registry.register(model, {"machines": ["demo/M01"]})
    loaded, _ = registry.load("demo.M01")
    assert loaded.hold_ms == (600_000, 1_800_000, 600_000)
    assert loaded.max_age_ms.tolist() == [600_000, 1_800_000, 600_000]
    for case, (bad, reason) in enumerate(
        [
            ("10 minutes", "hold_ms: 10 minutes: expected a list of integers"),
            ([600_000, True, 600_000], "hold_ms: .*expected a list of integers"),
            ([600_000, 600_000], "hold_ms needs one bound .* per signal \\(3\\)"),
            ([600_000, 0, 600_000], "hold_ms needs one bound in 1\\.\\."),
        ]
    ):
        artifact = model_to_artifact(model)
        artifact["hold_ms"] = bad
        with pytest.raises(ModelFileError, match=f"malformed model artifact.*{reason}"):
            _swap_in(tmp_path / f"case{case}", bytes(sio.dumps(artifact))).load("demo.M01")


def test_a_type_model_without_a_tenant_serves_no_machine_by_its_type(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {"machines": [], "machine_types": ["cnc"]})
    machine = MachineSpec(tenant="demo", site="p1", line="L1", id="M02", type="cnc")
    assert RegistryModels(registry).model_for(machine) is None


def test_two_trainers_registering_one_model_at_once_leave_every_version_intact(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    models = [_fitted(seed=seed).model for seed in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda model: registry.register(model, {"machines": ["demo/M01"]}), models))
    versions = registry.versions("demo.M01")
    assert sorted(v.version for v in versions) == sorted(f"v{n}" for n in range(1, 9))
    for version in versions:
        registry.load("demo.M01", version.version)  # every hash matches its file


@pytest.mark.parametrize("max_samples", [float("nan"), 0, -3])
def test_a_crafted_forest_sample_count_is_refused(tmp_path: Path, max_samples: float) -> None:
    """Served, it scored every row exactly 1.0: every row above any threshold."""
    artifact = model_to_artifact(_fitted("isolation_forest").model)
    artifact["detector"]["estimator"]._max_samples = max_samples
    registry = _swap_in(tmp_path, bytes(sio.dumps(artifact)))
    with pytest.raises(ModelFileError, match=r"max_samples .* is not a sample count"):
        registry.load("demo.M01")


def test_a_forest_whose_threshold_it_can_never_reach_is_refused(tmp_path: Path) -> None:
    artifact = model_to_artifact(_fitted("isolation_forest").model)
    artifact["threshold"] = 2.39
    registry = _swap_in(tmp_path, bytes(sio.dumps(artifact)))
    with pytest.raises(ModelFileError, match="never scores above 1"):
        registry.load("demo.M01")


def test_remove_takes_a_model_out_and_serving_drops_it(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {"machines": ["demo/M01"]})
    now = [0.0]
    models = RegistryModels(registry, reload_interval_s=1.0, clock=lambda: now[0])
    machine = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    assert models.model_for(machine) is not None
    registry.remove("demo.M01")
    now[0] = 2.0
    assert models.model_for(machine) is None and registry.names() == []
    with pytest.raises(ModelFileError, match="no such model"):
        registry.remove("demo.M01")


@pytest.mark.parametrize("kind", ["fifo", "device", "oversized"])
def test_an_artifact_that_is_no_regular_file_or_too_large_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A FIFO made reading block for ever, a link to /dev/zero read without end: both in a worker's
    hot reload, during message processing. Now refused at once, naming the file."""
    registry = ModelRegistry(tmp_path)
    registry.register(_fitted().model, {})
    path = tmp_path / "demo.M01" / "v1.skops"
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        expected = "not a regular file"
    elif kind == "device":
        path.symlink_to("/dev/zero")
        expected = "not a regular file"
    else:
        monkeypatch.setattr(model_registry, "MAX_ARTIFACT_BYTES", 1000)
        path.write_bytes(b"x" * 1001)
        expected = "larger than 1000 bytes"
    with pytest.raises(ModelFileError, match=rf"v1\.skops: cannot read \({expected}"):
        registry.load("demo.M01")


def test_a_model_for_every_machine_must_name_its_tenant(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelFileError, match=r"all: the new version's\.metadata\.tenant: a model for every"):
        registry.register(_fitted(name="all").model, {"machines": ["*"]})
    # A manifest from before the rule (or edited by hand) with such a version: it is not served...
    registry.register(_fitted(name="all").model, {"machines": ["*"], "tenant": "demo"})
    manifest_path = tmp_path / "all" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["versions"][0]["metadata"]["tenant"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"version v1\.metadata\.tenant: a model for every machine"):
        registry.load("all")
    machine = MachineSpec(tenant="demo", site="p1", line="L1", id="M01")
    models = RegistryModels(registry)
    assert models.model_for(machine) is None
    assert any("metadata.tenant" in error for error in models.errors)
    # ...but it does not block a newer version that names its tenant (v1 stays in the history)
    registry.register(_fitted(name="all", seed=3).model, {"machines": ["*"], "tenant": "demo"})
    served = RegistryModels(registry).model_for(machine)
    assert served is not None and served.version == "v2"


def test_registered_files_are_readable_by_a_worker_running_as_another_user(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        ModelRegistry(tmp_path).register(_fitted().model, {"machines": ["demo/M01"]})
    finally:
        os.umask(previous)
    for name in ("manifest.json", "v1.skops"):
        assert (tmp_path / "demo.M01" / name).stat().st_mode & 0o777 == 0o644, name


def _unreadable_manifest(registry_dir: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = registry_dir / "demo.M02" / "manifest.json"
    if how == "directory":
        manifest.unlink()
        manifest.mkdir()
    elif how == "link loop":
        manifest.unlink()
        manifest.symlink_to(manifest)
    else:  # a directory the worker's user may not enter (the tests run as root: simulated)
        real_lstat, real_stat = Path.lstat, Path.stat

        def denied(real: Any) -> Any:
            def call(self: Path, *args: Any, **kwargs: Any) -> Any:
                if self.parent.name == "demo.M02":
                    raise PermissionError(13, "Permission denied", str(self))
                return real(self, *args, **kwargs)

            return call

        monkeypatch.setattr(Path, "lstat", denied(real_lstat))
        monkeypatch.setattr(Path, "stat", denied(real_stat))
    return manifest


@pytest.mark.parametrize("how", ["directory", "link loop", "no permission"])
def test_an_unreadable_manifest_is_refused_by_name_and_every_other_model_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    registry = ModelRegistry(tmp_path)
    for machine in ("M01", "M02", "M03"):
        registry.register(_fitted(name=f"demo.{machine}").model, {"machines": [f"demo/{machine}"]})
    now = [0.0]
    models = RegistryModels(registry, reload_interval_s=1.0, clock=lambda: now[0])

    def served(machine: str) -> str | None:
        model = models.model_for(MachineSpec(tenant="demo", site="p1", line="L1", id=machine))
        return None if model is None else model.label

    assert [served(m) for m in ("M01", "M02", "M03")] == ["demo.M01@v1", "demo.M02@v1", "demo.M03@v1"]
    manifest = _unreadable_manifest(tmp_path, how, monkeypatch)
    assert registry.names() == ["demo.M01", "demo.M02", "demo.M03"]
    now[0] = 2.0
    # What it served is kept (as for any refused manifest), the others untouched, the reason logged.
    assert [served(m) for m in ("M01", "M02", "M03")] == ["demo.M01@v1", "demo.M02@v1", "demo.M03@v1"]
    assert [error for error in models.errors if "demo.M02" in error] == [
        error for error in models.errors if f"{manifest}: unreadable manifest" in error
    ]
    assert any(f"{manifest}: unreadable manifest" in error for error in models.errors)
    errors = len(models.errors)
    now[0] = 4.0
    served("M01")
    assert len(models.errors) == errors  # said once, not at every check
    fresh = RegistryModels(registry)  # a restart: nothing of it is served, the rest is
    assert fresh.model_for(MachineSpec(tenant="demo", site="p1", line="L1", id="M02")) is None
    assert fresh.model_for(MachineSpec(tenant="demo", site="p1", line="L1", id="M03")) is not None
    # ... but it is not gone: an episode it opened stays open; one of a model no longer there ends
    assert fresh.may_still_serve("demo.M02@v1")
    assert not fresh.may_still_serve("demo.M09@v1")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("mean", np.nan, "mean: not finite"),
        ("components", np.inf, "components: not finite"),
        ("scale", 0.0, "scale: must be positive"),
        ("eigenvalues", 0.0, "eigenvalues: must be positive"),
        ("t2_norm", np.inf, "t2_norm: not finite"),
        ("q_norm", -1.0, "q_norm: must be finite and at least 0"),
    ],
)
def test_a_pca_artifact_that_training_could_not_have_made_is_refused_naming_the_field(
    tmp_path: Path, field: str, value: float, reason: str
) -> None:
    """Served, it would score every row NaN (never an alert) or infinite (an alert for ever)."""
    artifact = model_to_artifact(_fitted().model)
    detector = artifact["detector"]
    if isinstance(detector[field], np.ndarray):
        detector[field] = detector[field].copy()
        detector[field].flat[0] = value
    else:
        detector[field] = value
    registry = _swap_in(tmp_path, bytes(sio.dumps(artifact)))
    with pytest.raises(
        ModelFileError, match=re.escape(f"malformed model artifact (pca_t2q artifact: {reason})")
    ):
        registry.load("demo.M01")


def test_a_file_of_another_format_version_says_so_rather_than_malformed(tmp_path: Path) -> None:
    """A newer linepulse's registry: the engineer should upgrade, not retrain."""
    artifact = model_to_artifact(_fitted().model)
    artifact["format"] = "linepulse.anomaly-model/2"
    registry = _swap_in(tmp_path, bytes(sio.dumps(artifact)))
    with pytest.raises(
        ModelFileError, match=re.escape("format 'linepulse.anomaly-model/2': this linepulse reads")
    ):
        registry.load("demo.M01")
    manifest_path = tmp_path / "demo.M01" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": "linepulse.model-registry/2"}))
    with pytest.raises(
        ModelFileError, match=re.escape("format 'linepulse.model-registry/2': this linepulse")
    ):
        registry.load("demo.M01")
    manifest_path.write_text(json.dumps({**manifest, "format": "something else"}))
    with pytest.raises(ModelFileError, match=re.escape("not a linepulse.model-registry/1 manifest")):
        registry.load("demo.M01")
