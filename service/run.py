"""``linepulse run``: everything on one machine, for a first look and for demos.

A supervisor, like a Procfile runner: it starts an embedded Tansu broker (unless bootstrap servers
are configured), creates the topics, then runs the simulator and the worker as child processes
that die with it, prints where to look and a live table, and on Ctrl-C stops them all.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from service.anomaly_models import anomaly_models
from service.brokers.tansu import TansuBroker
from service.exceptions import ConfigError
from service.processes import spawn, stop_process, tail
from service.settings import Settings
from service.stop_signals import StopSignals, stop_signals
from service.web.port_check import ensure_port_free
from streams.topics import ensure_topics, topic_specs

__all__ = ["run_all", "worker_arguments"]

_READY_TIMEOUT_S = 240.0  # a first start compiles the kernels first: ~1 min on two cores
# A start with the kernels cached takes ~15 s on two busy cores (warm-up, joining the group): only a
# start longer than that is told about compiling, which takes about a minute more.
_SLOW_START_S = 25.0
_VIEW_INTERVAL_S = 5.0
_SIMULATOR_GRACE_S = 15.0
_WORKER_KILL_MARGIN_S = 5.0  # after the worker's own stop bound, before a kill
_BROKER_GRACE_S = 5.0


def _child_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", command, *args]


def _get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return orjson.loads(response.read())


def _wait_ready(base_url: str, children: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    started = time.monotonic()
    deadline = started + _READY_TIMEOUT_S
    told = False
    while time.monotonic() < deadline:
        _check_children(children, logs)
        if not told and time.monotonic() - started > _SLOW_START_S:
            # The first start after an install or an upgrade compiles the numba kernels (service.warmup);
            # a later one may take this long too (joining the group), so this does not claim either.
            print(
                "the worker is still starting (the first start after an install or an upgrade compiles "
                "its numba kernels: about a minute; later starts load them) ...",
                flush=True,
            )
            told = True
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if _get_json(f"{base_url}/ready").get("ready"):
                return
        time.sleep(0.5)
    raise RuntimeError(f"worker not ready after {_READY_TIMEOUT_S:.0f} s; see {logs['worker']}")


def _check_children(children: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    for name, child in children.items():
        code = child.poll()
        if code is not None:
            raise RuntimeError(
                f"{name} exited with code {code}; last lines of {logs[name]}:\n{tail(logs[name])}"
            )


# ANSI: cursor home; erase to the end of a line; erase below. Overwriting in place does not flicker
# as erasing the whole screen every 5 s did.
_HOME, _END_OF_LINE, _BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


def _in_place(text: str) -> str:
    """``text`` drawn over the previous screen from its top-left corner."""
    return _HOME + "".join(line + _END_OF_LINE + "\n" for line in text.splitlines()) + _BELOW


def up_banner(settings: Settings, base_url: str, bootstrap: str, speed: float) -> str:
    """Where to look once everything is up: the pages, the metrics, the broker and its topics."""
    topics = ", ".join(
        (
            settings.topic_telemetry,
            settings.topic_kpis,
            settings.topic_line_kpis,
            settings.topic_alerts,
            settings.topic_dead_letters,
            settings.topic_control,
        )
    )
    return (
        "linepulse is up.\n"
        f"  status page   {base_url}/status\n"
        f"  metrics       {base_url}/metrics   (Prometheus)\n"
        f"  machines API  {base_url}/api/machines\n"
        f"  Kafka         {bootstrap}  topics: {topics}\n"
        f"Simulated plant at {speed:g}x speed. Ctrl-C stops everything.\n"
    )


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def render_table(payload: dict[str, Any]) -> str:
    """A compact terminal view of /api/machines: one line per machine, current shift figures."""
    machines = payload.get("machines", [])
    # Tenants may share machine and line ids: then each row names its tenant too.
    several = len({machine["tenant"] for machine in machines}) > 1
    names = [f"{m['tenant']}/{m['machine']}" if several else m["machine"] for m in machines]
    width = max([14, *(len(name) + 2 for name in names)])
    lines = [
        f"{'machine':<{width}}{'line':<8}{'state':<14}{'shift':<7}{'OEE':>7}{'A':>7}{'P':>7}{'Q':>7}"
        f"{'good':>7}{'scrap':>6}  alerts"
    ]
    for name, machine in zip(names, machines, strict=True):
        window = machine["windows"].get("shift") or machine["windows"].get("hour") or {}
        lines.append(
            f"{name:<{width}}{machine['line']:<8}{(machine['state'] or '-'):<14}"
            f"{(window.get('shift') or '-'):<7}{_pct(window.get('oee')):>7}"
            f"{_pct(window.get('availability')):>7}{_pct(window.get('performance')):>7}"
            f"{_pct(window.get('quality')):>7}"
            f"{window.get('good', 0):>7}{window.get('scrap', 0):>6}  "
            + ", ".join(alert["kind"] for alert in machine["alerts"])
        )
    return "\n".join(lines)


def worker_arguments(settings: Settings, common: list[str]) -> list[str]:
    """The worker's command line: what ``run`` was given that the worker takes as options."""
    argv = [*common, "--web-port", str(settings.web_port), "--app-id", settings.app_id]
    if settings.model_registry is not None:
        argv += ["--model-registry", str(settings.model_registry)]
    return argv


@contextlib.contextmanager
def _embedded_broker() -> Iterator[str]:
    """A Tansu broker's bootstrap servers; it says when it has stopped, the last step of a stop."""
    broker = TansuBroker(stop_grace_s=_BROKER_GRACE_S).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        print("embedded broker stopped", flush=True)


