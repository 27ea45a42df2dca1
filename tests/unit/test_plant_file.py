"""Plant YAML: the minimal file from the issue works, defaults apply, and errors name file, path, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.monitoring_config import MonitoringConfig
from models.plant import LossCategory
from service.exceptions import ConfigError
from service.plant_file import load_demo_plant, load_plant

MINIMAL = """\
timezone: Asia/Seoul
shifts:
  - {name: day, start: "06:00", end: "14:00"}
  - {name: swing, start: "14:00", end: "22:00"}
  - {name: night, start: "22:00", end: "06:00"}
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 12.0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(text)
    return path


def test_minimal_file_from_the_issue_loads_with_default_losses(tmp_path: Path) -> None:
    plant = load_plant(write(tmp_path, MINIMAL))
    assert plant.timezone == "Asia/Seoul"
    assert [shift.name for shift in plant.shifts] == ["day", "swing", "night"]
    assert plant.shifts[2].crosses_midnight
    assert plant.machine("acme", "M01") is not None
    assert plant.classify("running", None) is LossCategory.PRODUCTION
    for state in ("down", "idle", "setup"):
        assert plant.classify(state, "anything") is LossCategory.AVAILABILITY
    assert plant.classify("planned_stop", None) is LossCategory.PLANNED
    assert plant.classify("offline", None) is LossCategory.UNKNOWN
    assert plant.classify(None, None) is LossCategory.UNKNOWN


def test_a_kinds_monitoring_block_changes_only_the_settings_it_names(tmp_path: Path) -> None:
    text = MINIMAL + (
        "monitoring:\n"
        "  characteristics: {baseline_n: 30}\n"
        "  temperatures: {ambient_signal: hall_temp}\n"
        "  cycle_time: {min_shift: 0.6}\n"
    )
    monitoring = load_plant(write(tmp_path, text)).monitoring
    defaults = MonitoringConfig()
    for kind, changed in (
        ("characteristics", {"baseline_n": 30}),
        ("temperatures", {"ambient_signal": "hall_temp"}),
        ("cycle_time", {"min_shift": 0.6}),
    ):
        # Everything else stays the kind's default (the Nelson rules, the thermal expected level).
        assert getattr(monitoring, kind) == getattr(defaults, kind).model_copy(update=changed), kind
    assert monitoring.signals == defaults.signals
    with pytest.raises(ConfigError, match=r"monitoring.characteristics.baseline_n: Input should be greater"):
        load_plant(write(tmp_path, MINIMAL + "monitoring:\n  characteristics: {baseline_n: 1}\n"))


def test_spec_limits_of_the_plant_file_must_not_be_inverted(tmp_path: Path) -> None:
    """Swapped limits made every part out of spec (critical alerts from the third) and capability
    negative; an override is judged with the defaults it completes."""
    for block, where in (
        ("  characteristics: {lsl: 10.1, usl: 9.9}\n", "monitoring.characteristics.usl"),
        ("  characteristics: {lsl: 4.0, usl: 4.0}\n", "monitoring.characteristics.usl"),
        ("  characteristics: {lsl: 4.0}\n  overrides: {len_mm: {usl: 3.0}}\n", "overrides.len_mm.usl"),
    ):
        with pytest.raises(ConfigError, match=rf"{where}: must be above lsl \((4.0|10.1)\)"):
            load_plant(write(tmp_path, MINIMAL + "monitoring:\n" + block))
    # NaN passed the order check (every comparison with it is false) and then dead-lettered parts
    # that carried the other limit; infinity is no limit either.
    for block, where in (
        ("  characteristics: {lsl: .nan}\n", "monitoring.characteristics.lsl"),
        ("  overrides: {len_mm: {usl: .inf}}\n", "overrides.len_mm.usl"),
    ):
        with pytest.raises(ConfigError, match=rf"{where}: Input should be a finite number"):
            load_plant(write(tmp_path, MINIMAL + "monitoring:\n" + block))
    text = MINIMAL + "monitoring:\n  characteristics: {lsl: 4.0}\n  overrides: {len_mm: {usl: 5.0}}\n"
    settings = load_plant(write(tmp_path, text)).monitoring.settings_for("characteristics", "len_mm")
    assert (settings.lsl, settings.usl) == (4.0, 5.0)


def test_reason_rules_override_state_defaults(tmp_path: Path) -> None:
    text = MINIMAL + "losses:\n  - {state: idle, reason: micro_stop, category: performance}\n"
    plant = load_plant(write(tmp_path, text))
    assert plant.classify("idle", "micro_stop") is LossCategory.PERFORMANCE
    assert plant.classify("idle", "no_material") is LossCategory.AVAILABILITY


def test_unquoted_clock_times_still_mean_clock_times(tmp_path: Path) -> None:
    # YAML 1.1 reads 06:00 unquoted as the integer 360; it must not become a surprise.
    plant = load_plant(write(tmp_path, MINIMAL.replace('"06:00"', "06:00")))
    assert plant.shifts[0].start.hour == 6


def test_a_repeated_identical_loss_rule_is_harmless(tmp_path: Path) -> None:
    rule = "  - {state: down, reason: jam, category: planned}\n"
    plant = load_plant(write(tmp_path, MINIMAL + "losses:\n" + rule + rule))
    assert plant.classify("down", "jam") is LossCategory.PLANNED


