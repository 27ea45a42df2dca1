"""The line view: a line's KPI record per window, from its machines' KPI records (topic ``line-kpis``).

Machines of one line live on different telemetry partitions, so their KPI records are regrouped by
line (the ``kpis-by-line`` topic, keyed ``tenant/line``) and folded here: the worker that owns a
line keeps, per open window, the latest revision of each machine's record, and emits the line's
record each time its figures change: ``complete`` once every machine of the line in the plant file
has reported, ``revision`` counting up (the highest wins). The same code serves the Faust agent and
``analyze``; its state is a plain dict, so a re-delivered machine record changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import orjson

from models.line import MachineWindow, line_figures
from models.plant import PlantConfig
from streams.records import LineKpiRecord

__all__ = ["LineAggregator", "line_key"]

# Windows this much older than a line's newest one are dropped from its state: no machine record
# for them can still come (beyond every sensible allowed lateness), and the state stays bounded.
_KEEP_MS = 3 * 86_400_000


def line_key(record: Mapping[str, Any]) -> bytes:
    return f"{record['tenant']}/{record['line']}".encode()


class LineAggregator:
    def __init__(self, plant: PlantConfig, config_version: str) -> None:
        self.plant = plant
        self.config_version = config_version
        self._expected: dict[tuple[str, str], tuple[str, ...]] = {}
        for machine in plant.machines:
            key = (machine.tenant, machine.line)
            self._expected[key] = (*self._expected.get(key, ()), machine.id)

    def apply(
        self, state: dict[str, Any] | None, record: Mapping[str, Any]
    ) -> tuple[dict[str, Any], LineKpiRecord | None]:
        """Fold one machine's KPI record into its line's state; the line record when it changed."""
        state = state if state is not None else {"windows": {}}
        if not record.get("complete", True):
            return state, None
        window_key = f"{record['window']}|{record['start_ms']}"
        window = state["windows"].setdefault(window_key, {"machines": {}, "revision": -1, "digest": ""})
        known = window["machines"].get(record["machine"])
        if known is not None and known["revision"] >= record["revision"]:
            return state, None  # a re-delivery or an older revision
        window["machines"][record["machine"]] = asdict(MachineWindow.from_record(record))
        self._forget_old(state, record["end_ms"])
        expected = self._expected.get((record["tenant"], record["line"]), ())
        machines = [MachineWindow(**entry) for entry in window["machines"].values()]
        figures = line_figures(machines, self.plant.line_wait_reasons)
        result = LineKpiRecord(
            tenant=record["tenant"],
            site=record["site"],
            line=record["line"],
            window=record["window"],
            shift=record["shift"],
            start=record["start"],
            end=record["end"],
            start_ms=record["start_ms"],
            end_ms=record["end_ms"],
            revision=0,
            complete=set(expected) <= set(figures.machines),
            machines=list(figures.machines),
            machines_expected=list(expected),
            config_version=self.config_version,
            planned_s=figures.planned_s,
            run_s=figures.run_s,
            fully_productive_s=figures.fully_productive_s,
            good=figures.good,
            scrap=figures.scrap,
            availability=figures.availability,
            performance=figures.performance,
            quality=figures.quality,
            oee=figures.oee,
            held_by=figures.held_by,
        )
        digest = hashlib.blake2b(orjson.dumps(result.model_dump(mode="json")), digest_size=8).hexdigest()
        if digest == window["digest"]:
            return state, None
        window["revision"] += 1
        window["digest"] = digest
        return state, result.model_copy(update={"revision": window["revision"]})

    @staticmethod
    def _forget_old(state: dict[str, Any], end_ms: int) -> None:
        newest = max(end_ms, state.get("newest_end_ms", 0))
        state["newest_end_ms"] = newest
        for key in [key for key in state["windows"] if int(key.split("|")[1]) < newest - _KEEP_MS]:
            del state["windows"][key]
