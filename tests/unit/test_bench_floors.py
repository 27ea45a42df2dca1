"""The benchmark floors only rise, and the results API keeps other areas' results and sections."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.results import (
    FLOORS_PATH,
    Figure,
    apply_floors,
    check_floors,
    cost_figure,
    load_floors,
    merge_results_json,
    rate_figure,
    write_markdown_section,
)

_REPO = FLOORS_PATH.parent.parent
_REL = FLOORS_PATH.relative_to(_REPO).as_posix()
_HISTORY = 200  # committed versions to compare with; bounded so a long history stays fast


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _committed_floors() -> list[tuple[str, dict[str, float]]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        _git("rev-parse", "--verify", "HEAD")
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout with commits")
    # HEAD and every earlier commit that changed the file: a lowered floor is caught in the
    # working tree (before commit) and in CI (where HEAD itself lowered it).
    revisions = ["HEAD", *_git("log", f"-{_HISTORY}", "--format=%H", "--", _REL).split()]
    versions = []
    for revision in revisions:
        try:
            text = _git("show", f"{revision}:{_REL}")
        except subprocess.CalledProcessError:
            continue  # the file did not exist yet at that revision
        versions.append((revision[:10], {k: float(v) for k, v in json.loads(text)["floors"].items()}))
    return versions


def test_floors_file_is_well_formed() -> None:
    floors = load_floors()
    for name, floor in floors.items():
        assert name == name.strip() and "." in name, name
        assert floor > 0, f"{name}: a floor must be positive"


def test_floors_never_fall_nor_disappear() -> None:
    current = load_floors()
    problems = []
    for revision, old in _committed_floors():
        for name, floor in old.items():
            if name not in current:
                problems.append(f"{name}: floor {floor} (in {revision}) was removed")
            elif current[name] < floor:
                problems.append(f"{name}: floor lowered from {floor} (in {revision}) to {current[name]}")
    assert not problems, "floors only rise:\n" + "\n".join(sorted(set(problems)))


def test_ratios_are_higher_is_better() -> None:
    assert rate_figure("a.b", 200.0, 100.0, "x/s").ratio == 2.0
    assert cost_figure("a.c", 250.0, 500.0, "ms").ratio == 2.0


def test_floor_check_flags_only_figures_below_their_floor() -> None:
    figures = apply_floors(
        [
            rate_figure("a.ok", 3.0, 1.0, "x/s"),
            rate_figure("a.bad", 1.0, 1.0, "x/s"),
            Figure("a.info", 1, "x", None, None),
        ],
        {"a.ok": 2.0, "a.bad": 2.0},
    )
    assert [violation.name for violation in check_floors(figures)] == ["a.bad"]


def test_results_json_merges_by_name(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    merge_results_json(path, [rate_figure("drift.x", 2.0, 1.0, "r/s"), rate_figure("e2e.y", 1.0, 1.0, "r/s")])
    merge_results_json(path, [rate_figure("e2e.y", 5.0, 1.0, "r/s")])
    entries = json.loads(path.read_text())
    assert {e["name"]: e["value"] for e in entries} == {"drift.x": 2.0, "e2e.y": 5.0}
    assert set(entries[0]) == {"name", "value", "unit", "baseline", "ratio", "floor"}


def test_markdown_sections_replace_only_their_own(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_markdown_section(path, "e2e", "old e2e")
    path.write_text(path.read_text() + "\nhand-written note\n")
    write_markdown_section(path, "drift", "drift table")
    write_markdown_section(path, "e2e", "new e2e")
    text = path.read_text()
    assert "new e2e" in text and "old e2e" not in text
    assert "drift table" in text and "hand-written note" in text
