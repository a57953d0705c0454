"""A client that trickles its request cannot hold a connection: through a real uvicorn
configured as ``jobdesk serve`` configures it (``server_config``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from jobdesk import JobDesk
from jobdesk.http import Settings, create_app, server_config

HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[int, JobDesk]]:
    """``jobdesk serve``'s uvicorn, in this event loop, with short timeouts."""
    async with JobDesk.open(f"sqlite:///{tmp_path / 'slow.db'}") as desk:
        settings = Settings(
            reap_interval_seconds=0,
            header_timeout_seconds=HEAD_TIMEOUT,
            body_timeout_seconds=BODY_TIMEOUT,
            keepalive_timeout_seconds=HEAD_TIMEOUT,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(server_config(create_app(desk, settings), settings, lifespan="on"))
        task = asyncio.create_task(server._serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
                    await asyncio.sleep(0.01)
            yield sock.getsockname()[1], desk
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()


async def trickle(port: int, head: bytes, *, every: float = 0.1, limit: float = 5.0) -> bytes:
    """Send ``head`` one byte every ``every`` seconds; what the server answered by the time
    it closed the connection (or ``limit`` seconds passed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        async with asyncio.timeout(limit):
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(every):
                        chunk = await reader.read(65536)
                        answer += chunk
                        if not chunk:
                            return answer
            while chunk := await reader.read(65536):
                answer += chunk
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return answer


async def test_a_head_trickled_byte_by_byte_is_cut_off(tmp_path: Path) -> None:
    async with serving(tmp_path) as (port, _):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
        started = time.monotonic()
        answer = await trickle(port, head)
        took = time.monotonic() - started
    assert b"200 OK" not in answer
    assert took < HEAD_TIMEOUT + 1.5  # closed at the deadline, not when the head ended


async def test_a_silent_connection_is_closed(tmp_path: Path) -> None:
    async with serving(tmp_path) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
    assert time.monotonic() - started < HEAD_TIMEOUT + 1.5


async def test_a_body_trickled_byte_by_byte_is_408(tmp_path: Path) -> None:
    async with serving(tmp_path) as (port, desk):
        token = await desk.create_user_token("alice")
        body = b'{"type": "x", "input": {"padding": "' + b"a" * 200 + b'"}}'
        head = (
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        started = time.monotonic()
        answer = await trickle_on(reader, writer, body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < BODY_TIMEOUT + 1.5


async def trickle_on(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
) -> bytes:
    """Send ``body`` a byte at a time until the server answers."""
    try:
        async with asyncio.timeout(5):
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        answer = await reader.read(65536)
                        if answer:
                            return answer
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()
    return b""


async def test_a_prompt_client_is_served_and_kept_alive(tmp_path: Path) -> None:
    async with serving(tmp_path) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                status = await reader.readline()
                assert status.startswith(b"HTTP/1.1 200")
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                await reader.readexactly(len(b'{"status":"ok"}'))
        writer.close()
