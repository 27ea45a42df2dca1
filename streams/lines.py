"""The line view: a line's KPI record per window, from its machines' KPI records (topic ``line-kpis``).

Machines of one line live on different telemetry partitions, so their KPI records are regrouped by
line (the ``kpis-by-line`` topic, keyed ``tenant/line``) and folded here: the worker that owns a
line keeps, per open window, the latest revision of each machine's record, and emits the line's
record each time its figures change: ``complete`` once every machine of the line in the plant file
has reported, ``revision`` counting up (the highest wins). The same code serves the Faust agent and
``analyze``; its state is a plain dict, so a re-delivered machine record changes nothing.

The state also keeps the newest line record of each window kind (``newest``), the one /metrics
shows: a worker that recovers the state after a restart or a rebalance shows the line again from
it (:func:`newest_records`) instead of waiting up to a window's length for the line's next record.
The records cannot be rebuilt from the windows alone (their bounds as text, the shift and the end
are not kept there), and recomputing them with the current plant file could differ from what was
shown. A state written before ``newest`` existed gets it with the line's next record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import orjson

from models.line import MachineWindow, line_figures
from models.plant import PlantConfig
from streams.decode import Rejection, placement_rejection
from streams.records import LineKpiRecord

__all__ = ["LineAggregator", "line_key", "newest_records", "supersedes"]

# Windows this much older than a line's newest one are dropped from its state: no machine record
# for them can still come (beyond every sensible allowed lateness), and the state stays bounded.
_KEEP_MS = 3 * 86_400_000


def line_key(record: Mapping[str, Any]) -> bytes:
    return f"{record['tenant']}/{record['line']}".encode()


def supersedes(record: Mapping[str, Any] | LineKpiRecord, current: Mapping[str, Any] | LineKpiRecord) -> bool:
    """Whether ``record`` replaces ``current`` as the line's record shown for the window kind: the
    newest complete window (a revision of it at least as high: a re-delivery changes nothing), and
    only until there is one, the newest. A window is complete once every machine of the line
    reported it; a stopped machine reports last, so a partial window's figures leave out the very
    machine holding the line (0.58 where the line made 0.51, for up to close_silent_after_s)."""
    return _rank(record) >= _rank(current)


def _rank(record: Mapping[str, Any] | LineKpiRecord) -> tuple[bool, int, int]:
    if isinstance(record, LineKpiRecord):
        return record.complete, record.start_ms, record.revision
    return bool(record["complete"]), int(record["start_ms"]), int(record["revision"])


def newest_records(state: Mapping[str, Any]) -> list[LineKpiRecord]:
    """The newest line record of each window kind the state holds (none in a state written before
    they were kept); raises pydantic's ValidationError for one this version cannot read."""
    return [LineKpiRecord.model_validate(record) for record in state.get("newest", {}).values()]


class LineAggregator:
    def __init__(self, plant: PlantConfig, config_version: str) -> None:
        self.plant = plant
        self.config_version = config_version
        self._expected: dict[tuple[str, str], tuple[str, ...]] = {}
        for machine in plant.machines:
            key = (machine.tenant, machine.line)
            self._expected[key] = (*self._expected.get(key, ()), machine.id)

    def placement_rejection(self, tenant: str, machine: str, site: str, line: str) -> Rejection | None:
        """Why a KPI record of ``tenant/machine`` on ``site``/``line`` is not one of the plant's
        machines as the plant file places it (None when it is): its line would count a stranger."""
        return placement_rejection(self.plant.machine(tenant, machine), f"{tenant}/{machine}", site, line)

    def is_configured(self, tenant: str, line: str) -> bool:
        """Whether the plant file has the line (a machine of it)."""
        return (tenant, line) in self._expected

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
        dumped = result.model_dump(mode="json")
        digest = hashlib.blake2b(orjson.dumps(dumped), digest_size=8).hexdigest()
        if digest == window["digest"]:
            return state, None
        window["revision"] += 1
        window["digest"] = digest
        self._keep_newest(state, {**dumped, "revision": window["revision"]})
        return state, result.model_copy(update={"revision": window["revision"]})

    @staticmethod
    def _keep_newest(state: dict[str, Any], record: dict[str, Any]) -> None:
        # The same choice as streams.live.LiveLines: what a recovering worker shows is what the
        # line's previous owner showed.
        newest = state.setdefault("newest", {})
        current = newest.get(record["window"])
        if current is None or supersedes(record, current):
            newest[record["window"]] = record

    @staticmethod
    def _forget_old(state: dict[str, Any], end_ms: int) -> None:
        newest = max(end_ms, state.get("newest_end_ms", 0))
        state["newest_end_ms"] = newest
        for key in [key for key in state["windows"] if int(key.split("|")[1]) < newest - _KEEP_MS]:
            del state["windows"][key]
