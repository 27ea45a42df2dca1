"""Whether the worker's web port is free, asked before anything starts.

A port held by another program (often another linepulse) made the worker die after its start with a
traceback from deep inside aiohttp, and made ``linepulse run`` read the other program's ``/ready``
and pages as its own worker's. Two starts at the same moment can still both pass (the worker binds
after its warm-up); the second then fails as before.
"""

from __future__ import annotations

import errno
import socket

from service.exceptions import ConfigError

__all__ = ["ensure_port_free"]


def ensure_port_free(host: str, port: int) -> None:
    """Raise ConfigError naming the setting when ``host:port`` cannot be listened on, on any address
    ``host`` resolves to (as the web server binds them all); 0 is any free port."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"web_host (LINEPULSE_WEB_HOST): {host!r} cannot be resolved: {exc}") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As the web server binds (aiohttp): a port left in TIME_WAIT by a previous run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio's server binds each address of a host
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(_refusal(host, port, exc)) from exc


def _refusal(host: str, port: int, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return (
            f"--web-port (LINEPULSE_WEB_PORT): {host}:{port} cannot be used for the worker's pages "
            f"({reason}); another program, perhaps another linepulse, is listening there: stop it, "
            f"or choose another port"
        )
    if exc.errno == errno.EACCES:
        return f"--web-port (LINEPULSE_WEB_PORT): {host}:{port}: {reason} (ports below 1024 need privileges)"
    return (
        f"web_host (LINEPULSE_WEB_HOST): {host}:{port} cannot be listened on ({reason}): not an "
        f"address of this computer?"
    )
