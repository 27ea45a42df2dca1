"""The numba compilation flags every kernel in :mod:`models` uses, and the ``@kernel`` decorator.

One place for the flags, so a kernel cannot quietly differ from its neighbours (stumpy keeps its
flags in one config module for the same reason):

- ``nopython``: a kernel that falls back to object mode would be ~100x slower without telling us.
- ``nogil``: the stream, ``analyze`` and benchmarks may run kernels from threads.
- ``cache``: compiling a kernel costs ~0.3-1 s per signature; the cache makes later starts fast.
- ``fastmath=False``: Welford and the EW recurrences rely on IEEE evaluation order, and the tests
  compare with numpy at ``rtol=1e-9``; reassociation would break both for a few percent of speed.
- ``error_model="numpy"``: division by zero yields inf/NaN instead of raising, which removes a
  branch from every division in a hot loop. Kernels guard their divisions themselves.

A kernel's cache index is stamped, besides numba's own stamp (its file's time and size), with
:data:`MODELS_DIGEST`, the hash of every source file of :mod:`models`: numba does not notice
when a kernel it calls, from another module, has changed, and would load the caller compiled with
the old callee (a kernel edited in ``models/drift`` was silently not run by the monitor that
calls it, whose cached machine code holds the callee's, until ``__pycache__`` was deleted).

Where the cache lives: numba tries ``NUMBA_CACHE_DIR`` first (numba reads it itself; this module
reads no environment), then ``__pycache__`` next to the module (works for an editable install,
whose modules are the source files), then the user-wide cache (``~/.cache/numba``). Only if none of
them is writable does numba refuse to decorate (``RuntimeError`` at import); :func:`kernel` then
compiles without a cache and warns once per kernel, so a read-only container still starts, only
slower.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import numba
from numba.core.caching import FunctionCache

__all__ = [
    "JIT_OPTIONS",
    "MODELS_DIGEST",
    "KernelCacheWarning",
    "SealedKernel",
    "compiled_signatures",
    "inline_kernel",
    "kernel",
]

JIT_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "nopython": True,
        "nogil": True,
        "cache": True,
        "fastmath": False,
        "error_model": "numpy",
    }
)

_F = TypeVar("_F", bound=Callable[..., Any])


def _source_digest(package: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


MODELS_DIGEST: Final = _source_digest(Path(__file__).resolve().parent)


class _ModelsKeyedCache(FunctionCache):
    """numba's cache of one kernel, its index also stamped with :data:`MODELS_DIGEST`: a changed
    digest empties the index, so the kernel is compiled again and its old files are overwritten."""

    def __init__(self, py_func: Callable[..., Any]) -> None:
        super().__init__(py_func)  # type: ignore[no-untyped-call]
        self._cache_file._source_stamp = (self._cache_file._source_stamp, MODELS_DIGEST)


class KernelCacheWarning(RuntimeWarning):
    """No writable place for numba's on-disk cache: the kernel is compiled at every start."""


# Every kernel made here, so that a caller can tell compiling from loading (compiled_signatures).
_KERNELS: list[Any] = []


def compiled_signatures() -> int:
    """Signatures compiled so far in this process, not loaded from the on-disk cache (all of them
    for a kernel without a cache)."""
    return sum(sum(kernel.stats.cache_misses.values()) for kernel in _KERNELS)


def _compile(func: _F, **extra: Any) -> _F:
    try:
        compiled: _F = numba.jit(**JIT_OPTIONS, **extra)(func)
        # Replaced before anything is compiled or loaded through it (see the module docstring).
        compiled._cache = _ModelsKeyedCache(func)  # type: ignore[attr-defined]
    except RuntimeError as exc:
        # numba raises at decoration time when no cache locator can write anywhere.
        if "no locator available" not in str(exc):
            raise
        warnings.warn(
            f"numba cache unavailable for {func.__qualname__} ({exc}); compiling without a cache. "
            "Set NUMBA_CACHE_DIR to a writable directory to keep compiled kernels between starts.",
            KernelCacheWarning,
            stacklevel=3,  # the module that applied the decorator
        )
        compiled = numba.jit(**{**JIT_OPTIONS, "cache": False}, **extra)(func)
    _KERNELS.append(compiled)
    return compiled


def kernel(func: _F) -> _F:
    """Compile ``func`` with :data:`JIT_OPTIONS` (njit), keeping its Python signature for mypy.

    Kernels are private (``_name``) and sit behind a public wrapper that validates dtype and shape,
    because numba would otherwise compile a new specialisation for every odd input it is given.
    """
    return _compile(func)


def inline_kernel(func: _F) -> _F:
    """:func:`kernel` for a helper that numba inlines into its callers (``inline="always"``).

    A call between kernels passes its arrays with reference counting (atomic operations) and
    returns tuples through memory; for a helper called per block of a few dozen readings that cost
    more than its work (ADWIN's merges and cut scan: ~1.5-2 ns a reading). Inlined, its code is
    typed and optimised in the caller. Only for small helpers: each caller compiles its own copy.
    """
    return _compile(func, inline="always")


class SealedKernel:
    """A kernel a wrapper calls straight away, with numba's compilation disabled, so that the
    dispatcher checks the argument types itself (in C, as part of the call) and raises TypeError
    for anything else, which the wrapper sends down its checked path.

    :meth:`seal` compiles exactly the given signatures once, under a lock, and only then is
    :attr:`ready` True. The wrapper takes its direct call only when ``ready``: while one thread
    compiles, the dispatcher compiles lazily, and a direct call from another thread with other
    types would add a specialisation that accepts them from then on.
    """

    def __init__(self, dispatcher: Any, signatures: Callable[[], Sequence[tuple[Any, ...]]]) -> None:
        self.dispatcher = dispatcher
        self._signatures = signatures
        self._lock = threading.Lock()
        self.ready = False
        # Disabled from the start (``disable_compile`` itself requires a compiled signature).
        dispatcher._can_compile = False

    def seal(self) -> None:
        """Compile the signatures (once; from numba's cache when it has them) and disable compiling."""
        if self.ready:
            return
        with self._lock:
            if self.ready:
                return
            self.dispatcher._can_compile = True
            for signature in self._signatures():
                self.dispatcher.compile(signature)
            self.dispatcher.disable_compile()
            self.ready = True
