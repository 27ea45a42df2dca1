"""numba's on-disk cache of a kernel is stamped with every source file of models (numba_config):
numba itself notices only a change of the kernel's own file, so a caller compiled with an old
callee from another module would be loaded again after the callee changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from models import numba_config

_CALLEE = """\
from models.numba_config import kernel


@kernel
def value() -> int:
    return {value}
"""
_CALLER = """\
from models.numba_config import kernel
from models.probe_callee import value


@kernel
def twice() -> int:
    return 2 * value()
"""


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_digest_follows_every_source_file(tmp_path: Path) -> None:
    package = _tree(tmp_path / "pkg", {"a.py": "A = 1\n", "drift/b.py": "def step(): return 1\n"})
    before = numba_config._source_digest(package)
    assert numba_config._source_digest(package) == before
    (package / "drift" / "b.py").write_text("def step(): return 2\n", encoding="utf-8")
    changed = numba_config._source_digest(package)
    assert changed != before
    (package / "drift" / "b.py").rename(package / "b.py")  # same bytes, another module
    assert numba_config._source_digest(package) not in (before, changed)


def test_a_changed_callee_recompiles_its_cached_caller(tmp_path: Path) -> None:
    # A copy of the models package holding only numba_config and two kernels in two modules, run
    # twice in fresh processes with one cache directory; between the runs only the callee changes.
    root = tmp_path / "root"
    shutil.copy(numba_config.__file__, _tree(root / "models", {"__init__.py": ""}) / "numba_config.py")
    _tree(root / "models", {"probe_caller.py": _CALLER})
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    run = [sys.executable, "-c", "from models.probe_caller import twice; print(twice())"]
    results = []
    for value in (1, 2):
        callee = (
            f"from models.numba_config import kernel\n\n\n@kernel\ndef value() -> int:\n    return {value}\n"
        )
        _tree(root / "models", {"probe_callee.py": callee})
        done = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
        results.append(int(done.stdout))
    assert results == [2, 4]
    assert any((tmp_path / "cache").rglob("*probe_caller*.nbi"))  # the caller was cached and reused


def test_kernels_use_the_stamped_cache() -> None:
    from models.drift import ewma_chart
    from models.signal_monitor import _drift_pass

    for dispatcher in (_drift_pass, ewma_chart.step):
        cache = dispatcher._cache
        assert isinstance(cache, numba_config._ModelsKeyedCache)
        assert cache._cache_file._source_stamp[-1] == numba_config.MODELS_DIGEST
