"""CLI arguments and settings: bad values stop with the option or setting named, never a traceback."""

from __future__ import annotations

import dataclasses
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.cli import main
from service.run import up_banner, worker_arguments
from service.settings import Settings


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.err


def test_worker_needs_bootstrap_servers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINEPULSE_BOOTSTRAP_SERVERS", raising=False)
    code, err = run_cli(["worker"], capsys)
    assert code == 2 and "bootstrap_servers" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["worker", "--bootstrap-servers", "kafka one:9092"], "bootstrap_servers"),
        (["worker", "--bootstrap-servers", "k:9092", "--partitions", "0"], "partitions"),
        (["worker", "--bootstrap-servers", "k:9092", "--web-port", "70000"], "web_port"),
        (["worker", "--bootstrap-servers", "k:9092", "--app-id", "a b"], "app_id"),
    ],
)
def test_bad_settings_name_the_setting_and_the_flag_it_came_from(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(argv, capsys)
    assert code == 2
    # Given as a flag, the flag is named (the variable would send the user to look in the environment).
    assert f"{named} (--{named.replace('_', '-')}): " in err and "LINEPULSE_" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["soon", "inf", "1e400", "-1"])
def test_bad_environment_variable_is_named(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LINEPULSE_MAX_FUTURE_S", value)
    code, err = run_cli(["worker", "--bootstrap-servers", "k:9092"], capsys)
    assert code == 2 and "LINEPULSE_MAX_FUTURE_S" in err, err
    # analyze too (it converted the setting to milliseconds with int(): OverflowError on infinity)
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_text("")
    code, err = run_cli(["analyze", str(telemetry), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "LINEPULSE_MAX_FUTURE_S" in err, err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--speed", "0"], "--speed"),
        (["run", "--speed", "fast"], "--speed"),
        # Refused by run itself, as simulate refuses it: not once the broker and worker had started.
        (["run", "--seed", "-1"], "--seed"),
        (["worker", "--web-port", "http"], "--web-port"),
        (["analyze"], "TELEMETRY.jsonl"),
        (["simulate", "--speed", "-3"], "--speed"),
        (
            ["train", "--telemetry", "h.jsonl", "--registry", "r", "--machine", "M01", "--start", "soon"],
            "--start",
        ),
        (["train", "--telemetry", "h.jsonl", "--registry", "r"], "--machine --machine-type"),
        (
            ["train", "--telemetry", "h.jsonl", "--registry", "r", "--machine", "M01", "--margin", "-1"],
            "--margin",
        ),
        (["evaluate", "skab", "data", "--window", "0"], "--window"),
        (["evaluate", "skab", "data", "--window", "100000"], "--window"),
        (["evaluate", "skab", "data", "--consecutive", "99999999999999999999"], "--consecutive"),
        (["evaluate", "skab", "data", "--json", "/"], "--json"),
        (["evaluate", "skab", "data", "--json", "/proc/none/x.json"], "--json"),
        (["evaluate", "skab", "data", "--wide-grid"], "--wide-grid"),
        (
            ["train", "--bootstrap-servers", "localhost:notaport", "--registry", "r", "--machine", "M01"],
            "--bootstrap-servers",
        ),
        (
            ["train", "--bootstrap-servers", "a:b:c", "--registry", "r", "--machine", "M01"],
            "--bootstrap-servers",
        ),
        (
            ["train", "--bootstrap-servers", "[::1", "--registry", "r", "--machine", "M01"],
            "--bootstrap-servers",
        ),
        (["worker", "--bootstrap-servers", "kafka:99999"], "bootstrap_servers"),
        (["evaluate", "skab", "data", "--consecutive", "1.5"], "--consecutive"),
        (["evaluate", "skab", "data", "--false-alarm-rate", "2"], "--false-alarm-rate"),
        (["evaluate", "skab", "data", "--stats", "mean,median"], "--stats"),
        (["evaluate", "skab", "data", "--tuning-far-limit", "13.55"], "--tuning-far-limit"),
    ],
)
def test_bad_arguments_name_the_option(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(argv, capsys)
    assert code == 2 and named in err


def test_a_ctrl_c_while_the_commands_load_is_a_quiet_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt  # what a Ctrl-C during the commands' seconds of imports raises

    monkeypatch.setattr("service.cli.build_parser", interrupted)
    assert main(["--help"]) == 130
    assert capsys.readouterr().err == ""


def test_train_errors_name_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text("")
    base = ["train", "--telemetry", str(history), "--machine", "M01"]
    code, err = run_cli([*base, "--registry", "r", "--start=-1h", "--end=-2h"], capsys)
    assert code == 2 and "--end: must be after --start" in err
    code, err = run_cli(
        ["train", "--bootstrap-servers", "127.0.0.1:1", "--registry", "r", "--machine", "M01"], capsys
    )
    assert code == 2 and "--bootstrap-servers 127.0.0.1:1: no broker reachable" in err
    assert "Traceback" not in err


def test_analyze_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["analyze", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "none.jsonl: telemetry file not found" in err


def test_analyze_judges_event_times_against_received_at_never_the_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file has no Kafka timestamps: the future check uses --received-at, or nothing; so the same
    file gives the same results whenever it is analysed."""
    ahead_ms = int(time.time() * 1000) + 3_600_000  # an hour ahead of this machine's clock
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "ts": ahead_ms}
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_bytes(orjson.dumps({**record, "kind": "state", "state": "running"}) + b"\n")

    def summary(*extra: str) -> dict[str, Any]:
        code = main(["analyze", str(telemetry), "--out", str(tmp_path / f"o{len(extra)}"), *extra])
        assert code == 0
        result: dict[str, Any] = orjson.loads(capsys.readouterr().out)
        return result

    applied = summary()
    assert (applied["applied"], applied["dead_letters"]) == (1, 0)
    received = datetime.fromtimestamp((ahead_ms - 600_000) / 1000, UTC).isoformat()
    judged = summary("--received-at", received)
    assert (judged["applied"], judged["dead_letters"]) == (0, 1)  # 600 s ahead, limit 300 s
    assert summary("--received-at", str(ahead_ms - 600_000))["dead_letters"] == 1
    assert summary("--received-at", str(ahead_ms - 200_000))["dead_letters"] == 0
    code, err = run_cli(
        ["analyze", str(telemetry), "--out", str(tmp_path / "x"), "--received-at", "now"], capsys
    )
    assert code == 2 and "--received-at: time 'now'" in err


def test_a_device_clock_reset_to_2000_is_dead_lettered_not_26_years_of_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine's first event stamped 2000-01-01 (a dead clock battery), then the right time: every
    hour, shift and day window between was built and written (~275,000 KPI records, minutes)."""
    now_ms = int(time.time() * 1000)
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "kind": "state"}
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_bytes(
        orjson.dumps({**record, "ts": "2000-01-01T00:00:05Z", "state": "running"})
        + b"\n"
        + orjson.dumps({**record, "ts": now_ms - 60_000, "state": "running"})
        + b"\n"
    )
    out = tmp_path / "out"
    assert main(["analyze", str(telemetry), "--out", str(out), "--received-at", str(now_ms)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["applied"], summary["dead_letters"]) == (1, 1)
    [dead] = [orjson.loads(line) for line in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    assert (dead["code"], dead["field"]) == ("past_timestamp", "ts"), dead
    assert summary["kpis"] < 10
    # History of six years ago, produced now: past the default, taken once the limit is raised.
    history = tmp_path / "history.jsonl"
    six_years_ago = now_ms - 6 * 365 * 86_400_000
    history.write_bytes(orjson.dumps({**record, "ts": six_years_ago, "state": "running"}) + b"\n")
    command = ["analyze", str(history), "--received-at", str(now_ms), "--out"]
    assert main([*command, str(tmp_path / "o2")]) == 0
    assert orjson.loads(capsys.readouterr().out)["dead_letters"] == 1
    monkeypatch.setenv("LINEPULSE_MAX_PAST_S", "3153600000")
    assert main([*command, str(tmp_path / "o3")]) == 0
    assert orjson.loads(capsys.readouterr().out)["dead_letters"] == 0


def test_schema_command_writes_the_published_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    docs = Path(__file__).parents[2] / "docs" / "schema"
    for name in ("telemetry.v1.json", "kpi.v1.json", "alert.v1.json", "control.v1.json"):
        assert (tmp_path / name).read_bytes() == (docs / name).read_bytes(), f"docs/schema/{name} is stale"


def test_a_machine_type_model_learns_from_one_tenant_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        "timezone: Asia/Seoul\n"
        "machines:\n"
        "  - {tenant: acme, site: p1, line: L1, id: M01, type: cnc, ideal_cycle_s: 10}\n"
        "  - {tenant: zenith, site: p9, line: L1, id: M01, type: cnc, ideal_cycle_s: 10}\n"
    )
    history = tmp_path / "h.jsonl"
    history.write_text("")
    base = ["train", "--telemetry", str(history), "--registry", str(tmp_path / "r"), "--config", str(plant)]
    code, err = run_cli([*base, "--machine-type", "cnc"], capsys)
    assert code == 2 and "machines of tenants ['acme', 'zenith'] have type 'cnc'" in err and "--tenant" in err
    code, err = run_cli([*base, "--machine-type", "cnc", "--tenant", "acme"], capsys)
    assert code == 2 and "no sensor readings" in err  # the tenant's machines chosen; the history is empty
    code, err = run_cli([*base, "--machine", "acme/M01", "--tenant", "acme"], capsys)
    assert code == 2 and "--tenant: only with --machine-type" in err


def test_run_hands_the_model_registry_to_its_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(model_registry=tmp_path)
    argv = worker_arguments(settings, ["--bootstrap-servers", "127.0.0.1:9092"])
    assert argv[argv.index("--model-registry") + 1] == str(tmp_path)
    code, err = run_cli(["run", "--model-registry", str(tmp_path / "missing"), "--no-view"], capsys)
    assert code == 2 and "no such directory" in err  # before any broker or process starts


def test_evaluate_leaves_no_empty_json_when_it_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "skab.json"
    code, err = run_cli(["evaluate", "skab", str(tmp_path / "none"), "--json", str(out)], capsys)
    assert code == 2 and "SKAB data directory not found" in err and not out.exists()


def test_train_names_the_hold_bound_when_every_signal_came_but_no_row_could_be_made(tmp_path: Path) -> None:
    """a (the first signal, whose readings make the rows) came only before b's first reading: every
    signal was read, yet no row; the error said "no readings of any signal"."""
    from service.exceptions import ConfigError
    from service.plant_file import load_demo_plant
    from service.train import collect, file_records

    start_ms = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "kind": "sensor"}
    lines = [{**record, "ts": start_ms + i * 1000, "signal": "a", "value": i} for i in range(10)]
    lines += [{**record, "ts": start_ms + 3_600_000 + i * 1000, "signal": "b", "value": i} for i in range(10)]
    history = tmp_path / "h.jsonl"
    history.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    plant = load_demo_plant()
    [m01] = [machine for machine in plant.machines if machine.id == "M01"]
    with pytest.raises(
        ConfigError, match=r"demo/M01 \(no reading of a with one of every other signal at most"
    ):
        collect(
            file_records(history), plant, (m01,), signals=None, start_ms=None, end_ms=None, max_future_ms=0
        )


def test_train_judges_future_event_times_like_analyze_never_against_the_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file has no Kafka timestamps: ``train`` skips event times more than max_future_s after
    --received-at (as the worker dead-letters them), and judges none without it, so the same
    history gives the same rows whenever it is read (here: history from 2095)."""
    from service.plant_file import load_demo_plant
    from service.train import collect, file_records

    start_ms = int(datetime(2095, 1, 1, tzinfo=UTC).timestamp() * 1000)
    lines = []
    for i in range(20):
        for signal in ("a", "b"):
            record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}
            lines.append(
                {**record, "ts": start_ms + i * 1000, "kind": "sensor", "signal": signal, "value": i}
            )
    # An hour after the rest: a source whose clock ran ahead. b first, so that a (the clock) makes a
    # row with it: a value an hour old no longer stands in for b.
    ahead = [{**line, "ts": start_ms + 3_600_000} for line in reversed(lines[-2:])]
    history = tmp_path / "h.jsonl"
    history.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in [*lines, *ahead]))
    plant = load_demo_plant()
    [m01] = [machine for machine in plant.machines if machine.id == "M01"]

    def collected(received_at_ms: int | None) -> tuple[int, int]:
        data = collect(
            file_records(history, received_at_ms),
            plant,
            (m01,),
            signals=None,
            start_ms=None,
            end_ms=None,
            max_future_ms=300_000,
        )
        return data.records, data.end_ms

    assert collected(None) == (42, start_ms + 3_600_000)  # not judged: nothing to judge against
    assert collected(start_ms + 20_000) == (40, start_ms + 19_000)  # the hour-ahead one skipped
    kafka = ["train", "--bootstrap-servers", "127.0.0.1:1", "--registry", "r", "--machine", "M01"]
    code, err = run_cli([*kafka, "--received-at", "2095-01-01T00:00:20+00:00"], capsys)
    assert code == 2 and "--received-at: only with --telemetry" in err
    code, err = run_cli(
        [
            "train",
            "--telemetry",
            str(history),
            "--registry",
            "r",
            "--machine",
            "M01",
            "--received-at",
            "soon",
        ],
        capsys,
    )
    assert code == 2 and "--received-at: time 'soon'" in err


def test_run_banner_names_where_to_look_and_every_topic_a_user_reads_or_writes() -> None:
    settings = Settings(topic_line_kpis="plant-line-kpis")
    banner = up_banner(settings, "http://127.0.0.1:6066", "127.0.0.1:9092", 60.0)
    for url in ("/status", "/metrics", "/api/machines"):
        assert f"http://127.0.0.1:6066{url}" in banner
    topics = banner.split("topics: ")[1].splitlines()[0].split(", ")
    internal = {settings.topics.kpis_by_line}  # the line view's own regrouping, not a contract
    named = {getattr(settings.topics, field.name) for field in dataclasses.fields(settings.topics)}
    assert set(topics) == named - internal


def test_run_names_a_data_dir_it_cannot_use_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file where LINEPULSE_DATA_DIR should be was a NotADirectoryError traceback."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("LINEPULSE_DATA_DIR", str(blocker))
    with socket.socket() as probe:  # a port nothing listens on: run checks that first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err = run_cli(["run", "--no-view", "--web-port", str(port)], capsys)
    assert code == 2 and f"data_dir (LINEPULSE_DATA_DIR): cannot create {blocker / 'logs'}" in err, err
