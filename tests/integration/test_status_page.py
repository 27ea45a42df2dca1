"""The /status page renders every demo machine in a real browser (headless Chromium), on Tansu.

Proves the page's JavaScript runs against the real /api/machines: one ``tr[data-machine]`` per demo
machine with a formatted OEE cell, a non-trivial screenshot, and that a bad tenant gets a 400 that
names the ``tenant`` parameter instead of an empty success.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from service.brokers import TansuBroker
from service.plant_file import load_demo_plant
from tests.integration.harness import WorkerProcess
from tests.integration.observability import demo_machines, demo_worker, require_executable

# Column order of status.html's table: Machine, Line, State, Shift, OEE, ...
OEE_COLUMN = 5
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class MachineRows(HTMLParser):
    """Collects the cells' text of every ``<tr data-machine=...>``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("data-machine"):
            self._row = self.rows.setdefault(attributes["data-machine"] or "", [])
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            # Markup whitespace collapses; a no-break space is the page's own, and kept.
            self._row.append(re.sub(r"[ \t\r\n]+", " ", "".join(self._cell)).strip(" \t\r\n"))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    # Its own process group, so a hung browser and all its helper processes go together.
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"chromium timed out: {argv}") from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _bad_tenant(
    worker: WorkerProcess, query: str = "tenant=nope", path: str = "/api/machines"
) -> tuple[int, dict[str, str]]:
    try:
        urllib.request.urlopen(f"{worker.base_url}{path}?{query}", timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    raise AssertionError(f"?{query} was answered with a success")


def test_status_page_shows_every_machine(tansu: TansuBroker, tmp_path: Path) -> None:
    binary = require_executable("chromium")
    machines = demo_machines()
    names = {spec.id: spec.name or "" for spec in load_demo_plant().machines}
    with demo_worker(tansu.bootstrap_servers, tmp_path) as worker:
        url = f"{worker.base_url}/status"
        dumped = chromium(binary, tmp_path / "profile-dom", "--dump-dom", "--virtual-time-budget=8000", url)
        assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
        parser = MachineRows()
        parser.feed(dumped.stdout.decode())
        assert set(parser.rows) == {machine for _, machine in machines}, parser.rows
        for machine, cells in parser.rows.items():
            assert len(cells) == 13, (machine, cells)
            assert cells[0] == f"demo/{machine}"
            assert cells[1] == names[machine]
            oee = cells[OEE_COLUMN]
            # The formatted OEE of the open shift: a percentage (its unit joined by a no-break space, so a
            # narrow window never wraps "%" onto a line of its own), or an en dash when not defined.
            assert oee == "–" or (oee.endswith("\u00a0%") and 0 <= float(oee[:-2]) <= 100), (machine, oee)
        # With an hour of data every demo machine has an OEE: the page is not all dashes.
        assert all(cells[OEE_COLUMN].endswith("\u00a0%") for cells in parser.rows.values()), parser.rows
        assert "5 machines" in dumped.stdout.decode()
        # A tenant's page links to that tenant's metrics and machines, not to every tenant's.
        own = chromium(
            binary, tmp_path / "profile-own", "--dump-dom", "--virtual-time-budget=4000", url + "?tenant=demo"
        )
        page = own.stdout.decode()
        assert 'id="metrics-link" href="/metrics?tenant=demo"' in page, page[-3000:]
        assert 'id="api-link" href="/api/machines?tenant=demo"' in page, page[-3000:]
        # /ready judges ?tenant= as the other routes do and counts that tenant's machines.
        with urllib.request.urlopen(worker.base_url + "/ready?tenant=demo", timeout=5) as answer:
            assert json.loads(answer.read()) == {"ready": True, "machines": len(machines)}

        screenshot = tmp_path / "status.png"
        shot = chromium(
            binary,
            tmp_path / "profile-shot",
            f"--screenshot={screenshot}",
            "--window-size=1400,700",
            "--virtual-time-budget=8000",
            url,
        )
        assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
        png = screenshot.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        # A blank 1400x700 page compresses to a few kB; a rendered table is several times that.
        assert len(png) > 20_000, len(png)

        # The worker's address opens the live page.
        with urllib.request.urlopen(worker.base_url + "/", timeout=5) as root:
            assert root.url == url and '<tbody id="machines">' in root.read().decode()
        with urllib.request.urlopen(worker.base_url + "/?tenant=nope", timeout=5) as root:
            assert root.url == url + "?tenant=nope"  # the page judges it as /status?tenant=nope
        # Passed on percent-encoded: decoded, this put a line break into the Location header, and
        # aiohttp, refusing to send it, answered nothing.
        with urllib.request.urlopen(worker.base_url + "/?a=%0d%0aSet-Cookie:%20x=1", timeout=5) as root:
            assert root.url == url + "?a=%0d%0aSet-Cookie:%20x=1" and "Set-Cookie" not in root.headers

        status, body = _bad_tenant(worker)
        assert status == 400
        assert body["error"].startswith("tenant"), body
        status, body = _bad_tenant(worker, "tenant=demo&tenant=demo")
        assert status == 400 and "2 times" in body["error"], body
        status, body = _bad_tenant(worker, "Tenant=demo")
        assert status == 400 and body["error"].startswith("Tenant: unknown query parameter"), body
        for query in ("tenant=nope", "Tenant=demo"):
            status, body = _bad_tenant(worker, query, "/ready")
            assert status == 400 and body["error"].lower().startswith("tenant"), (query, body)
        # Faust's own table and router views are not served: /table/machine-state/KEY/ would hand
        # out any tenant's machine state past the API's tenant filter.
        for path in ("/table/", "/table/machine-state/", "/router/"):
            try:
                urllib.request.urlopen(worker.base_url + path, timeout=5)
                raise AssertionError(f"{path} is served")
            except urllib.error.HTTPError as exc:
                assert exc.code == 404, (path, exc.code)
        # The page says what the API said, instead of "worker unreachable: TypeError".
        bad = chromium(
            binary, tmp_path / "profile-bad", "--dump-dom", "--virtual-time-budget=4000", url + "?tenant=nope"
        )
        assert bad.returncode == 0, bad.stderr.decode(errors="replace")[-2000:]
        assert "error: tenant: unknown tenant" in bad.stdout.decode()
        # A misspelt parameter too: not every tenant's machines as if it were not there.
        typo = chromium(
            binary, tmp_path / "profile-typo", "--dump-dom", "--virtual-time-budget=4000", f"{url}?Tenant=x"
        )
        assert "error: Tenant: unknown query parameter" in typo.stdout.decode(), typo.stdout.decode()[-2000:]
        worker.assert_alive()