def _stop_bound_s(settings: Settings) -> float:
    """The longest an ordered stop takes: every step waiting its grace out, then a kill."""
    return _SIMULATOR_GRACE_S + settings.stop_timeout_s + _WORKER_KILL_MARGIN_S + _BROKER_GRACE_S


def run_all(settings: Settings, *, speed: float, seed: int, view: bool) -> int:
    anomaly_models(settings)  # a bad model registry setting stops here, before anything starts
    if settings.web_port == 0:
        raise ConfigError(
            "--web-port (LINEPULSE_WEB_PORT): run shows its worker's pages, so it needs a port: not 0"
        )
    ensure_port_free(settings.web_host, settings.web_port)  # else /ready would be another program's
    logs_dir = settings.data_dir / "logs"
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the directory should be, no permission: before anything starts
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"data_dir (LINEPULSE_DATA_DIR): cannot create {logs_dir}: {reason}") from None
    note = (
        "still stopping: the simulator, then the worker (it commits), then the broker; "
        f"at most {_stop_bound_s(settings):.0f} s"
    )
    # Outside the ExitStack: a signal while it unwinds (the ordered stop) must find the handler.
    stopped: dict[str, int] = {}
    with stop_signals(note) as signals:
        code = _run_all(settings, signals, stopped, speed=speed, seed=seed, view=view)
    unclean = {name: status for name, status in stopped.items() if not _clean(status)}
    if code == 0 and unclean:
        # A Ctrl-C is a clean stop only if the children stopped cleanly: a worker that exited 70 did
        # not commit, and a script running `linepulse run` should see that.
        named = ", ".join(f"{name}: {_describe(status)}" for name, status in unclean.items())
        print(f"linepulse: error: unclean stop: {named}; see {settings.data_dir / 'logs'}", file=sys.stderr)
        return 1
    return code


def _run_all(
    settings: Settings,
    signals: StopSignals,
    stopped: dict[str, int],
    *,
    speed: float,
    seed: int,
    view: bool,
) -> int:
    """Runs until a Ctrl-C (0) or a child's death (1); ``stopped`` then has the children's exit statuses."""
    logs_dir = settings.data_dir / "logs"  # created by run_all
    logs = {"worker": logs_dir / "worker.log", "simulator": logs_dir / "simulator.log"}
    children: dict[str, subprocess.Popen[bytes]] = {}
    base_url = f"http://{settings.web_host}:{settings.web_port}"
    with ExitStack() as stack:
        try:
            bootstrap = settings.bootstrap_servers
            embedded = bootstrap is None
            if bootstrap is None:
                print(
                    "starting the embedded Tansu broker (in memory; nothing is kept after exit) ...",
                    flush=True,
                )
                bootstrap = stack.enter_context(_embedded_broker())
            ensure_topics(
                bootstrap,
                topic_specs(settings.topics, settings.partitions, settings.replication_factor),
                # Tansu describes no configs (streams.topics): the worker's log says so, once.
                check_configs=not embedded,
            )
            # Registered before the children start, after the broker: a stop at any point stops them
            # before the broker (the exit stack unwinds last in, first out).
            stack.callback(_stop_children, children, stopped, settings.stop_timeout_s, signals)
            common = ["--bootstrap-servers", bootstrap]
            if settings.plant_config is not None:
                common += ["--config", str(settings.plant_config)]
            children["worker"] = spawn(
                _child_argv("worker", *worker_arguments(settings, common)), logs["worker"]
            )
            children["simulator"] = spawn(
                _child_argv(
                    "simulate",
                    *common,
                    "--topic",
                    settings.topic_telemetry,
                    "--speed",
                    str(speed),
                    "--seed",
                    str(seed),
                    "--start=-8h",
                ),
                logs["simulator"],
            )
            print(f"broker {bootstrap} · worker and simulator starting (logs in {logs_dir}) ...", flush=True)
            _wait_ready(base_url, children, logs)
            banner = up_banner(settings, base_url, bootstrap, speed)
            print("\n" + banner, flush=True)
            # On a terminal the view is redrawn in place under the banner, so where to look stays on
            # screen; into a file or a pipe each table is appended (a log of the run).
            redraw = sys.stdout.isatty()
            while True:
                _check_children(children, logs)
                if view:
                    with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                        table = render_table(_get_json(f"{base_url}/api/machines"))
                        if redraw:
                            print(_in_place(banner + table), end="", flush=True)
                        else:
                            print(table + "\n", flush=True)
                time.sleep(_VIEW_INTERVAL_S)
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0
        except RuntimeError as exc:
            print(f"linepulse: error: {exc}", file=sys.stderr)
            return 1


def _clean(status: int) -> bool:
    """A child's exit status after run's SIGTERM: 0, or killed by that SIGTERM itself, which only a child
    still starting allows (the worker and the simulator handle it once they run: nothing to commit yet)."""
    return status in (0, -signal.SIGTERM)


def _describe(status: int) -> str:
    if status == -signal.SIGTERM:
        return "SIGTERM while starting"
    return f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit {status}"


def _stop_children(
    children: dict[str, subprocess.Popen[bytes]],
    stopped: dict[str, int],
    worker_stop_timeout_s: float,
    signals: StopSignals,
) -> None:
    # A stop for a reason of its own (a child died) must not be cut short by a Ctrl-C either.
    signals.begin()
    # The simulator first, so the worker can still commit what it has read. The worker bounds its
    # own stop (exit 70 after stop_timeout_s): it gets that long and a margin before a kill.
    for name, grace_s in (
        ("simulator", _SIMULATOR_GRACE_S),
        ("worker", worker_stop_timeout_s + _WORKER_KILL_MARGIN_S),
    ):
        child = children.get(name)
        if child is not None:
            stopped[name] = stop_process(child, grace_s=grace_s)
            print(f"{name} stopped ({_describe(stopped[name])})", flush=True)
