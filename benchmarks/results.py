"""The common results API of every benchmark: :class:`Figure`, rate measurement, results files and floors.

A figure is a measured value *and* the value of a baseline measured in the same session, so the
gate is a ratio: absolute speeds change with the machine and with whatever else shares its two
cores, a ratio against a peer run seconds earlier changes far less. ``ratio`` is always "higher is
better": ``value / baseline`` for rates, ``baseline / value`` for costs such as latency or bytes
(there the baseline is the budget the issue sets, e.g. 500 ms or 2 KB).

A benchmark module is ``benchmarks/bench_<area>.py`` exposing ``figures(quick: bool) -> list[Figure]``;
:mod:`benchmarks.run` finds it by name, so modules written by other areas (drift, scoring) plug in
without editing the runner. A module may also define ``TITLE`` (its section heading) and ``NOTES``
(Markdown printed under its table).

``benchmarks/RESULTS.md`` is made of sections between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` markers; :func:`write_markdown_section` replaces one section and keeps
everything else, including text written by hand outside any markers.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BENCH_DIR",
    "FLOORS_PATH",
    "Figure",
    "FloorViolation",
    "apply_floors",
    "best_rate",
    "check_floors",
    "cost_figure",
    "load_floors",
    "machine_info",
    "machine_markdown",
    "merge_results_json",
    "rate_figure",
    "render_table",
    "write_markdown_section",
]

BENCH_DIR: Final = Path(__file__).resolve().parent
FLOORS_PATH: Final = BENCH_DIR / "floors.json"

# Versions worth knowing when comparing two RESULTS.md files; absent packages are shown as such.
_PACKAGES: Final = (
    "numpy",
    "numba",
    "faust-streaming",
    "aiokafka",
    "kafka-python",
    "pydantic",
    "orjson",
    "scikit-learn",
    "river",
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure. ``name`` is stable and dotted (``e2e.tansu.frames.vs_empty_faust``): it is
    the key of ``floors.json``, so renaming a figure drops its floor (the floors test then fails).

    ``baseline`` is the peer's value in the same unit, ``ratio`` is "higher is better" (see the module
    docstring); both are None for a figure shown for information only. ``floor`` is filled in from
    ``floors.json`` by the runner. ``what`` and ``vs`` describe the figure and its baseline in RESULTS.md.
    """

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    floor: float | None = None
    what: str = ""
    vs: str = ""

    def passes(self) -> bool:
        return self.floor is None or (self.ratio is not None and self.ratio >= self.floor)

    def to_json(self) -> dict[str, Any]:
        # Exactly the fields the issue specifies; descriptions live in RESULTS.md.
        return {
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": None if self.baseline is None else _round(self.baseline),
            "ratio": None if self.ratio is None else _round(self.ratio),
            "floor": self.floor,
        }


def _round(value: float) -> float:
    # Four significant digits: more would only record noise.
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.4g}")


def rate_figure(
    name: str, value: float, baseline: float, unit: str, *, what: str = "", vs: str = ""
) -> Figure:
    """A throughput (higher is better): ratio = value / baseline."""
    return Figure(name, value, unit, baseline, value / baseline if baseline > 0 else None, what=what, vs=vs)


def cost_figure(name: str, value: float, budget: float, unit: str, *, what: str = "", vs: str = "") -> Figure:
    """A cost (lower is better) against a budget or a peer's cost: ratio = budget / value."""
    return Figure(name, value, unit, budget, budget / value if value > 0 else math.inf, what=what, vs=vs)


def best_rate(
    run: Callable[[], object], items_per_call: float, *, min_time_s: float = 0.2, repeat: int = 3
) -> float:
    """Items per second of ``run``: the best of ``repeat`` timed rounds of at least ``min_time_s`` each.

    The best round, not the mean: on a shared 2-core machine noise only ever slows a round down,
    so the fastest round is the closest to the code's own cost. GC is paused inside a round so one
    collection does not land on only one side of a comparison.
    """
    run()  # warm-up: numba compilation, caches, lazy imports
    return max(best_rate_round(run, items_per_call, min_time_s) for _ in range(repeat))


def best_rates(
    runs: Mapping[str, Callable[[], object]],
    items_per_call: float,
    *,
    min_time_s: float = 0.2,
    repeat: int = 5,
) -> dict[str, float]:
    """:func:`best_rate` of several contenders, their rounds interleaved.

    One contender's rounds after another's let a burst of load from a neighbour land on one side
    only; taking turns round by round spreads it over all of them, so their ratios hold still.
    """
    for run in runs.values():
        run()  # warm-up
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = max(best[name], best_rate_round(run, items_per_call, min_time_s))
    return best


