"""Argument types and options shared by sub-commands: a bad value is an argparse error naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace

from models.anomaly.features import MAX_WINDOW, STATS
from models.anomaly.scoring import MAX_ROWS
from models.anomaly.training import DetectorKind, ModelConfig, default_config

Defaults = Callable[[DetectorKind], ModelConfig]

__all__ = ["add_model_options", "fraction", "int_at_least", "model_config", "positive_float", "positive_int"]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value


def positive_int(text: str, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {maximum:,}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argument type: a whole number of at least ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return convert


def _window_rows(text: str) -> int:
    return positive_int(text, MAX_WINDOW)


def _row_count(text: str) -> int:
    return positive_int(text, MAX_ROWS)


def fraction(text: str) -> float:
    """A rate in [0, 1), e.g. a false-alarm target."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction in [0, 1), e.g. 0.01 for 1 %")
    return value


def add_model_options(parser: argparse.ArgumentParser, defaults: Defaults = default_config) -> None:
    """The anomaly model's hyper-parameters, for ``train`` and ``evaluate skab`` alike; ``defaults``
    gives each detector's configuration before the options."""
    pca, forest = defaults("pca_t2q"), defaults("isolation_forest")
    parser.add_argument("--detector", choices=("pca_t2q", "isolation_forest"), help="default: pca_t2q")
    parser.add_argument("--window", type=_window_rows, help=f"feature window in rows (default {pca.window})")
    parser.add_argument(
        "--false-alarm-rate",
        type=fraction,
        help="calibration target: share of training rows allowed above the threshold "
        f"(default {pca.false_alarm_rate:g}: the largest training score; "
        f"{forest.false_alarm_rate:g} for isolation_forest)",
    )
    parser.add_argument(
        "--margin",
        type=positive_float,
        help=f"threshold = margin x training quantile (default {pca.margin:g}; "
        f"{forest.margin:g} for isolation_forest, whose scores never exceed 1)",
    )
    parser.add_argument(
        "--stats",
        type=_stats,
        help=f"comma-separated window statistics (default {','.join(pca.stats)}; "
        f"{','.join(forest.stats)} for isolation_forest); any of {','.join(STATS)}",
    )
    parser.add_argument(
        "--consecutive",
        type=_row_count,
        help=f"rows above the threshold before a row is flagged (default {pca.consecutive}; "
        f"{forest.consecutive} for isolation_forest)",
    )


def _stats(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in STATS]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct statistics among {', '.join(STATS)}")
    return names


def model_config(args: argparse.Namespace, defaults: Defaults = default_config) -> ModelConfig:
    """The detector's default configuration with the options given on the command line."""
    base = defaults(args.detector or "pca_t2q")
    given = {
        name: getattr(args, name)
        for name in ("window", "stats", "false_alarm_rate", "margin", "consecutive")
        if getattr(args, name) is not None
    }
    return replace(base, **given)
