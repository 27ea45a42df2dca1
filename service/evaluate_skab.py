"""``linepulse evaluate skab PATH``: SKAB's published protocol over a tree of SKAB-format CSV files.

For every labelled file (``;``-separated, a ``datetime`` column, sensor columns, ``anomaly`` and
``changepoint``): the model is fitted on the first 400 rows and scores the rest, with the same
:func:`models.anomaly.training.fit_model` and :mod:`models.anomaly.scoring` functions as
``linepulse train`` and the stream. Features of the test rows see the rows before them, training
rows included, as the stream would. Scores are SKAB's (:mod:`service.skab_metrics`), printed next
to the published leaderboard. Files without the label columns (``anomaly-free``) are skipped.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from models.anomaly.features import window_features
from models.anomaly.scoring import flag_runs
from models.anomaly.training import EVALUATED_CONFIG, DetectorKind, ModelConfig, fit_model
from service.cli_args import add_model_options, fraction, model_config
from service.exceptions import ConfigError
from service.skab_metrics import FileResult, binary_scores, nab_scores

__all__ = [
    "LEADERBOARD_CHANGEPOINT",
    "LEADERBOARD_OUTLIER",
    "SKAB_CONFIG",
    "SKAB_FOREST_CONFIG",
    "SkabFile",
    "evaluate_files",
    "format_report",
    "load_skab_tree",
    "register",
    "skab_config",
]

TRAIN_ROWS: Final = 400
_LABELS: Final = ("anomaly", "changepoint")

# The model evaluated by default (see docs/anomaly.md for how it was chosen: one configuration for
# every file, nothing tuned per file).
SKAB_CONFIG: Final = EVALUATED_CONFIG
# SKAB's anomalies shift the signals' levels, and 400 training rows are few for a forest: the window
# means stay in, at the 99 % quantile, 3 rows in a row (F1 0.38 in docs/anomaly.md).
SKAB_FOREST_CONFIG: Final = replace(
    EVALUATED_CONFIG, detector="isolation_forest", false_alarm_rate=0.01, margin=1.0, consecutive=3
)


def skab_config(detector: DetectorKind) -> ModelConfig:
    """The configuration ``evaluate skab`` starts from for ``detector``."""
    return SKAB_FOREST_CONFIG if detector == "isolation_forest" else SKAB_CONFIG


# Published rows (SKAB README, commit b2c0d46): (F1, FAR %, MAR %) and NAB (Standard, LowFP, LowFN).
LEADERBOARD_OUTLIER: Final = (
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T²+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T²", 0.66, 19.21, 42.6),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("MSCRED", 0.36, 49.94, 69.88),
    ("Vanilla AE", 0.39, 2.59, 75.15),
    ("Isolation Forest", 0.29, 2.56, 82.89),
)
LEADERBOARD_CHANGEPOINT: Final = (
    ("MSCRED", 32.42, 16.53, 40.28),
    ("Isolation Forest", 26.16, 19.5, 30.82),
    ("T²+Q (PCA)", 25.35, 14.51, 31.33),
    ("Conv-AE", 23.61, 21.54, 27.55),
    ("LSTM-AE", 23.51, 20.11, 25.91),
    ("T²", 19.54, 10.2, 24.31),
    ("MSET", 13.84, 10.22, 17.37),
    ("Vanilla AE", 11.41, 6.53, 13.91),
    ("Vanilla LSTM", 11.31, -3.8, 17.25),
)


@dataclass(frozen=True, slots=True)
class SkabFile:
    name: str
    signals: tuple[str, ...]
    ts_ms: np.ndarray
    values: np.ndarray  # (n, len(signals)) float64
    anomaly: np.ndarray
    changepoint: np.ndarray


def _read_csv(path: Path, root: Path) -> SkabFile | None:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = next(reader, None)
        if header is None or "datetime" not in header:
            raise ConfigError(f"{path}: not a SKAB file (no 'datetime' column in the header)")
        if not all(label in header for label in _LABELS):
            return None
        time_col = header.index("datetime")
        label_cols = [header.index(label) for label in _LABELS]
        signal_cols = [i for i, name in enumerate(header) if i != time_col and i not in label_cols]
        stamps: list[int] = []
        rows: list[list[float]] = []
        labels: list[list[float]] = []
        for number, record in enumerate(reader, start=2):
            if not record:
                continue
            try:
                stamps.append(int(datetime.fromisoformat(record[time_col]).timestamp() * 1000))
                rows.append([float(record[i]) for i in signal_cols])
                labels.append([float(record[i]) for i in label_cols])
            except (ValueError, IndexError) as exc:
                raise ConfigError(f"{path}:{number}: unreadable row ({exc})") from None
    values = np.asarray(rows, dtype=np.float64).reshape(-1, len(signal_cols))
    if not np.isfinite(values).all():
        raise ConfigError(f"{path}: non-finite sensor values")
    label_array = np.asarray(labels, dtype=np.float64).reshape(-1, 2)
    return SkabFile(
        name=str(path.relative_to(root)),
        signals=tuple(header[i] for i in signal_cols),
        ts_ms=np.asarray(stamps, dtype=np.int64),
        values=np.ascontiguousarray(values),
        anomaly=label_array[:, 0] == 1.0,
        changepoint=label_array[:, 1] == 1.0,
    )


def load_skab_tree(root: Path) -> list[SkabFile]:
    """Every labelled ``*.csv`` below ``root``, in path order."""
    if not root.is_dir():
        raise ConfigError(f"{root}: SKAB data directory not found")
    files = [
        loaded
        for path in sorted(root.rglob("*.csv"), key=lambda p: str(p.relative_to(root)))
        if (loaded := _read_csv(path, root)) is not None
    ]
    if not files:
        raise ConfigError(f"{root}: no labelled SKAB CSV files (with anomaly and changepoint columns)")
    return files


def evaluate_file(skab: SkabFile, config: ModelConfig) -> FileResult:
    """Fit on the first 400 rows, predict the rest: SKAB's protocol for one file."""
    if skab.values.shape[0] <= TRAIN_ROWS:
        raise ConfigError(f"{skab.name}: needs more than {TRAIN_ROWS} rows, has {skab.values.shape[0]}")
    fitted = fit_model(skab.values[:TRAIN_ROWS], skab.signals, config, name=skab.name)
    model = fitted.model
    features = window_features(model.features, skab.values)
    scores = model.detector.score(features[TRAIN_ROWS:])
    predicted, _ = flag_runs(scores, model.threshold, model.consecutive, release=model.release)
    return FileResult(
        name=skab.name,
        ts_ms=skab.ts_ms[TRAIN_ROWS:],
        anomaly=skab.anomaly[TRAIN_ROWS:],
        changepoint=skab.changepoint[TRAIN_ROWS:],
        predicted=predicted,
    )


