"""JSON Schemas of the records on linepulse's topics, generated from the pydantic models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from service.output_dir import output_dir
from service.output_file import write_output
from streams.contract import telemetry_json_schema
from streams.control import control_json_schema
from streams.records import AlertRecord, KpiRecord, LineKpiRecord

__all__ = ["schemas", "write_schemas"]


def schemas() -> dict[str, dict[str, Any]]:
    draft = "https://json-schema.org/draft/2020-12/schema"
    kpi = {"$schema": draft, **KpiRecord.model_json_schema()}
    alert = {"$schema": draft, **AlertRecord.model_json_schema()}
    line = {"$schema": draft, **LineKpiRecord.model_json_schema()}
    return {
        "telemetry.v1.json": telemetry_json_schema(),
        "kpi.v1.json": kpi,
        "line-kpi.v1.json": line,
        "alert.v1.json": alert,
        "control.v1.json": control_json_schema(),
    }


def write_schemas(out_dir: Path) -> list[Path]:
    output_dir(out_dir)
    written = []
    for name, schema in schemas().items():
        path = out_dir / name
        write_output(
            path, orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n", "--out"
        )
        written.append(path)
    return written
