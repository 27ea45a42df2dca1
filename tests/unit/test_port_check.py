"""The web port is checked before a worker or ``run`` starts: each refusal names the setting at fault."""

from __future__ import annotations

import socket

import pytest

from service.cli import main
from service.exceptions import ConfigError
from service.web.port_check import ensure_port_free


def test_a_port_another_program_listens_on_is_refused_naming_the_port_setting() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"^--web-port \(LINEPULSE_WEB_PORT\): 127\.0\.0\.1:{port} .*in use"
        ):
            ensure_port_free("127.0.0.1", port)
        # The web server binds every address of the host: 0.0.0.0 takes 127.0.0.1 too.
        with pytest.raises(ConfigError, match="in use"):
            ensure_port_free("0.0.0.0", port)
    ensure_port_free("127.0.0.1", port)  # closed: free again
    ensure_port_free("127.0.0.1", 0)  # any free port (the worker's --web-port 0)


def test_an_address_not_of_this_computer_is_refused_naming_the_host_setting() -> None:
    # 192.0.2.0/24 is reserved for documentation: no computer has it.
    with pytest.raises(
        ConfigError, match=r"^web_host \(LINEPULSE_WEB_HOST\): 192\.0\.2\.1:6066 cannot be listened"
    ):
        ensure_port_free("192.0.2.1", 6066)
    with pytest.raises(
        ConfigError, match=r"^web_host \(LINEPULSE_WEB_HOST\): 'no-such-host\.invalid' cannot"
    ):
        ensure_port_free("no-such-host.invalid", 6066)


def test_run_needs_a_fixed_port_to_show_its_pages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LINEPULSE_BOOTSTRAP_SERVERS", raising=False)
    assert main(["run", "--no-view", "--web-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "linepulse: error: --web-port (LINEPULSE_WEB_PORT): run shows its worker's pages"
    ), err