def test_one_line_id_in_two_tenants_or_two_lines_in_one_site_is_fine(tmp_path: Path) -> None:
    plant = load_plant(
        write(
            tmp_path,
            MINIMAL
            + "  - {tenant: beta, site: p2, line: L1, id: M01}\n"
            + "  - {tenant: acme, site: p1, line: L2, id: M02}\n",
        )
    )
    assert len(plant.machines) == 3


def test_config_version_changes_with_loss_classification(tmp_path: Path) -> None:
    a = load_plant(write(tmp_path, MINIMAL))
    b = load_plant(write(tmp_path, MINIMAL + "losses:\n  - {state: setup, category: planned}\n"))
    assert a.version != b.version and len(a.version) == 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("Asia/Seoul", "Mars/Olympus"),
            "timezone: unknown time zone 'Mars/Olympus'",
        ),
        # A directory of the time zone database: a traceback (IsADirectoryError) from every command.
        (MINIMAL.replace("Asia/Seoul", "Asia"), "timezone: unknown time zone 'Asia'"),
        (MINIMAL.replace("ideal_cycle_s: 12.0", "ideal_cycle_s: -1"), "machines[0].ideal_cycle_s"),
        (MINIMAL.replace('"14:00"}', '"25:00"}', 1), "shifts[0].end"),
        (MINIMAL.replace("id: M01", "id: ../M01"), "machines[0].id"),
        (MINIMAL.replace("id: M01", "id: M01, type: big press"), "machines[0].type: String should match"),
        (MINIMAL + "  - {tenant: acme, site: p1, line: L1, id: M01}\n", "machines listed twice"),
        (
            MINIMAL + "  - {tenant: acme, site: p2, line: L1, id: M07}\n",
            "line 'L1' of tenant 'acme' is in sites ['p1', 'p2']: a line id must be unique within its tenant",
        ),
        (MINIMAL + "colour: blue\n", "colour: Extra inputs are not permitted"),
        (
            MINIMAL + "monitoring:\n  machines:\n    M01:\n      cycle_time_s: {min_shif: 0.6}\n",
            "monitoring: machines.M01.cycle_time_s.min_shif: Extra inputs are not permitted",
        ),
        (
            MINIMAL + "monitoring:\n  overrides:\n    vibration: {cusum_h: 0}\n",
            "monitoring: overrides.vibration.cusum_h: Input should be greater than 0",
        ),
        (
            MINIMAL
            + "losses:\n  - {state: down, reason: jam, category: planned}\n"
            + "  - {state: down, reason: jam, category: availability}\n",
            "losses: losses[1] repeats losses[0] (state 'down', reason 'jam') with another "
            "classification (category 'availability' instead of category 'planned')",
        ),
        (
            MINIMAL
            + "losses:\n  - {state: idle, category: performance}\n"
            + "  - {state: idle, category: performance, big_loss: slow_cycles}\n",
            "losses[1] repeats losses[0] (state 'idle')",
        ),
        ("timezone: [unclosed\n", "not valid YAML at line"),
        ("- just a list\n", "must be a mapping"),
        (MINIMAL.replace('"22:00", end: "06:00"', '"08:00", end: "10:00"'), "shifts: "),
    ],
)
def test_errors_name_the_file_the_path_and_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_plant(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_a_misspelt_weekday_is_one_problem_not_also_an_empty_list(tmp_path: Path) -> None:
    text = MINIMAL.replace('end: "14:00"}', 'end: "14:00", days: [monday]}', 1)
    with pytest.raises(ConfigError) as caught:
        load_plant(write(tmp_path, text))
    message = str(caught.value)
    assert "shifts[0].days[0]: Input should be 'mon'" in message, message
    assert "at least 1 item" not in message, message


def test_an_empty_weekday_list_is_still_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace('end: "14:00"}', 'end: "14:00", days: []}', 1)
    with pytest.raises(ConfigError, match=r"shifts\[0\]\.days: .*at least 1 item"):
        load_plant(write(tmp_path, text))


def test_thousands_of_bad_machines_give_a_readable_line_with_the_count(tmp_path: Path) -> None:
    bad = "".join(
        f"  - {{tenant: acme, site: p1, line: L1, id: B{n}, ideal_cycle_s: -1}}\n" for n in range(5000)
    )
    with pytest.raises(ConfigError) as caught:
        load_plant(write(tmp_path, MINIMAL + bad))
    message = str(caught.value)
    assert message.count("ideal_cycle_s: Input should be greater than 0") == 10, message
    assert message.endswith("; and 4990 more problems"), message[-200:]
    assert len(message) < 2000


def test_a_file_far_larger_than_any_plant_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    with path.open("wb") as file:
        file.write(MINIMAL.encode())
        file.write(b"#" * (16 * 1024 * 1024))
    with pytest.raises(ConfigError, match=r"telemetry\.jsonl: plant configuration larger than 16 MiB"):
        load_plant(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_plant(tmp_path / "nope.yaml")


def test_demo_plant_is_valid_and_has_several_lines() -> None:
    plant = load_demo_plant()
    assert len({machine.line for machine in plant.machines}) >= 2
    assert len(plant.machines) >= 4
