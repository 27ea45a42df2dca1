"""One simulated machine: a discrete-event state machine producing its telemetry in event-time order.

Timers (next state change, next cycle end, next sensor batch cut, next heartbeat) live on the machine;
:class:`~service.simulator.engine.PlantSimulator` repeatedly steps whichever machine is due first.
Planned stops and ``stoppage`` faults *force* a state; between them, stops are competing risks
(exponential time to the next stop, exponential repair), lots end in changeovers and tools wear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from models.plant import MachineSpec
from service.simulator.break_schedule import BreakSchedule
from service.simulator.faults import Fault, FaultKind
from service.simulator.profiles import MachineProfile, StopSpec, profile_for
from service.simulator.randomness import derive_rng, derive_seed
from service.simulator.sensors import SensorBank

__all__ = ["MachineOptions", "MachineSim"]

Record = dict[str, object]

_DEFAULT_IDEAL_S = 30.0  # for machines configured without any ideal cycle time
_COUNT_EVERY_S = 60.0  # a count record roughly once a minute of production
_SPIKE_SCRAP_RATE = 0.25
_SPIKE_QUALITY_SHIFT_SIGMAS = 3.0
_SLOW_FAULT_FACTOR = 1.5
_STARTUP_CYCLES = 3  # the first parts after a stop or changeover are scrapped more often
_STARTUP_SCRAP_RATE = 0.2
_TOOL_CHANGE_MEAN_S = 300.0


@dataclass(frozen=True, slots=True)
class MachineOptions:
    sample_period_ms: int = 1_000
    batch_ms: int = 10_000
    heartbeat_ms: int = 300_000


class MachineSim:
    def __init__(
        self,
        spec: MachineSpec,
        *,
        index: int,
        calendar: BreakSchedule,
        faults: Sequence[Fault],
        seed: int,
        start_ms: int,
        options: MachineOptions,
        zone: ZoneInfo,
    ) -> None:
        self.spec = spec
        self.index = index
        self.zone = zone  # the site's: its records' local times
        self.profile: MachineProfile = profile_for(spec)
        self._options = options
        self._calendar = calendar
        mine = [fault for fault in faults if fault.key == spec.key]
        self._stoppages = tuple(f for f in mine if f.kind is FaultKind.STOPPAGE)
        self._slow = tuple(f for f in mine if f.kind is FaultKind.SLOW_CYCLES)
        self._spikes = tuple(f for f in mine if f.kind is FaultKind.SCRAP_SPIKE)
        # Separate streams per aspect: a sensor fault must not reshuffle the state timeline.
        self._state_rng = derive_rng(seed, spec.key, "state")
        self._cycle_rng = derive_rng(seed, spec.key, "cycle")
        self._quality_rng = derive_rng(seed, spec.key, "quality")
        self._sensors = SensorBank(
            self.profile.signals,
            mine,
            zone,
            derive_seed(seed, spec.key, "sensors"),
            options.sample_period_ms,
        )
        self._base: Record = {
            "v": 1,
            "tenant": spec.tenant,
            "site": spec.site,
            "line": spec.line,
            "machine": spec.id,
        }
        self._seq = 0

        self._products: tuple[str, ...] = tuple(sorted(spec.products))
        self._product_index = self._state_rng.randrange(len(self._products)) if self._products else 0
        self._lot_left = self._draw_lot()

        self._state = ""
        self._reason: str | None = None
        self._forced = False
        self._history: list[tuple[int, str]] = []

        # Timers: epoch ms of the next thing to happen, None when not armed.
        self._random_ms: int | None = None
        self._boundary_ms: int | None = start_ms  # the first step decides the initial state
        self._cycle_ms: int | None = None
        self._cycle_start_ms = start_ms
        stagger = (index * 1_000) % options.batch_ms
        self._batch_ms = start_ms + options.batch_ms + stagger
        self._last_batch_ms = start_ms - 1
        self._heartbeat_ms = start_ms + options.heartbeat_ms

        self._speed_factor = 1.0
        self._good = 0
        self._scrap: dict[str, int] = {}
        self._cycles_since_count = 0
        self._cycles_since_quality = 0
        self._wear_cycles = 0
        self._startup_left = 0

    # -- scheduling --------------------------------------------------------------------------------

    @property
    def next_ms(self) -> int:
        candidates = [self._batch_ms, self._heartbeat_ms]
        for timer in (self._random_ms, self._boundary_ms, self._cycle_ms):
            if timer is not None:
                candidates.append(timer)
        return min(candidates)

    def step(self) -> tuple[int, list[Record]]:
        """Handle everything due at :attr:`next_ms`; returns that time and the records stamped with it."""
        now = self.next_ms
        out: list[Record] = []
        if self._cycle_ms == now:
            self._on_cycle(now, out)
        if now in (self._random_ms, self._boundary_ms):
            self._on_state_timer(now, out)
        if self._batch_ms == now:
            self._on_batch(now, out)
        if self._heartbeat_ms == now:
            self._record(now, out, kind="state", state=self._state, **self._reason_field())
            self._heartbeat_ms = now + self._options.heartbeat_ms
        return now, out

    # -- states ------------------------------------------------------------------------------------

    def _forced_state(self, now: int) -> tuple[str, str] | None:
        """A stoppage fault beats a planned stop: a breakdown is not repaired by the lunch bell."""
        if any(fault.active(now) for fault in self._stoppages):
            return "down", "breakdown"
        window = self._calendar.window_at(now)
        return ("planned_stop", window.reason) if window is not None else None

    def _next_boundary(self, now: int) -> int | None:
        candidates = [edge for f in self._stoppages for edge in (f.start_ms, f.end_ms) if edge > now]
        calendar_next = self._calendar.next_boundary(now)
        if calendar_next is not None:
            candidates.append(calendar_next)
        return min(candidates) if candidates else None

    def _on_state_timer(self, now: int, out: list[Record]) -> None:
        forced = self._forced_state(now)
        if forced is not None:
            self._forced = True
            self._random_ms = None
            self._enter(now, forced[0], forced[1], out)
        elif self._forced or not self._state:
            self._forced = False
            self._startup_left = _STARTUP_CYCLES
            self._start_running(now, out)
        elif self._random_ms is not None and self._random_ms <= now:
            self._random_transition(now, out)
        self._boundary_ms = self._next_boundary(now)

    def _random_transition(self, now: int, out: list[Record]) -> None:
        rng = self._state_rng
        if self._state == "running":
            stop = self._choose_stop()
            seconds = max(stop.min_s, rng.expovariate(1.0 / stop.mean_s))
            self._enter(now, stop.state, stop.reason, out)
            self._random_ms = now + round(seconds * 1000)
            return
        if self._reason in ("tool_break", "tool_change", "changeover"):
            self._wear_cycles = 0
        if self._state in ("down", "setup"):
            self._startup_left = _STARTUP_CYCLES
        self._start_running(now, out)

    def _choose_stop(self) -> StopSpec:
        stops = self.profile.stops
        pick = self._state_rng.uniform(0.0, sum(stop.per_hour for stop in stops))
        for stop in stops:
            pick -= stop.per_hour
            if pick <= 0:
                return stop
        return stops[-1]

    def _start_running(self, now: int, out: list[Record]) -> None:
        rate_per_s = sum(stop.per_hour for stop in self.profile.stops) / 3600.0
        self._random_ms = now + max(1_000, round(self._state_rng.expovariate(rate_per_s) * 1000))
        self._enter(now, "running", None, out)

    def _start_setup(self, now: int, reason: str, mean_s: float, out: list[Record]) -> None:
        seconds = max(mean_s / 4, self._state_rng.expovariate(1.0 / mean_s))
        self._enter(now, "setup", reason, out)
        self._random_ms = now + round(seconds * 1000)

    def _enter(self, now: int, state: str, reason: str | None, out: list[Record]) -> None:
        if state == self._state and reason == self._reason:
            return
        if self._state == "running":
            self._flush_counts(now, out)
            self._cycle_ms = None
        self._state, self._reason = state, reason
        self._history.append((now, state))
        self._record(now, out, kind="state", state=state, **self._reason_field())
        self._heartbeat_ms = now + self._options.heartbeat_ms
        if state == "running":
            slow = self._cycle_rng.random() < self.profile.slow_probability
            self._speed_factor = self._cycle_rng.uniform(1.15, 1.4) if slow else 1.0
            self._arm_cycle(now)

    def _reason_field(self) -> dict[str, object]:
        return {} if self._reason is None else {"reason": self._reason}

    # -- production ----------------------------------------------------------------------------------

    @property
    def _product(self) -> str | None:
        return self._products[self._product_index] if self._products else None

    def _ideal_s(self) -> float:
        return self.spec.ideal_cycle_for(self._product) or _DEFAULT_IDEAL_S

    def _draw_lot(self) -> int:
        low, high = self.profile.lot_cycles
        return self._state_rng.randint(low, high)

    def _arm_cycle(self, now: int) -> None:
        factor = self._speed_factor * max(
            0.97, self._cycle_rng.lognormvariate(0.01, self.profile.cycle_jitter)
        )
        if any(fault.active(now) for fault in self._slow):
            factor *= _SLOW_FAULT_FACTOR
        self._cycle_start_ms = now
        self._cycle_ms = now + max(1, round(self._ideal_s() * factor * 1000))

    def _on_cycle(self, now: int, out: list[Record]) -> None:
        product = self._product
        product_field: dict[str, object] = {} if product is None else {"product": product}
        self._record(now, out, kind="cycle", seconds=(now - self._cycle_start_ms) / 1000, **product_field)
        rng = self._cycle_rng
        spike = any(fault.active(now) for fault in self._spikes)
        rate = _SPIKE_SCRAP_RATE if spike else self.profile.scrap_rate
        if self._startup_left > 0:
            rate = max(rate, _STARTUP_SCRAP_RATE)
            self._startup_left -= 1
        if rng.random() < rate:
            reason = rng.choice(self.profile.scrap_reasons)
            self._scrap[reason] = self._scrap.get(reason, 0) + 1
        else:
            self._good += 1
        self._cycles_since_count += 1
        self._wear_cycles += 1
        self._lot_left -= 1
        ideal = self._ideal_s()
        if self._cycles_since_count >= max(1, round(_COUNT_EVERY_S / ideal)):
            self._flush_counts(now, out)
        quality = self.profile.quality
        if quality is not None:
            self._cycles_since_quality += 1
            if self._cycles_since_quality >= max(1, round(quality.every_s / ideal)):
                self._cycles_since_quality = 0
                self._measure(now, spike, product_field, out)
        if quality is not None and self._wear_cycles * quality.wear_per_cycle >= quality.tolerance / 2:
            # Tool life is managed: worn tools are changed before parts go out of tolerance.
            self._wear_cycles = 0
            self._start_setup(now, "tool_change", _TOOL_CHANGE_MEAN_S, out)
        elif len(self._products) > 1 and self._lot_left <= 0:
            self._product_index = (self._product_index + 1) % len(self._products)
            self._lot_left = self._draw_lot()
            self._start_setup(now, "changeover", self.profile.changeover_mean_s, out)
        else:
            self._arm_cycle(now)

    def _measure(self, now: int, spike: bool, product_field: dict[str, object], out: list[Record]) -> None:
        spec = self.profile.quality
        assert spec is not None  # only called for machines with a characteristic
        nominal = spec.nominal + self._product_index * spec.product_step
        mean = nominal + self._wear_cycles * spec.wear_per_cycle
        if spike:
            mean += _SPIKE_QUALITY_SHIFT_SIGMAS * spec.sigma
        value = round(self._quality_rng.gauss(mean, spec.sigma), spec.decimals)
        self._record(
            now,
            out,
            kind="quality",
            characteristic=spec.characteristic,
            value=value,
            lsl=round(nominal - spec.tolerance, spec.decimals),
            usl=round(nominal + spec.tolerance, spec.decimals),
            **product_field,
        )

    def _flush_counts(self, now: int, out: list[Record]) -> None:
        product: dict[str, object] = {} if self._product is None else {"product": self._product}
        scrap = sorted(self._scrap.items())
        if self._good or scrap:
            # One record per scrap reason (the contract has one reason per record); good rides on the first.
            first_reason, first_scrap = scrap[0] if scrap else (None, 0)
            reason_field: dict[str, object] = {} if first_reason is None else {"scrap_reason": first_reason}
            self._record(
                now, out, kind="count", good=self._good, scrap=first_scrap, **product, **reason_field
            )
            for reason, quantity in scrap[1:]:
                self._record(now, out, kind="count", good=0, scrap=quantity, scrap_reason=reason, **product)
        self._good, self._scrap, self._cycles_since_count = 0, {}, 0

    # -- sensors -------------------------------------------------------------------------------------

    def _on_batch(self, now: int, out: list[Record]) -> None:
        times = self._sensors.sample_times(self._last_batch_ms, now)
        kept_times: list[int] = []
        running: list[bool] = []
        history = self._history
        position = 0
        for millis in times:
            while position + 1 < len(history) and history[position + 1][0] <= millis:
                position += 1
            state = history[position][1] if history else "offline"
            if state != "offline":  # an offline machine's gateway sends nothing
                kept_times.append(millis)
                running.append(state == "running")
        signals = self._sensors.batch(kept_times, running)
        if signals:
            self._record(now, out, kind="samples", signals=signals)
        self._history = history[position:] if history else history
        self._last_batch_ms = now
        self._batch_ms = now + self._options.batch_ms

    # -- output --------------------------------------------------------------------------------------

    def _record(self, now: int, out: list[Record], **fields: object) -> None:
        record: Record = {**self._base, "ts": now, "seq": self._seq}
        record.update(fields)
        self._seq += 1
        out.append(record)
