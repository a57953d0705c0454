"""The webhook sender's HTTP client against real servers on this machine: connections
kept and reused, only the checked addresses dialled, redirects not followed, deadlines,
connections of unsure state dropped, a kept connection the server closed tried once
more, and https with the certificate and the host's name checked."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from jobdesk.webhook_client import SendFailed, WebhookClient

#: an answer: status, extra headers, body
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
Handler = Callable[[h11.Request, bytes, int], Awaitable[Reply | None]]


@dataclass
class Server:
    """A test server: every request (target, Host, the connection's number) it saw."""

    port: int
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    connections: int = 0


@contextlib.asynccontextmanager
async def serving(handle: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Serve ``handle`` on a free port; it answers None to close without answering."""
    server = Server(0)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        number = server.connections
        protocol = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        try:
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    protocol.receive_data(await reader.read(65536))
                    continue
                if isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    host = dict(request.headers)[b"host"].decode()
                    server.requests.append((request.target.decode(), host, number))
                    reply = await handle(request, body, number)
                    if reply is None:
                        return
                    status, headers, content = reply
                    fields = [*headers, (b"content-length", str(len(content)).encode())]
                    writer.write(protocol.send(h11.Response(status_code=status, headers=fields)))
                    writer.write(protocol.send(h11.Data(data=content)))
                    writer.write(protocol.send(h11.EndOfMessage()))
                    await writer.drain()
                    if protocol.our_state is not h11.DONE or protocol.their_state is not h11.DONE:
                        return
                    protocol.start_next_cycle()
                else:
                    return
        except (ConnectionError, h11.RemoteProtocolError):
            return
        finally:
            writer.close()

    listening = await asyncio.start_server(connection, "127.0.0.1", 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server


async def ok(request: h11.Request, body: bytes, number: int) -> Reply:
    return 200, [], b'{"ok":true,"got":' + str(len(body)).encode() + b"}"


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    opened = WebhookClient(connections=4)
    yield opened
    await opened.aclose()


async def test_connections_are_kept_and_reused(client: WebhookClient) -> None:
    async with serving(ok) as server:
        url = f"http://127.0.0.1:{server.port}/hook"
        answers = [
            await client.post(url, ["127.0.0.1"], [("x-n", str(n))], b"{}", within=5)
            for n in range(5)
        ]
    assert [(a.status, a.body) for a in answers] == [(200, b'{"ok":true,"got":2}')] * 5
    assert server.connections == 1


async def test_only_the_checked_addresses_are_dialled(client: WebhookClient) -> None:
    async with serving(ok) as server:
        # A name that resolves nowhere: the client never looks it up, it dials the address.
        url = f"http://hook.invalid:{server.port}/hook?kind=test"
        answer = await client.post(url, ["127.0.0.1"], [], b"{}", within=5)
    assert answer.status == 200
    assert server.requests == [("/hook?kind=test", f"hook.invalid:{server.port}", 1)]


async def test_a_redirect_is_an_answer_not_followed(client: WebhookClient) -> None:
    async def moved(request: h11.Request, body: bytes, number: int) -> Reply:
        if request.target == b"/hook":
            return 302, [(b"location", b"/elsewhere")], b""
        return 200, [], b""

    async with serving(moved) as server:
        url = f"http://127.0.0.1:{server.port}/hook"
        answer = await client.post(url, ["127.0.0.1"], [], b"{}", within=5)
    assert answer.status == 302
    assert [target for target, _, _ in server.requests] == ["/hook"]


async def test_a_slow_answer_fails_the_send_and_its_connection_is_dropped(
    client: WebhookClient,
) -> None:
    async def slow_first(request: h11.Request, body: bytes, number: int) -> Reply:
        if request.target == b"/slow":
            await asyncio.sleep(2.0)
        return await ok(request, body, number)

    async with serving(slow_first) as server:
        base = f"http://127.0.0.1:{server.port}"
        with pytest.raises(SendFailed, match=r"no answer within 0\.2 s"):
            await client.post(f"{base}/slow", ["127.0.0.1"], [], b"{}", within=0.2)
        answer = await client.post(f"{base}/fast", ["127.0.0.1"], [], b"{}", within=5)
    assert answer.status == 200
    assert server.connections == 2  # the late answer never lands on the next send


async def test_a_kept_connection_the_server_closed_is_tried_once_more(
    client: WebhookClient,
) -> None:
    async def closes_the_first_connection(
        request: h11.Request, body: bytes, number: int
    ) -> Reply | None:
        seen_on_it = sum(1 for _, _, n in server.requests if n == number)
        if number == 1 and seen_on_it == 2:
            return None  # its keep-alive ran out just as the second request came
        return await ok(request, body, number)

    async with serving(closes_the_first_connection) as server:
        url = f"http://127.0.0.1:{server.port}/hook"
        first = await client.post(url, ["127.0.0.1"], [], b"{}", within=5)
        second = await client.post(url, ["127.0.0.1"], [], b"{}", within=5)
    assert (first.status, second.status) == (200, 200)
    assert [n for _, _, n in server.requests] == [1, 1, 2]


async def test_an_answer_that_closes_or_is_too_long_ends_its_connection(
    client: WebhookClient,
) -> None:
    async def closing(request: h11.Request, body: bytes, number: int) -> Reply:
        if request.target == b"/close":
            return 200, [(b"connection", b"close")], b"bye"
        return 500, [], b"x" * 200_000

    async with serving(closing) as server:
        base = f"http://127.0.0.1:{server.port}"
        closed = await client.post(f"{base}/close", ["127.0.0.1"], [], b"{}", within=5)
        long = await client.post(f"{base}/long", ["127.0.0.1"], [], b"{}", within=5)
        again = await client.post(f"{base}/close", ["127.0.0.1"], [], b"{}", within=5)
    assert (closed.status, closed.body) == (200, b"bye")
    assert long.status == 500
    assert 0 < len(long.body) <= 64 * 1024
    assert again.status == 200
    assert server.connections == 3


async def test_nothing_listening_is_a_send_failure(client: WebhookClient) -> None:
    async with serving(ok) as server:
        port = server.port
    with pytest.raises(SendFailed, match="could not connect"):
        await client.post(f"http://127.0.0.1:{port}/hook", ["127.0.0.1"], [], b"{}", within=5)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (openssl), and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
               "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


async def test_https_checks_the_certificate_and_the_host_s_name(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with serving(ok, tls=served) as server:
        port = server.port
        mine = WebhookClient(tls=trusting)
        default = WebhookClient()
        try:
            answer = await mine.post(
                f"https://localhost:{port}/hook", ["127.0.0.1"], [], b"{}", within=5
            )
            with pytest.raises(SendFailed, match="certificate"):
                # The right certificate for another name than the URL's.
                await mine.post(
                    f"https://hook.example:{port}/hook", ["127.0.0.1"], [], b"{}", within=5
                )
            with pytest.raises(SendFailed, match="certificate"):
                # Signed by no authority the default trust store knows.
                await default.post(
                    f"https://localhost:{port}/hook", ["127.0.0.1"], [], b"{}", within=5
                )
        finally:
            await mine.aclose()
            await default.aclose()
    assert answer.status == 200
