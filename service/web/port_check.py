"""Whether the worker's web port is free, asked before anything starts.

A port held by another program (often another linepulse) made the worker die after its start with a
traceback from deep inside aiohttp, and made ``linepulse run`` read the other program's ``/ready``
and pages as its own worker's.
"""

from __future__ import annotations

import socket

from service.exceptions import ConfigError

__all__ = ["ensure_port_free"]


def ensure_port_free(host: str, port: int) -> None:
    """Raise ConfigError naming the setting when ``host:port`` cannot be listened on (0: any port)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"web_host (LINEPULSE_WEB_HOST): {host!r} cannot be resolved: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the web server binds (aiohttp): a port left in TIME_WAIT by a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"--web-port (LINEPULSE_WEB_PORT): {host}:{port} cannot be used for the worker's pages "
                f"({exc.strerror or exc}); another program, perhaps another linepulse, is listening "
                f"there: stop it, or choose another port"
            ) from exc
