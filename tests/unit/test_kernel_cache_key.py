"""numba's on-disk cache of a kernel is keyed by every source file of models (numba_config): numba
itself notices only a change of the kernel's own function, so a caller compiled with an old callee
from another module would be loaded again after the callee changed."""

from __future__ import annotations

from pathlib import Path

from models import numba_config
from models.drift import ewma_chart
from models.signal_monitor import _drift_pass


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


def test_models_digest_is_of_the_models_package() -> None:
    package = Path(numba_config.__file__).resolve().parent
    assert numba_config._source_digest(package) == numba_config.MODELS_DIGEST


def test_kernels_cache_entries_carry_the_digest() -> None:
    # A caller (the monitor's fused pass) and the callee it compiles in (the EWMA chart's step).
    for dispatcher in (_drift_pass, ewma_chart.step):
        cache = dispatcher._cache
        assert isinstance(cache, numba_config._ModelsKeyedCache)
        signature = next(iter(dispatcher.signatures), None) or ()
        key = cache._index_key(signature, dispatcher.targetctx.codegen())
        assert key[-1] == numba_config.MODELS_DIGEST
