"""A malformed HTTP request is logged as one WARNING naming it, still answered 400, with no traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from service.web.bad_requests import SERVER_LOGGER, install_bad_request_log


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _send_raw(request: bytes) -> bytes:
    app = web.Application()
    app.router.add_get("/", _ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read(100)
        writer.close()
        return answer
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /status?tenant=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line too long
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",  # header too long
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 garbage\r\n\r\n",  # a TLS hello on the plain port
    ],
    ids=["long-request-line", "long-header", "tls-hello"],
)
def test_a_malformed_request_is_one_warning_and_a_400(
    request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    install_bad_request_log()
    install_bad_request_log()  # idempotent: one filter, one line
    with caplog.at_level(logging.DEBUG, logger=SERVER_LOGGER):
        answer = asyncio.run(_send_raw(request_bytes))
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
    server_records = [record for record in caplog.records if record.name == SERVER_LOGGER]
    assert [record.levelname for record in server_records] == ["WARNING"]
    (record,) = server_records
    assert record.exc_info is None
    message = record.getMessage()
    assert message.startswith("bad HTTP request from 127.0.0.1: answered 400, "), message
    assert len(message) < 300
