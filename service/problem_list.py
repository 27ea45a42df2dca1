"""One line out of many validation problems, capped so a wholly wrong file still gives a readable error."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_LISTED", "join_problems"]

# A plant of 5,000 copies of one bad machine once produced a 672 KB line: past a screenful the rest are
# the same mistake again, and the count says how many to expect after fixing the first ones.
MAX_LISTED = 10


def join_problems(problems: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``problems`` joined by "; ", the first ``limit`` of them and the count of the others."""
    shown = "; ".join(problems[:limit])
    hidden = len(problems) - limit
    if hidden <= 0:
        return shown
    return f"{shown}; and {hidden} more problem{'s' if hidden > 1 else ''}"