def evaluate_files(files: list[SkabFile], config: ModelConfig) -> dict[str, Any]:
    return summarise([evaluate_file(skab, config) for skab in files], config.to_dict())


def summarise(results: list[FileResult], config: dict[str, Any]) -> dict[str, Any]:
    """SKAB's pooled scores over ``results``, with the configuration(s) that produced them."""
    binary = binary_scores(results)
    nab = nab_scores(results)
    return {
        "f1": binary.f1,
        "far": binary.far,
        "mar": binary.mar,
        "nab_standard": nab["standard"],
        "nab_lowfp": nab["lowfp"],
        "nab_lowfn": nab["lowfn"],
        "files": len(results),
        "test_rows": sum(int(r.anomaly.shape[0]) for r in results),
        "confusion": {"tp": binary.tp, "fp": binary.fp, "tn": binary.tn, "fn": binary.fn},
        "config": config,
    }


def format_report(summary: dict[str, Any], label: str | None = None) -> str:
    """The scores next to the published leaderboard; ``label`` names linepulse's row (default: detector)."""
    label = label or f"linepulse {summary['config']['detector']}"
    lines = [
        f"SKAB protocol: {summary['files']} labelled files, {summary['test_rows']} test rows "
        f"(fit on the first {TRAIN_ROWS} rows of each)",
        "",
        "Outlier detection            F1    FAR %   MAR %",
        f"  {label:<27}{summary['f1']:.2f}  {100 * summary['far']:6.2f}  {100 * summary['mar']:6.2f}",
    ]
    lines += [f"  {name:<27}{f1:.2f}  {far:6.2f}  {mar:6.2f}" for name, f1, far, mar in LEADERBOARD_OUTLIER]
    lines += [
        "",
        "Changepoint detection (NAB)  Standard  LowFP   LowFN",
        f"  {label:<27}{summary['nab_standard']:7.2f}  "
        f"{summary['nab_lowfp']:6.2f}  {summary['nab_lowfn']:6.2f}",
    ]
    lines += [
        f"  {name:<27}{std:7.2f}  {low_fp:6.2f}  {low_fn:6.2f}"
        for name, std, low_fp, low_fn in LEADERBOARD_CHANGEPOINT
    ]
    return "\n".join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    config = model_config(args, skab_config)
    if args.wide_grid and not args.cross_validate:
        raise ConfigError("--wide-grid: only with --cross-validate")
    created = args.json is not None and not args.json.exists()
    if args.json is not None:
        _writable(args.json)  # before a run of minutes, not after it
    try:
        return _evaluate_with(args, config)
    except ValueError as exc:  # the options make a model that cannot be fitted (e.g. no variance)
        raise ConfigError(f"model options: {exc}") from None
    finally:
        if created and args.json.exists() and args.json.stat().st_size == 0:
            args.json.unlink()  # the run failed: no empty result file left behind


