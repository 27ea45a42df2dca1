"""Argument types shared by sub-commands: a bad value is an argparse error naming the option."""

from __future__ import annotations

import argparse

__all__ = ["positive_float"]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value
