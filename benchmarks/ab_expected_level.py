"""In-process A/B of the expected-level model: this tree's ``models.expected_level`` against the
same file at another git revision, in one process, rounds interleaved (the order swapped every
other round), CPU time per reading, median and min of the rounds; and whether both give the same
expected levels and states bit for bit.

    .venv/bin/python -m benchmarks.ab_expected_level --base main --rounds 15

100,000 readings of one signal in batches of 1,000 (a ``frames5000`` frame's temperature) and
100,000, from a new state (``training``: the lag is being learnt the whole time) and from a trained
one; readings every 10 ms (the benchmark frames' period) or, with ``--jitter``, about every second
with a step that changes at every reading. The machine runs and stops every 30,000 readings.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from models import expected_level

__all__ = ["main"]

_T0 = 1_790_000_000_000
_N = 100_000
Runner = Callable[[], tuple[np.ndarray, list[np.ndarray]]]


def _load_base(revision: str, where: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:models/expected_level.py"], check=True, capture_output=True, text=True
    ).stdout
    path = where / "expected_level_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("expected_level_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba resolves a kernel's globals through its module
    spec.loader.exec_module(module)
    return module


def _trained(model: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    params = model.ThermalParams(train_s=60, min_flips=0).vector()
    times = _T0 - 200_000_000 + np.arange(20_000, dtype=np.int64) * 1000
    values = np.random.default_rng(1).normal(50.0, 5.0, times.size)
    state = model.new_state()
    for lo in range(0, times.size, 1000):
        model.update(
            state, times[lo : lo + 1000], values[lo : lo + 1000], params, running_since_ms=int(times[lo]),
            running=(lo // 3000) % 2 == 1, utc_offset_ms=0,
        )  # fmt: skip
    assert model.ready(state)
    return state, params


def _runner(model: ModuleType, times: np.ndarray, values: np.ndarray, batch: int, training: bool) -> Runner:
    if training:
        start, params = model.new_state(), model.ThermalParams(train_s=1e7, min_flips=0).vector()
    else:
        start, params = _trained(model)

    def run() -> tuple[np.ndarray, list[np.ndarray]]:
        state = start.copy()
        out = [
            model.update(
                state,
                times[lo : lo + batch],
                values[lo : lo + batch],
                params,
                running_since_ms=int(times[lo]),
                running=(lo // 30_000) % 2 == 1,
                utc_offset_ms=0,
            )
            for lo in range(0, times.size, batch)
        ]
        return state, out

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision of the baseline")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--jitter", action="store_true", help="a step that changes at every reading")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    steps = rng.integers(900, 1100, _N) if args.jitter else np.full(_N, 10)
    times = (_T0 + np.cumsum(steps)).astype(np.int64)
    values = rng.normal(50.0, 5.0, _N).round(3)
    with tempfile.TemporaryDirectory(prefix="linepulse-ab-el-") as tmp:
        base = _load_base(args.base, Path(tmp))
        for training in (True, False):
            for batch in (1000, 100_000):
                runs = {
                    name: _runner(model, times, values, batch, training)
                    for name, model in (("base", base), ("head", expected_level))
                }
                (state_a, out_a), (state_b, out_b) = runs["base"](), runs["head"]()  # compile, compare
                same = np.array_equal(state_a, state_b) and all(
                    np.array_equal(a, b, equal_nan=True) for a, b in zip(out_a, out_b, strict=True)
                )
                ns: dict[str, list[float]] = {"base": [], "head": []}
                for r in range(args.rounds):
                    for name in ("base", "head") if r % 2 == 0 else ("head", "base"):
                        tic = time.process_time()
                        runs[name]()
                        ns[name].append((time.process_time() - tic) / _N * 1e9)
                base_ns, head_ns = statistics.median(ns["base"]), statistics.median(ns["head"])
                print(
                    f"{'training' if training else 'trained'} b{batch}: base {base_ns:.1f} (min "
                    f"{min(ns['base']):.1f}) head {head_ns:.1f} (min {min(ns['head']):.1f}) ns/reading, "
                    f"base/head {base_ns / head_ns:.2f}, bit for bit: {same}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
