"""``linepulse evaluate skab``: SKAB's metrics on hand-made cases and the command on a synthetic tree."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.evaluate_skab import SkabFile, evaluate_files, load_skab_tree
from service.skab_metrics import FileResult, binary_scores, changepoints_from_labels, nab_scores
from service.skab_tuning import Grid, split_files, tune


def _real_skab() -> Path:
    """SKAB's data: $LINEPULSE_DATASETS/skab/data, else shared/datasets/skab/data beside the
    checkout or any directory above it (a clean clone for CI may sit deeper than the usual one)."""
    configured = os.environ.get("LINEPULSE_DATASETS")
    if configured:
        return Path(configured) / "skab" / "data"
    repo = Path(__file__).resolve().parents[2]
    for parent in repo.parents:
        candidate = parent / "shared" / "datasets" / "skab" / "data"
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "datasets" / "skab" / "data"


REAL_SKAB = _real_skab()


def _result(n: int, anomaly: list[int], changepoint: list[int], predicted: list[int]) -> FileResult:
    def mask(idx: list[int]) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[idx] = True
        return out

    return FileResult(
        "f", np.arange(n, dtype=np.int64) * 1000, mask(anomaly), mask(changepoint), mask(predicted)
    )


def test_binary_scores_follow_skab_formulas() -> None:
    scores = binary_scores([_result(10, [5, 6, 7, 8], [5], [6, 7, 8, 9])])
    assert (scores.tp, scores.fp, scores.tn, scores.fn) == (3, 1, 5, 1)
    assert scores.f1 == pytest.approx(3 / (3 + 1)) and scores.far == pytest.approx(1 / 6)
    assert scores.mar == pytest.approx(1 / 4)


def test_nab_perfect_null_and_false_positive() -> None:
    n = 300
    perfect = _result(n, list(range(100, 300)), [100], list(range(100, 300)))
    assert nab_scores([perfect])["standard"] == pytest.approx(100.0)
    # The end of a predicted segment is a predicted changepoint too: outside a window, a false positive.
    ended = _result(n, list(range(100, 200)), [100], list(range(100, 200)))
    assert nab_scores([ended])["standard"] == pytest.approx(100 * (1 - 0.11 + 1) / 2)
    assert nab_scores([_result(n, list(range(100, 200)), [100], [])]) == {
        "standard": 0.0,
        "lowfp": 0.0,
        "lowfn": 0.0,
    }
    # Detection at the window's end scores ~A_fp; one extra false positive costs A_fp more.
    late = _result(n, [], [100], [160, 161, 162, 250, 251])
    # changepoints: 160 (in window, at its end), 163 (outside), 250, 252 -> 3 FPs, 1 TP at the end.
    standard = nab_scores([late])["standard"]
    assert standard == pytest.approx(100 * ((-0.11 + -0.11 * 3) - (-1)) / (1 - (-1)), abs=0.2)
    assert changepoints_from_labels(np.array([True, True, False])).tolist() == [True, False, True]


def _write_skab_file(path: Path, seed: int, anomalous: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 700
    base = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    anomaly = np.zeros(n)
    changepoint = np.zeros(n)
    if anomalous:
        base[500:600] += [6.0, -6.0, 4.0]
        anomaly[500:600] = 1
        changepoint[[500, 599]] = 1
    lines = ["datetime;A;B;C;anomaly;changepoint"]
    start = np.datetime64("2020-03-09T10:00:00")
    for i in range(n):
        stamp = str(start + np.timedelta64(i, "s")).replace("T", " ")
        values = ";".join(f"{v:.5f}" for v in base[i])
        lines.append(f"{stamp};{values};{anomaly[i]:.1f};{changepoint[i]:.1f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_evaluate_skab_on_a_synthetic_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(3):
        _write_skab_file(tmp_path / "data" / "valve" / f"{index}.csv", index, anomalous=True)
    (tmp_path / "data" / "anomaly-free").mkdir()
    (tmp_path / "data" / "anomaly-free" / "free.csv").write_text(
        "datetime;A;B;C\n2020-03-09 10:00:00;1;2;3\n"
    )
    out = tmp_path / "scores.json"
    assert main(["evaluate", "skab", str(tmp_path / "data"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 labelled files" in printed and "Conv-AE" in printed and "MSCRED" in printed
    scores = json.loads(out.read_text())
    assert set(scores) == {"f1", "far", "mar", "nab_standard", "nab_lowfp", "nab_lowfn"}
    # A 6-sigma shift is found; the false alarms are the 20-row feature window trailing its end.
    assert scores["f1"] > 0.8 and scores["far"] < 0.15


def test_evaluate_skab_names_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "skab", str(tmp_path / "nope")]) == 2
    assert "SKAB data directory not found" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_skab_on_the_real_data(tmp_path: Path) -> None:
    if not REAL_SKAB.is_dir():
        pytest.skip(f"SKAB data not found at {REAL_SKAB} (shared/datasets/skab/data)")
    out = tmp_path / "skab.json"
    assert main(["evaluate", "skab", str(REAL_SKAB), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    # The figures recorded in docs/anomaly.md; beat every published outlier row.
    assert scores["f1"] > 0.78 and scores["far"] < 0.1355


def _skab_file(name: str) -> SkabFile:
    empty = np.zeros(0)
    return SkabFile(name, ("A",), empty.astype(np.int64), empty.reshape(0, 1), empty > 0, empty > 0)


def test_split_alternates_files_of_each_directory_in_natural_order() -> None:
    names = [f"valve1/{i}.csv" for i in range(16)] + [f"valve2/{i}.csv" for i in range(4)]
    names += [f"other/{i}.csv" for i in range(1, 15)]
    part_a, part_b = split_files([_skab_file(name) for name in sorted(names)])
    a, b = [f.name for f in part_a], [f.name for f in part_b]
    assert set(a).isdisjoint(b) and sorted(a + b) == sorted(names)
    assert (len(a), len(b)) == (17, 17)
    assert [n for n in a if n.startswith("valve1/")] == [f"valve1/{i}.csv" for i in range(0, 16, 2)]
    assert [n for n in b if n.startswith("other/")] == [f"other/{i}.csv" for i in range(2, 15, 2)]
    assert [n for n in a if n.startswith("valve2/")] == ["valve2/0.csv", "valve2/2.csv"]


def _synthetic_files(tmp_path: Path, count: int) -> list[SkabFile]:
    for index in range(count):
        _write_skab_file(tmp_path / "data" / f"d{index % 2}" / f"{index}.csv", index, anomalous=True)
    return load_skab_tree(tmp_path / "data")


def test_tuning_scores_a_configuration_as_the_protocol_does(tmp_path: Path) -> None:
    files = _synthetic_files(tmp_path, 3)
    grid = Grid(windows=(5, 20), margin=(1.0, 3.0), consecutive=(1, 3), release=(1.0, 0.7))
    tuned = tune(files, grid, far_limit=0.2)
    assert tuned.tried == grid.size == 16
    # The shortcut (one fit per window, thresholds and runs re-applied) gives the protocol's counts.
    again = evaluate_files(files, tuned.config)["confusion"]
    assert again == {
        "tp": tuned.scores.tp,
        "fp": tuned.scores.fp,
        "tn": tuned.scores.tn,
        "fn": tuned.scores.fn,
    }
    # And it is the best feasible one: no configuration of the grid beats it on these files.
    for window, margin, consecutive, release in itertools.product((5, 20), (1.0, 3.0), (1, 3), (1.0, 0.7)):
        config = replace(tuned.config, window=window, margin=margin, consecutive=consecutive, release=release)
        other = evaluate_files(files, config)
        if other["far"] < 0.2:
            assert other["f1"] <= tuned.scores.f1


def test_cross_validation_on_a_synthetic_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _synthetic_files(tmp_path, 4)
    out = tmp_path / "cv.json"
    assert main(["evaluate", "skab", str(tmp_path / "data"), "--cross-validate", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Fold A -> B: tuned on 2 files, tested on 2 others" in printed and "held out" in printed
    scores = json.loads(out.read_text())
    details = scores["cross_validation"]
    assert {"f1", "far", "mar", "nab_standard", "nab_lowfp", "nab_lowfn"} <= set(scores)
    tested = [set(fold["tested_on"]) for fold in details["folds"]]
    assert tested[0].isdisjoint(tested[1]) and len(tested[0] | tested[1]) == 4
    for fold in details["folds"]:
        assert set(fold["tuned_on"]).isdisjoint(fold["tested_on"])
    assert details["pooled_held_out"]["files"] == 4 and scores["f1"] == details["pooled_held_out"]["f1"]
    assert scores["f1"] > 0.8  # a 6-sigma shift is found out of sample too


@pytest.mark.slow
def test_cross_validation_on_the_real_data(tmp_path: Path) -> None:
    if not REAL_SKAB.is_dir():
        pytest.skip(f"SKAB data not found at {REAL_SKAB} (shared/datasets/skab/data)")
    out = tmp_path / "cv.json"
    assert main(["evaluate", "skab", str(REAL_SKAB), "--cross-validate", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    # The held-out figures recorded in docs/anomaly.md (34 files, each scored by a setting chosen without it).
    assert scores["f1"] == pytest.approx(0.7930, abs=0.001) and scores["far"] == pytest.approx(
        0.0975, abs=0.001
    )
    assert scores["cross_validation"]["pooled_held_out"]["files"] == 34
