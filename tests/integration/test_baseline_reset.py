"""``linepulse baseline reset`` through a real broker to a running worker, on Apache Kafka and on Tansu.

A machine's vibration steps up by 6 sigma: the worker opens a drift alert. The operator
declares the new level normal with the CLI; the command travels on the control topic, the worker
resolves the alert (a ``resolved`` record on the alerts topic) and learns a new baseline, so an
hour more of the new level opens nothing. A malformed command goes to the dead-letter topic with
its reason, and the worker keeps running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from service.brokers import BrokerEndpoint
from service.cli import main
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import create_topics, unique_topics

SIGNAL = "vibration_rms"  # judged as its level (a temperature is judged against an expected level)
BASE = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
KEY = b"acme/M01"

PARTS = 30  # measured parts: capability indices need monitoring.capability_min_parts (25)
PLANT = {
    "timezone": "UTC",
    "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10}],
    "monitoring": {"signals": {"baseline_n": 300, "settle_s": 0}},
}


def _samples(
    t0: int, batches: range, rng: np.random.Generator, shifted_from: int
) -> list[tuple[bytes, bytes]]:
    """10 readings at 1 Hz per message; from batch ``shifted_from`` on, 6 sigma higher."""
    out = []
    for batch in batches:
        times = t0 + 1000 * (np.arange(10, dtype=np.int64) + 10 * batch + 1)
        values = 40.0 + rng.normal(0.0, 0.2, 10) + (1.2 if batch >= shifted_from else 0.0)
        record = {
            **BASE,
            "ts": int(times[-1]),
            "kind": "samples",
            "signals": [{"signal": SIGNAL, "ts": times.tolist(), "values": values.tolist()}],
        }
        out.append((KEY, orjson.dumps(record)))
    return out


def _drift_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [r for r in records(consume_all(bootstrap, topic, idle_s=1.5)) if r["kind"] == "drift"]


def test_baseline_reset_reaches_the_worker_and_resolves_the_drift(
    broker: BrokerEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = broker.bootstrap_servers
    plant = tmp_path / "plant.yaml"
    plant.write_bytes(orjson.dumps(PLANT))  # JSON is YAML
    topics = unique_topics()
    create_topics(bootstrap, topics)
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    rng = np.random.default_rng(3)
    start = [(KEY, orjson.dumps({**BASE, "ts": t0, "kind": "state", "state": "running"}))]
    quality = [
        (
            KEY,
            orjson.dumps(
                {
                    **BASE,
                    "ts": t0 + 1000 * i,
                    "kind": "quality",
                    "characteristic": "diameter_mm",
                    "value": 25.0 + float(rng.normal(0.0, 0.004)),
                    "lsl": 24.97,
                    "usl": 25.03,
                    "product": "P1",
                }
            ),
        )
        for i in range(1, PARTS + 1)
    ]
    produce(bootstrap, topics["telemetry"], start + quality + _samples(t0, range(120), rng, shifted_from=60))

    with WorkerProcess(bootstrap, topics, tmp_path, config=plant) as worker:
        wait_for(lambda: worker.applied_events() >= 121 + PARTS, 120, "the first messages applied")
        wait_for(
            lambda: any(a["status"] == "open" for a in _drift_alerts(bootstrap, topics["alerts"])),
            60,
            "a drift alert on the shifted level",
        )

        # The operator's command, through the CLI as they would type it.
        for name, topic in topics.items():
            monkeypatch.setenv(f"LINEPULSE_TOPIC_{name.upper()}", topic)
        argv = ["baseline", "reset", "--machine", "acme/M01", "--signal", SIGNAL, "--reason", "new probe"]
        assert main([*argv, "--config", str(plant), "--bootstrap-servers", bootstrap]) == 0
        sent = orjson.loads(capsys.readouterr().out)
        assert sent["topic"] == topics["control"] and sent["command"] == "baseline_reset"

        def resolved() -> bool:
            return any(a["status"] == "resolved" for a in _drift_alerts(bootstrap, topics["alerts"]))

        wait_for(resolved, 60, "the drift alert resolved by the reset")
        resolved_alert = next(
            a for a in _drift_alerts(bootstrap, topics["alerts"]) if a["status"] == "resolved"
        )
        assert resolved_alert["evidence"]["signal"] == SIGNAL

        # A malformed command is dead-lettered with its reason; the worker carries on.
        bad = orjson.dumps(
            {"v": 1, "command": "baseline_reset", "tenant": "acme", "machine": "M01", "ts": t0}
        )
        produce(bootstrap, topics["control"], [(b"acme/M02", bad)])

        def dead_lettered() -> bool:
            dead = consume_all(bootstrap, topics["dead_letters"], idle_s=1.5)
            return any(dict(m.headers).get("linepulse.error.code") == b"key_mismatch" for m in dead)

        wait_for(dead_lettered, 60, "the malformed command in the dead-letter topic")
        worker.assert_alive()

        # An hour more at the new level: learnt as the new baseline, so no new drift alert.
        produce(bootstrap, topics["telemetry"], _samples(t0, range(120, 480), rng, shifted_from=60))
        wait_for(lambda: worker.applied_events() >= 481 + PARTS, 120, "the next 360 messages applied")
        statuses = [a["status"] for a in _drift_alerts(bootstrap, topics["alerts"])]
        after = statuses[statuses.index("resolved") :]
        assert "open" not in after, f"a drift alert opened again after the reset: {statuses}"
        machine = worker.get("/api/machines")["machines"][0]
        assert not [a for a in machine["alerts"] if a["kind"] == "drift"]
        # The signal's statistics as the worker's state keeps them: every reading, the level now.
        signal = machine["signals"][SIGNAL]
        assert signal["readings"] == 4800 and 41.0 < signal["ew_mean"] < 41.4
        assert 40.0 < signal["mean"] < 41.2 and signal["max"] > 41.2 and signal["min"] < 40.0
        (row,) = machine["capability"]
        assert (row["characteristic"], row["product"], row["n"]) == ("diameter_mm", "P1", PARTS)
        assert row["cpk"] is not None and row["usl"] == 25.03
        served = worker.get("/api/capability?tenant=acme")
        where = {"tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
        assert served["capability"] == [{**where, **row}]
        # The same parts per shift (or local day) as it took place, in both views.
        by_shift = served["capability_by_shift"]
        assert by_shift and sum(shift["n"] for shift in by_shift) == PARTS
        assert [{k: v for k, v in shift.items() if k not in where} for shift in by_shift] == machine[
            "capability_by_shift"
        ]
