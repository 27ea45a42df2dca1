"""Sealed kernels (models.numba_config.SealedKernel): a wrapper calls its kernel straight away only
once the kernel's own specialisations are compiled and compiling is disabled, so that no call with
other types, from another thread during that first compilation, can add a specialisation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# In a fresh process with an empty numba cache, so the first call really compiles (seconds):
# meanwhile another thread keeps calling with int32 times, which must be refused every time.
_RACE = textwrap.dedent(
    """
    import threading
    import time
    import numpy as np
    from models import signal_stats as ss

    done = threading.Event()

    def first():
        ss.update(ss.new_state(), np.array([1_790_000_000_000]), np.array([1.0]))
        done.set()

    outcomes = []

    def odd():
        ts32 = np.array([1, 2, 3], dtype=np.int32)
        while not done.is_set():
            try:
                ss.update(ss.new_state(), ts32, np.array([1.0, 2.0, 3.0]))
                outcomes.append("accepted")
            except ValueError as exc:
                outcomes.append("refused" if "ts_ms" in str(exc) else repr(exc))
            time.sleep(0.001)

    threads = [threading.Thread(target=odd), threading.Thread(target=first)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        ss.update(ss.new_state(), np.array([1, 2, 3], dtype=np.int32), np.array([1.0, 2.0, 3.0]))
        after = "accepted"
    except ValueError:
        after = "refused"
    odd_outcomes = sorted(set(outcomes) - {"refused"})
    print(len(ss._update_kernel.signatures), after, len(outcomes), odd_outcomes)
    """
)


def test_no_odd_specialisation_is_compiled_while_the_kernel_is_first_compiled(tmp_path: Path) -> None:
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _RACE], check=False, cwd=REPO, env=env, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    signatures, after, calls, odd = result.stdout.split(maxsplit=3)
    assert int(calls) > 0, "the odd calls must overlap the first compilation"
    assert odd.strip() == "[]", f"an odd call was not refused naming ts_ms: {odd}"
    assert (int(signatures), after) == (4, "refused")
