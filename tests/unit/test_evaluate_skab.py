"""``linepulse evaluate skab``: SKAB's metrics on hand-made cases and the command on a synthetic tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.skab_metrics import FileResult, binary_scores, changepoints_from_labels, nab_scores

REAL_SKAB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "skab" / "data"


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
