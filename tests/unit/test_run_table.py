"""``linepulse run``'s terminal table names each row's tenant when tenants share machine ids."""

from __future__ import annotations

from typing import Any

from service.run import render_table


def _machine(tenant: str, machine: str, oee: float) -> dict[str, Any]:
    window = {"shift": "day", "oee": oee, "availability": 1.0, "performance": oee, "quality": 1.0}
    return {
        "tenant": tenant,
        "machine": machine,
        "line": "L1",
        "state": "running",
        "windows": {"shift": {**window, "good": 10, "scrap": 0}},
        "alerts": [],
    }


def test_two_tenants_with_the_same_machine_ids_are_told_apart() -> None:
    table = render_table({"machines": [_machine("a", "M01", 0.5), _machine("b", "M01", 0.9)]})
    rows = table.splitlines()[1:]
    assert rows[0].startswith("a/M01 ") and " 50.0%" in rows[0]
    assert rows[1].startswith("b/M01 ") and " 90.0%" in rows[1]


def test_one_tenant_keeps_the_short_names() -> None:
    table = render_table({"machines": [_machine("demo", "M01", 0.5), _machine("demo", "M02", 0.9)]})
    assert [row.split()[0] for row in table.splitlines()[1:]] == ["M01", "M02"]
    header = table.splitlines()[0]
    assert header.index("line") == 14  # the columns as before