def best_rate_round(run: Callable[[], object], items_per_call: float, min_time_s: float) -> float:
    """Items per second of one timed round of at least ``min_time_s`` (GC paused)."""
    calls = 0
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < min_time_s:
            run()
            calls += 1
            elapsed = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    return calls * items_per_call / elapsed


# -- floors -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorViolation:
    name: str
    ratio: float | None
    floor: float

    def __str__(self) -> str:
        shown = "not measured" if self.ratio is None else f"{self.ratio:.3g}"
        return f"{self.name}: ratio {shown} is below its floor {self.floor:g}"


def load_floors(path: Path = FLOORS_PATH) -> dict[str, float]:
    """``floors.json``: ``{"floors": {figure name: minimum ratio}}`` (other keys are documentation)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    floors = data["floors"]
    if not isinstance(floors, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in floors.items()
    ):
        raise ValueError(f"{path}: 'floors' must map figure names to numbers")
    return {name: float(value) for name, value in floors.items()}


def apply_floors(figures: Iterable[Figure], floors: Mapping[str, float]) -> list[Figure]:
    return [replace(figure, floor=floors.get(figure.name)) for figure in figures]


def check_floors(figures: Sequence[Figure]) -> list[FloorViolation]:
    return [
        FloorViolation(f.name, f.ratio, f.floor) for f in figures if f.floor is not None and not f.passes()
    ]


# -- results.json ---------------------------------------------------------------------------------------


def merge_results_json(path: Path, figures: Sequence[Figure]) -> None:
    """Replace the entries of ``figures`` (by name) in the JSON list at ``path``, keeping the others.

    Merging rather than overwriting lets one area be re-run (``--only drift``) without losing the rest.
    """
    existing: list[dict[str, Any]] = []
    if path.exists():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, list):
            existing = [entry for entry in loaded if isinstance(entry, dict)]
    fresh = {figure.name: figure.to_json() for figure in figures}
    merged = [entry for entry in existing if entry.get("name") not in fresh]
    merged += fresh.values()
    merged.sort(key=lambda entry: str(entry.get("name")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")


# -- RESULTS.md --------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g} M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g} k"
    return f"{value:.3g}"


def render_table(figures: Sequence[Figure]) -> str:
    lines = [
        "| figure | value | unit | baseline | ratio | floor | | what (vs what) |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        ratio = "–" if f.ratio is None else f"{f.ratio:.3g}×"
        floor = "–" if f.floor is None else f"{f.floor:g}×"
        status = "" if f.floor is None else ("ok" if f.passes() else "**FAIL**")
        what = f.what + (f" (vs {f.vs})" if f.vs else "")
        cells = [f"`{f.name}`", _fmt(f.value), f.unit, _fmt(f.baseline), ratio, floor, status, what]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown_section(
    path: Path, section: str, body: str, *, heading: str = "# Benchmark results"
) -> None:
    """Put ``body`` between the markers of ``section`` in ``path``; other sections and prose stay.

    A new section is appended at the end; a missing file starts with ``heading``.
    """
    begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else heading + "\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


# -- the machine ----------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=10, check=False, cwd=BENCH_DIR
    ).stdout.strip()


def _git_revision() -> str:
    try:
        rev = _git("rev-parse", "--short", "HEAD")
        # The run's own outputs, rewritten by every run, do not make the code it measured dirty.
        dirty = _git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ":(top)",
            ":(top,exclude)benchmarks/RESULTS.md",
            ":(top,exclude)benchmarks/results.json",
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" (with uncommitted changes)" if dirty else "")


def machine_info(
    command: Sequence[str] | None = None, extra_versions: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What a reader needs to compare two result files: CPU, cores, versions, date, command, revision."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or 0),
        "python": sys.version.split()[0],
        **{package: _version(package) for package in _PACKAGES},
        **dict(extra_versions or {}),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": _git_revision(),
        "command": shlex.join(command if command is not None else [sys.executable, *sys.argv]),
    }
    return info


def machine_markdown(info: Mapping[str, str]) -> str:
    rows = "\n".join(f"| {key} | `{value}` |" for key, value in info.items())
    return f"| | |\n|---|---|\n{rows}"
