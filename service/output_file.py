"""Files a command writes (``--out``, ``--truth``, ``--json``), whose write errors are reported as
a :class:`~service.exceptions.OutputError` naming the option and the file.

A full disk, a lost permission or ``/dev/full`` surfaces as a bare ``OSError`` from ``write``,
``flush`` or ``close`` (buffered bytes fail only when flushed), which the CLI printed as a
traceback without the file; every call here says which file and why.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from service.exceptions import OutputError

__all__ = ["OutputFile", "print_output", "write_output"]

STDOUT = "-"


class OutputFile:
    """A binary file opened for writing (``"-"``: standard output, left open on close)."""

    def __init__(self, path: str | Path, option: str) -> None:
        self.path = str(path)
        self.option = option
        self._owned = self.path != STDOUT
        try:
            self._stream: BinaryIO = open(path, "wb") if self._owned else sys.stdout.buffer  # noqa: SIM115
        except OSError as exc:
            raise self._error(exc) from None

    def write(self, data: bytes) -> None:
        try:
            self._stream.write(data)
        except OSError as exc:
            raise self._error(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        try:
            if self._owned:
                self._stream.close()
            else:
                self._stream.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(OutputError):  # the error already on its way says more
            self.close()

    def _error(self, exc: OSError) -> OSError | OutputError:
        if isinstance(exc, BrokenPipeError) and not self._owned:
            return exc  # a reader of stdout that went away: the CLI stops quietly
        where = "standard output" if not self._owned else self.path
        return OutputError(f"{self.option} {where}: cannot write ({exc.strerror or exc})")


def write_output(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` to ``path`` as a whole, errors naming ``option`` and the file."""
    with OutputFile(path, option) as out:
        out.write(data)


def print_output(text: str, what: str) -> None:
    """Print ``text`` (a command's result: ``what`` names it) to standard output, flushed now, so a
    write error is this error and not a traceback, or one at the interpreter's exit."""
    with OutputFile(STDOUT, what) as out:
        out.write(text.encode() + b"\n")
