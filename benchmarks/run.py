"""Run the benchmarks: ``python -m benchmarks.run --quick`` (gate, < 5 min) or ``--full`` (``make bench``).

Every ``benchmarks/bench_<area>.py`` module is run (``figures(quick) -> list[Figure]``), so an area's
module plugs in by existing. ``--full`` writes ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``
(the committed report); ``--quick`` writes the same files under ``var/bench/`` so ``make test`` leaves
the work tree clean. Either run exits 1 when a measured ratio is below its floor in
``benchmarks/floors.json`` or a module fails; a full run also fails when a floor's figure is missing.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from benchmarks.results import (
    BENCH_DIR,
    FLOORS_PATH,
    Figure,
    apply_floors,
    check_floors,
    load_floors,
    machine_info,
    machine_markdown,
    merge_results_json,
    render_table,
    write_markdown_section,
)

__all__ = ["discover", "main"]

# Cheap, in-process areas first, brokers last: a broken kernel shows up before minutes of broker time.
_ORDER = ("kernels", "timemodel", "decode", "memory", "scoring", "drift", "latency", "e2e")
_QUICK_DIR = BENCH_DIR.parent / "var" / "bench"

# The goals, as (goal, figure, minimum ratio): reported as met or not, never gated (floors gate).
_GOALS = (
    ("throughput with full analytics ≥ 80% of an empty Faust agent (frames, Apache Kafka)",
     "e2e.apache-kafka.frames.vs_empty_faust", 0.8),
    ("≥ 20× Quix Streams + river on batched frames (Apache Kafka)",
     "e2e.apache-kafka.frames.vs_quix_river", 20.0),
    ("the same on frames of 5,000 readings: ≥ 80% of an empty Faust agent",
     "e2e.apache-kafka.frames5000.vs_empty_faust", 0.8),
    ("the same on frames of 5,000 readings: ≥ 20× Quix Streams + river",
     "e2e.apache-kafka.frames5000.vs_quix_river", 20.0),
    ("p99 event-to-alert ≤ 500 ms at 100k readings/s on Apache Kafka (alert record received)",
     "latency.apache-kafka.alert.p99", 1.0),
    ("the same, event time to processed in the worker", "latency.apache-kafka.p99", 1.0),
    ("≤ 2 KB of state per machine and signal (as stored)", "memory.state_stored_per_signal", 1.0),
    ("≥ 200k rows/s anomaly scoring at batch 1 (IsolationForest, fresh rows)", "scoring.b1.vs_target", 1.0),
    ("≥ 200k rows/s anomaly scoring at batch 64", "scoring.b64.vs_target", 1.0),
    ("all drift detectors and Nelson rules on one signal ≤ 10 ns per reading (batches of 500)",
     "drift.monitor.all.b500.vs_budget", 1.0),
    ("the same ≥ 100× river's PageHinkley per reading", "drift.monitor.all.b500.vs_river_ph", 100.0),
    ("Page-Hinkley ≥ 100× river's PageHinkley per reading", "drift.page_hinkley.vs_river", 100.0),
)  # fmt: skip


def _goals_markdown(figures: Sequence[Figure]) -> str:
    by_name = {figure.name: figure for figure in figures}
    lines = ["## Goals of the issue", "", "| goal | figure | ratio | needed | |", "|---|---|---:|---:|---|"]
    for goal, name, needed in _GOALS:
        figure = by_name.get(name)
        if figure is None or figure.ratio is None:
            lines.append(f"| {goal} | `{name}` | – | {needed:g}× | not measured in this run |")
            continue
        verdict = "met" if figure.ratio >= needed else "**not met**"
        lines.append(f"| {goal} | `{name}` | {figure.ratio:.3g}× | {needed:g}× | {verdict} |")
    return "\n".join(lines) + "\n"


def _quix_version() -> str:
    python = BENCH_DIR.parent / ".venv-bench-quix" / "bin" / "python"
    if not python.exists():
        return "not installed"
    code = "import importlib.metadata as m; print(m.version('quixstreams'))"
    try:
        done = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def discover(only: Sequence[str] = ()) -> list[str]:
    """Area names of the ``bench_*.py`` modules present, in run order."""
    areas = sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))
    if only:
        unknown = sorted(set(only) - set(areas))
        if unknown:
            raise SystemExit(f"unknown area(s) {', '.join(unknown)}; present: {', '.join(areas)}")
        areas = [area for area in areas if area in only]
    rank = {area: index for index, area in enumerate(_ORDER)}
    return sorted(areas, key=lambda area: (rank.get(area, len(_ORDER)), area))


def _run_area(module: ModuleType, quick: bool) -> list[Figure] | None:
    produce = getattr(module, "figures", None)
    if not callable(produce):
        return None  # a script not (yet) plugged in: shown as skipped, its floors still apply
    figures = produce(quick)
    if not isinstance(figures, list) or not all(isinstance(f, Figure) for f in figures):
        raise TypeError(f"{module.__name__}.figures() must return a list of benchmarks.results.Figure")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the gate run of make test (Tansu, small sizes)")
    mode.add_argument(
        "--full", action="store_true", help="the full run (Apache Kafka and Tansu); the default"
    )
    parser.add_argument("--only", action="append", default=[], metavar="AREA", help="run only this area")
    parser.add_argument("--out-dir", type=Path, help="where results.json and RESULTS.md go")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    out_dir: Path = args.out_dir or (_QUICK_DIR if quick else BENCH_DIR)
    floors = load_floors(FLOORS_PATH)
    command = ["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
    started = time.monotonic()

    results_md, results_json = out_dir / "RESULTS.md", out_dir / "results.json"
    # Placeholders, so that a new RESULTS.md opens with the machine and the goals, above the areas.
    for section in ("environment",) if args.only else ("environment", "goals"):
        if not results_md.exists() or f"<!-- bench:{section} -->" not in results_md.read_text(
            encoding="utf-8"
        ):
            write_markdown_section(results_md, section, "_(being measured)_")
    all_figures: list[Figure] = []
    failures: list[str] = []
    timings: dict[str, float] = {}
    for area in discover(args.only):
        t0 = time.monotonic()
        print(f"== {area} ({'quick' if quick else 'full'})", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{area}")
            produced = _run_area(module, quick)
            if produced is None:
                print(f"skipped: benchmarks/bench_{area}.py defines no figures(quick: bool) -> list[Figure]")
                continue
            figures = apply_floors(produced, floors)
        except Exception:  # one broken area must not hide the others' results
            failures.append(f"{area}: crashed:\n{traceback.format_exc()}")
            print(failures[-1], file=sys.stderr, flush=True)
            continue
        timings[area] = time.monotonic() - t0
        all_figures += figures
        print(render_table(figures), flush=True)
        title = getattr(module, "TITLE", area.capitalize())
        notes = getattr(module, "NOTES", "")
        body = f"## {title}\n\n{render_table(figures)}\n"
        if notes:
            body += f"\n{notes.strip()}\n"
        body += f"\n_{'quick' if quick else 'full'} run, {timings[area]:.0f} s._\n"
        write_markdown_section(results_md, area, body)

    total = time.monotonic() - started
    info = machine_info(command, {"quixstreams (own venv)": _quix_version()})
    info["wall time"] = f"{total:.0f} s (" + ", ".join(f"{a} {t:.0f} s" for a, t in timings.items()) + ")"
    write_markdown_section(
        results_md,
        "environment",
        "Every ratio is linepulse against a baseline measured in the same run, higher is better "
        "(for costs: budget ÷ measured). `make bench-quick` fails when a ratio is below its floor "
        "(`benchmarks/floors.json`; floors only rise).\n\n" + machine_markdown(info) + "\n",
    )
    if not args.only:
        write_markdown_section(results_md, "goals", _goals_markdown(all_figures))
    merge_results_json(results_json, all_figures)

    violations = [str(v) for v in check_floors(all_figures)]
    measured = {f.name for f in all_figures}
    missing = sorted(name for name in floors if name not in measured)
    if missing and not quick and not args.only:
        violations += [f"{name}: has a floor but was not measured" for name in missing]
    elif missing:
        print(f"not measured in this run (floors not checked): {', '.join(missing)}")
    print(f"\nwrote {results_json} and {results_md} in {total:.0f} s")
    for problem in violations + failures:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if violations or failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
