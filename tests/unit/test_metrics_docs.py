"""docs/metrics.md lists every metric family /metrics exposes, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.metric_names import exposed_sample_names

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_every_exposed_family_is_documented_and_nothing_else() -> None:
    exposed = {name for name in exposed_sample_names() if not name.endswith("_created")}
    # Histogram/summary parts would be _bucket/_sum/_count; linepulse exports none, so names are families.
    documented = set(re.findall(r"^\| `(linepulse_\w+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE))
    assert exposed - documented == set(), f"undocumented in docs/metrics.md: {sorted(exposed - documented)}"
    assert documented - exposed == set(), f"documented but not exposed: {sorted(documented - exposed)}"
