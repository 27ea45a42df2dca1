"""The /status page names a machine its anomaly model cannot score, in a real browser.

The page (the packaged ``status.html``, unchanged) is served with ``/api/machines`` built by the
worker's own ``machine_view`` from real engine states: M01 sends a press's signals to a CNC type
model (unscored), M02 a CNC's. Before, only ``/api/machines`` and the metric said so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import orjson

from service.web.routes import machine_view
from service.web.staleness import Silence
from streams.live import Counters
from tests.integration.observability import require_executable
from tests.integration.test_status_page import chromium
from tests.unit.test_anomaly_unscored import CNC, press_unscored_cnc_scored


class UnscoredList(HTMLParser):
    """The text of each ``<li>`` of ``#unscored``, and whether its box is hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []
        self.box_hidden: bool | None = None
        self._in_list = False
        self._item: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id") == "unscored-box":
            self.box_hidden = "hidden" in attributes
        if attributes.get("id") == "unscored":
            self._in_list = True
        elif tag == "li" and self._in_list:
            self._item = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._item is not None:
            self.items.append("".join(self._item))
            self._item = None
        elif tag == "ul":
            self._in_list = False

    def handle_data(self, data: str) -> None:
        if self._item is not None:
            self._item.append(data)


@contextmanager
def serving(api_body: bytes) -> Iterator[str]:
    page = resources.files("service.web").joinpath("status.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api = self.path == "/api/machines"
            body, kind = (api_body, "application/json") if api else (page, "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status"
    finally:
        server.shutdown()
        server.server_close()


def _rendered(binary: str, profile: Path, machines: list[str]) -> UnscoredList:
    stream, states = press_unscored_cnc_scored()
    silent = Silence(silent_s=0.0, received_ago_s=0.0, stale=False)
    api = {
        "ready": True,
        "oee_target": None,
        "machines": [
            machine_view(stream, states[machine], silent, Counters.of(states[machine]))
            for machine in machines
        ],
    }
    with serving(orjson.dumps(api)) as url:
        dumped = chromium(binary, profile, "--dump-dom", "--virtual-time-budget=4000", url)
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    parser = UnscoredList()
    parser.feed(dumped.stdout.decode())
    return parser


def test_the_status_page_names_the_unscored_machine_and_what_it_lacks(tmp_path: Path) -> None:
    binary = require_executable("chromium")
    shown = _rendered(binary, tmp_path / "both", ["M01", "M02"])
    assert shown.box_hidden is False
    assert len(shown.items) == 1, shown.items
    (item,) = shown.items
    assert item.startswith("demo/M01 · anomaly model demo.cnc@v1 cannot score it: no " + ", ".join(CNC)), item
    assert "4800 readings of its other signals" in item, item
    scored_only = _rendered(binary, tmp_path / "scored", ["M02"])
    assert scored_only.box_hidden is True and scored_only.items == []