def _writable(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"--json: {path} is a directory")
    try:
        path.touch()
    except OSError as exc:
        raise ConfigError(f"--json: cannot write {path} ({exc.strerror or exc})") from None


def _evaluate_with(args: argparse.Namespace, config: ModelConfig) -> int:
    files = load_skab_tree(args.path)
    extra: dict[str, Any] = {}
    if args.cross_validate:
        # Imported here: the tuning module builds on this one's protocol functions.
        from service.skab_tuning import GRID, WIDE_GRID, cross_validate, format_cross_validation

        grid = WIDE_GRID if args.wide_grid else GRID
        validation = cross_validate(files, grid, config, args.tuning_far_limit)
        summary = validation.pooled
        print(format_cross_validation(validation))
        print()
        print(format_report(summary, "linepulse, held out"))
        extra = {"cross_validation": validation.to_dict()}
    else:
        summary = evaluate_files(files, config)
        print(format_report(summary))
    if args.json is not None:
        keys = ("f1", "far", "mar", "nab_standard", "nab_lowfp", "nab_lowfn")
        payload = {key: summary[key] for key in keys} | extra
        try:
            args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise ConfigError(f"--json: cannot write {args.json} ({exc.strerror or exc})") from None
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = subparsers.add_parser("evaluate", help="score the anomaly models on a public benchmark")
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    skab = benchmarks.add_parser("skab", help="SKAB (Skoltech Anomaly Benchmark) with its published protocol")
    skab.add_argument("path", type=Path, metavar="PATH", help="directory tree of SKAB-format CSV files")
    skab.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the scores as JSON (rates as fractions)"
    )
    add_model_options(skab, skab_config)
    skab.add_argument(
        "--cross-validate",
        action="store_true",
        help="choose the settings on half of the files and score the other half, both ways "
        "(docs/anomaly.md); --json then holds the pooled held-out scores",
    )
    skab.add_argument(
        "--wide-grid", action="store_true", help="with --cross-validate: 5040 configurations instead of 36"
    )
    skab.add_argument(
        "--tuning-far-limit",
        type=fraction,
        default=0.10,
        help="with --cross-validate: the FAR a configuration must keep on the tuning files (default 0.10)",
    )
    skab.set_defaults(handler=_evaluate)
