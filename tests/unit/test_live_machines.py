"""What the live views (/metrics, /api/machines, /status) show: only configured machines."""

from __future__ import annotations

from models.machine import MachineEngine, MachineState
from models.plant import PlantConfig
from streams.live import LiveMachines

NOW_MS = 1_795_400_000_000
DAY_MS = 86_400_000
PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "state_timeout_s": 60,
        "machines": [
            {"tenant": tenant, "site": "p1", "line": "L1", "id": machine, "ideal_cycle_s": 10.0}
            for tenant in ("acme", "hist")
            for machine in ("M01", "M02")
        ],
    }
)
ENGINE = MachineEngine(PLANT)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000.0


def running(tenant: str, machine: str, at_ms: int, state: MachineState | None = None) -> MachineState:
    spec = PLANT.machine(tenant, machine)
    assert spec is not None
    state = state or ENGINE.new_state(spec)
    ENGINE.on_state(state, spec, at_ms, "running", None)
    return state


def removed(at_ms: int) -> MachineState:
    other = PlantConfig.model_validate(
        {**PLANT.model_dump(), "machines": [{"tenant": "gone", "site": "p1", "line": "L1", "id": "M09"}]}
    )
    state = MachineEngine(other).new_state(other.machines[0])
    MachineEngine(other).on_state(state, other.machines[0], at_ms, "running", None)
    return state


def live_of(clock: Clock) -> LiveMachines:
    return LiveMachines({machine.key for machine in PLANT.machines}, clock=clock)


def test_a_machine_not_in_the_plant_is_neither_recovered_nor_updated() -> None:
    live = live_of(Clock(NOW_MS))
    assert not live.show_recovered(removed(NOW_MS))
    live.update(removed(NOW_MS))
    assert live.show_recovered(running("acme", "M01", NOW_MS))
    assert [state.key for state in live] == ["acme/M01"] and "gone/M09" not in live


def test_a_recovered_state_does_not_replace_a_newer_one() -> None:
    live = live_of(Clock(NOW_MS))
    newer = running("acme", "M01", NOW_MS)
    live.update(newer)
    assert live.show_recovered(running("acme", "M01", NOW_MS - DAY_MS))
    [shown] = live
    assert shown is newer
