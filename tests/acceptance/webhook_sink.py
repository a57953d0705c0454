"""A webhook receiver process that records what it receives, and fails on purpose.

    python tests/acceptance/webhook_sink.py --port 8123 --secret whsec_... --log sink.jsonl \\
        [--fail-every 7] [--stall-every 11 --stall-seconds 2]

It checks each delivery's signature (jobdesk.webhooks.verify: 401 if it does not
match) and appends one JSON line per arrival to ``--log``: the ``webhook-id``, the
event type, its subject (job or group id), the transition's time (``at``), when it
arrived (``received``, this machine's clock), the answer it gave, and whether that id
had come before (a duplicate, as at-least-once allows). Faults, by a hash of the
webhook-id so that they do not depend on arrival order: the first arrival of one id in
``--fail-every`` is answered 500; of one in ``--stall-every``, after ``--stall-seconds``
(longer than the sender's timeout: it gives up, and sends it again later). Every answer
waits ``--delay-seconds`` (a slow receiver). A first arrival is first across restarts of
the receiver (what came before is read back from ``--log``).

Used by tests/acceptance/test_webhook_crash.py and bench/bench_groups.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdesk.errors import Unauthorized
from jobdesk.webhooks import verify


class Sink:
    """What the receiver does with one delivery.

    What came before is read back from the log at start: a receiver started again
    after an outage knows the ids that arrived (a fault strikes an id's first arrival
    only, not its first after each restart) and those answered 200 (duplicates).
    """

    def __init__(
        self,
        secret: str,
        log_path: str,
        *,
        fail_every: int = 0,
        stall_every: int = 0,
        stall_seconds: float = 0.0,
        delay_seconds: float = 0.0,
    ) -> None:
        self.secret = secret
        self.fail_every, self.stall_every = fail_every, stall_every
        self.stall_seconds, self.delay_seconds = stall_seconds, delay_seconds
        self.seen: set[str] = set()  # answered 200
        self.arrived: set[str] = set()  # came at all: faults strike an id's first arrival only
        with contextlib.suppress(FileNotFoundError):
            for line in Path(log_path).read_text(encoding="utf-8").splitlines():
                if line.endswith("}"):
                    record = json.loads(line)
                    self.arrived.add(record["id"])
                    if record["answer"] == 200:
                        self.seen.add(record["id"])
        self.log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - the app's life

    def picked(self, message_id: str, every: int, salt: bytes) -> bool:
        return every > 0 and zlib.crc32(salt + message_id.encode()) % every == 0

    async def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        """Verify, record, answer (or fail on purpose): the status and a JSON body."""
        try:
            message_id = verify(self.secret, headers, body, now=time.time())
        except Unauthorized as exc:
            return 401, json.dumps({"error": str(exc)}).encode()
        event: dict[str, Any] = json.loads(body)
        data = event["data"]
        first = message_id not in self.arrived
        self.arrived.add(message_id)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        answer = 200
        if first and self.picked(message_id, self.stall_every, b"stall"):
            await asyncio.sleep(self.stall_seconds)
            answer = 504  # the sender stopped waiting before this: recorded, not delivered
        elif first and self.picked(message_id, self.fail_every, b"fail"):
            answer = 500
        record = {
            "id": message_id,
            "type": event["type"],
            "subject": data.get("job_id") or data.get("group_id"),
            "at": data["at"],
            "received": time.time(),
            "answer": answer,
            "duplicate": message_id in self.seen,
        }
        if answer == 200:
            self.seen.add(message_id)
        self.log.write(json.dumps(record) + "\n")
        return answer, b'{"ok":true}' if answer == 200 else b'{"ok":false}'


def create_sink(
    secret: str,
    log_path: str,
    *,
    fail_every: int = 0,
    stall_every: int = 0,
    stall_seconds: float = 0.0,
    delay_seconds: float = 0.0,
) -> Starlette:
    """The receiver app: verify, record, answer (or fail on purpose)."""
    sink = Sink(
        secret,
        log_path,
        fail_every=fail_every,
        stall_every=stall_every,
        stall_seconds=stall_seconds,
        delay_seconds=delay_seconds,
    )

    async def receive(request: Request) -> Response:
        status, body = await sink.receive(request.headers, await request.body())
        return Response(body, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/hook", receive, methods=["POST"])])


def main() -> None:
    """Serve the sink until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--stall-every", type=int, default=0)
    parser.add_argument("--stall-seconds", type=float, default=0.0)
    parser.add_argument("--delay-seconds", type=float, default=0.0, help="before each answer")
    arguments = parser.parse_args()
    app = create_sink(
        arguments.secret,
        arguments.log,
        fail_every=arguments.fail_every,
        stall_every=arguments.stall_every,
        stall_seconds=arguments.stall_seconds,
        delay_seconds=arguments.delay_seconds,
    )
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
